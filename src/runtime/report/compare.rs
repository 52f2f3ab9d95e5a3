//! Reports over several runs: the variants of a sweep, the folds of a
//! cross-validation, or any run directories given to `nnc report`. Run
//! records in, one HTML page out: a chart per metric with a curve per run
//! (aligned by step), the runs ranked by validation loss, and what each
//! run was (file, hash, command, host), with each distinct source once.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::charts::{Chart, Series};
use super::html::{self, escape, number, REPORT_FILE};
use super::record::{self, RunRecord};

/// What the runs are to each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// The variants of one sweep.
    Sweep,
    /// The folds of one cross-validation (their mean and spread matter).
    Folds,
    /// Runs given on the command line.
    Runs,
}

/// The directories `nnc report` compares: each argument that is a run,
/// and the runs inside each argument that is a sweep's or a
/// cross-validation's directory. Anything else is an error.
pub fn resolve(dirs: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut runs = Vec::new();
    for dir in dirs {
        if !dir.exists() {
            return Err(format!("`{}` does not exist", dir.display()));
        }
        if !dir.is_dir() {
            return Err(format!("`{}` is not a run directory (it is a file)", dir.display()));
        }
        if record::is_run(dir) {
            runs.push(dir.clone());
            continue;
        }
        let children = record::child_runs(dir);
        if children.is_empty() {
            return Err(format!(
                "`{}` is not a run directory: it has no {} (nor runs inside it, as a sweep's directory has)",
                dir.display(),
                record::EVENTS_FILE
            ));
        }
        runs.extend(children);
    }
    Ok(runs)
}

/// Labels that tell the runs apart: their directory names, or their paths
/// where names repeat.
fn labels(records: &[RunRecord]) -> Vec<String> {
    let names: Vec<String> = records.iter().map(RunRecord::name).collect();
    names
        .iter()
        .zip(records)
        .map(|(name, record)| {
            if names.iter().filter(|n| *n == name).count() > 1 {
                record.dir.display().to_string()
            } else {
                name.clone()
            }
        })
        .collect()
}

