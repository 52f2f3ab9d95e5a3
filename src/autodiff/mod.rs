//! Reverse-mode autodiff as a graph-to-graph transform: a forward graph and
//! a scalar loss in, the same graph with the backward pass (and, through
//! [`optimizer`], the parameter update) appended. One gradient rule per
//! primitive, in `rules.rs`; broadcasting is undone by `Graph::sum_to_shape`.

mod loops;
pub mod optimizer;
mod rules;

use std::collections::{HashMap, HashSet};

use crate::ir::{Graph, NodeId};
use crate::prim::{DType, Prim};

/// Appends the gradient of `loss` with respect to each of `wrt` and returns
/// the gradient nodes, in the order of `wrt`. A node the loss does not
/// depend on gets a zero gradient.
pub fn gradients(graph: &mut Graph, loss: NodeId, wrt: &[NodeId]) -> Vec<NodeId> {
    let seed = graph.fill_like(loss, 1.0);
    seeded_gradients(graph, &[(loss, seed)], wrt)
}

/// The gradients of `Σ <output, seed>` over the `(output, seed)` pairs
/// (each seed of its output's shape) with respect to each of `wrt`: a
/// vector-Jacobian product. Loop bodies are differentiated this way.
pub fn seeded_gradients(graph: &mut Graph, seeds: &[(NodeId, NodeId)], wrt: &[NodeId]) -> Vec<NodeId> {
    let order = graph.topo_order();
    // Nodes that depend on some `wrt` and that an output depends on: only
    // they need adjoints.
    let mut from_wrt: HashSet<NodeId> = wrt.iter().copied().collect();
    let mut operands = Vec::new();
    for &id in &order {
        graph.inputs_into(id, &mut operands);
        if operands.iter().any(|i| from_wrt.contains(i)) && !blocks_gradient(&graph.node(id).op) {
            from_wrt.insert(id);
        }
    }
    let mut to_loss: HashSet<NodeId> = seeds.iter().map(|(output, _)| *output).collect();
    for &id in order.iter().rev() {
        if to_loss.contains(&id) {
            graph.inputs_into(id, &mut operands);
            to_loss.extend(operands.iter().copied());
        }
    }
    let active = |id: &NodeId| from_wrt.contains(id) && to_loss.contains(id);

    let mut adjoints: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for &(output, seed) in seeds {
        adjoints.entry(output).or_default().push(seed);
    }
    let mut totals: HashMap<NodeId, NodeId> = HashMap::new();
    for &id in order.iter().rev() {
        if !active(&id) {
            continue;
        }
        let Some(parts) = adjoints.remove(&id) else {
            continue;
        };
        let total = sum(graph, parts);
        totals.insert(id, total);
        let inputs = graph.inputs(id);
        if let Prim::Scan(_) = graph.node(id).op {
            let wanted: Vec<bool> = inputs
                .iter()
                .map(|i| active(i) && differentiable(graph.dtype(*i)))
                .collect();
            for (input, part) in inputs.iter().zip(loops::vjp(graph, id, &inputs, &wanted, total)) {
                if let Some(part) = part {
                    adjoints.entry(*input).or_default().push(part);
                }
            }
            continue;
        }
        for (position, &input) in inputs.iter().enumerate() {
            if !active(&input) {
                continue;
            }
            if let Some(part) = rules::vjp(graph, id, &inputs, position, total) {
                adjoints.entry(input).or_default().push(part);
            }
        }
    }
    wrt.iter()
        .map(|id| match totals.get(id) {
            Some(&g) => g,
            None => graph.fill_like(*id, 0.0),
        })
        .collect()
}

/// Ops through which no gradient flows.
fn blocks_gradient(op: &Prim) -> bool {
    matches!(op, Prim::StopGrad | Prim::ArgMax { .. })
}

fn sum(graph: &mut Graph, parts: Vec<NodeId>) -> NodeId {
    let mut parts = parts.into_iter();
    let first = parts.next().expect("an adjoint has at least one part");
    parts.fold(first, |acc, part| graph.add_nodes(acc, part))
}

/// True for dtypes that carry gradients.
fn differentiable(dtype: DType) -> bool {
    dtype.is_float()
}
