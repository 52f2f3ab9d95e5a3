//! Common-subexpression elimination: two nodes with the same op, attributes,
//! type and operands are one node. Random draws are never merged.

use rustc_hash::FxHashMap as HashMap;

use super::Pass;
use crate::ir::{Graph, NodeId};
use crate::prim::Prim;

pub struct Cse;

impl Pass for Cse {
    fn name(&self) -> &'static str {
        "cse"
    }

    fn run(&self, graph: &mut Graph) -> bool {
        // Nodes by operands and dtype; among those, equal ops (a constant's
        // exact bits) of equal shapes are one node. (Shapes are compared,
        // not hashed: a symbolic size is a polynomial, dear to clone.)
        type Key = (Vec<NodeId>, &'static str);
        let mut seen: HashMap<Key, Vec<NodeId>> = HashMap::default();
        let mut changed = false;
        for id in graph.topo_order() {
            let node = graph.node(id);
            if matches!(node.op, Prim::Random { .. }) {
                continue;
            }
            let key = (graph.inputs(id), node.dtype.name());
            let same = |other: &crate::ir::Node| {
                let op = match (&node.op, &other.op) {
                    (Prim::Const(a), Prim::Const(b)) => a.to_bits() == b.to_bits(),
                    (a, b) => a == b,
                };
                op && other.shape == node.shape
            };
            let candidates = seen.entry(key).or_default();
            match candidates.iter().copied().find(|&c| same(graph.node(c))) {
                Some(earlier) => {
                    graph.replace_uses(id, earlier);
                    graph.remove(id);
                    changed = true;
                }
                None => candidates.push(id),
            }
        }
        changed
    }
}
