//! `nnc run`: the command-line options to the runtime's overrides, then
//! one run, a sweep, a cross-validation or a fine-tuning comparison.

use std::process::ExitCode;

use super::check::checked_program;
use super::RunArgs;
use crate::check;

pub(super) fn run_run(args: &RunArgs, color: bool) -> ExitCode {
    // A resumed run trains with the settings it was started with (its
    // `run.json`), except those given again.
    let resumed;
    let args = match &args.resume {
        Some(dir) => match with_recorded_settings(args, dir) {
            Ok(merged) => {
                resumed = merged;
                &resumed
            }
            Err(message) => {
                eprintln!("error: {message}");
                return ExitCode::from(2);
            }
        },
        None => args,
    };
    let text = match std::fs::read(&args.file) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(error) => {
            eprintln!("error: cannot read `{}`: {error}", args.file.display());
            return ExitCode::from(2);
        }
    };
    // A checkpoint named on the command line that cannot be read is a bad
    // argument, like the file itself: exit code 2 before anything runs.
    if let Some(init_from) = &args.init_from {
        if let Err(error) = std::fs::File::open(init_from).and_then(|file| {
            if file.metadata()?.is_dir() {
                Err(std::io::Error::other("it is a directory"))
            } else {
                Ok(())
            }
        }) {
            eprintln!("error: cannot read checkpoint `{}`: {error}", init_from.display());
            return ExitCode::from(2);
        }
    }
    let mut program = match checked_program(&args.file, &args.settings, color) {
        Ok(program) => program,
        Err(code) => return code,
    };
    // A swept constant fixed with `--set` is not swept: the other lists
    // are (all fixed: one plain run).
    program
        .sweep
        .axes
        .retain(|axis| !args.settings.iter().any(|(name, _)| *name == axis.name));
    // Under `mpirun`, one of several processes: process 0 writes the run
    // directory and prints; the others train quietly in a scratch
    // directory removed at the end.
    let world = match crate::runtime::distributed::join() {
        Ok(world) => world,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let repeated = !program.sweep.is_empty() || program.datasets.iter().any(|d| d.source.int("folds").is_some());
    if world.size > 1 && args.resume.is_some() && repeated {
        eprintln!("error: a sweep or a cross-validation cannot be resumed under mpirun yet: resume it in one process");
        return ExitCode::from(2);
    }
    let scratch = (!world.is_root()).then(|| {
        std::env::temp_dir().join(format!(
            "nnc-process-{}-of-{}-{}",
            world.rank,
            world.size,
            std::process::id()
        ))
    });
    let options = crate::runtime::run::RunOptions {
        overrides: crate::runtime::Overrides {
            steps: args.steps,
            batch: args.batch.map(|b| b as usize),
            seed: args.seed,
            lr: args.lr,
            fold: None,
            backend: args.backend.backend(),
            memory_limit: args.memory_limit,
            collective: world.handle.clone(),
        },
        out: scratch.clone().or_else(|| args.out.clone()),
        resume: args.resume.clone(),
        init_from: args.init_from.clone(),
        scratch: false,
        json: args.json && world.is_root(),
        quiet: args.quiet || !world.is_root(),
        stop_after: args.stop_after,
        overwrite: args.overwrite,
        eval_train: false,
        constants: args.settings.clone(),
        resume_hint: None,
        follower: !world.is_root(),
    };
    let folds = program
        .datasets
        .first()
        .and_then(|d| d.source.int("folds"))
        .map(|k| k as usize);
    let result = match folds {
        _ if !program.sweep.is_empty() => {
            let recheck = |constants: Vec<(String, f64)>| {
                check::check_file_with(&args.file, constants).map_err(|e| e.to_string())
            };
            crate::runtime::sweep::sweep(
                &args.file,
                &text,
                &options,
                &program.sweep,
                folds,
                &args.settings,
                recheck,
            )
        }
        Some(k) => {
            let recheck = || check::check_file_with(&args.file, args.settings.clone()).map_err(|e| e.to_string());
            crate::runtime::sweep::cross_validate(&args.file, &text, &options, k, recheck)
        }
        None if crate::runtime::finetune::wants_comparison(&program) && args.resume.is_none() => {
            let recheck = || check::check_file_with(&args.file, args.settings.clone()).map_err(|e| e.to_string());
            crate::runtime::finetune::compare_with_scratch(&args.file, &text, &options, recheck)
        }
        None => crate::runtime::run::run(&args.file, program, &text, &options),
    };
    if let Some(dir) = &scratch {
        let _ = std::fs::remove_dir_all(dir);
    }
    match result {
        Ok(_) => ExitCode::from(crate::runtime::run::interrupted_exit_code().unwrap_or(0)),
        Err(crate::runtime::run::RunFailure::Diagnostic(diagnostic, program)) => {
            eprint!("{}", program.sources.render(&[*diagnostic], color));
            ExitCode::from(1)
        }
        Err(crate::runtime::run::RunFailure::Message(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
        Err(crate::runtime::run::RunFailure::Refused(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// `args` with the settings a run directory's `run.json` (a sweep's
/// `sweep.json`) recorded (steps, batch, seed, learning rate, `--set`
/// constants) where `args` does not give them; a directory without one (a
/// run of an older nnc) leaves them.
fn with_recorded_settings(args: &RunArgs, dir: &std::path::Path) -> Result<RunArgs, String> {
    let mut merged = args.clone();
    let records = [
        crate::runtime::report::record::INFO_FILE,
        crate::runtime::sweep::SETTINGS_FILE,
    ];
    let Some(path) = records.iter().map(|name| dir.join(name)).find(|path| path.exists()) else {
        return Ok(merged);
    };
    let text = std::fs::read_to_string(&path).map_err(|error| format!("cannot read `{}`: {error}", path.display()))?;
    let record: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("`{}` is not the record of a run: {e}", path.display()))?;
    merged.steps = args.steps.or(record["steps"].as_u64());
    merged.batch = args
        .batch
        .or(record["batch"].as_u64().and_then(|b| u32::try_from(b).ok()));
    merged.seed = args.seed.or(record["seed"].as_u64());
    merged.lr = args.lr.or(record["lr"].as_f64());
    if let Some(constants) = record["constants"].as_object() {
        for (name, value) in constants {
            if let Some(value) = value.as_f64().filter(|_| !args.settings.iter().any(|(n, _)| n == name)) {
                merged.settings.push((name.clone(), value));
            }
        }
    }
    Ok(merged)
}
