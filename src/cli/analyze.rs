//! `nnc analyze` and `nnc embeddings`: a checked program loaded on the
//! interpreter (at its initial parameters or a checkpoint's), then the
//! Hessian analysis or the hidden vectors' cosine similarities.

use std::process::ExitCode;

use super::check::{checked_program, unknown_setting};
use crate::check;

/// `program` loaded for the interpreter (f64), with the parameters of
/// `checkpoint` if one is given; the exit code if either fails (the
/// diagnostic or message already printed).
fn interpreter_session(
    program: crate::check::Program,
    base: &std::path::Path,
    checkpoint: Option<&std::path::Path>,
    color: bool,
) -> Result<crate::runtime::Session, ExitCode> {
    let overrides = crate::runtime::Overrides {
        backend: crate::runtime::Backend::Interp,
        ..Default::default()
    };
    let mut session = match crate::runtime::Session::load(program, base, &overrides) {
        Ok(session) => session,
        Err((diagnostic, program)) => {
            eprint!("{}", program.sources.render(&[diagnostic], color));
            return Err(ExitCode::from(1));
        }
    };
    if let Some(file) = checkpoint {
        if let Err((message, code)) = crate::runtime::hessian::load_checkpoint(&mut session, file) {
            eprintln!("error: {message}");
            return Err(ExitCode::from(code));
        }
    }
    Ok(session)
}

pub(super) fn run_analyze(
    path: &std::path::Path,
    checkpoint: Option<&std::path::Path>,
    settings: &[(String, f64)],
    json: bool,
    color: bool,
) -> ExitCode {
    let program = match checked_program(path, settings, color) {
        Ok(program) => program,
        Err(code) => return code,
    };
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    let mut session = match interpreter_session(program, base, checkpoint, color) {
        Ok(session) => session,
        Err(code) => return code,
    };
    use crate::runtime::hessian;
    if let Some(items) = session
        .program
        .sections
        .get("analyze")
        .map(|a| a.words("report").to_vec())
    {
        if !items.is_empty() {
            let text = crate::runtime::analyze::report(&session, &items);
            if json {
                println!("{}", serde_json::json!({"event": "analyze", "report": text}));
            } else {
                print!("{text}");
            }
        }
    }
    let settings = hessian::Settings::for_command(&session.program);
    match hessian::analyze(&mut session, &settings) {
        Ok(analysis) => {
            if json {
                println!("{}", analysis.to_json());
            } else {
                print!("{}", analysis.text());
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: the Hessian analysis failed: {message}");
            ExitCode::from(1)
        }
    }
}

pub(super) fn run_embeddings(
    path: &std::path::Path,
    texts: &[String],
    checkpoint: Option<&std::path::Path>,
    block: &str,
    settings: &[(String, f64)],
    json: bool,
    color: bool,
) -> ExitCode {
    use crate::runtime::embeddings;
    let probes = match texts
        .iter()
        .map(|t| embeddings::parse(t))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(probes) => probes,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let Ok(bytes) = std::fs::read(path) else {
        eprintln!("error: cannot read `{}`", path.display());
        return ExitCode::from(2);
    };
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    let options = check::Options {
        base_dir: Some(base.to_path_buf()),
        overrides: settings.to_vec(),
        probe: Some(block.to_string()),
        decode: false,
        decoder: false,
    };
    let program = check::check_source(&path.display().to_string(), &String::from_utf8_lossy(&bytes), &options);
    if !program.diagnostics.is_empty() {
        eprint!("{}", program.sources.render(&program.diagnostics, color));
    }
    if program.has_errors() {
        return ExitCode::from(1);
    }
    if let Some(message) = unknown_setting(&program, settings, path) {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    let session = match interpreter_session(program, base, checkpoint, color) {
        Ok(session) => session,
        Err(code) => return code,
    };
    if checkpoint.is_none() && !json {
        eprintln!("note: no --checkpoint: the model's initial parameters");
    }
    match embeddings::embed(&session, block, probes) {
        Ok(result) if json => {
            println!("{}", result.to_json());
            ExitCode::SUCCESS
        }
        Ok(result) => {
            print!("{}", result.text());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}
