//! Algebraic simplification: identities that remove work without changing
//! values — `x + 0`, `x * 1`, `x * 0`, `x / 1`, `-(-x)`, no-op layout ops,
//! `stop_grad` (the identity once gradients exist), reshape chains, slices
//! of concatenations (the pieces they take; also through a reshape that
//! only adds or drops axes of size 1) and of pads (the operand),
//! concatenations of concatenations along one axis (one concatenation).

use super::{Order, Pass};
use crate::check::dims::Dim;
use crate::ir::{Graph, NodeId};
use crate::prim::{BinaryOp, Prim, UnaryOp};

pub struct Simplify;

impl Pass for Simplify {
    fn name(&self) -> &'static str {
        "simplify"
    }

    fn run_in_order(&self, graph: &mut Graph, order: &mut Order) -> bool {
        let mut changed = false;
        let mut inputs = Vec::new();
        for &id in order.get(graph) {
            if !graph.graph.contains_node(id) {
                continue;
            }
            if let Some(replacement) = simplify(graph, id, &mut inputs) {
                graph.replace_uses(id, replacement);
                if graph.users(id).is_empty() && !graph.is_output(id) {
                    graph.remove(id);
                }
                changed = true;
            }
        }
        changed
    }
}

/// The value of a constant, also when it is broadcast.
pub(super) fn constant(graph: &Graph, id: NodeId) -> Option<f64> {
    match graph.node(id).op {
        Prim::Const(value) => Some(value),
        Prim::Broadcast => constant(graph, graph.inputs(id)[0]),
        _ => None,
    }
}

