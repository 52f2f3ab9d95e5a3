//! The `nnc` command line: arguments in, stage outputs and diagnostics out.
//! Exit codes: 0 success, 1 the program has errors, 2 usage errors
//! (bad flags, unreadable files).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::check;

#[derive(Parser, Debug)]
#[command(
    name = "nnc",
    version,
    about = "A compiler for deep-learning experiments written as one .nn file",
    after_help = "Run `nnc <command> --help` for the options of a command."
)]
pub struct Cli {
    /// When to colour diagnostics.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    pub color: Color,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check programs: names, arguments, shapes and settings, without running.
    ///
    /// Prints one summary line per well-formed file (the model's signature and
    /// its parameter count) and diagnostics for the others.
    Check {
        /// The `.nn` files to check.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print the standard library of layers and losses (written in .nn).
    Std,
    /// Print one stage of the compiler for a program.
    ///
    /// Stages: `ast` (the parsed file), `ir` (the training step's forward
    /// graph in primitive ops), `eval` (the evaluation graph).
    Dump {
        /// The `.nn` file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Which stage to print.
        #[arg(long, value_enum, default_value_t = Stage::Ir)]
        stage: Stage,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Stage {
    /// The syntax tree of the user's file.
    Ast,
    /// The training step's forward graph.
    Ir,
    /// The evaluation graph (`training` is false).
    Eval,
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    let color = match cli.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    match cli.command {
        Command::Check { files } => run_check(&files, color),
        Command::Dump { file, stage } => run_dump(&file, stage, color),
        Command::Std => {
            let mut out = std::io::stdout().lock();
            for (name, text) in crate::stdlib::FILES {
                let _ = writeln!(out, "# ---- {name}\n{text}");
            }
            ExitCode::SUCCESS
        }
    }
}

/// Checks a file for a command that needs a well-formed program; prints the
/// diagnostics and returns the exit code on failure.
fn checked(path: &std::path::Path, color: bool) -> Result<check::Program, ExitCode> {
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

fn run_dump(path: &std::path::Path, stage: Stage, color: bool) -> ExitCode {
    let program = match checked(path, color) {
        Ok(program) => program,
        Err(code) => return code,
    };
    let text = match stage {
        Stage::Ast => format!("{:#?}\n", program.user_file()),
        Stage::Ir => crate::ir::print::print(&crate::ir::lower::lower(&program.train_trace)),
        Stage::Eval => crate::ir::print::print(&crate::ir::lower::lower(&program.eval_trace)),
    };
    print!("{text}");
    ExitCode::SUCCESS
}

/// `nnc check`: 0 if every file is well-formed, 1 if any has errors, 2 if a
/// file cannot be read.
fn run_check(files: &[PathBuf], color: bool) -> ExitCode {
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
                    eprintln!(
                        "{}: {count} error{}",
                        path.display(),
                        if count == 1 { "" } else { "s" }
                    );
                    worst = worst.max(1);
                } else {
                    println!("{}: ok: {}", path.display(), program.summary());
                }
            }
        }
    }
    ExitCode::from(worst)
}
