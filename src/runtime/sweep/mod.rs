//! Experiments that compare. A sweep (`sweep { ... }`) runs one variant per
//! combination of the listed values — constants, training settings, whole
//! optimizers and schedules — and k-fold cross-validation (`folds: k` on
//! the data) runs k folds; with both, every variant runs its k folds.
//!
//! In: the file, its checked [`Sweep`] and a way to check it again with
//! other constants. Out: every run's directory under one directory (a
//! variant's `<label>/`, a fold's `fold-<i>/`), and there `sweep.md` (the
//! variants ranked by the chosen validation metric, with training and
//! validation metrics, mean ± standard deviation over folds), `sweep.svg`
//! (every variant's training and validation curves, and the learning rate
//! where it differs), an HTML comparison, and the summary event.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};

use super::report::{self, compare::Group};
use super::run::{self, Curves, RunFailure, RunOptions, Summary};
use super::rundir;
use crate::check::sweep::{self as plan, Choice, ChoiceValue, Sweep};
use crate::check::variants;
use crate::check::Program;

/// The table of a sweep, in its directory.
mod table;

pub use table::{markdown, plot};

pub const TABLE_FILE: &str = "sweep.md";
/// The command line's settings of a sweep, which `--resume` uses again.
pub const SETTINGS_FILE: &str = "sweep.json";
/// The curves of every variant, in the sweep's directory.
pub const PLOT_FILE: &str = "sweep.svg";

/// Metrics over one or several runs (folds): the mean and, over more than
/// one run, the standard deviation (of the population: the folds are all
/// there is).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub mean: BTreeMap<String, f64>,
    pub sd: BTreeMap<String, f64>,
}

impl Stats {
    pub fn of(runs: &[BTreeMap<String, f64>]) -> Stats {
        let mut stats = Stats::default();
        let Some(first) = runs.first() else {
            return stats;
        };
        for name in first.keys() {
            let values: Vec<f64> = runs.iter().filter_map(|m| m.get(name).copied()).collect();
            let n = values.len().max(1) as f64;
            let mean = values.iter().sum::<f64>() / n;
            stats.mean.insert(name.clone(), mean);
            if runs.len() > 1 {
                let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                stats.sd.insert(name.clone(), var.sqrt());
            }
        }
        stats
    }

    fn json(map: &BTreeMap<String, f64>) -> Value {
        json!(map)
    }

    /// `0.1234 ± 0.0100` (or the mean alone), `-` when missing.
    pub(super) fn cell(&self, name: &str) -> String {
        match (self.mean.get(name), self.sd.get(name)) {
            (Some(m), Some(s)) => format!("{} ± {}", number(*m), number(*s)),
            (Some(m), None) => number(*m),
            _ => "-".into(),
        }
    }
}

pub(super) fn number(x: f64) -> String {
    if !x.is_finite() {
        format!("{x}")
    } else if x != 0.0 && (x.abs() >= 1e4 || x.abs() < 1e-3) {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
}

/// One variant's result (over its folds).
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub label: String,
    pub dir: PathBuf,
    /// Folds run (1 without cross-validation).
    pub runs: usize,
    /// Validation metrics at the end.
    pub val: Stats,
    /// Metrics on the training split at the end, in evaluation mode.
    pub train: Stats,
    /// The curves (the mean over folds).
    pub curves: Curves,
    pub steps: u64,
    pub wall_s: f64,
    /// Why the variant did not finish (a loss that became NaN).
    pub failure: Option<String>,
    /// For a series with a `season`: the naive forecasts' validation MAE
    /// (the `baseline` of the run's summary).
    pub baseline: Option<Value>,
}

impl Outcome {
    /// The ranking value: `None` for a failed variant or a missing metric.
    fn score(&self, metric: &str) -> Option<f64> {
        if self.failure.is_some() {
            return None;
        }
        self.val.mean.get(metric).copied().filter(|v| v.is_finite())
    }
}