/// A node equal to `id` but cheaper, if there is one. `inputs` is a
/// buffer for the node's operands.
fn simplify(graph: &mut Graph, id: NodeId, inputs: &mut Vec<NodeId>) -> Option<NodeId> {
    // Most nodes are of no kind simplified here: they are passed over
    // without reading their operands or cloning their shapes.
    let simplified = matches!(
        graph.node(id).op,
        Prim::StopGrad
            | Prim::Reshape
            | Prim::Broadcast
            | Prim::Cast(_)
            | Prim::Permute(_)
            | Prim::Slice { .. }
            | Prim::Concat { .. }
            | Prim::Unary(UnaryOp::Neg)
            | Prim::Binary(_)
    );
    if !simplified {
        return None;
    }
    graph.inputs_into(id, inputs);
    let inputs = &inputs[..];
    let same_type = |g: &Graph, x: NodeId| {
        let (node, other) = (g.node(id), g.node(x));
        other.shape == node.shape && other.dtype == node.dtype
    };
    let (dtype, op) = (graph.node(id).dtype, &graph.node(id).op);
    match op {
        Prim::StopGrad => Some(inputs[0]),
        Prim::Reshape | Prim::Broadcast if same_type(graph, inputs[0]) => Some(inputs[0]),
        Prim::Cast(_) if same_type(graph, inputs[0]) => Some(inputs[0]),
        Prim::Permute(perm) if perm.iter().enumerate().all(|(i, &p)| i == p) => Some(inputs[0]),
        Prim::Slice { start, step, .. } if start.as_const() == Some(0) && *step == 1 && same_type(graph, inputs[0]) => {
            Some(inputs[0])
        }
        Prim::Slice { axis, start, step: 1 } if matches!(graph.node(inputs[0]).op, Prim::Concat { axis: a } if a == *axis) =>
        {
            let axis = *axis;
            match start.as_const() {
                Some(start) => slice_of_concat(graph, id, inputs[0], axis, start),
                // Sizes with symbols (the batch): only a whole piece.
                None => piece_at(graph, id, inputs[0], axis, &start.clone()),
            }
        }
        // slice(concat(a, b) along one axis) along another axis, when
        // every reader of the concatenation slices it so, is the
        // concatenation of the pieces' slices (views): the concatenation
        // then copies only what is read (a backward loop's `c_{t-1}` out
        // of the stacked `[h, c]` carries shifted by a step).
        Prim::Slice { axis, .. } if matches!(graph.node(inputs[0]).op, Prim::Concat { .. }) => {
            let (axis, op) = (*axis, op.clone());
            slices_across_concat(graph, id, inputs[0], axis, op)
        }
        // A slice of a pad inside the padded operand is a slice of the
        // operand (the adjoint of a loop's flat value, sliced again).
        Prim::Slice { axis, start, step: 1 } if matches!(graph.node(inputs[0]).op, Prim::Pad { axis: a, .. } if a == *axis) =>
        {
            let Prim::Pad { before, .. } = &graph.node(inputs[0]).op else {
                unreachable!()
            };
            let operand = graph.inputs(inputs[0])[0];
            // Sizes with symbols (the batch): only the exact operand.
            if start == before && graph.node(operand).shape == graph.node(id).shape {
                return Some(operand);
            }
            let (axis, start, before) = (*axis, start.as_const()?, before.as_const()?);
            let len = graph.node(id).shape[axis].as_const()?;
            let size = graph.node(operand).shape[axis].as_const()?;
            if start < before || start + len > before + size {
                return None;
            }
            let shape = graph.node(id).shape.clone();
            let op = Prim::Slice {
                axis,
                start: crate::check::dims::Dim::constant(start - before),
                step: 1,
            };
            Some(graph.add(op, dtype, shape, &[operand]))
        }
        // concat(a, concat(b, c), d) = concat(a, b, c, d) along one axis,
        // when nothing else reads the inner one.
        Prim::Concat { axis } => {
            let axis = *axis;
            let inner = |x: NodeId| {
                matches!(graph.node(x).op, Prim::Concat { axis: a } if a == axis) && graph.sole_user(x) == Some(id)
            };
            if !inputs.iter().any(|&x| inner(x)) {
                return None;
            }
            let mut flat = Vec::with_capacity(inputs.len());
            for &x in inputs {
                if inner(x) {
                    flat.extend(graph.inputs(x));
                } else {
                    flat.push(x);
                }
            }
            let shape = graph.node(id).shape.clone();
            Some(graph.add(Prim::Concat { axis }, dtype, shape, &flat))
        }
        // reshape(concat(a, b)) = concat(reshape(a), reshape(b)) when the
        // reshape only adds or drops axes of size 1 and nothing else reads
        // the concatenation: slices of it then take the pieces.
        Prim::Reshape
            if matches!(graph.node(inputs[0]).op, Prim::Concat { .. })
                && graph.sole_user(inputs[0]) == Some(id)
                && !graph.is_output(inputs[0]) =>
        {
            reshape_of_concat(graph, id, inputs[0])
        }
        // reshape(reshape(x)) = reshape(x)
        Prim::Reshape if matches!(graph.node(inputs[0]).op, Prim::Reshape) => {
            let inner = graph.inputs(inputs[0])[0];
            if same_type(graph, inner) {
                return Some(inner);
            }
            let shape = graph.node(id).shape.clone();
            Some(graph.add(Prim::Reshape, dtype, shape, &[inner]))
        }
        // -(-x) = x
        Prim::Unary(UnaryOp::Neg) if matches!(graph.node(inputs[0]).op, Prim::Unary(UnaryOp::Neg)) => {
            Some(graph.inputs(inputs[0])[0])
        }
        // reshape(pad(a)) + reshape(pad(b)) = reshape(pad(a) + pad(b)) for
        // pads of one shape that nothing else reads: the adjoints of strided
        // slices (`autodiff/rules.rs`) then sum to a concatenation
        // (`passes/pads.rs`).
        Prim::Binary(BinaryOp::Add)
            if inputs.iter().all(|&x| {
                matches!(graph.node(x).op, Prim::Reshape)
                    && matches!(graph.node(graph.inputs(x)[0]).op, Prim::Pad { .. })
                    && graph.sole_user(x).is_some()
            }) && inputs[0] != inputs[1] =>
        {
            let (a, b) = (graph.inputs(inputs[0])[0], graph.inputs(inputs[1])[0]);
            let (na, nb) = (graph.node(a), graph.node(b));
            if na.shape != nb.shape || na.dtype != nb.dtype {
                return None;
            }
            let shape = na.shape.clone();
            let sum = graph.add(Prim::Binary(BinaryOp::Add), dtype, shape, &[a, b]);
            let shape = graph.node(id).shape.clone();
            Some(graph.add(Prim::Reshape, dtype, shape, &[sum]))
        }
        &Prim::Binary(op) => {
            let (a, b) = (inputs[0], inputs[1]);
            let (ca, cb) = (constant(graph, a), constant(graph, b));
            match (op, ca, cb) {
                (BinaryOp::Add, Some(0.0), _) => Some(b),
                (BinaryOp::Add | BinaryOp::Sub, _, Some(0.0)) => Some(a),
                (BinaryOp::Mul, Some(1.0), _) => Some(b),
                (BinaryOp::Mul | BinaryOp::Div, _, Some(1.0)) => Some(a),
                (BinaryOp::Mul, Some(0.0), _) | (BinaryOp::Mul, _, Some(0.0)) => {
                    let shape = graph.node(id).shape.clone();
                    Some(graph.add(Prim::Const(0.0), dtype, shape, &[]))
                }
                // 0 - x = -x
                (BinaryOp::Sub, Some(0.0), _) => {
                    let shape = graph.node(id).shape.clone();
                    Some(graph.add(Prim::Unary(UnaryOp::Neg), dtype, shape, &[b]))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// `reshape(concat(pieces))` as the concatenation of the reshaped pieces,
/// if the reshape (`id`) only adds or drops axes of size 1: the order of
/// the elements is the same either way. An unrolled LSTM step builds its
/// carry `[h, c]` and the output stack reads `h` back through a reshape to
/// `[B, 1, 2H]` and a slice; once the slice reads the piece itself, the
/// step's concatenation is read by nothing and is not built (a copy and a
/// kernel per step).
fn reshape_of_concat(graph: &mut Graph, id: NodeId, concat: NodeId) -> Option<NodeId> {
    let Prim::Concat { axis } = graph.node(concat).op else {
        return None;
    };
    let (from, to) = (&graph.node(concat).shape, &graph.node(id).shape);
    let kept = |shape: &[Dim]| -> Vec<usize> { (0..shape.len()).filter(|&i| shape[i].as_const() != Some(1)).collect() };
    let (kept_from, kept_to) = (kept(from), kept(to));
    if kept_from.len() != kept_to.len() || kept_from.iter().zip(&kept_to).any(|(&a, &b)| from[a] != to[b]) {
        return None;
    }
    let along = kept_to[kept_from.iter().position(|&a| a == axis)?];
    let (dtype, to) = (graph.node(id).dtype, to.clone());
    let pieces: Vec<NodeId> = graph.inputs(concat);
    let reshaped: Vec<NodeId> = pieces
        .into_iter()
        .map(|piece| {
            let mut shape = to.clone();
            shape[along] = graph.node(piece).shape[axis].clone();
            graph.add(Prim::Reshape, dtype, shape, &[piece])
        })
        .collect();
    Some(graph.add(Prim::Concat { axis: along }, dtype, to, &reshaped))
}

/// Slice `id` (op `op`, along `axis`) of `concat` as the concatenation of
/// the pieces sliced so, if `concat` joins along another axis, is not an
/// output, and is read only by slices along other axes than its own.
fn slices_across_concat(graph: &mut Graph, id: NodeId, concat: NodeId, axis: usize, op: Prim) -> Option<NodeId> {
    let Prim::Concat { axis: along } = graph.node(concat).op else {
        return None;
    };
    let sliced_across = |u: NodeId| matches!(graph.node(u).op, Prim::Slice { axis: b, .. } if b != along);
    if along == axis || graph.is_output(concat) || !graph.users(concat).into_iter().all(sliced_across) {
        return None;
    }
    let (dtype, width) = (graph.node(id).dtype, graph.node(id).shape[axis].clone());
    let pieces: Vec<NodeId> = graph
        .inputs(concat)
        .into_iter()
        .map(|piece| {
            let mut shape = graph.node(piece).shape.clone();
            shape[axis] = width.clone();
            graph.add(op.clone(), dtype, shape, &[piece])
        })
        .collect();
    let shape = graph.node(id).shape.clone();
    Some(graph.add(Prim::Concat { axis: along }, dtype, shape, &pieces))
}

/// `slice(concat(pieces), start..start + len)` along the concatenation's
/// axis: the piece the range lies in (sliced if it is part of it), or the
/// concatenation of the pieces it covers. Sizes must be known.
fn slice_of_concat(graph: &mut Graph, id: NodeId, concat: NodeId, axis: usize, start: i64) -> Option<NodeId> {
    let len = graph.node(id).shape[axis].as_const()?;
    let end = start + len;
    let dtype = graph.node(id).dtype;
    let mut taken = Vec::new();
    let mut offset = 0;
    for piece in graph.inputs(concat) {
        let size = graph.node(piece).shape[axis].as_const()?;
        let (from, to) = (start.max(offset), end.min(offset + size));
        if from < to {
            taken.push((piece, from - offset, to - from, size));
        }
        offset += size;
    }
    let parts: Vec<NodeId> = taken
        .into_iter()
        .map(|(piece, from, count, size)| {
            if from == 0 && count == size {
                return piece;
            }
            let mut shape = graph.node(piece).shape.clone();
            shape[axis] = crate::check::dims::Dim::constant(count);
            let op = Prim::Slice {
                axis,
                start: crate::check::dims::Dim::constant(from),
                step: 1,
            };
            graph.add(op, dtype, shape, &[piece])
        })
        .collect();
    match parts.as_slice() {
        [] => None,
        [one] => Some(*one),
        _ => {
            let shape = graph.node(id).shape.clone();
            Some(graph.add(Prim::Concat { axis }, dtype, shape, &parts))
        }
    }
}

/// The piece of a concatenation that a slice takes exactly (offsets
/// compared as polynomials).
fn piece_at(graph: &Graph, id: NodeId, concat: NodeId, axis: usize, start: &crate::check::dims::Dim) -> Option<NodeId> {
    let mut offset = crate::check::dims::Dim::constant(0);
    for piece in graph.inputs(concat) {
        let node = graph.node(piece);
        if &offset == start && node.shape == graph.node(id).shape {
            return Some(piece);
        }
        offset = offset.add(&node.shape[axis]);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::Pass;
    use crate::prim::DType;

    fn dims(sizes: &[i64]) -> Vec<Dim> {
        sizes.iter().map(|&s| Dim::constant(s)).collect()
    }

    /// The carries before each step, `concat(init, states[:, :-1])` along
    /// time, sliced into `h` and `c` along the features: two narrower
    /// concatenations of views, with the same values.
    #[test]
    fn slices_across_a_concatenation_become_a_concatenation_of_slices() {
        let mut graph = Graph::default();
        let init = graph.add(Prim::Input("init".into()), DType::F32, dims(&[2, 1, 4]), &[]);
        let states = graph.add(Prim::Input("states".into()), DType::F32, dims(&[2, 3, 4]), &[]);
        let before = graph.add(Prim::Concat { axis: 1 }, DType::F32, dims(&[2, 4, 4]), &[init, states]);
        let h = graph.slice(before, 2, Dim::constant(0), Dim::constant(2), 1);
        let c = graph.slice(before, 2, Dim::constant(2), Dim::constant(2), 1);
        graph.outputs.push(("h".into(), h));
        graph.outputs.push(("c".into(), c));
        let original = graph.clone();
        assert!(Simplify.run(&mut graph));
        super::super::Dce.run(&mut graph);
        for (_, out) in &graph.outputs {
            assert_eq!(graph.node(*out).op, Prim::Concat { axis: 1 });
            assert_eq!(graph.node(*out).shape, dims(&[2, 4, 2]));
        }
        assert!(!graph
            .graph
            .node_indices()
            .any(|n| graph.node(n).shape == dims(&[2, 4, 4])));
        let env = crate::interp::patterned_env(&[("init", &[2, 1, 4]), ("states", &[2, 3, 4])]);
        let expected = crate::interp::run_outputs(&original, &env).unwrap();
        let got = crate::interp::run_outputs(&graph, &env).unwrap();
        assert_eq!(expected, got);
    }

    /// An unrolled LSTM step's `[h, c]`, reshaped to `[B, 1, 2H]` and
    /// sliced back to `h` for the stack of outputs: the slice is `h`
    /// reshaped, and nothing reads the concatenation any more.
    #[test]
    fn a_slice_through_a_unit_reshape_of_a_concatenation_takes_the_piece() {
        let mut graph = Graph::default();
        let h = graph.add(Prim::Input("h".into()), DType::F32, dims(&[2, 3]), &[]);
        let c = graph.add(Prim::Input("c".into()), DType::F32, dims(&[2, 3]), &[]);
        let both = graph.add(Prim::Concat { axis: 1 }, DType::F32, dims(&[2, 6]), &[h, c]);
        let step = graph.add(Prim::Reshape, DType::F32, dims(&[2, 1, 6]), &[both]);
        let sliced = graph.slice(step, 2, Dim::constant(3), Dim::constant(3), 1);
        graph.outputs.push(("c".into(), sliced));
        assert!(Simplify.run(&mut graph));
        super::super::Dce.run(&mut graph);
        let out = graph.outputs[0].1;
        assert_eq!(graph.node(out).op, Prim::Reshape);
        assert_eq!(graph.inputs(out), vec![c]);
        assert!(!graph
            .graph
            .node_indices()
            .any(|n| matches!(graph.node(n).op, Prim::Concat { .. })));
    }

    /// A reshape that merges axes, or a concatenation read also by
    /// something else, is left alone.
    #[test]
    fn other_reshapes_of_a_concatenation_are_left_alone() {
        let mut graph = Graph::default();
        let h = graph.add(Prim::Input("h".into()), DType::F32, dims(&[2, 3]), &[]);
        let c = graph.add(Prim::Input("c".into()), DType::F32, dims(&[2, 3]), &[]);
        let both = graph.add(Prim::Concat { axis: 1 }, DType::F32, dims(&[2, 6]), &[h, c]);
        let flat = graph.add(Prim::Reshape, DType::F32, dims(&[12]), &[both]);
        graph.outputs.push(("flat".into(), flat));
        assert!(!Simplify.run(&mut graph));
        let step = graph.add(Prim::Reshape, DType::F32, dims(&[2, 1, 6]), &[both]);
        graph.outputs.push(("step".into(), step));
        assert!(!Simplify.run(&mut graph));
    }

    /// A concatenation also read whole is left alone: slicing its pieces
    /// would copy the data twice.
    #[test]
    fn a_concatenation_read_whole_is_not_split() {
        let mut graph = Graph::default();
        let a = graph.add(Prim::Input("a".into()), DType::F32, dims(&[2, 1, 4]), &[]);
        let b = graph.add(Prim::Input("b".into()), DType::F32, dims(&[2, 3, 4]), &[]);
        let both = graph.add(Prim::Concat { axis: 1 }, DType::F32, dims(&[2, 4, 4]), &[a, b]);
        let h = graph.slice(both, 2, Dim::constant(0), Dim::constant(2), 1);
        graph.outputs.push(("h".into(), h));
        graph.outputs.push(("both".into(), both));
        assert!(!Simplify.run(&mut graph));
    }
}
