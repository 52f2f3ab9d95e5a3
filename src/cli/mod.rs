//! The `nnc` command line: arguments in, stage outputs and diagnostics out.
//! Exit codes: 0 success, 1 the program has errors (or does not fit in
//! memory), 2 usage errors (bad flags, unreadable files, a run directory
//! that holds a run or is in use), 130 and 143 stopped by SIGINT or
//! SIGTERM after a checkpoint.
//!
//! This file holds the arguments (clap definitions, so `--help` is written
//! here) and [`main`], which parses them and hands each subcommand to its
//! file: `check.rs` (`nnc check`, and the checking the other commands
//! start with), `run.rs`, `bench.rs`, `dump.rs` (`dump` and `grad`) and
//! `analyze.rs` (`analyze` and `embeddings`). `fmt`, `lsp`, `report` and
//! `std` call their modules directly.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod analyze;
mod bench;
mod check;
mod dump;
mod run;

use analyze::{run_analyze, run_embeddings};
use bench::run_bench;
use check::run_check;
use dump::{run_dump, run_grad};
use run::run_run;

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
    /// Train and evaluate: the main job.
    ///
    /// Compiles the program, loads its data, trains with the file's
    /// optimizer and schedule, evaluates every `eval.every` steps, writes a
    /// run directory (metrics.jsonl, loss.svg, checkpoint.safetensors) and
    /// prints a final table (and samples, for sequence models).
    /// The run directory also gets report.html and TensorBoard event files.
    Run(RunArgs),
    /// Check programs: names, arguments, shapes and settings, without running.
    ///
    /// Prints one summary line per well-formed file (the model's signature and
    /// its parameter count) and diagnostics for the others.
    Check {
        /// The `.nn` files to check.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Also plan the training step at the file's batch size and print
        /// its memory: the peak and the largest buffers, named.
        #[arg(long)]
        memory: bool,
    },
    /// Compare runs: one HTML report over several run directories.
    ///
    /// Each DIR is a run directory (one with metrics.jsonl), or a sweep's or
    /// a cross-validation's directory, whose runs are all included. The
    /// report has a chart per metric with a curve per run, aligned by step,
    /// the runs ranked by validation loss, and each run's file, hash,
    /// command and host.
    Report {
        /// The run directories.
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Where to write the report.
        #[arg(long, value_name = "FILE", default_value = "report.html")]
        out: PathBuf,
    },
    /// Print the standard library of layers and losses (written in .nn).
    Std,
    /// Format `.nn` files in the canonical layout, in place.
    ///
    /// Keeps every comment and the line breaks; items with syntax errors are
    /// left as written. `-` formats standard input to standard output.
    Fmt {
        /// The `.nn` files to format (`-` for standard input).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Write nothing; exit with 1 if a file is not formatted.
        #[arg(long)]
        check: bool,
    },
    /// Run the language server (LSP over stdin/stdout) for editors.
    ///
    /// Diagnostics as you type, the shape of the value under the cursor,
    /// go to definition (standard-library blocks included), completion,
    /// document symbols and formatting. See the README for editor set-up.
    Lsp,
    /// Differentiate the training step: list the gradients, or print the
    /// whole step's IR (forward, backward, optimizer update) after the
    /// optimization passes.
    Grad {
        /// The `.nn` file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Print the IR of the training step.
        #[arg(long)]
        dump_ir: bool,
    },
    /// Analyze a program without training: the Hessian of its training loss.
    ///
    /// At the initial parameters, or at a checkpoint's: the gradient norm,
    /// the Hessian's eigenvalues (all of them up to 2,000 parameters, else
    /// the extreme ones by Lanczos), the minimum ratio (share of positive
    /// eigenvalues) and whether the point is a local minimum, a saddle
    /// point or not critical. Settings come from the file's `analyze`
    /// section, whose `report` items are printed too.
    Analyze {
        /// The `.nn` file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Analyze at this checkpoint's parameters (a run's
        /// checkpoint.safetensors); every parameter must be in it.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// Override a constant of the file, e.g. `--set H=8` (repeatable; the last value
        /// given for a name wins).
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_setting)]
        settings: Vec<(String, f64)>,
        /// Print the analysis as JSON lines (`{"event":"hessian",...}`).
        #[arg(long)]
        json: bool,
    },
    /// Contextual embeddings: the cosine similarity of a model's hidden
    /// vectors for a few texts.
    ///
    /// Runs the model alone (evaluation mode) on each TEXT, takes the
    /// output of BLOCK at the character marked `[c]` (or the mean over the
    /// text), and prints the cosine similarity of every pair: the same
    /// character in two contexts gets two vectors.
    Embeddings {
        /// The `.nn` file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The texts, each with one character marked, e.g. `the [k]ing`.
        #[arg(required = true, value_name = "TEXT")]
        texts: Vec<String>,
        /// The parameters: a run's checkpoint.safetensors (every parameter
        /// must be in it); without it, the initial parameters.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// The block whose output (at its first call in the model) is the
        /// hidden vector, e.g. `bert_encoder`.
        #[arg(long, value_name = "NAME")]
        block: String,
        /// Override a constant of the file, e.g. `--set D=64` (repeatable; the last value
        /// given for a name wins).
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_setting)]
        settings: Vec<(String, f64)>,
        /// Print the result as one JSON line (with the vectors).
        #[arg(long)]
        json: bool,
    },
    /// Measure a program's training step on the interpreter and the JIT.
    ///
    /// Compiles the example, runs N training steps per repeat and prints
    /// compile time, median ms/step, steps/s, GFLOP/s and peak memory.
    Bench {
        /// The `.nn` file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Which backends to measure.
        #[arg(long, value_enum, default_value_t = BenchBackend::Both)]
        backend: BenchBackend,
        /// Training steps per repeat.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        steps: u32,
        /// Untimed steps before them in each repeat (the first steps also
        /// fault the memory in and let the thread tuner settle).
        #[arg(long, default_value_t = 0)]
        warmup: u32,
        /// Repeats (the median is reported).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
        repeats: u32,
        /// Examples per step (overrides `train.batch`).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        batch: Option<u32>,
        /// Override a constant of the file, e.g. `--set D=384` (repeatable; the last value
        /// given for a name wins).
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_setting)]
        settings: Vec<(String, f64)>,
        /// Print one JSON object per backend (with every timed step's
        /// time, `step_ms`).
        #[arg(long)]
        json: bool,
        /// Refuse to start if the plan needs more memory than this (e.g.
        /// `8G`, `512M`); the machine's available memory always applies.
        #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
        memory_limit: Option<u64>,
    },
    /// Print one stage of the compiler for a program.
    ///
    /// From the parsed file to the generated code: `ast`, `ir` (the
    /// forward graph in primitive ops), `eval`, `grad` (the whole training
    /// step), `opt` (after the passes), `fused` (kernels), `memory` (the
    /// arena plan), `clif` (Cranelift IR) and `asm` (the machine code).
    Dump {
        /// The `.nn` file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Which stage to print.
        #[arg(long, value_enum, default_value_t = Stage::Ir)]
        stage: Stage,
        /// Override a constant of the file, e.g. `--set T=512` (repeatable; the last value
        /// given for a name wins).
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_setting)]
        settings: Vec<(String, f64)>,
    },
}