/// The order of `outcomes` from best to worst by `metric` (lowest first,
/// highest first for accuracies); failed variants and missing values
/// last, in run order.
pub fn ranking(outcomes: &[Outcome], metric: &str) -> Vec<usize> {
    let higher = plan::higher_is_better(metric);
    let mut order: Vec<usize> = (0..outcomes.len()).collect();
    order.sort_by(|&a, &b| match (outcomes[a].score(metric), outcomes[b].score(metric)) {
        (Some(x), Some(y)) if higher => y.total_cmp(&x),
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    order
}

/// How the runs of one variant (or of a plain cross-validation) went.
enum Ran {
    Done(Outcome, Vec<Summary>),
    /// A signal stopped a run: its summary.
    Interrupted(Summary),
}

/// Runs one program (from `program`) in `dir`: once, or once per fold.
fn run_variant(
    path: &Path,
    text: &str,
    options: &RunOptions,
    dir: PathBuf,
    label: &str,
    folds: Option<usize>,
    program: &dyn Fn() -> Result<Program, RunFailure>,
) -> Result<Ran, RunFailure> {
    let started = Instant::now();
    let mut summaries = Vec::new();
    let count = folds.unwrap_or(1);
    for fold in 0..count {
        let mut run_options = options.clone();
        run_options.resume = None;
        run_options.eval_train = true;
        run_options.out = Some(dir.clone());
        if let Some(k) = folds {
            run_options.overrides.fold = Some(fold);
            run_options.out = Some(dir.join(format!("fold-{fold}")));
            if options.json {
                println!("{}", json!({"event": "fold", "fold": fold, "of": k}));
            } else if !options.quiet {
                eprintln!("fold {} of {k}", fold + 1);
            }
        }
        // Resuming the sweep: a run that finished is read back, one that
        // was interrupted goes on from its checkpoint, one that left no
        // checkpoint starts again.
        let run_dir = run_options.out.clone().expect("set above");
        if options.resume.is_some() {
            if let Some(summary) = finished(&run_dir) {
                if !options.quiet && !options.json {
                    eprintln!("{label}: finished before, read from {}", run_dir.display());
                }
                summaries.push(summary);
                continue;
            }
            if run_dir.join(super::checkpoint::FILE).is_file() {
                run_options.resume = Some(run_dir);
            } else {
                run_options.overwrite = true;
            }
        }
        let summary = run::run(path, program()?, text, &run_options)?;
        if summary.event["event"] == "interrupted" {
            return Ok(Ran::Interrupted(summary));
        }
        if folds.is_some() {
            group_report(&dir, Group::Folds, options);
        }
        summaries.push(summary);
    }
    let metrics = |key: &str| -> Vec<BTreeMap<String, f64>> {
        summaries
            .iter()
            .map(|s| {
                s.event[key]
                    .as_object()
                    .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_f64()?))).collect())
                    .unwrap_or_default()
            })
            .collect()
    };
    let curves: Vec<&Curves> = summaries.iter().map(|s| &s.curves).collect();
    let outcome = Outcome {
        label: label.to_string(),
        dir,
        runs: summaries.len(),
        val: Stats::of(&metrics("metrics")),
        train: Stats::of(&metrics("train_metrics")),
        curves: mean_curves(&curves),
        steps: summaries.last().and_then(|s| s.event["steps"].as_u64()).unwrap_or(0),
        wall_s: started.elapsed().as_secs_f64(),
        failure: None,
        baseline: summaries
            .last()
            .map(|s| s.event["baseline"].clone())
            .filter(|b| !b.is_null()),
    };
    Ok(Ran::Done(outcome, summaries))
}

