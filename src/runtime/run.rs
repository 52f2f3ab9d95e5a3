//! `nnc run`: compile, load data, train with periodic evaluation and
//! checkpoints, evaluate, generate samples, and write the run directory
//! (`metrics.jsonl`, `run.json`, `report.html`, TensorBoard events,
//! `loss.svg`, `checkpoint.safetensors`).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::budget;
use super::checkpoint;
use super::data::Split;
use super::generate::{self, Method};
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
        (Some(_), _) => Intent::Resume,
        (None, true) => Intent::Overwrite,
        (None, false) => Intent::New,
    };
    let run_dir = match (&options.resume, &options.out) {
        (Some(dir), _) | (None, Some(dir)) => rundir::claim(dir, intent).map_err(RunFailure::Refused)?,
        (None, None) => rundir::claim_fresh(path).map_err(RunFailure::Message)?,
    };
    let out = run_dir.path.clone();
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let file_hash = checkpoint::hash_text(text);
    let mut session = match Session::load(program, &base_dir, &options.overrides) {
        Ok(session) => session,
        Err((diagnostic, program)) => return Err(RunFailure::Diagnostic(Box::new(diagnostic), Box::new(program))),
    };
    // Memory: checked against the plan before the step is allocated.
    let estimate = budget::estimate(&session, session.batch)
        .map_err(|e| RunFailure::Message(format!("the JIT cannot plan this program ({e}); try --backend interp")))?;
    budget::check(&session, &estimate, options.overrides.memory_limit).map_err(RunFailure::Message)?;
    session.compile().map_err(RunFailure::Message)?;
    let compile_ms = started.elapsed().as_secs_f64() * 1000.0;
    let checkpoint_path = out.join("checkpoint.safetensors");

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
        let saved = checkpoint::load(&dir.join("checkpoint.safetensors")).map_err(RunFailure::Message)?;
        if saved.file_hash != file_hash {
            notes.push(format!(
                "warning: `{}` changed since the checkpoint was written",
                path.display()
            ));
        }
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
        .open(out.join("metrics.jsonl"))
        .map_err(|e| RunFailure::Message(format!("cannot write `{}`: {e}", out.display())))?;
    let mut reporter = Reporter::new(mode, Some(log), session.total_steps, session.step);
    reporter.event(json!({
        "event": "start",
        "file": path.display().to_string(),
        "backend": session.backend.name(),
        "parameters": session.program.param_count(),
        "steps": session.total_steps,
        "first_step": session.step,
        "batch": session.batch,
        "seed": session.seed,
        "compile_ms": compile_ms,
        "planned_bytes": estimate.total(),
        "memory": estimate.to_json(),
        "out": out.display().to_string(),
    }));
    reporter.attach(&out, &report::record::info(path, text, &session));
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
        let interrupted = was_interrupted();
        if interrupted || options.stop_after.is_some_and(|n| session.step - first_step >= n) {
            // Interrupted: keep everything needed to resume.
            reporter.finish_bar();
            session.sync();
            checkpoint::save(&checkpoint_path, &session.tensors, session.step, &file_hash)
                .map_err(RunFailure::Message)?;
            let event = json!({"event": "interrupted", "step": session.step, "out": out.display().to_string()});
            reporter.event(event.clone());
            reporter.say(&format!(
                "stopped at step {}; resume with --resume {}",
                session.step,
                out.display()
            ));
            return Ok(Summary { out, event });
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
            session.sync();
            checkpoint::save(&checkpoint_path, &session.tensors, session.step, &file_hash)
                .map_err(RunFailure::Message)?;
            reporter.event(
                json!({"event": "checkpoint", "step": session.step, "path": checkpoint_path.display().to_string()}),
            );
        }
    }
    reporter.finish_bar();
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

    let mut val_metrics = metrics_json(&val);
    // The data is lent out while generation runs the session.
    let data = std::mem::take(&mut session.data);
    let sampled = samples(&mut session, &data, &mut reporter, &mut val_metrics);
    session.data = data;
    sampled?;

    let baseline = baseline_comparison(&session, &val);
    if mode == Mode::Human {
        eprint!("\n{}", report::table(&train_metrics, &val_metrics));
        if let Some(line) = baseline.as_ref().and_then(|b| b.get("text")).and_then(Value::as_str) {
            eprintln!("{line}");
        }
    }
    let title = format!("{}: loss", path.display());
    let _ = report::write_svg(
        &out.join("loss.svg"),
        &reporter.train_curve,
        &reporter.val_curve,
        &title,
    );
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
    reporter.event(event.clone());
    if mode == Mode::Human {
        eprintln!("run directory: {}", out.display());
    }
    Ok(Summary { out, event })
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

