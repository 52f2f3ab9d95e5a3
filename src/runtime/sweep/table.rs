//! What a sweep writes for people: `sweep.md` (the variants ranked, with
//! the naive forecasts where the data has them) and `sweep.svg` (every
//! variant's curves, smoothed and thinned). In: the variants' outcomes.

use std::fmt::Write as _;

use serde_json::Value;

use super::{number, Outcome};
use crate::check::sweep as plan;
use crate::runtime::report::charts::{self, Chart, Series};

/// `sweep.md`: the variants ranked by `metric`, with the training split's
/// loss and every validation metric, and the chosen variant named.
pub fn markdown(file: &str, outcomes: &[Outcome], order: &[usize], metric: &str, folds: Option<usize>) -> String {
    let mut names: Vec<String> = Vec::new();
    for outcome in outcomes {
        for name in outcome.val.mean.keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    names.sort_by_key(|n| (n != "loss", n.clone()));
    let direction = if plan::higher_is_better(metric) {
        "highest first"
    } else {
        "lowest first"
    };
    let mut text = format!("# {file}: a sweep over {} variants\n\n", outcomes.len());
    let _ = write!(text, "Ranked by validation {metric}, {direction}");
    if let Some(k) = folds {
        let _ = write!(
            text,
            "; every value is the mean ± standard deviation over {k} folds (cross-validation)"
        );
    }
    text.push_str(". Train: the loss on the training split after training, in evaluation mode.\n\n");
    text.push_str("| rank | variant | train loss |");
    for name in &names {
        let _ = write!(text, " validation {name} |");
    }
    text.push_str(" steps | wall time |\n| ---: | --- | ---: |");
    for _ in &names {
        text.push_str(" ---: |");
    }
    text.push_str(" ---: | ---: |\n");
    for (rank, &i) in order.iter().enumerate() {
        let o = &outcomes[i];
        let _ = write!(text, "| {} | `{}` |", rank + 1, o.label);
        if let Some(failure) = &o.failure {
            let _ = write!(text, " failed: {} |", failure.replace('|', "\\|").replace('\n', " "));
            for _ in &names {
                text.push_str(" - |");
            }
            text.push_str(" - | - |\n");
            continue;
        }
        let _ = write!(text, " {} |", o.train.cell("loss"));
        for name in &names {
            let _ = write!(text, " {} |", o.val.cell(name));
        }
        let _ = writeln!(text, " {} | {:.1} s |", o.steps, o.wall_s);
    }
    if let Some(&best) = order.first() {
        let o = &outcomes[best];
        if o.score(metric).is_some() {
            let adjective = if plan::higher_is_better(metric) {
                "highest"
            } else {
                "lowest"
            };
            let _ = writeln!(
                text,
                "\nChosen: `{}`, the {adjective} validation {metric} ({}).",
                o.label,
                o.val.cell(metric)
            );
        }
    }
    text.push_str(&naive_forecasts(outcomes));
    text
}

/// For series with a `season`: the naive forecasts' validation MAE, once if
/// every variant's are the same (the same validation targets), else per
/// variant.
fn naive_forecasts(outcomes: &[Outcome]) -> String {
    let line = |b: &Value| -> Option<String> {
        let unit = b["column"].as_str()?;
        let horizon = b["horizon"].as_u64()?;
        Some(format!(
            "the value {} steps before, {} {unit}; the last value seen ({horizon} {} before), {} {unit}",
            b["season"].as_u64()?,
            number(b["naive_mae"].as_f64()?),
            if horizon == 1 { "step" } else { "steps" },
            number(b["last_value_mae"].as_f64()?),
        ))
    };
    let lines: Vec<(&str, String)> = outcomes
        .iter()
        .filter_map(|o| Some((o.label.as_str(), line(o.baseline.as_ref()?)?)))
        .collect();
    let Some((_, first)) = lines.first() else {
        return String::new();
    };
    if lines.iter().all(|(_, l)| l == first) {
        return format!("\nNaive forecasts of the validation targets (mae): {first}.\n");
    }
    let mut text = "\nNaive forecasts of the validation targets (mae):\n\n".to_string();
    for (label, l) in &lines {
        let _ = writeln!(text, "- `{label}`: {l}");
    }
    text
}

/// The training loss as at most `points` points, each the mean of the
/// steps since the previous one (smoothing the per-batch noise).
fn smooth(curve: &[(u64, f64)], points: usize) -> Vec<(f64, f64)> {
    let size = curve.len().div_ceil(points.max(1)).max(1);
    curve
        .chunks(size)
        .map(|chunk| {
            let mean = chunk.iter().map(|p| p.1).sum::<f64>() / chunk.len() as f64;
            (chunk[chunk.len() - 1].0 as f64, mean)
        })
        .collect()
}

/// At most about `points` points of a curve, the first and last kept.
fn thin(curve: &[(u64, f64)], points: usize) -> Vec<(f64, f64)> {
    let every = curve.len().div_ceil(points.max(1)).max(1);
    let mut out: Vec<(f64, f64)> = curve.iter().step_by(every).map(|&(s, v)| (s as f64, v)).collect();
    if let Some(&(s, v)) = curve.last() {
        if out.last().map(|p| p.0) != Some(s as f64) {
            out.push((s as f64, v));
        }
    }
    out
}

/// `sweep.svg`: panels of training loss, validation loss (and the ranking
/// metric, if another), and the learning rate when the variants' rates
/// differ; one colour per variant throughout, named in one legend.
pub fn plot(file: &str, outcomes: &[Outcome], metric: &str) -> String {
    let end = outcomes.iter().map(|o| o.steps).max().unwrap_or(0) as f64;
    let series = |points: &dyn Fn(&Outcome) -> Vec<(f64, f64)>| -> Vec<Series> {
        outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| Series::new(o.label.clone(), points(o), i))
            .collect()
    };
    let evals = |name: &str| {
        let name = name.to_string();
        move |o: &Outcome| -> Vec<(f64, f64)> {
            o.curves
                .evals
                .iter()
                .filter_map(|(step, m)| Some((*step as f64, *m.get(&name)?)))
                .collect()
        }
    };
    let mut panels = vec![
        Chart::new(
            format!(
                "{file}: training loss (mean of each {} steps)",
                smoothing_window(outcomes)
            ),
            "loss",
            series(&|o| smooth(&o.curves.train, 200)),
        ),
        Chart::new("validation loss", "loss", series(&evals("loss"))),
    ];
    if metric != "loss" {
        panels.push(Chart::new(
            format!("validation {metric}"),
            metric,
            series(&evals(metric)),
        ));
    }
    let rates: Vec<&Vec<(u64, f64)>> = outcomes
        .iter()
        .filter(|o| o.failure.is_none())
        .map(|o| &o.curves.lr)
        .collect();
    if rates.windows(2).any(|pair| pair[0] != pair[1]) {
        panels.push(Chart::new(
            "learning rate per step",
            "learning rate",
            series(&|o| thin(&o.curves.lr, 400)),
        ));
    }
    for panel in &mut panels {
        panel.x_max = Some(end);
    }
    let legend: Vec<(String, usize)> = outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let label = match &o.failure {
                Some(_) => format!("{} (failed)", o.label),
                None => o.label.clone(),
            };
            (label, i)
        })
        .collect();
    charts::panels_svg(&panels, 2, &legend)
}

/// The steps each point of the training-loss panel averages.
fn smoothing_window(outcomes: &[Outcome]) -> usize {
    let longest = outcomes.iter().map(|o| o.curves.train.len()).max().unwrap_or(0);
    longest.div_ceil(200).max(1)
}
