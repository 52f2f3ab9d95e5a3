//! The `--stage fused` printer: the fused graph in, text out, one block
//! per kernel.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::{Accumulate, Fused, Kernel, Phase};
use crate::ir::NodeId;

/// The fused graph as text: one block per kernel with the nodes it
/// computes and the nodes inlined into each.
pub fn print(fused: &Fused) -> String {
    let bound = &fused.bound;
    let shape = |id: NodeId| format!("{:?}", bound.shape(id));
    let node = |id: NodeId| {
        let op = bound.op(id).to_string();
        let op = op.split(' ').next().unwrap_or("").to_string();
        format!("{}: {}{} = {op}", bound.name(id), bound.dtype(id).name(), shape(id))
    };
    let inlined = |id: NodeId| -> String {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<NodeId> = bound.inputs(id).to_vec();
        while let Some(n) = stack.pop() {
            if fused.is_materialized(n) || !seen.insert(bound.position[n.index()]) {
                continue;
            }
            stack.extend(bound.inputs(n).iter().copied());
        }
        let names: Vec<String> = seen.iter().map(|&p| bound.name(bound.order[p])).collect();
        if names.is_empty() {
            String::new()
        } else {
            format!("  <- {}", names.join(" "))
        }
    };
    let mut out = String::new();
    for (k, kernel) in fused.kernels.iter().enumerate() {
        match kernel {
            Kernel::Loop(l) => {
                let _ = writeln!(out, "k{k}: loop outer {:?}", l.outer);
                for phase in &l.phases {
                    match phase {
                        Phase::Map { inner, roots } => {
                            let _ = writeln!(out, "  map {inner:?}");
                            for &r in roots {
                                let _ = writeln!(out, "    {}{}", node(r), inlined(r));
                            }
                        }
                        Phase::Reduce { inner, root } => {
                            let _ = writeln!(out, "  reduce {inner:?}");
                            let _ = writeln!(out, "    {}{}", node(*root), inlined(*root));
                        }
                    }
                }
            }
            Kernel::Accumulate(root) => {
                let _ = writeln!(out, "k{k}: accumulate\n    {}{}", node(*root), inlined(*root));
            }
            Kernel::MatMul { root, a, b, into } => {
                let target = match into {
                    Some(Accumulate { total, add: true }) => format!(" += into {}", bound.name(*total)),
                    Some(Accumulate { total, add: false }) => format!(" into {}", bound.name(*total)),
                    None => String::new(),
                };
                let _ = writeln!(
                    out,
                    "k{k}: matmul {}{target} = {} {:?} @ {} {:?}",
                    node(*root),
                    bound.name(a.buffer),
                    a.strides,
                    bound.name(b.buffer),
                    b.strides
                );
            }
            Kernel::Scatter(root) => {
                let _ = writeln!(out, "k{k}: scatter\n    {}{}", node(*root), inlined(*root));
            }
            Kernel::Concat(root) => {
                let _ = writeln!(out, "k{k}: concat\n    {}{}", node(*root), inlined(*root));
            }
            Kernel::Scan(root) => {
                let looped = match bound.op(*root) {
                    crate::prim::Prim::Scan(looped) => looped.to_string(),
                    _ => String::new(),
                };
                let _ = writeln!(out, "k{k}: loop {} ({looped}), its body once:", node(*root));
                for line in print(&fused.bodies[root]).lines() {
                    let _ = writeln!(out, "    {line}");
                }
            }
            Kernel::AllReduce(root) => {
                let operand = bound.inputs(*root)[0];
                let _ = writeln!(out, "k{k}: all_reduce {} = {}", node(*root), bound.name(operand));
            }
            Kernel::Window { root, operand } => {
                let _ = writeln!(
                    out,
                    "k{k}: window {}{} = {} offset {} strides {:?}",
                    node(*root),
                    inlined(*root),
                    bound.name(operand.buffer),
                    operand.offset,
                    operand.strides
                );
            }
        }
    }
    out
}