/// The directory of a sweep or a cross-validation (the one `--resume` or
/// `--out` names, else a fresh one), with the command line's settings in
/// its `sweep.json` for `--resume` to use again (each run's `run.json`
/// has its own, swept ones included).
fn base_dir(path: &Path, options: &RunOptions) -> Result<PathBuf, RunFailure> {
    let base = match (&options.resume, &options.out) {
        (Some(dir), _) => return Ok(dir.clone()),
        (None, Some(dir)) => dir.clone(),
        (None, None) => rundir::fresh(path).map_err(RunFailure::Message)?,
    };
    if base.join(SETTINGS_FILE).exists() && !options.overwrite {
        return Err(RunFailure::Refused(format!(
            "`{}` holds a sweep already: continue it with --resume, replace it with --overwrite, or choose another --out",
            base.display()
        )));
    }
    let o = &options.overrides;
    let constants: serde_json::Map<String, Value> =
        options.constants.iter().map(|(n, v)| (n.clone(), json!(v))).collect();
    let record = json!({"steps": o.steps, "batch": o.batch, "seed": o.seed, "lr": o.lr, "constants": constants});
    std::fs::create_dir_all(&base)
        .and_then(|()| std::fs::write(base.join(SETTINGS_FILE), format!("{record:#}\n")))
        .map_err(|error| RunFailure::Message(format!("cannot write `{}`: {error}", base.display())))?;
    Ok(base)
}

/// The summary of a run that finished in `dir` and its curves (the steps
/// logged, every evaluation), read back from its events; `None` if its
/// last invocation has no summary.
fn finished(dir: &Path) -> Option<Summary> {
    let record = report::record::load(dir).ok()?;
    let event = record.summary?;
    let curves = Curves {
        train: record.steps.iter().map(|p| (p.step, p.loss)).collect(),
        lr: record.steps.iter().map(|p| (p.step, p.lr)).collect(),
        evals: record.evals,
    };
    Some(Summary {
        out: dir.to_path_buf(),
        event,
        curves,
    })
}

/// The pointwise mean of curves over the same steps (the folds of one
/// variant).
fn mean_curves(curves: &[&Curves]) -> Curves {
    let Some(first) = curves.first() else {
        return Curves::default();
    };
    if curves.len() == 1 {
        return (*first).clone();
    }
    let n = curves.len() as f64;
    let mean = |pick: &dyn Fn(&Curves) -> &Vec<(u64, f64)>| -> Vec<(u64, f64)> {
        let len = curves.iter().map(|c| pick(c).len()).min().unwrap_or(0);
        (0..len)
            .map(|i| (pick(first)[i].0, curves.iter().map(|c| pick(c)[i].1).sum::<f64>() / n))
            .collect()
    };
    let len = curves.iter().map(|c| c.evals.len()).min().unwrap_or(0);
    let evals = (0..len)
        .map(|i| {
            let (step, metrics) = &first.evals[i];
            let averaged = metrics
                .keys()
                .filter_map(|name| {
                    let values: Vec<f64> = curves.iter().filter_map(|c| c.evals[i].1.get(name).copied()).collect();
                    (values.len() == curves.len()).then(|| (name.clone(), values.iter().sum::<f64>() / n))
                })
                .collect();
            (*step, averaged)
        })
        .collect();
    Curves {
        train: mean(&|c| &c.train),
        lr: mean(&|c| &c.lr),
        evals,
    }
}

