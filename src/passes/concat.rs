//! Element-wise ops distribute over concatenations: `op(concat(a, b), m)`
//! is `concat(op(a, m[..a]), op(b, m[a..]))` when nothing else reads the
//! concatenation (also through one reshape, whose inverse view is applied
//! to `m`). A gradient that arrives as a concatenation (the sum of pads of
//! a pooling window's four values, `pads.rs`) and is then multiplied by an
//! activation's slope is computed piece by piece into one buffer, instead
//! of being written once and read back by the multiplication.

use super::{Order, Pass};
use crate::check::dims::Dim;
use crate::ir::{Graph, NodeId};
use crate::prim::Prim;

pub struct DistributeOverConcat;

/// Concatenations of more operands are left alone.
const MAX_PIECES: usize = 4;

impl Pass for DistributeOverConcat {
    fn name(&self) -> &'static str {
        "concat"
    }

    fn run_in_order(&self, graph: &mut Graph, order: &mut Order) -> bool {
        let mut changed = false;
        for &id in order.get(graph) {
            if !graph.graph.contains_node(id) || !matches!(graph.node(id).op, Prim::Binary(_)) {
                continue;
            }
            if let Some(replacement) = rewrite(graph, id) {
                graph.replace_uses(id, replacement);
                changed = true;
            }
        }
        changed
    }
}

/// Whether `id` is read by `user` alone.
fn only_for(graph: &Graph, id: NodeId, user: NodeId) -> bool {
    graph.only_user(id, user) && !graph.is_output(id)
}

/// The concatenation `operand` of `user` is (directly, or through one
/// reshape), if nothing else reads it: `(concat, reshape)`.
fn concatenation(graph: &Graph, operand: NodeId, user: NodeId) -> Option<(NodeId, Option<NodeId>)> {
    // The kinds first: most operands are neither, and finding the users of
    // a widely read node (a weight) costs more.
    let found = match graph.node(operand).op {
        Prim::Concat { .. } => (operand, None),
        Prim::Reshape => {
            let inner = graph.inputs(operand)[0];
            if !matches!(graph.node(inner).op, Prim::Concat { .. }) || !only_for(graph, inner, operand) {
                return None;
            }
            (inner, Some(operand))
        }
        _ => return None,
    };
    only_for(graph, operand, user).then_some(found)
}

fn rewrite(graph: &mut Graph, id: NodeId) -> Option<NodeId> {
    let inputs = graph.inputs(id);
    if inputs.len() != 2 || inputs[0] == inputs[1] {
        return None;
    }
    let (side, (concat, reshape)) = (0..2).find_map(|side| Some((side, concatenation(graph, inputs[side], id)?)))?;
    let other = inputs[1 - side];
    // Two concatenations side by side are left alone: slicing the other one
    // gains nothing.
    if concatenation(graph, other, id).is_some() || matches!(graph.node(other).op, Prim::Concat { .. }) {
        return None;
    }
    // A few pieces only (the halves of a window, an LSTM's `[h, c]`): the
    // steps of a long sequence stay one loop each.
    if graph.inputs(concat).len() > MAX_PIECES {
        return None;
    }
    let node = graph.node(id).clone();
    let Prim::Concat { axis } = graph.node(concat).op else {
        unreachable!("a concatenation")
    };
    let concat_shape = graph.node(concat).shape.clone();
    let other_node = graph.node(other).clone();
    let other = match reshape {
        Some(_) => graph.add(Prim::Reshape, other_node.dtype, concat_shape.clone(), &[other]),
        None => other,
    };
    let mut start = Dim::constant(0);
    let mut pieces = Vec::new();
    for piece in graph.inputs(concat) {
        let piece_shape = graph.node(piece).shape.clone();
        let slice = graph.add(
            Prim::Slice {
                axis,
                start: start.clone(),
                step: 1,
            },
            other_node.dtype,
            piece_shape.clone(),
            &[other],
        );
        start = start.add(&piece_shape[axis]);
        let operands = if side == 0 { [piece, slice] } else { [slice, piece] };
        pieces.push(graph.add(node.op.clone(), node.dtype, piece_shape, &operands));
    }
    let joined = graph.add(Prim::Concat { axis }, node.dtype, concat_shape, &pieces);
    Some(match reshape {
        Some(_) => graph.add(Prim::Reshape, node.dtype, node.shape, &[joined]),
        None => joined,
    })
}
