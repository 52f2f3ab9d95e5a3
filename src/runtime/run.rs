//! `nnc run`: compile, load data, train with periodic evaluation and
//! checkpoints, evaluate, generate samples, and write the run directory
//! (`metrics.jsonl`, `run.json`, `report.html`, TensorBoard events,
//! `loss.svg`, `checkpoint.safetensors`).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use ndarray::ArrayD;
use serde_json::{json, Map, Value};

use super::budget;
use super::checkpoint;
use super::data::Split;
use super::decoding;
use super::generate::Method;
use super::report::{self, Mode, Reporter};
use super::rundir::{self, Intent};
use super::{Overrides, RunError, Session};
use crate::check::generation;
use crate::check::Program;
use crate::diagnostics::Diagnostic;

/// How a run is configured beyond the file.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub overrides: Overrides,
    /// The run directory; default `runs/<file>-<time>/`.
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its checkpoint.
    pub resume: Option<PathBuf>,
    /// Load matching parameters from this checkpoint before training
    /// (else the file's `train { init_from }`).
    pub init_from: Option<PathBuf>,
    /// Train from random initialization, whatever `init_from` says (the
    /// baseline of a fine-tuning comparison).
    pub scratch: bool,
    pub json: bool,
    pub quiet: bool,
    /// Stop after this many steps of this invocation (the schedule still
    /// spans the whole run); used to test interrupted runs.
    pub stop_after: Option<u64>,
    /// Replace the run that `out` holds.
    pub overwrite: bool,
    /// Also evaluate on the training split after training (in evaluation
    /// mode): the summary's `train_metrics`, as sweeps compare them.
    pub eval_train: bool,
    /// The constants `--set` gave, recorded in `run.json` so that
    /// `--resume` checks the file with them again.
    pub constants: Vec<(String, f64)>,
    /// The directory an interrupted run tells to resume (a sweep's, for a
    /// run of one of its variants); `None`: the run's own.
    pub resume_hint: Option<PathBuf>,
    /// A process other than the first of a data-parallel run: it writes
    /// into `out` (a scratch directory) and reads the checkpoint `resume`
    /// names without claiming its directory (process 0 does).
    pub follower: bool,
}

/// Why a run stopped early.
pub enum RunFailure {
    /// A problem in the program or its data, with its location.
    Diagnostic(Box<Diagnostic>, Box<Program>),
    /// Anything else, as a message.
    Message(String),
    /// The run directory cannot be used (it holds a run, or another
    /// process writes to it): a usage error.
    Refused(String),
}

impl From<RunError> for RunFailure {
    fn from(error: RunError) -> RunFailure {
        RunFailure::Message(error.to_string())
    }
}

/// The end of a run, as the summary event reports it.
#[derive(Clone, Debug)]
pub struct Summary {
    pub out: PathBuf,
    pub event: Value,
    pub curves: Curves,
}

impl Summary {
    /// The end of a group of runs (a sweep, the folds of a
    /// cross-validation, a fine-tuning comparison): with `--json`, its event
    /// is the last line printed, as a run's own summary is.
    pub fn of_group(options: &RunOptions, out: PathBuf, event: Value, curves: Curves) -> Summary {
        if options.json {
            println!("{event}");
        }
        Summary { out, event, curves }
    }
}

/// What a run traced over its steps, for plots over several runs.
#[derive(Clone, Debug, Default)]
pub struct Curves {
    /// The training loss of every step (1-based).
    pub train: Vec<(u64, f64)>,
    /// The learning rate of every step.
    pub lr: Vec<(u64, f64)>,
    /// Every evaluation's validation metrics.
    pub evals: Vec<(u64, BTreeMap<String, f64>)>,
}

impl Curves {
    fn of(reporter: &Reporter) -> Curves {
        Curves {
            train: reporter.train_curve.clone(),
            lr: reporter.lr_curve.clone(),
            evals: reporter.evals.clone(),
        }
    }
}

fn metrics_json(metrics: &BTreeMap<String, f64>) -> Map<String, Value> {
    metrics.iter().map(|(k, v)| (k.clone(), json!(v))).collect()
}

