//! Sums of zero pads are concatenations: `pad(a) + pad(b) + ...`, where the
//! pads place their operands in disjoint ranges of one axis, is
//! `concat(a, 0, b, ...)`. Autodiff writes such sums for the gradient of a
//! tensor read in slices (an LSTM's four gates, every time step of a
//! sequence); as a sum, each element evaluates every term, as a
//! concatenation each operand is computed once into its own range.

use super::{Order, Pass};
use crate::check::dims::Dim;
use crate::ir::{Graph, NodeId};
use crate::prim::{BinaryOp, DType, Prim};

pub struct PadsToConcat;

impl Pass for PadsToConcat {
    fn name(&self) -> &'static str {
        "pads"
    }

    fn run_in_order(&self, graph: &mut Graph, order: &mut Order) -> bool {
        let mut changed = false;
        for &id in order.get(graph) {
            if !graph.graph.contains_node(id) || !is_sum(graph, id) || inside_larger_sum(graph, id) {
                continue;
            }
            if let Some(replacement) = rewrite(graph, id) {
                // The old sum is left to dead-code elimination.
                graph.replace_uses(id, replacement);
                changed = true;
            }
        }
        changed
    }
}

fn is_sum(graph: &Graph, id: NodeId) -> bool {
    matches!(graph.node(id).op, Prim::Binary(BinaryOp::Add)) && graph.node(id).dtype == DType::F32
}

/// Whether `id` is one term of a larger sum that will be rewritten whole.
fn inside_larger_sum(graph: &Graph, id: NodeId) -> bool {
    graph.sole_user(id).is_some_and(|user| is_sum(graph, user)) && !graph.is_output(id)
}

/// The terms of the sum tree rooted at `id`: inner sums used only in the
/// tree are opened.
fn terms(graph: &Graph, id: NodeId, out: &mut Vec<NodeId>) {
    for operand in graph.inputs(id) {
        let inner = is_sum(graph, operand)
            && graph.sole_user(operand).is_some()
            && !graph.is_output(operand)
            && graph.node(operand).shape == graph.node(id).shape;
        if inner {
            terms(graph, operand, out);
        } else {
            out.push(operand);
        }
    }
}

/// A zero pad along `axis` by constant amounts: `(axis, before, after)`.
fn zero_pad(graph: &Graph, id: NodeId) -> Option<(usize, i64, i64)> {
    match &graph.node(id).op {
        Prim::Pad {
            axis,
            before,
            after,
            value,
        } if *value == 0.0 => Some((*axis, before.as_const()?, after.as_const()?)),
        _ => None,
    }
}

fn rewrite(graph: &mut Graph, id: NodeId) -> Option<NodeId> {
    let mut all = Vec::new();
    terms(graph, id, &mut all);
    // The pads along the axis most of them use; the other terms are added
    // to the concatenation.
    let axis = all
        .iter()
        .filter_map(|&t| zero_pad(graph, t))
        .map(|(a, _, _)| a)
        .min()?;
    let (mut pads, mut rest): (Vec<NodeId>, Vec<NodeId>) = all
        .iter()
        .partition(|&&t| matches!(zero_pad(graph, t), Some((a, _, _)) if a == axis));
    pads.sort_by_key(|&t| zero_pad(graph, t).map(|(_, before, _)| before));
    let pads = merge_equal_ranges(graph, pads);
    let shape = graph.node(id).shape.clone();
    let size = shape[axis].as_const()?;
    // Disjoint ranges only; a pad that overlaps the previous one stays a term.
    let mut pieces = Vec::new();
    let mut at = 0;
    let mut kept = Vec::new();
    for &pad in &pads {
        let (_, before, after) = zero_pad(graph, pad)?;
        if before < at {
            rest.push(pad);
            continue;
        }
        if before > at {
            pieces.push(zeros(graph, &shape, axis, before - at));
        }
        pieces.push(graph.inputs(pad)[0]);
        kept.push(pad);
        at = size - after;
    }
    if kept.len() < 2 {
        return None;
    }
    if at < size {
        pieces.push(zeros(graph, &shape, axis, size - at));
    }
    let mut total = graph.add(Prim::Concat { axis }, DType::F32, shape, &pieces);
    for term in rest {
        total = graph.add_nodes(total, term);
    }
    Some(total)
}

/// Pads (sorted by start) that place their operands in the same range are
/// one pad of the operands' sum: `pad(a) + pad(b) = pad(a + b)`. The
/// gradient of a tensor read in a grid of slices (the four values of a 2×2
/// pooling window) pads along two axes; the inner sums become
/// concatenations in turn, so the whole gradient is one nested
/// concatenation.
fn merge_equal_ranges(graph: &mut Graph, pads: Vec<NodeId>) -> Vec<NodeId> {
    let mut merged: Vec<NodeId> = Vec::new();
    for pad in pads {
        let range = zero_pad(graph, pad);
        match merged.last().copied() {
            Some(last) if zero_pad(graph, last) == range => {
                let (a, b) = (graph.inputs(last)[0], graph.inputs(pad)[0]);
                let sum = graph.add_nodes(a, b);
                let node = graph.node(pad).clone();
                let joined = graph.add(node.op, node.dtype, node.shape, &[sum]);
                *merged.last_mut().expect("a pad") = joined;
            }
            _ => merged.push(pad),
        }
    }
    merged
}

fn zeros(graph: &mut Graph, shape: &[Dim], axis: usize, len: i64) -> NodeId {
    let mut shape = shape.to_vec();
    shape[axis] = Dim::constant(len);
    graph.add(Prim::Const(0.0), DType::F32, shape, &[])
}