/// For a series with a `season`: the validation MAE in the series' own
/// units beside the seasonal naive baseline's, as JSON with a line of text.
fn baseline_comparison(session: &Session, val: &BTreeMap<String, f64>) -> Option<Value> {
    let data = session.data.first()?;
    let baseline = data.baseline.as_ref()?;
    let mae = data.unscaled_mae(*val.get("mae")?);
    let better = 100.0 * (1.0 - mae / baseline.mae);
    let text = format!(
        "validation MAE {mae:.1} {unit}; the seasonal naive forecast (the value {season} steps before): {naive:.1} {unit}; the model is {better:.1} % {word}",
        unit = baseline.column,
        season = baseline.season,
        naive = baseline.mae,
        better = better.abs(),
        word = if better >= 0.0 { "better" } else { "worse" },
    );
    Some(
        json!({"column": baseline.column, "season": baseline.season, "mae": mae, "naive_mae": baseline.mae, "text": text}),
    )
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
    // A model that does not fit generation (a tagger, a classifier) gets
    // none; the checker rejects a `generate` section for it.
    let program = &session.program;
    if generation::fit(&program.datasets, &program.eval_trace).is_err() {
        return Ok(());
    }
    let generate = session.program.sections.get("generate");
    let method = Method::from_config(generate.and_then(|g| g.call("method")));
    let count = generate.and_then(|g| g.int("samples")).unwrap_or(3).max(1) as usize;
    match &data.val {
        Split::Stream { .. } if generate.is_some() => {
            let prompt = generate.and_then(|g| g.str("prompt")).unwrap_or("\n").to_string();
            let length = generate.and_then(|g| g.int("length")).unwrap_or(100) as usize;
            let text = generate::continue_text(session, data, &prompt, length, &method)?;
            reporter.event(json!({"event": "sample", "prompt": prompt, "text": text}));
            reporter.say(&format!("sample:\n{prompt}{text}\n"));
        }
        Split::Table { fields, len } if fields.iter().any(|(n, _)| n == "tgt_out") => {
            let vocab = session
                .program
                .datasets
                .first()
                .and_then(|d| d.attr("pad"))
                .unwrap_or(10) as u32;
            let limit = (*len).min(200);
            let rows: Vec<usize> = (0..limit).collect();
            let decoded = generate::translate(session, data, &rows, &method)?;
            let exact = decoded.iter().filter(|t| t.output == t.target).count() as f64 / decoded.len().max(1) as f64;
            extra.insert("decoded_exact_match".into(), json!(exact));
            reporter.event(json!({"event": "decode", "examples": decoded.len(), "exact_match": exact}));
            for t in decoded.iter().take(count) {
                let line = format!(
                    "{} -> {} (target {}){}",
                    generate::tokens_text(&t.source, vocab),
                    generate::tokens_text(&t.output, vocab),
                    generate::tokens_text(&t.target, vocab),
                    if t.output == t.target { "" } else { "  ✗" }
                );
                reporter.event(json!({"event": "sample", "text": line}));
                reporter.say(&line);
            }
            reporter.say(&format!(
                "decoded exact match on {} validation examples: {exact:.3}",
                decoded.len()
            ));
        }
        _ => {}
    }
    Ok(())
}

