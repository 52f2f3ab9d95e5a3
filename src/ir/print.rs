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
    print_with_names(graph, &numbering(graph), notes)
}

/// `%0, %1, ...` for every node (by its serial), in topological order.
pub fn numbering(graph: &Graph) -> HashMap<u64, String> {
    graph
        .topo_order()
        .into_iter()
        .enumerate()
        .map(|(i, id)| (graph.node(id).serial, format!("%{i}")))
        .collect()
}

/// Prints with given names; nodes without one are `%+0, %+1, ...` (a pass's
/// new nodes, when a diff shows the graph under its earlier numbering).
pub fn print_with_names(graph: &Graph, names: &HashMap<u64, String>, notes: &[(NodeId, String)]) -> String {
    let order = graph.topo_order();
    let mut by_id: HashMap<NodeId, String> = HashMap::new();
    let mut fresh = 0;
    for id in &order {
        let name = match names.get(&graph.node(*id).serial) {
            Some(name) => name.clone(),
            None => {
                fresh += 1;
                format!("%+{}", fresh - 1)
            }
        };
        by_id.insert(*id, name);
    }
    let name = |id: &NodeId| by_id.get(id).cloned().unwrap_or_else(|| "%?".to_string());
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
        if let crate::prim::Prim::Scan(looped) = &node.op {
            // The body once, numbered on its own, inside the loop.
            out.push_str(" {\n");
            for line in print(&looped.body).lines() {
                let _ = writeln!(out, "    {line}");
            }
            out.push('}');
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
