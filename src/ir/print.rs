//! The IR's text form: one node per line, numbered in topological order,
//! with its dtype and shape; then the named outputs. Identical for
//! identical graphs, so snapshots can pin it.
//!
//! ```text
//! %2: f32[B, 128] = matmul(%0, %1)
//! ```

use std::collections::HashMap;
use std::fmt::Write;

use super::{Graph, NodeId};
use crate::check::dims::format_shape;

/// Prints the graph. `notes` are printed under the node they name (the
/// verifier's complaints).
pub fn print(graph: &Graph) -> String {
    print_with_notes(graph, &[])
}

pub fn print_with_notes(graph: &Graph, notes: &[(NodeId, String)]) -> String {
    let order = graph.topo_order();
    let numbers: HashMap<NodeId, usize> =
        order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let name = |id: &NodeId| {
        numbers
            .get(id)
            .map_or("%?".to_string(), |n| format!("%{n}"))
    };
    let mut out = String::new();
    for id in &order {
        let node = graph.node(*id);
        let text = node.op.to_string();
        let (op, attrs) = text.split_once(' ').unwrap_or((&text, ""));
        let operands: Vec<String> = graph.inputs(*id).iter().map(&name).collect();
        let _ = write!(
            out,
            "{}: {}{} = {op}",
            name(id),
            node.dtype.name(),
            format_shape(&node.shape)
        );
        if !operands.is_empty() {
            let _ = write!(out, "({})", operands.join(", "));
        }
        if !attrs.is_empty() {
            let _ = write!(out, " {attrs}");
        }
        out.push('\n');
        for (_, note) in notes.iter().filter(|(n, _)| n == id) {
            let _ = writeln!(out, "    ^ error: {note}");
        }
    }
    for (label, id) in &graph.outputs {
        let _ = writeln!(out, "output {label} = {}", name(id));
    }
    out
}
