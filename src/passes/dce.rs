//! Dead-code elimination: removes every node no output depends on.

use petgraph::visit::NodeIndexable;
use petgraph::Direction;

use super::{Order, Pass};
use crate::ir::Graph;

pub struct Dce;

impl Pass for Dce {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn run_in_order(&self, graph: &mut Graph, _: &mut Order) -> bool {
        // Live nodes by index (a flag per index is cheaper than a set).
        let mut live = vec![false; graph.graph.node_bound()];
        let mut stack: Vec<_> = graph.outputs.iter().map(|(_, id)| *id).collect();
        for &id in &stack {
            live[id.index()] = true;
        }
        while let Some(id) = stack.pop() {
            for input in graph.graph.neighbors_directed(id, Direction::Incoming) {
                if !live[input.index()] {
                    live[input.index()] = true;
                    stack.push(input);
                }
            }
        }
        let dead: Vec<_> = graph.graph.node_indices().filter(|id| !live[id.index()]).collect();
        for &id in &dead {
            graph.remove(id);
        }
        !dead.is_empty()
    }
}