/// Set by SIGINT (Ctrl-C) or SIGTERM: the loop checkpoints and stops at
/// the end of the step. A second signal ends the process at once.
static STOP: AtomicBool = AtomicBool::new(false);
/// The signal that set [`STOP`].
static SIGNAL: AtomicUsize = AtomicUsize::new(0);

/// Installs the handlers of SIGINT and SIGTERM (once).
fn handle_signals() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        for signal in [SIGINT, SIGTERM] {
            // The order matters: the second signal finds STOP set and exits.
            let _ = flag::register_conditional_shutdown(signal, 128 + signal, &STOP);
            let _ = flag::register_usize(signal, &SIGNAL, signal as usize);
            let _ = flag::register(signal, &STOP);
        }
    });
}

/// Whether a signal stopped the run.
pub fn was_interrupted() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// The exit code of a run a signal stopped: 128 + the signal (130 for
/// Ctrl-C, 143 for SIGTERM), as a shell reports a process the signal
/// killed.
pub fn interrupted_exit_code() -> Option<u8> {
    was_interrupted().then(|| 128 + SIGNAL.load(Ordering::SeqCst).min(127) as u8)
}

/// Runs a checked program from `path`.
pub fn run(path: &Path, program: Program, text: &str, options: &RunOptions) -> Result<Summary, RunFailure> {
    handle_signals();
    let started = Instant::now();
    let resident_at_start = budget::resident();
    // The run directory first: refusing costs nothing yet.
    let intent = match (&options.resume, options.overwrite) {
        (Some(_), _) if !options.follower => Intent::Resume,
        (_, true) => Intent::Overwrite,
        (_, false) => Intent::New,
    };
    let claimed = match (options.follower, &options.resume) {
        (false, Some(dir)) => Some(dir),
        _ => options.out.as_ref(),
    };
    let run_dir = match claimed {
        Some(dir) => rundir::claim(dir, intent).map_err(RunFailure::Refused)?,
        None => rundir::claim_fresh(path).map_err(RunFailure::Message)?,
    };
    let out = run_dir.path.clone();
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let file_hash = checkpoint::hash_text(text);
    let mut session = match Session::load(program, &base_dir, &options.overrides) {
        Ok(session) => session,
        Err((diagnostic, program)) => return Err(RunFailure::Diagnostic(Box::new(diagnostic), Box::new(program))),
    };
    // Memory: checked against the plan before the step is allocated; the
    // JIT then compiles that same plan.
    let planning = Instant::now();
    let planned = match session.backend {
        crate::runtime::Backend::Jit => Some(session.plan_step().map_err(RunFailure::Message)?),
        crate::runtime::Backend::Interp => None,
    };
    let estimate = match &planned {
        Some(planned) => budget::estimate_with_step(&session, session.batch, planned.arena_bytes() as u64),
        None => budget::estimate(&session, session.batch),
    }
    .map_err(|e| RunFailure::Message(format!("the JIT cannot plan this program ({e}); try --backend interp")))?;
    budget::check(&session, &estimate, options.overrides.memory_limit).map_err(RunFailure::Message)?;
    if let Some(planned) = planned {
        let compiled = session
            .compile_planned(planned, planning)
            .map_err(RunFailure::Message)?;
        session.install_step(compiled);
    }
    let compile_ms = started.elapsed().as_secs_f64() * 1000.0;
    let checkpoint_path = out.join(checkpoint::FILE);

    let mode = if options.json {
        Mode::Json
    } else if options.quiet {
        Mode::Quiet
    } else {
        Mode::Human
    };
    let mut notes = run_dir.notes.clone();
    if let Some(data) = session.data.first() {
        let examples = data.train.len();
        if session.batch > examples {
            notes.push(format!(
                "warning: the batch ({}) is larger than the training split ({} examples): every batch repeats examples",
                crate::check::group_thousands(session.batch as i64),
                crate::check::group_thousands(examples as i64),
            ));
        }
    }
    if let Some(dir) = &options.resume {
        let saved = checkpoint::load(&dir.join(checkpoint::FILE)).map_err(RunFailure::Message)?;
        if saved.file_hash != file_hash {
            notes.push(format!(
                "warning: `{}` changed since the checkpoint was written",
                path.display()
            ));
        }
        fits(&saved.tensors, &session.tensors).map_err(|problem| {
            RunFailure::Refused(format!(
                "the checkpoint in `{}` does not fit this program ({problem}); nothing was changed: resume with the settings it was trained with, or start a new run",
                dir.display()
            ))
        })?;
        for (name, value) in saved.tensors {
            session.tensors.insert(name, value);
        }
        session.step = saved.step;
        session.push();
    }
    let mut init = None;
    if let Some(file) =
        super::finetune::checkpoint_of(path, &session.program, options).filter(|_| options.resume.is_none())
    {
        let matching = super::finetune::init_from(&mut session, &file).map_err(RunFailure::Message)?;
        notes.push(matching.text(&file));
        init = Some(matching.to_json(&file));
    }

    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(out.join(report::record::EVENTS_FILE))
        .map_err(|e| RunFailure::Message(format!("cannot write `{}`: {e}", out.display())))?;
    let mut reporter = Reporter::new(mode, Some(log), session.total_steps, session.step);
    let processes = session.place().1;
    reporter.event(json!({
        "event": "start",
        "file": path.display().to_string(),
        "backend": session.backend.name(),
        "parameters": session.program.param_count(),
        "steps": session.total_steps,
        "first_step": session.step,
        "batch": session.batch * processes,
        "processes": processes,
        "seed": session.seed,
        "compile_ms": compile_ms,
        "planned_bytes": estimate.total(),
        "memory": estimate.to_json(),
        "out": out.display().to_string(),
    }));
    let mut info = report::record::info(path, text, &session);
    info["constants"] = Value::Object(options.constants.iter().map(|(n, v)| (n.clone(), json!(v))).collect());
    reporter.attach(&out, &info);
    if processes > 1 {
        reporter.say(&format!(
            "{processes} processes (mpirun): each trains on {} of every batch's {} examples",
            session.batch,
            session.batch * processes
        ));
    }
    if let Some(event) = init {
        reporter.event(event);
    }
    for note in &notes {
        if let Some(warning) = note.strip_prefix("warning: ") {
            reporter.event(json!({"event": "warning", "message": warning}));
        }
        reporter.say(note);
    }
    if let Some(analyze) = session.program.sections.get("analyze") {
        let text = super::analyze::report(&session, analyze.words("report"));
        reporter.event(json!({"event": "analyze", "report": text}));
        reporter.say(text.trim_end());
    }
    let eval = session.program.sections.get("eval").cloned();
    let eval_every = eval.as_ref().and_then(|e| e.int("every")).map(|n| n as u64);
    let mut metric_names: Vec<String> = eval.as_ref().map(|e| e.words("metrics").to_vec()).unwrap_or_default();
    if !metric_names.iter().any(|m| m == "loss") {
        metric_names.insert(0, "loss".into());
    }
    let train_section = session.program.sections.get("train").cloned();
    let checkpoint_every = train_section
        .as_ref()
        .and_then(|t| t.int("checkpoint_every"))
        .map(|n| n as u64)
        .or(eval_every)
        .unwrap_or((session.total_steps / 10).max(1));
    // Evaluation on streams of text: the first windows of the split.
    let eval_limit = budget::eval_limit(&session);
    let loop_start = Instant::now();
    let first_step = session.step;
    let mut recent = Vec::new();
    while session.step < session.total_steps {
        // Under `mpirun` a signal may reach one process only, or each at
        // another step: they stop together, after the same step, or the
        // others would wait in the step's sum for one that left.
        let interrupted = session.any_process(was_interrupted());
        if interrupted || options.stop_after.is_some_and(|n| session.step - first_step >= n) {
            // Interrupted: keep everything needed to resume.
            reporter.finish_bar();
            save_checkpoint(&mut session, &checkpoint_path, &file_hash, &mut reporter)?;
            // No process leaves before process 0's checkpoint is written
            // (`mpirun` ends the others once one exits with an error).
            session.any_process(false);
            plot_losses(&reporter, &out, path);
            let event = json!({"event": "interrupted", "step": session.step, "out": out.display().to_string()});
            reporter.event(event.clone());
            let hint = options.resume_hint.as_ref().unwrap_or(&out);
            reporter.say(&format!(
                "stopped at step {}; resume with --resume {}",
                session.step,
                report::record::shell_word(&hint.display().to_string())
            ));
            let curves = Curves::of(&reporter);
            return Ok(Summary { out, event, curves });
        }
        let lr = session.current_lr();
        let loss = session.train_step().map_err(|e| {
            reporter.finish_bar();
            RunFailure::from(e)
        })?;
        recent.push(loss);
        let done = session.step - first_step;
        let rate = done as f64 / loop_start.elapsed().as_secs_f64().max(1e-9);
        reporter.step(session.step, loss, lr, rate);
        if eval_every.is_some_and(|every| session.step % every == 0) && session.step < session.total_steps {
            let metrics = session.evaluate(&metric_names, eval_limit)?;
            reporter.eval(session.step, &metrics_json(&metrics));
        }
        if session.step % checkpoint_every == 0 || session.step == session.total_steps {
            save_checkpoint(&mut session, &checkpoint_path, &file_hash, &mut reporter)?;
        }
    }
    reporter.finish_bar();
    // A run that took no step here (`--steps 0`, or resumed at its end)
    // still leaves its checkpoint, so it can be resumed or reused.
    if !checkpoint_path.exists() {
        save_checkpoint(&mut session, &checkpoint_path, &file_hash, &mut reporter)?;
    }
    let steps_done = session.step - first_step;
    let steps_per_s = steps_done as f64 / loop_start.elapsed().as_secs_f64().max(1e-9);

    let val = session.evaluate(&metric_names, eval_limit)?;
    reporter.eval(session.step, &metrics_json(&val));
    hessian(&mut session, &mut reporter)?;
    let tail = recent.len().clamp(1, 50);
    let train_loss = if recent.is_empty() {
        f64::NAN
    } else {
        recent[recent.len() - tail..].iter().sum::<f64>() / tail as f64
    };
    let mut train_metrics = Map::new();
    train_metrics.insert("loss".into(), json!(train_loss));
    // On the whole training split, in evaluation mode.
    let train_eval = if options.eval_train {
        Some(metrics_json(&session.evaluate_train(&metric_names, eval_limit)?))
    } else {
        None
    };

    let mut val_metrics = metrics_json(&val);
    // The data is lent out while generation runs the session.
    let data = std::mem::take(&mut session.data);
    let sampled = samples(&mut session, &data, &mut reporter, &mut val_metrics);
    session.data = data;
    sampled?;

    let baseline = baseline_comparison(&session, &val);
    if mode == Mode::Human {
        // Each method's decoding scores were printed as their own table.
        let mut shown = val_metrics.clone();
        shown.retain(|name, _| !name.contains('['));
        eprint!(
            "\n{}",
            report::table(train_eval.as_ref().unwrap_or(&train_metrics), &shown)
        );
        if let Some(line) = baseline.as_ref().and_then(|b| b.get("text")).and_then(Value::as_str) {
            eprintln!("{line}");
        }
    }
    plot_losses(&reporter, &out, path);
    let val_loss = val.get("loss").copied().unwrap_or(f64::NAN);
    let event = json!({
        "event": "summary",
        "steps": session.step,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "metrics": val_metrics,
        "baseline": baseline,
        "steps_per_s": steps_per_s,
        "compile_ms": compile_ms,
        "wall_s": started.elapsed().as_secs_f64(),
        "planned_bytes": estimate.total(),
        "rss_growth_bytes": budget::peak_resident().zip(resident_at_start).map(|(peak, start)| peak.saturating_sub(start)),
        "out": out.display().to_string(),
    });
    let mut event = event;
    if let Some(train) = &train_eval {
        event["train_metrics"] = json!(train);
    }
    reporter.event(event.clone());
    if mode == Mode::Human {
        eprintln!("run directory: {}", out.display());
    }
    let curves = Curves::of(&reporter);
    Ok(Summary { out, event, curves })
}