/// k-fold cross-validation: k runs, fold i held out in run i, each in
/// `<out>/fold-<i>`; the summary reports each fold and the mean and
/// standard deviation of every validation metric.
pub fn cross_validate(
    path: &Path,
    text: &str,
    options: &RunOptions,
    folds: usize,
    check: impl Fn() -> Result<Program, String>,
) -> Result<Summary, RunFailure> {
    let base = match &options.out {
        Some(dir) => dir.clone(),
        None => rundir::fresh(path).map_err(RunFailure::Message)?,
    };
    let mut per_fold: Vec<Map<String, Value>> = Vec::new();
    let started = Instant::now();
    for fold in 0..folds {
        let program = check().map_err(RunFailure::Message)?;
        let mut fold_options = options.clone();
        fold_options.overrides.fold = Some(fold);
        fold_options.out = Some(base.join(format!("fold-{fold}")));
        fold_options.resume = None;
        if options.json {
            println!("{}", json!({"event": "fold", "fold": fold, "of": folds}));
        } else if !options.quiet {
            eprintln!("fold {} of {folds}", fold + 1);
        }
        let summary = run(path, program, text, &fold_options)?;
        group_report(&base, report::compare::Group::Folds, options);
        per_fold.push(summary.event["metrics"].as_object().cloned().unwrap_or_default());
    }
    let mut mean = Map::new();
    let mut spread = Map::new();
    if let Some(first) = per_fold.first() {
        for name in first.keys() {
            let values: Vec<f64> = per_fold
                .iter()
                .filter_map(|m| m.get(name).and_then(Value::as_f64))
                .collect();
            let m = values.iter().sum::<f64>() / values.len().max(1) as f64;
            let var = values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / values.len().max(1) as f64;
            mean.insert(name.clone(), json!(m));
            spread.insert(name.clone(), json!(var.sqrt()));
        }
    }
    if !options.json && !options.quiet {
        eprintln!("\ncross-validation over {folds} folds (mean ± standard deviation):");
        for (name, m) in &mean {
            eprintln!(
                "  {name:<16} {:.4} ± {:.4}",
                m.as_f64().unwrap_or(f64::NAN),
                spread[name].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    let event = json!({
        "event": "summary",
        "folds": folds,
        "fold_metrics": per_fold,
        "metrics": mean,
        "metrics_std": spread,
        "val_loss": mean.get("loss").cloned().unwrap_or(Value::Null),
        "wall_s": started.elapsed().as_secs_f64(),
        "out": base.display().to_string(),
    });
    if options.json {
        println!("{event}");
    }
    Ok(Summary { out: base, event })
}

/// A sweep (`sweep { lr: [...], H: [...] }`): one run per combination of the
/// listed values, each in `<out>/<name>=<value>,...`; the summary lists
/// every variant's validation metrics and names the one with the lowest
/// validation loss.
pub fn sweep(
    path: &Path,
    text: &str,
    options: &RunOptions,
    grid: &[(String, Vec<f64>)],
    settings: &[(String, f64)],
    check: impl Fn(Vec<(String, f64)>) -> Result<Program, String>,
) -> Result<Summary, RunFailure> {
    let base = match &options.out {
        Some(dir) => dir.clone(),
        None => rundir::fresh(path).map_err(RunFailure::Message)?,
    };
    let mut combinations: Vec<Vec<(String, f64)>> = vec![Vec::new()];
    for (name, values) in grid {
        combinations = combinations
            .into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push((name.clone(), *v));
                    next
                })
            })
            .collect();
    }
    let started = Instant::now();
    let mut variants = Vec::new();
    for combination in &combinations {
        let label: Vec<String> = combination.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let label = label.join(",");
        let mut variant_options = options.clone();
        variant_options.out = Some(base.join(&label));
        variant_options.resume = None;
        let mut constants = settings.to_vec();
        for (name, value) in combination {
            match name.as_str() {
                "lr" => variant_options.overrides.lr = Some(*value),
                "batch" => variant_options.overrides.batch = Some(*value as usize),
                "seed" => variant_options.overrides.seed = Some(*value as u64),
                "steps" => variant_options.overrides.steps = Some(*value as u64),
                _ => constants.push((name.clone(), *value)),
            }
        }
        if options.json {
            println!("{}", json!({"event": "variant", "settings": label}));
        } else if !options.quiet {
            eprintln!("variant {label}");
        }
        let program = check(constants).map_err(RunFailure::Message)?;
        if program.has_errors() {
            let diagnostic = program
                .diagnostics
                .iter()
                .find(|d| d.is_error())
                .cloned()
                .expect("an error");
            return Err(RunFailure::Diagnostic(Box::new(diagnostic), Box::new(program)));
        }
        let summary = run(path, program, text, &variant_options)?;
        group_report(&base, report::compare::Group::Sweep, options);
        variants.push(
            json!({"settings": label, "metrics": summary.event["metrics"], "val_loss": summary.event["val_loss"]}),
        );
    }
    let best = variants
        .iter()
        .min_by(|a, b| {
            let loss = |v: &Value| v["val_loss"].as_f64().unwrap_or(f64::INFINITY);
            loss(a).total_cmp(&loss(b))
        })
        .cloned()
        .unwrap_or(Value::Null);
    if !options.json && !options.quiet {
        eprintln!("\nsweep over {} variants (validation metrics):", variants.len());
        for variant in &variants {
            let metrics = variant["metrics"].as_object().cloned().unwrap_or_default();
            let parts: Vec<String> = metrics
                .iter()
                .map(|(k, v)| format!("{k} {:.4}", v.as_f64().unwrap_or(f64::NAN)))
                .collect();
            let mark = if *variant == best { "  <- best" } else { "" };
            eprintln!(
                "  {:<24} {}{mark}",
                variant["settings"].as_str().unwrap_or(""),
                parts.join(", ")
            );
        }
    }
    let event = json!({
        "event": "summary",
        "variants": variants,
        "best": best,
        "metrics": best["metrics"],
        "val_loss": best["val_loss"],
        "wall_s": started.elapsed().as_secs_f64(),
        "out": base.display().to_string(),
    });
    if options.json {
        println!("{event}");
    }
    Ok(Summary { out: base, event })
}

/// Rewrites the `report.html` over the runs in `base` (after each fold or
/// variant); a failure is a warning.
fn group_report(base: &Path, group: report::compare::Group, options: &RunOptions) {
    if let Err(message) = report::compare::write_group_report(base, group) {
        if !options.quiet && !options.json {
            eprintln!("warning: {message}");
        }
    }
}
