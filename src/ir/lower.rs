//! Lowering: the checker's trace (the elaborated program in primitive ops)
//! becomes an IR graph, one node per trace node, outputs kept by name.

use super::{Graph, NodeId};
use crate::check::trace::Trace;

pub fn lower(trace: &Trace) -> Graph {
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
