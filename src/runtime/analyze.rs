//! The `analyze { report: [...] }` section: what the model is before it is
//! trained — its parameters, its interface, the work and memory of a step.

use std::fmt::Write;

use super::Session;
use crate::ir::Graph;
use crate::prim::Prim;

/// Floating-point operations of one run of `graph` with batch `batch`:
/// 2mnk per matrix product, one per element of every other computing op.
pub fn flops(graph: &Graph, batch: i64) -> f64 {
    let size = |shape: &[crate::check::dims::Dim]| -> f64 {
        shape
            .iter()
            .map(|d| {
                d.evaluate(&|s| (s == crate::check::data::BATCH).then_some(batch))
                    .unwrap_or(1) as f64
            })
            .product()
    };
    let mut total = 0.0;
    for id in graph.topo_order() {
        let node = graph.node(id);
        total += match &node.op {
            Prim::MatMul => {
                let a = graph.node(graph.inputs(id)[0]);
                let k = a.shape.last().map_or(1.0, |d| size(std::slice::from_ref(d)));
                2.0 * size(&node.shape) * k
            }
            Prim::Unary(_) | Prim::Binary(_) | Prim::Select | Prim::Reduce { .. } => size(&node.shape),
            Prim::Scan(looped) => looped.length as f64 * flops(&looped.body, batch),
            _ => 0.0,
        };
    }
    total
}

/// The report the section asks for.
pub fn report(session: &Session, items: &[String]) -> String {
    let mut out = String::new();
    let program = &session.program;
    for item in items {
        match item.as_str() {
            "params" => {
                let _ = writeln!(
                    out,
                    "parameters ({} in {} tensors):",
                    program.param_count(),
                    program.params.len()
                );
                for p in &program.params {
                    let count = p.ty.num_elements().unwrap_or(0);
                    let _ = writeln!(
                        out,
                        "  {:<48} {:<16} {:>9}  {}",
                        p.path,
                        p.ty.to_string(),
                        count,
                        p.init
                    );
                }
            }
            "shapes" => {
                if let Some(model) = &program.model {
                    let inputs: Vec<String> = model.inputs.iter().map(|(n, t)| format!("{n}: {t}")).collect();
                    let _ = writeln!(out, "model {}({}) -> {}", model.name, inputs.join(", "), model.output);
                }
                for dataset in &program.datasets {
                    for (field, ty) in &dataset.fields {
                        let _ = writeln!(out, "  {}.{field}: {ty}", dataset.name);
                    }
                }
            }
            "flops" => {
                let step = flops(&session.step_graph, session.batch as i64);
                let _ = writeln!(
                    out,
                    "one training step at batch {}: {:.3} MFLOP",
                    session.batch,
                    step / 1e6
                );
            }
            "memory" => {
                out += &super::budget::report(&session.step_graph, session.batch, program);
            }
            _ => {}
        }
    }
    out
}