/// Saves the session's tensors (brought back from the compiled step
/// first) as the run's checkpoint and logs it.
fn save_checkpoint(
    session: &mut Session,
    at: &Path,
    file_hash: &str,
    reporter: &mut Reporter,
) -> Result<(), RunFailure> {
    session.sync();
    checkpoint::save(at, &session.tensors, session.step, file_hash).map_err(RunFailure::Message)?;
    reporter.event(json!({"event": "checkpoint", "step": session.step, "path": at.display().to_string()}));
    Ok(())
}

/// The run's `loss.svg`: training and validation loss so far (best effort).
fn plot_losses(reporter: &Reporter, out: &Path, file: &Path) {
    let title = format!("{}: loss", file.display());
    let _ = report::write_svg(
        &out.join("loss.svg"),
        &reporter.train_curve,
        &reporter.val_curve,
        &title,
    );
}

/// Whether a checkpoint's tensors are this session's, name for name and
/// shape for shape; else the first few that differ.
fn fits(saved: &BTreeMap<String, ArrayD<f64>>, current: &BTreeMap<String, ArrayD<f64>>) -> Result<(), String> {
    let mut problems = Vec::new();
    for (name, value) in current {
        match saved.get(name) {
            None => problems.push(format!("no `{name}`")),
            Some(old) if old.shape() != value.shape() => {
                problems.push(format!("`{name}` is {:?} there, {:?} here", old.shape(), value.shape()))
            }
            Some(_) => {}
        }
    }
    problems.extend(
        saved
            .keys()
            .filter(|name| !current.contains_key(*name))
            .map(|name| format!("`{name}` is not in this program")),
    );
    match problems.len() {
        0 => Ok(()),
        n if n <= 3 => Err(problems.join("; ")),
        n => Err(format!("{}; and {} more", problems[..3].join("; "), n - 3)),
    }
}