#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// The `.nn` file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Training steps (overrides `train.steps` / `train.epochs`).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Examples per step (overrides `train.batch`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: Option<u32>,
    /// Seed of initialization, shuffling, dropout and sampling (overrides `train.seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Learning rate before the schedule (overrides the optimizer's `lr`).
    #[arg(long, value_parser = parse_positive)]
    pub lr: Option<f64>,
    /// Override a constant of the file, e.g. `--set H=256` (repeatable; the last value
    /// given for a name wins).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_setting)]
    pub settings: Vec<(String, f64)>,
    /// The run directory [default: runs/<file>-<time>/].
    #[allow(rustdoc::invalid_html_tags)]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run in DIR from its last checkpoint.
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// Replace the run that `--out DIR` holds (its checkpoint, metrics and plot).
    #[arg(long, requires = "out")]
    pub overwrite: bool,
    /// Refuse to start if the plan needs more memory than this (e.g. `8G`,
    /// `512M`); the machine's available memory always applies.
    #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
    pub memory_limit: Option<u64>,
    /// Start from the parameters of a checkpoint that match by name and
    /// shape (overrides `train.init_from`); loading none is an error.
    #[arg(long, value_name = "FILE")]
    pub init_from: Option<PathBuf>,
    /// What runs the training step: native code, or the reference interpreter.
    #[arg(long, value_enum, default_value_t = BackendArg::Jit)]
    pub backend: BackendArg,
    /// Print events as JSON lines on stdout (see the README).
    #[arg(long)]
    pub json: bool,
    /// Print nothing but errors.
    #[arg(long, conflicts_with = "json")]
    pub quiet: bool,
    /// Stop after N steps of this invocation, as if interrupted.
    #[arg(long, value_name = "N", hide = true)]
    pub stop_after: Option<u64>,
}

