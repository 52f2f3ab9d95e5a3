//! Lowering: the checker's trace (the elaborated program in primitive ops)
//! becomes an IR graph, one node per trace node, outputs kept by name.
//! [`lower_loops`] keeps each `scan` one loop node; [`lower`] unrolls them,
//! for the stages that do not handle loops yet.

use super::{Graph, NodeId};
use crate::check::trace::Trace;

/// The trace with every loop unrolled.
pub fn lower(trace: &Trace) -> Graph {
    let mut graph = lower_loops(trace);
    if let Err(why) = super::loops::unroll(&mut graph) {
        unreachable!("the checker's loops unroll: {why}");
    }
    graph
}

/// The trace as it is: a `scan` is one loop node.
pub fn lower_loops(trace: &Trace) -> Graph {
    let mut graph = Graph::new();
    let mut ids: Vec<NodeId> = Vec::with_capacity(trace.nodes.len());
    for (index, node) in trace.nodes.iter().enumerate() {
        let inputs: Vec<NodeId> = node.inputs.iter().map(|&i| ids[i]).collect();
        let id = graph.add(node.op.clone(), node.dtype, node.shape.clone(), &inputs);
        if let Some(span) = trace.origins.get(&index) {
            graph.origins.insert(graph.node(id).serial, *span);
        }
        ids.push(id);
    }
    for (name, node) in &trace.outputs {
        graph.set_output(name, ids[*node]);
    }
    graph
}