/// The Hessian analysis of the trained model, if the `analyze` section
/// asks for it.
fn hessian(session: &mut Session, reporter: &mut Reporter) -> Result<(), RunFailure> {
    let parameters = session.program.param_count().max(0) as usize;
    let settings = session
        .program
        .sections
        .get("analyze")
        .and_then(|a| super::hessian::Settings::from_config(a, parameters));
    let Some(settings) = settings else {
        return Ok(());
    };
    let analysis = super::hessian::analyze(session, &settings)
        .map_err(|e| RunFailure::Message(format!("the Hessian analysis failed: {e}")))?;
    reporter.event(analysis.to_json());
    reporter.say(analysis.text().trim_end());
    Ok(())
}

/// The first validation examples of a CTC dataset: reference labels and
/// the decoding of the model's output, as symbol ids.
fn transcriptions(
    session: &mut Session,
    data: &super::data::Data,
    reporter: &mut Reporter,
    blank: usize,
) -> Result<(), RunError> {
    let rows: Vec<usize> = (0..data.val.len().min(3)).collect();
    if rows.is_empty() {
        return Ok(());
    }
    let batch = super::data::batch(data, &data.val, &rows, None);
    // At the evaluation batch size, whose graph is already compiled.
    let capacity = session.batch.max(rows.len());
    let output = session.forward(batch.clone(), rows.len(), capacity)?;
    let eval = session.program.sections.get("eval");
    let decoder = super::ctc::Decoder::from_config(eval.and_then(|e| e.call("decode")));
    let ids = |labels: &[usize]| labels.iter().map(usize::to_string).collect::<Vec<_>>().join(" ");
    for (reference, decoded) in super::metrics::transcribe(&output, &batch, &data.name, blank, decoder) {
        let line = format!(
            "{} -> {}{}",
            ids(&reference),
            ids(&decoded),
            if reference == decoded { "" } else { "  ✗" }
        );
        reporter.event(json!({"event": "sample", "text": line}));
        reporter.say(&line);
    }
    Ok(())
}

