//! `nnc bench`: the training step timed on the interpreter and the JIT,
//! refused first if it does not fit in memory.

use std::process::ExitCode;

use super::check::checked_program;
use super::BenchBackend;
use crate::check;

pub(super) fn run_bench(
    path: &std::path::Path,
    backend: BenchBackend,
    (warmup, steps): (usize, usize),
    repeats: usize,
    sizes: &crate::codegen::bench::Sizes,
    memory_limit: Option<u64>,
    (json, color): (bool, bool),
) -> ExitCode {
    // As `run`: 2 for an unreadable file or an unknown `--set`, 1 with the
    // diagnostics for a program with errors.
    let program = match checked_program(path, &sizes.settings, color) {
        Ok(program) => program,
        Err(code) => return code,
    };
    if let Err(message) = bench_fits(program, path, backend, sizes, memory_limit) {
        eprintln!("error: {message}");
        return ExitCode::from(1);
    }
    let name = match backend {
        BenchBackend::Interp => "interp",
        BenchBackend::Jit => "jit",
        BenchBackend::Both => "both",
    };
    match crate::codegen::bench::bench(path, name, (warmup, steps), repeats, sizes) {
        Ok(reports) => {
            for report in &reports {
                if json {
                    println!("{}", report.to_json());
                } else {
                    println!("{report}");
                }
            }
            if let [interp, jit] = &reports[..] {
                if !json && jit.ms_per_step_median > 0.0 {
                    println!(
                        "jit speed-up: {:.1}x per step",
                        interp.ms_per_step_median / jit.ms_per_step_median
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

/// Refuses a benchmark whose step (on the JIT, or the interpreter's values,
/// whichever is larger with `both`) does not fit in memory.
fn bench_fits(
    program: check::Program,
    path: &std::path::Path,
    backend: BenchBackend,
    sizes: &crate::codegen::bench::Sizes,
    memory_limit: Option<u64>,
) -> Result<(), String> {
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    let backends: &[crate::runtime::Backend] = match backend {
        BenchBackend::Interp => &[crate::runtime::Backend::Interp],
        BenchBackend::Jit => &[crate::runtime::Backend::Jit],
        BenchBackend::Both => &[crate::runtime::Backend::Jit, crate::runtime::Backend::Interp],
    };
    let overrides = crate::runtime::Overrides {
        batch: sizes.batch,
        backend: backends[0],
        memory_limit,
        ..Default::default()
    };
    let mut session = crate::runtime::Session::load(program, base, &overrides).map_err(|(d, _)| d.message)?;
    for &each in backends {
        session.backend = each;
        let estimate = crate::runtime::budget::estimate(&session, session.batch)?;
        crate::runtime::budget::check(&session, &estimate, memory_limit)?;
    }
    Ok(())
}
