//! Reverse-mode autodiff as a graph-to-graph transform: a forward graph and
//! a scalar loss in, the same graph with the backward pass (and, through
//! [`optimizer`], the parameter update) appended. One gradient rule per
//! primitive, in [`rules`]; broadcasting is undone by `Graph::sum_to_shape`.

pub mod optimizer;
mod rules;

use std::collections::{HashMap, HashSet};

use crate::ir::{Graph, NodeId};
use crate::prim::{DType, Prim};

/// Appends the gradient of `loss` with respect to each of `wrt` and returns
/// the gradient nodes, in the order of `wrt`. A node the loss does not
/// depend on gets a zero gradient.
pub fn gradients(graph: &mut Graph, loss: NodeId, wrt: &[NodeId]) -> Vec<NodeId> {
    let order = graph.topo_order();
    // Nodes that depend on some `wrt` and that the loss depends on: only
    // they need adjoints.
    let mut from_wrt: HashSet<NodeId> = wrt.iter().copied().collect();
    for &id in &order {
        if graph.inputs(id).iter().any(|i| from_wrt.contains(i)) && !blocks_gradient(&graph.node(id).op) {
            from_wrt.insert(id);
        }
    }
    let mut to_loss: HashSet<NodeId> = HashSet::from([loss]);
    for &id in order.iter().rev() {
        if to_loss.contains(&id) {
            to_loss.extend(graph.inputs(id));
        }
    }
    let active = |id: &NodeId| from_wrt.contains(id) && to_loss.contains(id);

    let mut adjoints: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    let seed = graph.fill_like(loss, 1.0);
    adjoints.insert(loss, vec![seed]);
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