/// The first three validation requests of a `slots` task with the tags the
/// model gives their words.
fn taggings(session: &mut Session, data: &super::data::Data, reporter: &mut Reporter) -> Result<(), RunError> {
    let rows: Vec<usize> = (0..data.val.len().min(3)).collect();
    if rows.is_empty() {
        return Ok(());
    }
    let batch = super::data::batch(data, &data.val, &rows, None);
    let capacity = session.batch.max(rows.len());
    let output = session.forward(batch.clone(), rows.len(), capacity)?;
    let (Some(x), Some(y)) = (
        batch.get(&format!("{}.x", data.name)),
        batch.get(&format!("{}.y", data.name)),
    ) else {
        return Ok(());
    };
    for row in 0..rows.len() {
        let line = super::slots::show(&data.words, x, y, &output, row);
        reporter.event(json!({"event": "sample", "text": line}));
        reporter.say(&line);
    }
    Ok(())
}

/// For a series with a `season`: the validation MAE in the series' own
/// units beside the naive forecasts' (the value one season before, the last
/// value seen), as JSON with a line of text.
fn baseline_comparison(session: &Session, val: &BTreeMap<String, f64>) -> Option<Value> {
    let data = session.data.first()?;
    let baseline = data.baseline.as_ref()?;
    let mae = *val.get("mae")?; // in the series' units already
    let better = 100.0 * (1.0 - mae / baseline.mae);
    let text = format!(
        "validation MAE {mae:.1} {unit}; the seasonal naive forecast (the value {season} steps before): {naive:.1} {unit}; the model is {better:.1} % {word}; the last value seen ({horizon} {steps} before): {last:.1} {unit}",
        unit = baseline.column,
        season = baseline.season,
        naive = baseline.mae,
        better = better.abs(),
        word = if better >= 0.0 { "better" } else { "worse" },
        horizon = baseline.horizon,
        steps = if baseline.horizon == 1 { "step" } else { "steps" },
        last = baseline.last_mae,
    );
    Some(json!({
        "column": baseline.column,
        "season": baseline.season,
        "mae": mae,
        "naive_mae": baseline.mae,
        "horizon": baseline.horizon,
        "last_value_mae": baseline.last_mae,
        "text": text,
    }))
}

