//! `nnc dump` and `nnc grad`: one stage of the compiler printed, from the
//! syntax tree to the machine code, and the training step's gradients.

use std::process::ExitCode;

use super::check::{checked, checked_program};
use super::Stage;
use crate::check;

pub(super) fn run_dump(path: &std::path::Path, stage: Stage, settings: &[(String, f64)], color: bool) -> ExitCode {
    let program = match checked_program(path, settings, color) {
        Ok(program) => program,
        Err(code) => return code,
    };
    let text = match stage {
        Stage::Ast => Ok(format!("{:#?}\n", program.user_file())),
        Stage::Ir => Ok(crate::ir::print::print(&crate::ir::lower::lower_loops(
            &program.train_trace,
        ))),
        Stage::Eval => Ok(crate::ir::print::print(&crate::ir::lower::lower_loops(
            &program.eval_trace,
        ))),
        Stage::Grad => Ok(crate::ir::print::print(&step_graph(&program))),
        Stage::Opt => Ok(crate::ir::print::print(&optimized_step(&program))),
        Stage::Fused | Stage::Memory | Stage::Clif | Stage::Asm => {
            let graph = optimized_step(&program);
            let batch = program.sections.get("train").and_then(|t| t.int("batch")).unwrap_or(32);
            let dims = std::collections::HashMap::from([(check::data::BATCH.to_string(), batch)]);
            match stage {
                Stage::Fused => crate::codegen::dump_fused(&graph, &dims),
                Stage::Memory => crate::codegen::dump_memory(&graph, &dims),
                Stage::Asm => crate::codegen::dump_asm(&graph, &dims),
                _ => crate::codegen::dump_clif(&graph, &dims),
            }
        }
    };
    match text {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        // The program checks but cannot be compiled at these sizes: like
        // `run`, the error on stderr and exit code 1.
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

/// The training step's graph: forward, gradients, update.
fn step_graph(program: &check::Program) -> crate::ir::Graph {
    let mut forward = crate::ir::lower::lower_loops(&program.train_trace);
    crate::passes::prepare_forward(&mut forward);
    match &program.optimizer {
        Some(optimizer) => crate::autodiff::optimizer::training_step(&forward, optimizer),
        None => forward,
    }
}

/// The training step after the passes.
pub(super) fn optimized_step(program: &check::Program) -> crate::ir::Graph {
    let mut graph = step_graph(program);
    crate::passes::optimize_loops(&mut graph);
    graph
}

pub(super) fn run_grad(path: &std::path::Path, dump_ir: bool, color: bool) -> ExitCode {
    let program = match checked(path, color) {
        Ok(program) => program,
        Err(code) => return code,
    };
    let graph = optimized_step(&program);
    if dump_ir {
        print!("{}", crate::ir::print::print(&graph));
        return ExitCode::SUCCESS;
    }
    // The forward pass as the step has it: loops kept as loop nodes, then
    // the same passes (which unroll the same short loops), so the counts
    // compare.
    let forward = {
        let mut forward = crate::ir::lower::lower_loops(&program.train_trace);
        crate::passes::prepare_forward(&mut forward);
        crate::passes::optimize_loops(&mut forward);
        forward.len()
    };
    println!(
        "{}: training step of {} nodes after optimization ({forward} in the forward pass)",
        path.display(),
        graph.len()
    );
    for (name, id) in &graph.outputs {
        if let Some(param) = name.strip_prefix("grad ") {
            let node = graph.node(*id);
            println!(
                "  d loss / d {param}: {}{}",
                node.dtype.name(),
                crate::check::dims::format_shape(&node.shape)
            );
        }
    }
    ExitCode::SUCCESS
}