/// k-fold cross-validation: k runs, fold i held out in run i, each in
/// `<out>/fold-<i>`; the summary reports each fold and the mean and
/// standard deviation of every validation metric (and of the metrics on
/// the training split).
pub fn cross_validate(
    path: &Path,
    text: &str,
    options: &RunOptions,
    folds: usize,
    check: impl Fn() -> Result<Program, String>,
) -> Result<Summary, RunFailure> {
    let base = base_dir(path, options)?;
    let mut options = options.clone();
    options.resume_hint = Some(base.clone());
    let options = &options;
    let program = || check().map_err(RunFailure::Message);
    let (outcome, summaries) = match run_variant(path, text, options, base.clone(), "", Some(folds), &program)? {
        Ran::Done(outcome, summaries) => (outcome, summaries),
        Ran::Interrupted(summary) => return Ok(summary),
    };
    if !options.json && !options.quiet {
        eprintln!("\ncross-validation over {folds} folds (mean ± standard deviation):");
        eprintln!("  {:<16} {:>20} {:>20}", "metric", "train", "validation");
        for name in outcome.val.mean.keys() {
            eprintln!(
                "  {name:<16} {:>20} {:>20}",
                outcome.train.cell(name),
                outcome.val.cell(name)
            );
        }
    }
    let per_fold: Vec<Value> = summaries.iter().map(|s| s.event["metrics"].clone()).collect();
    let event = json!({
        "event": "summary",
        "folds": folds,
        "fold_metrics": per_fold,
        "metrics": Stats::json(&outcome.val.mean),
        "metrics_std": Stats::json(&outcome.val.sd),
        "train_metrics": Stats::json(&outcome.train.mean),
        "train_metrics_std": Stats::json(&outcome.train.sd),
        "val_loss": outcome.val.mean.get("loss").copied(),
        "wall_s": outcome.wall_s,
        "out": base.display().to_string(),
    });
    Ok(Summary::of_group(options, base, event, outcome.curves))
}