/// Samples from sequence models after training, as the `generate` section
/// says (or with defaults for text and sequence tasks).
fn samples(
    session: &mut Session,
    data: &[super::data::Data],
    reporter: &mut Reporter,
    extra: &mut Map<String, Value>,
) -> Result<(), RunError> {
    let Some(data) = data.first() else {
        return Ok(());
    };
    // CTC models: a few validation transcriptions, decoded as `eval` says.
    if let Some(blank) = session.program.datasets.first().and_then(|d| d.attr("blank")) {
        return transcriptions(session, data, reporter, blank as usize);
    }
    // Taggers of the `slots` task: a few validation requests, tagged.
    if session
        .program
        .datasets
        .first()
        .is_some_and(|d| d.source.name == "slots")
    {
        return taggings(session, data, reporter);
    }
    // A model that does not fit generation (a tagger, a classifier) gets
    // none; the checker rejects a `generate` section for it.
    let program = &session.program;
    if generation::fit(&program.datasets, &program.eval_trace).is_err() {
        return Ok(());
    }
    let generate = session.program.sections.get("generate").cloned();
    // `from: <data>.train` decodes training examples (the checker allows
    // only the model's data); the validation split otherwise.
    let training;
    let (data, split) = match generate.as_ref().and_then(|g| g.values.get("from")) {
        Some(crate::check::config::ConfigValue::Split(_, crate::check::types::SplitKind::Train)) => {
            training = super::data::Data {
                val: data.train.clone(),
                ..data.clone()
            };
            (&training, "training")
        }
        _ => (data, "validation"),
    };
    let methods = Method::all(generate.as_ref());
    let count = generate.as_ref().and_then(|g| g.int("samples")).unwrap_or(3).max(1) as usize;
    match &data.val {
        Split::Stream { .. } if generate.is_some() => {
            let prompt = generate.as_ref().and_then(|g| g.str("prompt")).unwrap_or("\n");
            let length = generate.as_ref().and_then(|g| g.int("length")).unwrap_or(100) as usize;
            decoding::text(session, data, &methods, prompt, length, reporter)?;
        }
        Split::Table { fields, .. } if fields.iter().any(|(n, _)| n == "tgt_out") => {
            decoding::sequences(session, data, split, &methods, count, reporter, extra)?;
        }
        _ => {}
    }
    Ok(())
}