fn parse_positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("`{text}` is not a positive number")),
    }
}

fn parse_memory(text: &str) -> Result<u64, String> {
    crate::runtime::budget::parse_size(text)
}

fn parse_setting(text: &str) -> Result<(String, f64), String> {
    let (name, value) = text.split_once('=').ok_or("expected NAME=VALUE")?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("the NAME of NAME=VALUE is empty in `{text}`"));
    }
    let value: f64 = value.trim().parse().map_err(|_| format!("`{value}` is not a number"))?;
    Ok((name.to_string(), value))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchBackend {
    Interp,
    Jit,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// Cranelift-compiled native code (f32).
    Jit,
    /// The reference interpreter (f64; slow, exact).
    Interp,
}

impl BackendArg {
    fn backend(self) -> crate::runtime::Backend {
        match self {
            BackendArg::Jit => crate::runtime::Backend::Jit,
            BackendArg::Interp => crate::runtime::Backend::Interp,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Stage {
    /// The syntax tree of the user's file.
    Ast,
    /// The training step's forward graph.
    Ir,
    /// The evaluation graph (`training` is false).
    Eval,
    /// The whole training step: forward, backward and optimizer update.
    Grad,
    /// The training step after the optimization passes.
    Opt,
    /// The optimized step's fused kernels (batch bound to the file's).
    Fused,
    /// The memory plan: each buffer's offset and size in one arena.
    Memory,
    /// The Cranelift IR of the compiled step.
    Clif,
    /// The compiled step's x86-64 code, as Cranelift lists it.
    Asm,
}

/// The exit code after an internal error (a panic): a bug in `nnc`.
pub const INTERNAL_ERROR: i32 = 3;

/// Makes a panic say that it is a bug in `nnc`, name the program being
/// compiled, ask for a report, and exit at once with [`INTERNAL_ERROR`]:
/// nothing unwinds, so nothing half-done is written over a good checkpoint
/// (checkpoints are written to a temporary file and renamed).
fn install_panic_hook() {
    let files: Vec<String> = std::env::args().skip(1).filter(|a| a.ends_with(".nn")).collect();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string());
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let input = if files.is_empty() {
            String::new()
        } else {
            format!(" while processing {}", files.join(", "))
        };
        eprintln!(
            "internal error: {message}{location}{input}\n\
             This is a bug in nnc. Please report it with the .nn file (and its data) and this message."
        );
        std::process::exit(INTERNAL_ERROR);
    }));
}

pub fn main() -> ExitCode {
    install_panic_hook();
    // For the test of the hook: a bug on demand.
    if std::env::var_os("NNC_TEST_PANIC").is_some() {
        panic!("a panic asked for by NNC_TEST_PANIC");
    }
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
        Command::Check { files, memory } => run_check(&files, memory, color),
        Command::Fmt { files, check } => crate::fmt::command::run(&files, check),
        Command::Lsp => crate::lsp::run(),
        Command::Run(args) => run_run(&args, color),
        Command::Dump { file, stage, settings } => run_dump(&file, stage, &settings, color),
        Command::Grad { file, dump_ir } => run_grad(&file, dump_ir, color),
        Command::Analyze {
            file,
            checkpoint,
            settings,
            json,
        } => run_analyze(&file, checkpoint.as_deref(), &settings, json, color),
        Command::Embeddings {
            file,
            texts,
            checkpoint,
            block,
            settings,
            json,
        } => run_embeddings(&file, &texts, checkpoint.as_deref(), &block, &settings, json, color),
        Command::Bench {
            file,
            backend,
            steps,
            warmup,
            repeats,
            batch,
            settings,
            json,
            memory_limit,
        } => {
            let sizes = crate::codegen::bench::Sizes {
                settings,
                batch: batch.map(|b| b as usize),
            };
            run_bench(
                &file,
                backend,
                (warmup as usize, steps as usize),
                repeats as usize,
                &sizes,
                memory_limit,
                (json, color),
            )
        }
        Command::Report { dirs, out } => match crate::runtime::report::compare::compare(&dirs, &out) {
            Ok(runs) => {
                println!("wrote {} ({runs} runs)", out.display());
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::from(2)
            }
        },
        Command::Std => {
            let mut out = std::io::stdout().lock();
            for (name, text) in crate::stdlib::FILES {
                let _ = writeln!(out, "# ---- {name}\n{text}");
            }
            ExitCode::SUCCESS
        }
    }
}
