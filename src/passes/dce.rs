//! Dead-code elimination: removes every node no output depends on.

use std::collections::HashSet;

use super::Pass;
use crate::ir::Graph;

pub struct Dce;

impl Pass for Dce {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn run(&self, graph: &mut Graph) -> bool {
        let mut live: HashSet<_> = graph.outputs.iter().map(|(_, id)| *id).collect();
        let mut stack: Vec<_> = live.iter().copied().collect();
        while let Some(id) = stack.pop() {
            for input in graph.inputs(id) {
                if live.insert(input) {
                    stack.push(input);
                }
            }
        }
        let dead: Vec<_> = graph.graph.node_indices().filter(|id| !live.contains(id)).collect();
        for &id in &dead {
            graph.remove(id);
        }
        !dead.is_empty()
    }
}
