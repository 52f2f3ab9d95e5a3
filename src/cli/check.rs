//! `nnc check`, and the checking every other command starts with: a file
//! checked (with its `--set` values), its diagnostics printed, or the exit
//! code for a program that cannot go on.

use std::path::PathBuf;
use std::process::ExitCode;

use super::dump::optimized_step;
use crate::check;

/// `nnc check`: 0 if every file is well-formed, 1 if any has errors, 2 if a
/// file cannot be read. With `memory`, each good file's step is planned at
/// its batch size and the plan's memory printed.
pub(super) fn run_check(files: &[PathBuf], memory: bool, color: bool) -> ExitCode {
    let mut worst = 0u8;
    for path in files {
        match check::check_file(path) {
            Err(message) => {
                eprintln!("error: {message}");
                worst = 2;
            }
            Ok(program) => {
                if !program.diagnostics.is_empty() {
                    eprint!("{}", program.sources.render(&program.diagnostics, color));
                }
                if program.has_errors() {
                    let count = program.diagnostics.iter().filter(|d| d.is_error()).count();
                    eprintln!("{}: {count} error{}", path.display(), if count == 1 { "" } else { "s" });
                    worst = worst.max(1);
                } else {
                    println!("{}: ok: {}", path.display(), program.summary());
                    if memory && program.optimizer.is_some() {
                        let batch = program.sections.get("train").and_then(|t| t.int("batch")).unwrap_or(32);
                        let graph = optimized_step(&program);
                        let report = crate::runtime::budget::report(&graph, batch as usize, &program);
                        print!("{report}");
                    }
                }
            }
        }
    }
    ExitCode::from(worst)
}

/// Checks a file for a command that needs a well-formed program; prints the
/// diagnostics and returns the exit code on failure.
pub(super) fn checked(path: &std::path::Path, color: bool) -> Result<check::Program, ExitCode> {
    match check::check_file(path) {
        Err(message) => {
            eprintln!("error: {message}");
            Err(ExitCode::from(2))
        }
        Ok(program) => {
            if !program.diagnostics.is_empty() {
                eprint!("{}", program.sources.render(&program.diagnostics, color));
            }
            if program.has_errors() {
                Err(ExitCode::from(1))
            } else {
                Ok(program)
            }
        }
    }
}

/// `path` checked with the `--set` values, its diagnostics printed; or the
/// exit code once the failure is printed: 2 for an unreadable file or an
/// unknown setting, 1 for errors in the program.
pub(super) fn checked_program(
    path: &std::path::Path,
    settings: &[(String, f64)],
    color: bool,
) -> Result<check::Program, ExitCode> {
    let program = check::check_file_with(path, settings.to_vec()).map_err(|message| {
        eprintln!("error: {message}");
        ExitCode::from(2)
    })?;
    if !program.diagnostics.is_empty() {
        eprint!("{}", program.sources.render(&program.diagnostics, color));
    }
    if program.has_errors() {
        return Err(ExitCode::from(1));
    }
    if let Some(message) = unknown_setting(&program, settings, path) {
        eprintln!("error: {message}");
        return Err(ExitCode::from(2));
    }
    Ok(program)
}

/// The error for a `--set NAME=...` whose NAME is not a constant of the
/// program, if any.
pub(super) fn unknown_setting(
    program: &check::Program,
    settings: &[(String, f64)],
    file: &std::path::Path,
) -> Option<String> {
    let (name, _) = settings
        .iter()
        .find(|(name, _)| !program.constants.iter().any(|(c, _)| c == name))?;
    let names: Vec<&str> = program.constants.iter().map(|(c, _)| c.as_str()).collect();
    let hint = match check::scope::suggest(name, names.iter().copied()) {
        Some(close) => format!(" (did you mean `{close}`?)"),
        None if names.is_empty() => " (it declares none)".to_string(),
        None => format!(" (its constants: {})", names.join(", ")),
    };
    Some(format!(
        "`--set {name}=...`: `{}` has no constant `{name}`{hint}",
        file.display()
    ))
}
