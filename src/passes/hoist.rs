//! Products hoisted out of an unrolled recurrence: the products of one
//! weight with every time step of one sequence, `x[:, t] @ w` for each `t`
//! (the input projection of an RNN, LSTM or GRU cell), become one product
//! over all steps, `reshape(x, [B·T, E]) @ w`, whose rows the steps read.
//!
//! Run on the forward graph before autodiff, so the backward pass gets the
//! same shape for free: the step gradients meet in one tensor (a sum of
//! pads that `pads.rs` turns into a concatenation), and the weight's and
//! the sequence's gradients are one product each instead of one per step.

use std::collections::BTreeMap;

use super::{Order, Pass};
use crate::check::dims::Dim;
use crate::ir::{Graph, NodeId};
use crate::prim::{DType, Prim};

pub struct HoistProducts;

impl Pass for HoistProducts {
    fn name(&self) -> &'static str {
        "hoist"
    }

    fn run_in_order(&self, graph: &mut Graph, order: &mut Order) -> bool {
        // (sequence, weight) -> the products and the step each reads.
        let mut groups: BTreeMap<(usize, usize), Vec<(NodeId, i64)>> = BTreeMap::new();
        for &id in order.get(graph) {
            if let Some((sequence, weight, step)) = step_product(graph, id) {
                groups
                    .entry((sequence.index(), weight.index()))
                    .or_default()
                    .push((id, step));
            }
        }
        let mut changed = false;
        for products in groups.values() {
            if products.len() < 2 {
                continue;
            }
            let (first, _) = products[0];
            let (a, weight) = (graph.inputs(first)[0], graph.inputs(first)[1]);
            let sequence = graph.inputs(graph.inputs(a)[0])[0];
            let s = graph.shape(sequence);
            let n = graph.shape(weight)[1].clone();
            let rows = graph.reshape(sequence, vec![s[0].mul(&s[1]), s[2].clone()]);
            let all = graph.matmul(rows, weight);
            let stacked = graph.reshape(all, vec![s[0].clone(), s[1].clone(), n.clone()]);
            for &(product, step) in products {
                let row = graph.slice(stacked, 1, Dim::constant(step), Dim::constant(1), 1);
                let row = graph.reshape(row, vec![s[0].clone(), n.clone()]);
                graph.replace_uses(product, row);
                remove_unused(graph, product);
            }
            changed = true;
        }
        changed
    }
}

/// The operands `(a, w)` of `id` when it is an f32 product of two
/// matrices.
pub(super) fn matrix_product(graph: &Graph, id: NodeId) -> Option<(NodeId, NodeId)> {
    if !matches!(graph.node(id).op, Prim::MatMul) || graph.node(id).dtype != DType::F32 {
        return None;
    }
    let [a, w] = graph.inputs(id)[..] else {
        return None;
    };
    let matrix = |x: NodeId| graph.node(x).shape.len() == 2;
    (matrix(a) && matrix(w)).then_some((a, w))
}

/// `reshape(slice(x, axis 1, t, 1 step)) @ w` with `x: f32[B, T, E]` and
/// `w: f32[E, N]`: the sequence, the weight and the step `t`.
fn step_product(graph: &Graph, id: NodeId) -> Option<(NodeId, NodeId, i64)> {
    let (a, weight) = matrix_product(graph, id)?;
    let shape = |x: NodeId| &graph.node(x).shape[..];
    if !matches!(graph.node(a).op, Prim::Reshape) {
        return None;
    }
    let slice = graph.inputs(a)[0];
    let Prim::Slice {
        axis: 1,
        start,
        step: 1,
    } = &graph.node(slice).op
    else {
        return None;
    };
    let sequence = graph.inputs(slice)[0];
    let (s, x) = (shape(sequence), shape(slice));
    let one_step = s.len() == 3 && x[1].as_const() == Some(1) && s[1].as_const().is_some_and(|t| t > 1);
    if !one_step || shape(a)[0] != s[0] || shape(a)[1] != s[2] {
        return None;
    }
    Some((sequence, weight, start.as_const()?))
}

/// Removes `id` and then those of its operands that it alone used (the
/// step's reshape and slice), but no leaf: every parameter stays in the
/// graph.
pub(super) fn remove_unused(graph: &mut Graph, id: NodeId) {
    if !graph.users(id).is_empty() || graph.is_output(id) {
        return;
    }
    let operands = graph.inputs(id);
    graph.remove(id);
    for operand in operands {
        if matches!(graph.node(operand).op, Prim::Reshape | Prim::Slice { .. }) {
            remove_unused(graph, operand);
        }
    }
}
