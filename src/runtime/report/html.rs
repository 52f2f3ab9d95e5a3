//! `report.html` of one run: a [`RunRecord`] in, one self-contained HTML
//! page out (inline CSS, inline SVG charts, a few lines of inline script;
//! nothing loaded from anywhere): the status, the final table, a chart per
//! metric (train beside validation), the learning rate and speed, the
//! samples, the model's parameters by layer with the step's FLOPs and
//! memory plan, the run's command, host and settings, and the source with
//! its hash. [`page`] is the frame the comparison reports share.

use std::fmt::Write;
use std::path::Path;

use serde_json::Value;

use super::charts::{Chart, Series};
use super::record::{self, RunRecord};

/// The name of the report in a run directory.
pub const REPORT_FILE: &str = "report.html";

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0; background: #f5f6f8; color: #1d2330; font-size: 14px; }
main { max-width: 1180px; margin: 0 auto; padding: 18px 22px 40px; }
h1 { font-size: 22px; margin: 4px 0 2px; }
h2 { font-size: 16px; margin: 22px 0 8px; color: #33415c; }
.sub { color: #5b6478; margin: 2px 0; }
.status { display: inline-block; padding: 1px 8px; border-radius: 9px; font-size: 12px; font-weight: 600; vertical-align: middle; margin-left: 8px; }
.status.finished { background: #dff3e3; color: #1f6b33; }
.status.running { background: #e3ecfb; color: #1f4b99; }
.status.interrupted { background: #fdecd6; color: #8a4b08; }
.row { display: flex; gap: 16px; flex-wrap: wrap; align-items: flex-start; }
.card { background: #fff; border: 1px solid #dde1e8; border-radius: 8px; padding: 12px 14px; }
.card.source { margin-top: 14px; }
.grow { flex: 1 1 300px; min-width: 280px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 14px; }
figure.chart { margin: 0; background: #fff; border: 1px solid #dde1e8; border-radius: 8px; padding: 6px; }
figure.chart svg { display: block; max-width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eceef2; vertical-align: top; }
th { color: #5b6478; font-weight: 600; font-size: 12px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { background: #f0f8f1; font-weight: 600; }
code, pre, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
pre { margin: 0; white-space: pre-wrap; word-break: break-word; }
pre.source { counter-reset: line; }
pre.source span { display: block; }
pre.source span::before { counter-increment: line; content: counter(line); display: inline-block; width: 2.6em; margin-right: 1em; color: #9aa3b5; text-align: right; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 3px 14px; margin: 0; }
dl.kv dt { color: #5b6478; }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
figcaption.legend { padding: 0 10px 6px 72px; font-size: 13px; }
.key { display: inline-block; margin-right: 16px; white-space: nowrap; }
.card > h2:first-child { margin-top: 0; }
#errors:empty { display: none; }
#errors { background: #fde8e8; color: #8a1c1c; padding: 8px; border-radius: 6px; }
"#;

/// Records script errors in `#errors` (and `data-errors` on the body), and
/// writes into each chart's `data-drawn-series` how many curves the page
/// really holds, so a headless browser's DOM says whether it rendered.
const SCRIPT: &str = r#"
(function () {
  var errors = [];
  function show() {
    var box = document.getElementById('errors');
    if (box) { box.textContent = errors.join('\n'); }
    if (document.body) { document.body.setAttribute('data-errors', String(errors.length)); }
  }
  window.addEventListener('error', function (e) { errors.push('error: ' + e.message); show(); });
  var original = console.error;
  console.error = function () {
    errors.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
    show();
    return original.apply(console, arguments);
  };
  document.addEventListener('DOMContentLoaded', function () {
    var figures = document.querySelectorAll('figure.chart');
    for (var i = 0; i < figures.length; i++) {
      var drawn = figures[i].querySelectorAll('svg polyline.series').length;
      figures[i].setAttribute('data-drawn-series', String(drawn));
      if (String(drawn) !== figures[i].getAttribute('data-series')) {
        errors.push('chart ' + figures[i].id + ': ' + drawn + ' curves drawn, ' + figures[i].getAttribute('data-series') + ' expected');
      }
    }
    document.body.setAttribute('data-charts', String(figures.length));
    document.body.setAttribute('data-ready', 'yes');
    show();
  });
})();
"#;

/// A whole page: the title, the frame, and `body` inside `<main>`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"generator\" content=\"nnc {}\">\n<title>{}</title>\n<style>{STYLE}</style>\n<script>{SCRIPT}</script>\n</head>\n<body>\n<main>\n<pre id=\"errors\"></pre>\n{body}</main>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION"),
        escape(title)
    )
}

/// A chart in its figure, its legend in HTML below it; `data-series`
/// says how many curves it has.
pub fn figure(id: &str, chart: &Chart) -> String {
    let mut legend = String::new();
    for series in &chart.series {
        let _ = write!(
            legend,
            "<span class=\"key\"><span class=\"swatch\" style=\"background:{}\"></span>{}</span>",
            super::charts::css_color(series.color),
            escape(&series.label)
        );
    }
    format!(
        "<figure class=\"chart\" id=\"chart-{}\" data-series=\"{}\">\n{}<figcaption class=\"legend\">{legend}</figcaption>\n</figure>\n",
        escape(id),
        chart.series.len(),
        chart.svg()
    )
}

/// A metric value for a table cell.
pub fn number(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x != 0.0 && (x.abs() >= 1e5 || x.abs() < 1e-3) {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
}

/// A count with thousands separators: `425,680`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes as KiB / MiB.
pub fn bytes(n: u64) -> String {
    let x = n as f64;
    if x >= (1 << 20) as f64 {
        format!("{:.2} MiB", x / (1 << 20) as f64)
    } else if x >= 1024.0 {
        format!("{:.1} KiB", x / 1024.0)
    } else {
        format!("{n} B")
    }
}

/// The charts of one run: one per validation metric (loss with the
/// training loss beside it), the learning rate and the speed.
pub fn run_charts(record: &RunRecord) -> Vec<(String, Chart)> {
    let mut charts = Vec::new();
    let val = |name: &str| -> Vec<(f64, f64)> {
        record
            .evals
            .iter()
            .filter_map(|(step, m)| Some((*step as f64, *m.get(name)?)))
            .collect()
    };
    let train: Vec<(f64, f64)> = record.steps.iter().map(|p| (p.step as f64, p.loss)).collect();
    let mut names = record.metric_names();
    if names.is_empty() && !train.is_empty() {
        names.push("loss".into());
    }
    for name in names {
        let mut series = Vec::new();
        if name == "loss" {
            series.push(Series::new("train", train.clone(), 0));
        }
        series.push(Series::new("validation", val(&name), 1));
        let title = if name == "loss" {
            "loss: train and validation".to_string()
        } else {
            format!("{name} (validation)")
        };
        charts.push((name.clone(), Chart::new(title, name, series)));
    }
    let lr: Vec<(f64, f64)> = record.steps.iter().map(|p| (p.step as f64, p.lr)).collect();
    charts.push((
        "lr".into(),
        Chart::new("learning rate", "lr", vec![Series::new("lr", lr, 2)]),
    ));
    let speed: Vec<(f64, f64)> = record.steps.iter().map(|p| (p.step as f64, p.steps_per_s)).collect();
    charts.push((
        "speed".into(),
        Chart::new("speed (mean so far)", "steps/s", vec![Series::new("steps/s", speed, 4)]),
    ));
    let last = record.last_step().max(record.info["steps"].as_u64().unwrap_or(0)) as f64;
    for (_, chart) in &mut charts {
        chart.x_max = Some(last);
    }
    charts
}

/// Where the run is: finished, running at a step, or interrupted.
pub fn status(record: &RunRecord) -> (&'static str, String) {
    let total = record.info["steps"].as_u64();
    if let Some(summary) = &record.summary {
        let steps = summary["steps"].as_u64().unwrap_or(record.last_step());
        let wall = summary["wall_s"].as_f64().unwrap_or(f64::NAN);
        ("finished", format!("finished: {} steps in {wall:.1} s", count(steps)))
    } else if let Some(step) = record.interrupted {
        ("interrupted", format!("interrupted at step {}", count(step)))
    } else {
        let of = total.map_or(String::new(), |t| format!(" of {}", count(t)));
        ("running", format!("running: step {}{of}", count(record.last_step())))
    }
}

/// The final table: each metric's training and validation value.
fn results_table(record: &RunRecord) -> String {
    let val = record.final_metrics();
    let train_loss = match &record.summary {
        Some(summary) => summary["train_loss"].as_f64(),
        None => record.steps.last().map(|p| p.loss),
    };
    let mut extra: Vec<(String, f64)> = Vec::new();
    if let Some(metrics) = record.summary.as_ref().and_then(|s| s["metrics"].as_object()) {
        for (name, value) in metrics {
            if !val.contains_key(name) {
                extra.push((name.clone(), value.as_f64().unwrap_or(f64::NAN)));
            }
        }
    }
    let at = record
        .evals
        .last()
        .map_or(String::new(), |(s, _)| format!(" (step {})", count(*s)));
    let mut out = format!(
        "<table class=\"results\">\n<tr><th>metric</th><th class=\"num\">train</th><th class=\"num\">validation{at}</th></tr>\n"
    );
    let mut names: Vec<String> = record.metric_names();
    if names.is_empty() {
        names.push("loss".into());
    }
    for name in names {
        let train = if name == "loss" {
            train_loss.unwrap_or(f64::NAN)
        } else {
            f64::NAN
        };
        let value = val.get(&name).copied().unwrap_or(f64::NAN);
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&name),
            number(train),
            number(value)
        );
    }
    for (name, value) in extra {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">-</td><td class=\"num\">{}</td></tr>",
            escape(&name),
            number(value)
        );
    }
    out.push_str("</table>\n");
    out
}

/// Key–value pairs as a definition list; values are HTML already.
fn kv(pairs: &[(&str, String)]) -> String {
    let mut out = String::from("<dl class=\"kv\">\n");
    for (key, value) in pairs {
        let _ = writeln!(out, "<dt>{}</dt><dd>{value}</dd>", escape(key));
    }
    out.push_str("</dl>\n");
    out
}

/// What ran, where and how: the file and its hash, the command, the host.
pub fn run_facts(record: &RunRecord) -> String {
    let info = &record.info;
    let text = |key: &str| info[key].as_str().map(escape).unwrap_or_else(|| "-".into());
    let plain = |key: &str| match &info[key] {
        Value::Null => "-".to_string(),
        value => escape(&value.to_string()),
    };
    let mut pairs = vec![
        ("file", format!("<code>{}</code>", text("file"))),
        (
            "SHA-256",
            format!(
                "<code class=\"sha\" title=\"{}\">{}…</code>",
                text("sha256"),
                escape(
                    &info["sha256"]
                        .as_str()
                        .unwrap_or("-")
                        .chars()
                        .take(16)
                        .collect::<String>()
                )
            ),
        ),
        ("command", format!("<code class=\"command\">{}</code>", text("command"))),
        (
            "directory",
            format!("<code>{}</code>", escape(&record.dir.display().to_string())),
        ),
        ("host", format!("<span class=\"host\">{}</span>", text("host"))),
        ("started", text("started")),
        (
            "settings",
            format!(
                "backend {}, batch {}, seed {}, {} steps, lr {}",
                text("backend"),
                plain("batch"),
                plain("seed"),
                plain("steps"),
                plain("lr")
            ),
        ),
    ];
    if let Some(summary) = &record.summary {
        let ms = summary["compile_ms"].as_f64().unwrap_or(f64::NAN);
        let speed = summary["steps_per_s"].as_f64().unwrap_or(f64::NAN);
        pairs.push(("speed", format!("{speed:.1} steps/s; compiled in {ms:.0} ms")));
    }
    kv(&pairs)
}

/// The model: its signature, parameters per layer, FLOPs and memory.
fn model_section(info: &Value) -> String {
    let model = &info["model"];
    if model.is_null() {
        return "<p class=\"sub\">no model summary (run.json is missing)</p>\n".into();
    }
    let mut out = String::new();
    let flops = model["flops_per_step"].as_f64().unwrap_or(f64::NAN);
    let memory = &model["memory"];
    let memory_text = match memory["peak_bytes"].as_u64() {
        Some(peak) => format!(
            "arena peak {} (persistent {}, {} without reuse)",
            bytes(peak),
            bytes(memory["persistent_bytes"].as_u64().unwrap_or(0)),
            bytes(memory["unshared_bytes"].as_u64().unwrap_or(0))
        ),
        None => escape(memory["error"].as_str().unwrap_or("-")),
    };
    out.push_str(&kv(&[
        (
            "model",
            format!("<code>{}</code>", escape(model["signature"].as_str().unwrap_or("-"))),
        ),
        (
            "parameters",
            count(model["parameters"].as_u64().unwrap_or(0)).to_string(),
        ),
        (
            "FLOPs per step",
            format!(
                "{:.3} MFLOP at batch {}",
                flops / 1e6,
                info["batch"].as_u64().unwrap_or(0)
            ),
        ),
        ("memory plan", memory_text),
    ]));
    // Parameters grouped by layer (their path without the last name).
    let mut layers: Vec<(String, Vec<String>, u64)> = Vec::new();
    for (kind, key) in [("", "params"), (" (state)", "states")] {
        for tensor in model[key].as_array().into_iter().flatten() {
            let path = tensor["path"].as_str().unwrap_or("");
            let (layer, name) = path.rsplit_once('.').unwrap_or(("", path));
            let entry = format!(
                "{name}{kind} <code>{}</code>",
                escape(tensor["type"].as_str().unwrap_or(""))
            );
            let n = if kind.is_empty() {
                tensor["count"].as_u64().unwrap_or(0)
            } else {
                0
            };
            match layers.iter_mut().find(|(l, _, _)| l == layer) {
                Some((_, entries, total)) => {
                    entries.push(entry);
                    *total += n;
                }
                None => layers.push((layer.to_string(), vec![entry], n)),
            }
        }
    }
    out.push_str(
        "<table class=\"layers\">\n<tr><th>layer</th><th>tensors</th><th class=\"num\">parameters</th></tr>\n",
    );
    for (layer, entries, total) in &layers {
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td></tr>",
            escape(layer),
            entries.join(", "),
            count(*total)
        );
    }
    out.push_str("</table>\n");
    out
}

/// The source with line numbers.
pub fn source_block(info: &Value) -> String {
    let Some(source) = info["source"].as_str() else {
        return "<p class=\"sub\">no source recorded</p>\n".into();
    };
    let lines: Vec<String> = source.lines().map(|l| format!("<span>{}</span>", escape(l))).collect();
    format!("<pre class=\"source\">{}</pre>\n", lines.join(""))
}

/// The whole report of one run.
pub fn run_page(record: &RunRecord) -> String {
    let info = &record.info;
    let file = info["file"].as_str().map_or_else(|| record.name(), |f| f.to_string());
    let file_name = Path::new(&file)
        .file_name()
        .map_or(file.clone(), |n| n.to_string_lossy().into_owned());
    let (class, status_text) = status(record);
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<h1>{} <span class=\"status {class}\">{}</span></h1>",
        escape(&file_name),
        escape(&status_text)
    );
    let _ = writeln!(
        body,
        "<p class=\"sub\">run <code>{}</code> on <b>{}</b>, started {}</p>",
        escape(&record.name()),
        escape(info["host"].as_str().unwrap_or("?")),
        escape(info["started"].as_str().unwrap_or("?"))
    );
    let charts = run_charts(record);
    body.push_str("<div class=\"row\">\n<div class=\"card grow\">\n<h2>Results</h2>\n");
    body.push_str(&results_table(record));
    body.push_str("<h2>Run</h2>\n");
    body.push_str(&run_facts(record));
    body.push_str("</div>\n");
    if let Some((id, chart)) = charts.first() {
        body.push_str(&figure(id, chart));
    }
    // The other charts, and the model's card in the grid's last cell.
    body.push_str("</div>\n<h2>Curves and model</h2>\n<div class=\"charts\">\n");
    for (id, chart) in charts.iter().skip(1) {
        body.push_str(&figure(id, chart));
    }
    body.push_str("<div class=\"card\">\n<h2>Model</h2>\n");
    body.push_str(&model_section(info));
    body.push_str("</div>\n</div>\n");
    if !record.samples.is_empty() {
        body.push_str("<h2>Samples</h2>\n<div class=\"card\">\n");
        for sample in &record.samples {
            let _ = writeln!(body, "<pre class=\"sample\">{}</pre><hr>", escape(sample));
        }
        body.push_str("</div>\n");
    }
    body.push_str("<div class=\"card source\">\n");
    let _ = writeln!(body, "<h2>Source <code class=\"file\">{}</code></h2>", escape(&file));
    let _ = writeln!(
        body,
        "<p class=\"sub\">SHA-256 <code>{}</code></p>",
        escape(info["sha256"].as_str().unwrap_or("-"))
    );
    body.push_str(&source_block(info));
    body.push_str("</div>\n");
    page(&format!("{file_name}: {}", record.name()), &body)
}

/// Writes `text` to `path` through a temporary file and a rename, so a
/// reader never sees half a page.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("html.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Reads the run directory and writes its `report.html`.
pub fn write_run_report(dir: &Path) -> Result<(), String> {
    let record = record::load(dir)?;
    write_atomic(&dir.join(REPORT_FILE), &run_page(&record))
        .map_err(|e| format!("cannot write `{}`: {e}", dir.join(REPORT_FILE).display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_counts_grouped() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(count(425_680), "425,680");
        assert_eq!(count(12), "12");
        assert_eq!(bytes(3 << 20), "3.00 MiB");
    }
}
