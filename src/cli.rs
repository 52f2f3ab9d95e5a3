//! The `nnc` command line: arguments in, stage outputs and diagnostics out.
//! Exit codes: 0 success, 1 the program has errors (or does not fit in
//! memory), 2 usage errors (bad flags, unreadable files, a run directory
//! that holds a run or is in use), 130 and 143 stopped by SIGINT or
//! SIGTERM after a checkpoint.

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
        /// Override a constant of the file, e.g. `--set H=8` (repeatable).
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
        /// Override a constant of the file, e.g. `--set D=64` (repeatable).
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
        /// Repeats (the median is reported).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
        repeats: u32,
        /// Examples per step (overrides `train.batch`).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        batch: Option<u32>,
        /// Override a constant of the file, e.g. `--set D=384` (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_setting)]
        settings: Vec<(String, f64)>,
        /// Print one JSON object per backend.
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
    },
}

#[derive(clap::Args, Debug)]
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
    /// Override a constant of the file, e.g. `--set H=256` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_setting)]
    pub settings: Vec<(String, f64)>,
    /// The run directory [default: runs/<file>-<time>/].
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
    let value: f64 = value.trim().parse().map_err(|_| format!("`{value}` is not a number"))?;
    Ok((name.trim().to_string(), value))
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
        Command::Dump { file, stage } => run_dump(&file, stage, color),
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
                steps as usize,
                repeats as usize,
                &sizes,
                json,
                memory_limit,
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
        Stage::Grad => crate::ir::print::print(&step_graph(&program)),
        Stage::Opt => crate::ir::print::print(&optimized_step(&program)),
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
    print!("{text}");
    ExitCode::SUCCESS
}

/// The training step's graph: forward, gradients, update.
fn step_graph(program: &check::Program) -> crate::ir::Graph {
    let mut forward = crate::ir::lower::lower(&program.train_trace);
    crate::passes::prepare_forward(&mut forward);
    match &program.optimizer {
        Some(optimizer) => crate::autodiff::optimizer::training_step(&forward, optimizer),
        None => forward,
    }
}

/// The training step after the passes.
fn optimized_step(program: &check::Program) -> crate::ir::Graph {
    let mut graph = step_graph(program);
    crate::passes::optimize(&mut graph);
    graph
}

fn run_grad(path: &std::path::Path, dump_ir: bool, color: bool) -> ExitCode {
    let program = match checked(path, color) {
        Ok(program) => program,
        Err(code) => return code,
    };
    let graph = optimized_step(&program);
    if dump_ir {
        print!("{}", crate::ir::print::print(&graph));
        return ExitCode::SUCCESS;
    }
    let forward = crate::ir::lower::lower(&program.train_trace).len();
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

fn run_analyze(
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

fn run_embeddings(
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

fn run_run(args: &RunArgs, color: bool) -> ExitCode {
    let text = match std::fs::read(&args.file) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(error) => {
            eprintln!("error: cannot read `{}`: {error}", args.file.display());
            return ExitCode::from(2);
        }
    };
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
    let options = crate::runtime::run::RunOptions {
        overrides: crate::runtime::Overrides {
            steps: args.steps,
            batch: args.batch.map(|b| b as usize),
            seed: args.seed,
            lr: args.lr,
            fold: None,
            backend: args.backend.backend(),
            memory_limit: args.memory_limit,
        },
        out: args.out.clone(),
        resume: args.resume.clone(),
        init_from: args.init_from.clone(),
        scratch: false,
        json: args.json,
        quiet: args.quiet,
        stop_after: args.stop_after,
        overwrite: args.overwrite,
        eval_train: false,
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

/// `path` checked with the `--set` values, its diagnostics printed; or the
/// exit code once the failure is printed: 2 for an unreadable file or an
/// unknown setting, 1 for errors in the program.
fn checked_program(
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
fn unknown_setting(program: &check::Program, settings: &[(String, f64)], file: &std::path::Path) -> Option<String> {
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

fn run_bench(
    path: &std::path::Path,
    backend: BenchBackend,
    steps: usize,
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
    match crate::codegen::bench::bench(path, name, steps, repeats, sizes) {
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

/// `nnc check`: 0 if every file is well-formed, 1 if any has errors, 2 if a
/// file cannot be read. With `memory`, each good file's step is planned at
/// its batch size and the plan's memory printed.
fn run_check(files: &[PathBuf], memory: bool, color: bool) -> ExitCode {
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
