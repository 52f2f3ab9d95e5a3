//! What a run tells its user: events as JSON lines (to `metrics.jsonl`, and
//! to stdout with `--json`), a progress bar on a terminal or plain periodic
//! lines otherwise, a final table, and the loss curve as an SVG.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::Path;
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
        }
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
        if let Some(bar) = &self.bar {
            bar.set_position(step);
            bar.set_message(format!("{loss:.4}"));
        }
        let periodic = step % self.every == 0;
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

/// A loss-curve plot: training loss (thin, light) and validation loss
/// (dots), log-scaled when the losses span more than a factor of 20.
pub fn write_svg(path: &Path, train: &[(u64, f64)], val: &[(u64, f64)], title: &str) -> std::io::Result<()> {
    let (width, height, margin) = (640.0, 360.0, 50.0);
    let all: Vec<(u64, f64)> = train
        .iter()
        .chain(val)
        .copied()
        .filter(|(_, l)| l.is_finite())
        .collect();
    let max_step = all.iter().map(|(s, _)| *s).max().unwrap_or(1).max(1) as f64;
    let low = all.iter().map(|(_, l)| *l).fold(f64::INFINITY, f64::min);
    let high = all.iter().map(|(_, l)| *l).fold(f64::NEG_INFINITY, f64::max);
    let log = low > 0.0 && high / low > 20.0;
    let scale = |v: f64| if log { v.ln() } else { v };
    let (lo, hi) = if all.is_empty() {
        (0.0, 1.0)
    } else {
        (scale(low), scale(high).max(scale(low) + 1e-9))
    };
    let x = |s: u64| margin + (s as f64 / max_step) * (width - 2.0 * margin);
    let y = |v: f64| height - margin - (scale(v) - lo) / (hi - lo) * (height - 2.0 * margin);
    let points = |curve: &[(u64, f64)]| {
        curve
            .iter()
            .filter(|(_, l)| l.is_finite())
            .map(|(s, l)| format!("{:.1},{:.1}", x(*s), y(*l)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{margin}\" y=\"20\">{title}</text>\n\
         <line x1=\"{margin}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"black\"/>\n\
         <line x1=\"{margin}\" y1=\"{margin}\" x2=\"{margin}\" y2=\"{bottom}\" stroke=\"black\"/>\n",
        bottom = height - margin,
        right = width - margin,
        title = escape(title),
    );
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">step {}</text>\n<text x=\"5\" y=\"{}\">{:.3}</text>\n<text x=\"5\" y=\"{}\">{:.3}</text>\n",
        width - margin,
        height - margin + 20.0,
        max_step,
        margin + 4.0,
        high,
        height - margin,
        low
    ));
    svg.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"#7aa6d8\" stroke-width=\"1\" points=\"{}\"/>\n",
        points(train)
    ));
    svg.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"#d8572a\" stroke-width=\"2\" points=\"{}\"/>\n",
        points(val)
    ));
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"20\" fill=\"#7aa6d8\">train</text><text x=\"{}\" y=\"20\" fill=\"#d8572a\">validation</text>\n</svg>\n",
        width - 170.0,
        width - 120.0
    ));
    std::fs::write(path, svg)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
