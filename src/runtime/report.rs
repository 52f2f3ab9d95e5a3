//! What a run tells its user: events as JSON lines (to `metrics.jsonl`, and
//! to stdout with `--json`), a progress bar on a terminal or plain periodic
//! lines otherwise, a final table, and the loss curve as an SVG. Attached to
//! a run directory, the reporter also keeps its TensorBoard event file and
//! its `report.html` (rewritten at each evaluation and at the end); the
//! submodules draw the charts, the pages and the comparisons.

pub mod charts;
pub mod compare;
pub mod html;
pub mod record;

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};

/// How events are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Progress bar on a terminal, plain lines otherwise.
    Human,
    /// One JSON object per line on stdout.
    Json,
    /// Errors only.
    Quiet,
}

pub struct Reporter {
    mode: Mode,
    log: Option<File>,
    bar: Option<ProgressBar>,
    started: Instant,
    /// Plain lines every this many steps when there is no bar.
    every: u64,
    pub train_curve: Vec<(u64, f64)>,
    pub val_curve: Vec<(u64, f64)>,
    /// The learning rate of every step.
    pub lr_curve: Vec<(u64, f64)>,
    /// Every evaluation's validation metrics.
    pub evals: Vec<(u64, std::collections::BTreeMap<String, f64>)>,
    /// The run directory whose `report.html` follows the events.
    run_dir: Option<PathBuf>,
    tensorboard: Option<super::tensorboard::EventWriter>,
}

impl Reporter {
    /// `log` receives every event (`metrics.jsonl`), flushed line by line.
    pub fn new(mode: Mode, log: Option<File>, total_steps: u64, first_step: u64) -> Reporter {
        let bar = (mode == Mode::Human && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(total_steps);
            bar.set_style(
                ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} steps  loss {msg}  {per_sec}  ETA {eta}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.set_position(first_step);
            bar
        });
        Reporter {
            mode,
            log,
            bar,
            started: Instant::now(),
            every: (total_steps / 20).max(1),
            train_curve: Vec::new(),
            val_curve: Vec::new(),
            lr_curve: Vec::new(),
            evals: Vec::new(),
            run_dir: None,
            tensorboard: None,
        }
    }

    /// Attaches the run directory: writes `run.json` (`info`, see
    /// [`record::info`]), opens a TensorBoard event file there, and from now
    /// on rewrites `report.html` at each evaluation and at the end. What
    /// cannot be written is said once, as a warning; training goes on.
    pub fn attach(&mut self, dir: &Path, info: &Value) {
        if let Err(error) = record::write_info(dir, info) {
            self.say(&format!(
                "warning: cannot write `{}`: {error}",
                dir.join(record::INFO_FILE).display()
            ));
        }
        match super::tensorboard::EventWriter::create(dir) {
            Ok(writer) => self.tensorboard = Some(writer),
            Err(error) => self.say(&format!(
                "warning: cannot write TensorBoard events in `{}`: {error}",
                dir.display()
            )),
        }
        self.run_dir = Some(dir.to_path_buf());
    }

    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Records an event: to the log, and to stdout in JSON mode.
    pub fn event(&mut self, event: Value) {
        let line = event.to_string();
        if let Some(log) = &mut self.log {
            let _ = writeln!(log, "{line}");
            let _ = log.flush();
        }
        if self.mode == Mode::Json {
            println!("{line}");
        }
        if let Some(writer) = &mut self.tensorboard {
            if let Err(error) = writer.write(&event) {
                let path = writer.path.display().to_string();
                self.tensorboard = None;
                self.say(&format!("warning: cannot write `{path}`: {error}"));
            }
        }
        let kind = event["event"].as_str().unwrap_or("");
        if matches!(kind, "eval" | "summary" | "interrupted") {
            if let Some(dir) = &self.run_dir {
                if let Err(message) = html::write_run_report(dir) {
                    self.run_dir = None;
                    self.say(&format!("warning: {message}"));
                }
            }
        }
    }

    /// A line for people (not in JSON or quiet mode), above the bar.
    pub fn say(&self, text: &str) {
        match (&self.bar, self.mode) {
            (Some(bar), _) => bar.println(text),
            (None, Mode::Human) => eprintln!("{text}"),
            _ => {}
        }
    }

    pub fn step(&mut self, step: u64, loss: f64, lr: f64, steps_per_s: f64) {
        self.train_curve.push((step, loss));
        self.lr_curve.push((step, lr));
        if let Some(bar) = &self.bar {
            bar.set_position(step);
            bar.set_message(format!("{loss:.4}"));
        }
        let periodic = step.is_multiple_of(self.every);
        if periodic {
            self.event(json!({"event": "step", "step": step, "loss": loss, "lr": lr, "steps_per_s": steps_per_s}));
            if self.bar.is_none() {
                self.say(&format!(
                    "step {step:>6}  loss {loss:.4}  lr {lr:.2e}  {steps_per_s:.1} steps/s"
                ));
            }
        }
    }

    pub fn eval(&mut self, step: u64, metrics: &Map<String, Value>) {
        if let Some(loss) = metrics.get("loss").and_then(Value::as_f64) {
            self.val_curve.push((step, loss));
        }
        let numbers = metrics.iter().filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)));
        self.evals.push((step, numbers.collect()));
        self.event(json!({"event": "eval", "step": step, "metrics": metrics}));
        let parts: Vec<String> = metrics
            .iter()
            .map(|(k, v)| format!("{k} {}", format_metric(v)))
            .collect();
        self.say(&format!("eval at step {step}: {}", parts.join(", ")));
    }

    pub fn finish_bar(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn format_metric(value: &Value) -> String {
    match value.as_f64() {
        Some(x) if x.abs() >= 1000.0 || (x != 0.0 && x.abs() < 1e-3) => format!("{x:.3e}"),
        Some(x) => format!("{x:.4}"),
        // No value (a run of no steps has no training loss).
        None if value.is_null() => "-".to_string(),
        None => value.to_string(),
    }
}

/// The final table of train and validation metrics.
pub fn table(train: &Map<String, Value>, val: &Map<String, Value>) -> String {
    let mut names: Vec<&String> = train.keys().chain(val.keys()).collect();
    names.sort();
    names.dedup();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(6).max(6);
    let mut out = format!("{:<width$} {:>12} {:>12}\n", "metric", "train", "validation");
    for name in names {
        let cell = |m: &Map<String, Value>| m.get(name).map_or("-".to_string(), format_metric);
        out.push_str(&format!("{:<width$} {:>12} {:>12}\n", name, cell(train), cell(val)));
    }
    out
}

/// A loss-curve plot: training loss and validation loss (with a dot at
/// each evaluation), log-scaled when the losses span more than a factor
/// of 20.
pub fn write_svg(path: &Path, train: &[(u64, f64)], val: &[(u64, f64)], title: &str) -> std::io::Result<()> {
    let points = |curve: &[(u64, f64)]| curve.iter().map(|&(s, l)| (s as f64, l)).collect();
    let mut chart = charts::Chart::new(
        title,
        "loss",
        vec![
            charts::Series::new("train", points(train), 0),
            charts::Series::new("validation", points(val), 1),
        ],
    );
    chart.inside_legend = true;
    std::fs::write(path, chart.svg())
}