/// A sweep: one variant per combination of the listed values, each in
/// `<out>/<label>` (with its folds inside when the data has `folds`); a
/// variant whose run fails (a loss that became NaN) is reported as failed
/// and the others still run. Every variant checks before the first runs:
/// the checker checks up to [`variants::MAX_CHECKED`], this the rest. Writes `sweep.md` and `sweep.svg` and returns
/// the summary, which names the best variant by `rank_by`.
pub fn sweep(
    path: &Path,
    text: &str,
    options: &RunOptions,
    sweep: &Sweep,
    folds: Option<usize>,
    settings: &[(String, f64)],
    check: impl Fn(Vec<(String, f64)>) -> Result<Program, String>,
) -> Result<Summary, RunFailure> {
    let base = base_dir(path, options)?;
    // The checker checked some variants, or all; every one checks before
    // the first trains.
    if !variants::selection(sweep).1 {
        let every = variants::every(sweep);
        for variant in &every {
            let mut constants = settings.to_vec();
            for (name, value) in variants::constants(variant) {
                constants.retain(|(n, _)| *n != name);
                constants.push((name, value));
            }
            let program = check(constants).map_err(RunFailure::Message)?;
            if let Some(diagnostic) = variants::problem(variant, &every[0], &program.diagnostics) {
                return Err(RunFailure::Diagnostic(Box::new(diagnostic), Box::new(program)));
            }
        }
    }
    let started = Instant::now();
    let mut outcomes: Vec<Outcome> = Vec::new();
    for combination in sweep.combinations() {
        let label = plan::label(&combination);
        let mut variant_options = options.clone();
        variant_options.resume_hint = Some(base.clone());
        let mut constants = settings.to_vec();
        apply(&combination, &mut variant_options, &mut constants);
        if options.json {
            println!("{}", json!({"event": "variant", "settings": label}));
        } else if !options.quiet {
            eprintln!("variant {label}");
        }
        let program = || -> Result<Program, RunFailure> {
            let mut program = check(constants.clone()).map_err(RunFailure::Message)?;
            if let Some(diagnostic) = program.diagnostics.iter().find(|d| d.is_error()).cloned() {
                return Err(RunFailure::Diagnostic(Box::new(diagnostic), Box::new(program)));
            }
            for (_, choice) in &combination {
                match &choice.value {
                    ChoiceValue::Optimizer(config) => program.optimizer = Some(config.clone()),
                    ChoiceValue::Schedule(chain) => program.schedule = chain.clone(),
                    _ => {}
                }
            }
            Ok(program)
        };
        let dir = base.join(&label);
        match run_variant(path, text, &variant_options, dir.clone(), &label, folds, &program) {
            Ok(Ran::Done(outcome, _)) => outcomes.push(outcome),
            Ok(Ran::Interrupted(summary)) => return Ok(summary),
            Err(RunFailure::Message(message)) => {
                if options.json {
                    println!(
                        "{}",
                        json!({"event": "variant_failed", "settings": label, "message": message})
                    );
                } else if !options.quiet {
                    eprintln!("variant {label} failed: {message}");
                }
                outcomes.push(Outcome {
                    label: label.clone(),
                    dir,
                    failure: Some(message),
                    ..Outcome::default()
                });
            }
            Err(other) => return Err(other),
        }
        if folds.is_none() {
            group_report(&base, Group::Sweep, options);
        }
    }
    if outcomes.iter().all(|o| o.failure.is_some()) {
        let first = outcomes.first().and_then(|o| o.failure.clone()).unwrap_or_default();
        return Err(RunFailure::Message(format!(
            "every variant of the sweep failed; the first: {first}"
        )));
    }
    let order = ranking(&outcomes, &sweep.rank_by);
    let file = path
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let table = markdown(&file, &outcomes, &order, &sweep.rank_by, folds);
    let write = |name: &str, contents: &str| {
        let target = base.join(name);
        if let Err(error) = std::fs::write(&target, contents) {
            if !options.quiet && !options.json {
                eprintln!("warning: cannot write `{}`: {error}", target.display());
            }
        }
    };
    write(TABLE_FILE, &table);
    write(PLOT_FILE, &plot(&file, &outcomes, &sweep.rank_by));
    let ranks: BTreeMap<usize, usize> = order.iter().enumerate().map(|(rank, &i)| (i, rank + 1)).collect();
    let variants: Vec<Value> = outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let mut variant = json!({
                "settings": o.label,
                "rank": ranks[&i],
                "metrics": Stats::json(&o.val.mean),
                "train_metrics": Stats::json(&o.train.mean),
                "val_loss": o.val.mean.get("loss").copied(),
                "steps": o.steps,
                "wall_s": o.wall_s,
            });
            if folds.is_some() {
                variant["metrics_std"] = Stats::json(&o.val.sd);
                variant["train_metrics_std"] = Stats::json(&o.train.sd);
            }
            if let Some(failure) = &o.failure {
                variant["failed"] = json!(failure);
            }
            if let Some(baseline) = &o.baseline {
                variant["baseline"] = baseline.clone();
            }
            variant
        })
        .collect();
    let best = variants[order[0]].clone();
    if !options.json && !options.quiet {
        eprint!("\n{table}");
        // With folds, each variant's directory has the folds' report.
        let page = if folds.is_some() { "" } else { ", report.html" };
        eprintln!(
            "\nsweep directory: {} ({TABLE_FILE}, {PLOT_FILE}{page})",
            base.display()
        );
    }
    let event = json!({
        "event": "summary",
        "variants": variants,
        "best": best,
        "rank_by": sweep.rank_by,
        "folds": folds,
        "metrics": best["metrics"],
        "val_loss": best["val_loss"],
        "wall_s": started.elapsed().as_secs_f64(),
        "out": base.display().to_string(),
    });
    let curves = outcomes[order[0]].curves.clone();
    Ok(Summary::of_group(options, base, event, curves))
}

/// Sets a variant's values: training settings as overrides, constants to
/// check the file with (optimizers and schedules replace the program's
/// after checking).
fn apply(combination: &[(String, Choice)], options: &mut RunOptions, constants: &mut Vec<(String, f64)>) {
    for (name, choice) in combination {
        let value = match choice.value {
            ChoiceValue::Number(x) => x,
            ChoiceValue::Bool(b) => f64::from(u8::from(b)),
            _ => continue,
        };
        match name.as_str() {
            "lr" => options.overrides.lr = Some(value),
            "batch" => options.overrides.batch = Some(value as usize),
            "seed" => options.overrides.seed = Some(value as u64),
            "steps" => options.overrides.steps = Some(value as u64),
            _ => {
                constants.retain(|(n, _)| n != name);
                constants.push((name.clone(), value));
            }
        }
    }
}

