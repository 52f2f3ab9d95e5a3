//! Common-subexpression elimination: two nodes with the same op, attributes,
//! type and operands are one node. Random draws are never merged.

use std::collections::HashMap;

use super::Pass;
use crate::ir::{Graph, NodeId};
use crate::prim::Prim;

pub struct Cse;

impl Pass for Cse {
    fn name(&self) -> &'static str {
        "cse"
    }

    fn run(&self, graph: &mut Graph) -> bool {
        let mut seen: HashMap<String, NodeId> = HashMap::new();
        let mut changed = false;
        for id in graph.topo_order() {
            let node = graph.node(id);
            if matches!(node.op, Prim::Random { .. }) {
                continue;
            }
            let inputs: Vec<String> = graph.inputs(id).iter().map(|i| i.index().to_string()).collect();
            let key = format!(
                "{}|{}|{:?}|{}|{}",
                node.op,
                node.dtype.name(),
                node.shape,
                inputs.join(","),
                // Const prints at f32 precision; keep exact values apart.
                match node.op {
                    Prim::Const(v) => v.to_bits(),
                    _ => 0,
                }
            );
            match seen.get(&key) {
                Some(&earlier) => {
                    graph.replace_uses(id, earlier);
                    graph.remove(id);
                    changed = true;
                }
                None => {
                    seen.insert(key, id);
                }
            }
        }
        changed
    }
}