/// The charts: training loss, then each validation metric, one curve per
/// run.
pub fn charts(records: &[RunRecord]) -> Vec<(String, Chart)> {
    let labels = labels(records);
    let last = records
        .iter()
        .map(|r| r.last_step().max(r.info["steps"].as_u64().unwrap_or(0)))
        .max()
        .unwrap_or(0) as f64;
    let mut charts = Vec::new();
    let train: Vec<Series> = records
        .iter()
        .zip(&labels)
        .enumerate()
        .map(|(i, (r, label))| Series::new(label, r.steps.iter().map(|p| (p.step as f64, p.loss)).collect(), i))
        .collect();
    charts.push(("train-loss".to_string(), Chart::new("training loss", "loss", train)));
    let mut names: Vec<String> = Vec::new();
    for record in records {
        for name in record.metric_names() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort_by_key(|n| (n != "loss", n.clone()));
    for name in names {
        let series: Vec<Series> = records
            .iter()
            .zip(&labels)
            .enumerate()
            .map(|(i, (r, label))| {
                let points = r
                    .evals
                    .iter()
                    .filter_map(|(step, m)| Some((*step as f64, *m.get(&name)?)))
                    .collect();
                Series::new(label, points, i)
            })
            .collect();
        charts.push((
            format!("val-{name}"),
            Chart::new(format!("validation {name}"), name, series),
        ));
    }
    for (_, chart) in &mut charts {
        chart.x_max = Some(last);
    }
    charts
}

/// `to` relative to the directory `from`, when `to` is inside it.
fn link(from: &Path, to: &Path) -> String {
    let relative = from
        .canonicalize()
        .ok()
        .and_then(|base| Some(to.canonicalize().ok()?.strip_prefix(base).ok()?.to_path_buf()));
    match relative {
        Some(path) => path.display().to_string(),
        None => to
            .canonicalize()
            .map_or_else(|_| to.display().to_string(), |p| format!("file://{}", p.display())),
    }
}

/// The comparison page of `records`, to be written into `out_dir`.
pub fn page(records: &[RunRecord], group: Group, out_dir: &Path) -> String {
    let labels = labels(records);
    let mut body = String::new();
    let file = records
        .first()
        .and_then(|r| r.info["file"].as_str())
        .map(|f| {
            Path::new(f)
                .file_name()
                .map_or(f.to_string(), |n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let title = match group {
        Group::Sweep => format!("{file}: sweep over {} variants", records.len()),
        Group::Folds => format!("{file}: cross-validation over {} folds", records.len()),
        Group::Runs => format!("comparison of {} runs", records.len()),
    };
    let _ = writeln!(body, "<h1>{}</h1>", escape(&title));
    if group != Group::Runs {
        if let Some(dir) = records.first().and_then(|r| r.dir.parent()) {
            let _ = writeln!(
                body,
                "<p class=\"sub\">in <code>{}</code></p>",
                escape(&dir.display().to_string())
            );
        }
    }

    // The ranked table: lowest validation loss first.
    let mut names: Vec<String> = Vec::new();
    for record in records {
        for name in record.metric_names() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    let mut order: Vec<usize> = (0..records.len()).collect();
    let loss_of = |i: usize| {
        records[i]
            .final_metrics()
            .get("loss")
            .copied()
            .filter(|l| l.is_finite())
            .unwrap_or(f64::INFINITY)
    };
    order.sort_by(|&a, &b| loss_of(a).total_cmp(&loss_of(b)));
    body.push_str("<h2>Ranked by validation loss</h2>\n<div class=\"card\">\n<table class=\"ranking\">\n<tr><th class=\"num\">#</th><th>run</th><th>status</th>");
    for name in &names {
        let _ = write!(body, "<th class=\"num\">{}</th>", escape(name));
    }
    body.push_str("<th class=\"num\">train loss</th><th class=\"num\">steps/s</th></tr>\n");
    for (rank, &i) in order.iter().enumerate() {
        let record = &records[i];
        let metrics = record.final_metrics();
        let (_, status) = html::status(record);
        let class = if rank == 0 && records.len() > 1 {
            " class=\"best\""
        } else {
            ""
        };
        let _ = write!(
            body,
            "<tr{class}><td class=\"num\">{}</td><td><span class=\"swatch\" aria-hidden=\"true\" style=\"background:{}\"></span><a href=\"{}\">{}</a></td><td>{}</td>",
            rank + 1,
            super::charts::css_color(i),
            escape(&link(out_dir, &record.dir.join(REPORT_FILE))),
            escape(&labels[i]),
            escape(&status)
        );
        for name in &names {
            let value = metrics.get(name).copied().unwrap_or(f64::NAN);
            let _ = write!(body, "<td class=\"num\">{}</td>", number(value));
        }
        let summary = record.summary.as_ref();
        let train = summary
            .and_then(|s| s["train_loss"].as_f64())
            .or(record.steps.last().map(|p| p.loss))
            .unwrap_or(f64::NAN);
        let speed = summary
            .and_then(|s| s["steps_per_s"].as_f64())
            .or(record.steps.last().map(|p| p.steps_per_s))
            .unwrap_or(f64::NAN);
        let _ = writeln!(
            body,
            "<td class=\"num\">{}</td><td class=\"num\">{speed:.1}</td></tr>",
            number(train)
        );
    }
    if group == Group::Folds && records.len() > 1 {
        for (label, spread) in [("mean", false), ("standard deviation", true)] {
            let _ = write!(
                body,
                "<tr class=\"aggregate\"><td></td><td><b>{label}</b></td><td></td>"
            );
            for name in &names {
                let values: Vec<f64> = records
                    .iter()
                    .filter_map(|r| r.final_metrics().get(name).copied())
                    .collect();
                let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
                let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len().max(1) as f64;
                let _ = write!(
                    body,
                    "<td class=\"num\">{}</td>",
                    number(if spread { var.sqrt() } else { mean })
                );
            }
            body.push_str("<td></td><td></td></tr>\n");
        }
    }
    body.push_str("</table>\n</div>\n");

    body.push_str("<h2>Curves</h2>\n<div class=\"charts\">\n");
    for (id, chart) in charts(records) {
        body.push_str(&html::figure(&id, &chart));
    }
    body.push_str("</div>\n");

    // What each run was.
    body.push_str("<h2>Runs</h2>\n<div class=\"card\">\n<table class=\"runs\">\n<tr><th>run</th><th>file</th><th>SHA-256</th><th>host</th><th>started</th><th>command</th></tr>\n");
    for (record, label) in records.iter().zip(&labels) {
        let info = &record.info;
        let field = |key: &str| escape(info[key].as_str().unwrap_or("-"));
        let sha = info["sha256"].as_str().unwrap_or("-");
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td><code>{}</code></td><td><code title=\"{}\">{}</code></td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            escape(label),
            field("file"),
            escape(sha),
            escape(&sha[..sha.len().min(12)]),
            field("host"),
            field("started"),
            field("command")
        );
    }
    body.push_str("</table>\n</div>\n");

    // Each distinct source once.
    let mut seen: Vec<&str> = Vec::new();
    for record in records {
        let Some(sha) = record.info["sha256"].as_str() else {
            continue;
        };
        if seen.contains(&sha) {
            continue;
        }
        seen.push(sha);
        let _ = writeln!(
            body,
            "<h2>Source <code>{}</code></h2>\n<div class=\"card\">\n<p class=\"sub\">SHA-256 <code>{}</code></p>\n{}</div>",
            escape(record.info["file"].as_str().unwrap_or("")),
            escape(sha),
            html::source_block(&record.info)
        );
    }
    html::page(&title, &body)
}

/// Writes the report of the runs inside `dir` (a sweep's or a
/// cross-validation's directory) as `dir/report.html`.
pub fn write_group_report(dir: &Path, group: Group) -> Result<(), String> {
    let records: Vec<RunRecord> = record::child_runs(dir)
        .iter()
        .map(|d| record::load(d))
        .collect::<Result<_, _>>()?;
    let path = dir.join(REPORT_FILE);
    html::write_atomic(&path, &page(&records, group, dir))
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

/// `nnc report DIR...`: compares the runs and writes the page to `out`;
/// returns how many runs it shows.
pub fn compare(dirs: &[PathBuf], out: &Path) -> Result<usize, String> {
    let runs = resolve(dirs)?;
    let records: Vec<RunRecord> = runs.iter().map(|d| record::load(d)).collect::<Result<_, _>>()?;
    let out_dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    html::write_atomic(out, &page(&records, Group::Runs, out_dir))
        .map_err(|e| format!("cannot write `{}`: {e}", out.display()))?;
    Ok(records.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_names_unless_they_repeat() {
        let record = |dir: &str| RunRecord {
            dir: PathBuf::from(dir),
            info: serde_json::Value::Null,
            steps: Vec::new(),
            evals: Vec::new(),
            samples: Vec::new(),
            summary: None,
            interrupted: None,
        };
        let records = [record("a/run"), record("b/run"), record("c/other")];
        assert_eq!(labels(&records), ["a/run", "b/run", "other"]);
    }
}
