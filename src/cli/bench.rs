//! `nnc bench`: the training step timed on the interpreter and the JIT,
//! refused first if it does not fit in memory.

use std::process::ExitCode;

use super::check::unknown_setting;
use super::BenchBackend;
use crate::check;

pub(super) fn run_bench(
    path: &std::path::Path,
    backend: BenchBackend,
    (warmup, steps): (usize, usize),
    repeats: usize,
    sizes: &crate::codegen::bench::Sizes,
    json: bool,
    memory_limit: Option<u64>,
) -> ExitCode {
    if !path.exists() {
        eprintln!("error: cannot read `{}`: no such file", path.display());
        return ExitCode::from(2);
    }
    if let Err(message) = bench_fits(path, backend, sizes, memory_limit) {
        eprintln!("error: {message}");
        return ExitCode::from(1);
    }
    if !sizes.settings.is_empty() {
        let program = match check::check_file_with(path, sizes.settings.clone()) {
            Ok(program) => program,
            Err(message) => {
                eprintln!("error: {message}");
                return ExitCode::from(2);
            }
        };
        if let Some(message) = unknown_setting(&program, &sizes.settings, path) {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
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
    path: &std::path::Path,
    backend: BenchBackend,
    sizes: &crate::codegen::bench::Sizes,
    memory_limit: Option<u64>,
) -> Result<(), String> {
    let program = check::check_file_with(path, sizes.settings.clone())?;
    if program.has_errors() {
        // bench reports the diagnostics itself.
        return Ok(());
    }
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