/// Rewrites the `report.html` over the runs in `base` (after each fold or
/// variant); a failure is a warning.
fn group_report(base: &Path, group: Group, options: &RunOptions) {
    if let Err(message) = report::compare::write_group_report(base, group) {
        if !options.quiet && !options.json {
            eprintln!("warning: {message}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(label: &str, loss: f64, accuracy: f64) -> Outcome {
        Outcome {
            label: label.into(),
            runs: 1,
            val: Stats {
                mean: BTreeMap::from([("loss".into(), loss), ("accuracy".into(), accuracy)]),
                sd: BTreeMap::new(),
            },
            ..Outcome::default()
        }
    }

    #[test]
    fn ranking_puts_the_best_first_and_failures_last() {
        let mut failed = outcome("c", 0.1, 0.99);
        failed.failure = Some("step 3: NaN".into());
        let outcomes = [
            outcome("a", 0.5, 0.9),
            failed,
            outcome("b", 0.3, 0.8),
            outcome("d", f64::NAN, 0.95),
        ];
        assert_eq!(ranking(&outcomes, "loss"), [2, 0, 1, 3]);
        // Accuracy: highest first.
        assert_eq!(ranking(&outcomes, "accuracy"), [3, 0, 2, 1]);
    }

    #[test]
    fn stats_are_the_mean_and_the_population_deviation() {
        let runs = [
            BTreeMap::from([("loss".to_string(), 1.0)]),
            BTreeMap::from([("loss".to_string(), 3.0)]),
        ];
        let stats = Stats::of(&runs);
        assert_eq!(stats.mean["loss"], 2.0);
        assert_eq!(stats.sd["loss"], 1.0);
        assert_eq!(stats.cell("loss"), "2.0000 ± 1.0000");
        assert!(Stats::of(&runs[..1]).sd.is_empty());
    }

    #[test]
    fn the_table_lists_variants_in_rank_order_and_names_the_choice() {
        let outcomes = [outcome("H=2", 0.9, 0.7), outcome("H=32", 0.2, 0.95)];
        let order = ranking(&outcomes, "accuracy");
        let table = markdown("f.nn", &outcomes, &order, "accuracy", None);
        let rows: Vec<&str> = table
            .lines()
            .filter(|l| l.starts_with("| 1 ") || l.starts_with("| 2 "))
            .collect();
        assert!(rows[0].starts_with("| 1 | `H=32` |"), "{table}");
        assert!(rows[1].starts_with("| 2 | `H=2` |"), "{table}");
        assert!(
            table.contains("Chosen: `H=32`, the highest validation accuracy (0.9500)."),
            "{table}"
        );
    }

    #[test]
    fn fold_curves_are_averaged_step_by_step() {
        let a = Curves {
            train: vec![(1, 1.0), (2, 0.5)],
            lr: vec![(1, 0.1), (2, 0.1)],
            evals: vec![(2, BTreeMap::from([("loss".to_string(), 0.8)]))],
        };
        let b = Curves {
            train: vec![(1, 3.0), (2, 1.5)],
            lr: vec![(1, 0.1), (2, 0.1)],
            evals: vec![(2, BTreeMap::from([("loss".to_string(), 0.4)]))],
        };
        let mean = mean_curves(&[&a, &b]);
        assert_eq!(mean.train, vec![(1, 2.0), (2, 1.0)]);
        assert_eq!(mean.lr, a.lr);
        assert!((mean.evals[0].1["loss"] - 0.6).abs() < 1e-12);
    }
}
