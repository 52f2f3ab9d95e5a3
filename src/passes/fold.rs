//! Constant folding: element-wise ops on constants become constants, and
//! constants that are only broadcast, reshaped or cast stay constants.

use petgraph::visit::EdgeRef;
use petgraph::Direction;

use super::{Order, Pass};
use crate::ir::{Graph, NodeId};
use crate::prim::{DType, Prim};

pub struct ConstantFold;

impl Pass for ConstantFold {
    fn name(&self) -> &'static str {
        "fold"
    }

    fn run_in_order(&self, graph: &mut Graph, order: &mut Order) -> bool {
        let mut changed = false;
        for &id in order.get(graph) {
            if let Some(value) = fold(graph, id) {
                // The node becomes the constant in place, keeping its users.
                graph.node_mut(id).op = Prim::Const(value);
                graph.detach_inputs(id);
                changed = true;
            }
        }
        changed
    }
}

fn constant(graph: &Graph, id: NodeId) -> Option<f64> {
    match graph.node(id).op {
        Prim::Const(value) => Some(value),
        _ => None,
    }
}

/// The value of node `id` if it is a constant computed from constants.
fn fold(graph: &Graph, id: NodeId) -> Option<f64> {
    let node = graph.node(id);
    // The kinds first: most nodes are of none, and their operands need not
    // be read.
    let foldable = matches!(
        node.op,
        Prim::Count(_)
            | Prim::Broadcast
            | Prim::Reshape
            | Prim::StopGrad
            | Prim::Permute(_)
            | Prim::Slice { .. }
            | Prim::Cast(_)
            | Prim::Unary(_)
            | Prim::Binary(_)
            | Prim::Select
    );
    if !foldable {
        return None;
    }
    // The operands' values by position (edges number them `0..n`).
    let mut values = [0.0; 3];
    for edge in graph.graph.edges_directed(id, Direction::Incoming) {
        *values.get_mut(*edge.weight())? = constant(graph, edge.source())?;
    }
    let rounded = |x: f64| round(x, node.dtype);
    Some(match &node.op {
        Prim::Count(dim) => dim.as_const()? as f64,
        Prim::Broadcast | Prim::Reshape | Prim::StopGrad | Prim::Permute(_) | Prim::Slice { .. } => values[0],
        Prim::Cast(dtype) => round(values[0], *dtype),
        Prim::Unary(op) => rounded(op.apply(values[0])),
        Prim::Binary(op) => rounded(op.apply(values[0], values[1])),
        Prim::Select => {
            if values[0] != 0.0 {
                values[1]
            } else {
                values[2]
            }
        }
        _ => return None,
    })
}

fn round(x: f64, dtype: DType) -> f64 {
    match dtype {
        DType::I32 => x.trunc(),
        DType::Bool => f64::from(u8::from(x != 0.0)),
        _ => x,
    }
}
