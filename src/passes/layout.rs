//! Permutations sunk below element-wise ops: `f(permute(a, p), c)` with `c`
//! a constant becomes `permute(f(a, c), p)`, and `permute(permute(a, p), q)`
//! is `a` when the two cancel.
//!
//! The standard library's convolution computes channels-last (a product over
//! patches gives `[N, H, W, C]`) and permutes to the language's `[N, C, H, W]`;
//! its pooling permutes back to channels-last to read each window's channels
//! contiguously. Sinking the permutation through the activation between them
//! lets the two meet and cancel, so the activation is computed — and kept
//! for the backward pass — in the layout the product wrote, and nothing is
//! transposed in memory. Run on the forward graph before autodiff, so the
//! gradients follow the same layout.

use super::simplify::constant;
use super::{Order, Pass};
use crate::ir::{Graph, NodeId};
use crate::prim::Prim;

pub struct SinkPermutes;

impl Pass for SinkPermutes {
    fn name(&self) -> &'static str {
        "layout"
    }

    fn run_in_order(&self, graph: &mut Graph, order: &mut Order) -> bool {
        let mut changed = false;
        for &id in order.get(graph) {
            if !graph.graph.contains_node(id) {
                continue;
            }
            if let Some(replacement) = sink(graph, id).or_else(|| compose(graph, id)) {
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

/// The inverse of a permutation.
fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

/// `permute(permute(a, p), q)` = `a` when `p∘q` is the identity.
fn compose(graph: &mut Graph, id: NodeId) -> Option<NodeId> {
    let Prim::Permute(outer) = &graph.node(id).op else {
        return None;
    };
    let inner_node = graph.inputs(id)[0];
    let Prim::Permute(inner) = &graph.node(inner_node).op else {
        return None;
    };
    let perm: Vec<usize> = outer.iter().map(|&o| inner[o]).collect();
    // Only permutations that cancel are composed: a matrix product or a
    // gather reads any other pair as one strided view already.
    perm.iter()
        .enumerate()
        .all(|(i, &p)| i == p)
        .then(|| graph.inputs(inner_node)[0])
}

/// `f(permute(a, p), constants...)` = `permute(f(a, constants...), p)`, for
/// element-wise `f` whose other operands are constants (any layout of a
/// constant is the same constant) or permutations by the same `p`.
fn sink(graph: &mut Graph, id: NodeId) -> Option<NodeId> {
    // The kind and a permuted operand first: most nodes have neither, and
    // cloning a shape costs.
    if !graph.node(id).op.is_elementwise() {
        return None;
    }
    let inputs = graph.inputs(id);
    let perm = inputs.iter().find_map(|&x| match &graph.node(x).op {
        Prim::Permute(p) => Some(p.clone()),
        _ => None,
    })?;
    let node = graph.node(id).clone();
    let inv = inverse(&perm);
    let source_shape: Vec<_> = inv.iter().map(|&i| node.shape[i].clone()).collect();
    let mut operands = Vec::with_capacity(inputs.len());
    for &x in &inputs {
        let operand = graph.node(x);
        operands.push(match &operand.op {
            Prim::Permute(p) if *p == perm => graph.inputs(x)[0],
            _ => {
                let value = constant(graph, x)?;
                let dtype = operand.dtype;
                graph.add(Prim::Const(value), dtype, source_shape.clone(), &[])
            }
        });
    }
    let inner = graph.add(node.op.clone(), node.dtype, source_shape, &operands);
    Some(graph.permute(inner, perm))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::dims::Dim;
    use crate::prim::{BinaryOp, DType};

    fn dims(sizes: &[i64]) -> Vec<Dim> {
        sizes.iter().map(|&s| Dim::constant(s)).collect()
    }

    #[test]
    fn a_permutation_sinks_below_relu_and_cancels_with_its_inverse() {
        let mut graph = Graph::default();
        let x = graph.add(Prim::Input("x".into()), DType::F32, dims(&[2, 3, 4, 5]), &[]);
        let nchw = graph.permute(x, vec![0, 3, 1, 2]);
        let zero = graph.add(Prim::Const(0.0), DType::F32, dims(&[2, 5, 3, 4]), &[]);
        let relu = graph.add(
            Prim::Binary(BinaryOp::Max),
            DType::F32,
            dims(&[2, 5, 3, 4]),
            &[nchw, zero],
        );
        let nhwc = graph.permute(relu, vec![0, 2, 3, 1]);
        graph.outputs.push(("y".into(), nhwc));
        assert!(SinkPermutes.run(&mut graph));
        super::super::Dce.run(&mut graph);
        // y = max(x, 0) in x's own layout: no permutation is left.
        let y = graph.outputs[0].1;
        assert_eq!(graph.node(y).op, Prim::Binary(BinaryOp::Max));
        assert_eq!(graph.node(y).shape, dims(&[2, 3, 4, 5]));
        assert_eq!(graph.inputs(y)[0], x);
        assert!(graph
            .graph
            .node_indices()
            .all(|n| !matches!(graph.node(n).op, Prim::Permute(_))));
    }

    #[test]
    fn a_permutation_stays_above_an_operand_in_another_layout() {
        let mut graph = Graph::default();
        let x = graph.add(Prim::Input("x".into()), DType::F32, dims(&[2, 3]), &[]);
        let y = graph.add(Prim::Input("y".into()), DType::F32, dims(&[3, 2]), &[]);
        let xt = graph.permute(x, vec![1, 0]);
        let sum = graph.add(Prim::Binary(BinaryOp::Add), DType::F32, dims(&[3, 2]), &[xt, y]);
        graph.outputs.push(("s".into(), sum));
        assert!(!SinkPermutes.run(&mut graph));
    }
}
