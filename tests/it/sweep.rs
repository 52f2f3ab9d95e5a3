//! Experiments that compare: optimizer updates against steps worked out by
//! hand, the `sweep` section's diagnostics, and bounded runs of the
//! comparison examples (`optimizers.nn`, `lr_schedule.nn`,
//! `overfitting.nn`, `digits_bn.nn`) with their tables (`sweep.md`) and
//! plots (`sweep.svg`).

use std::path::{Path, PathBuf};

use crate::common::{nnc, root};
use nnc::runtime::{Backend, Overrides, Session};
use serde_json::Value;

fn scratch(name: &str) -> PathBuf {
    crate::common::scratch("sweep", name)
}

/// `w` after each of `steps` steps of `optimizer` on the loss `(w - 1)^2`
/// (one example x = 1, y = 1, fitted by y = w x) from w = 0.5, on the
/// interpreter.
fn trajectory(optimizer: &str, steps: usize) -> Vec<f64> {
    let source = format!(
        "data point = csv(\"data/saddle.csv\", x: \"x\", y: \"y\", val: 0.5)\n\
         model line(x: f32[B, 1]) -> f32[B] {{\n    param w: f32[1] = 0.5\n    (x * w)[:, 0]\n}}\n\
         loss mse(line(point.x), point.y)\n\
         optimizer {optimizer}\n\
         train {{ steps: {steps}, batch: 1 }}\n"
    );
    let dir = root().join("examples");
    let options = nnc::check::Options {
        base_dir: Some(dir.clone()),
        overrides: Vec::new(),
        ..Default::default()
    };
    let program = nnc::check::check_source("step.nn", &source, &options);
    assert!(
        !program.has_errors(),
        "{}",
        program.sources.render(&program.diagnostics, false)
    );
    let overrides = Overrides {
        backend: Backend::Interp,
        ..Overrides::default()
    };
    let mut session = match Session::new(program, &dir, &overrides) {
        Ok(session) => session,
        Err((diagnostic, _)) => panic!("{}", diagnostic.message),
    };
    (0..steps)
        .map(|_| {
            session.train_step().expect("a finite step");
            session.tensors["line.w"][[0]]
        })
        .collect()
}

fn assert_close(found: &[f64], expected: &[f64]) {
    assert_eq!(found.len(), expected.len());
    for (f, e) in found.iter().zip(expected) {
        assert!((f - e).abs() < 1e-9, "found {found:?}, expected {expected:?}");
    }
}

/// The gradient of (w - 1)^2 is 2 (w - 1): -1 at w = 0.5. Each update rule
/// worked out by hand for two steps.
#[test]
fn optimizer_updates_match_steps_worked_by_hand() {
    // SGD: w = 0.5 + 0.1 = 0.6; g = -0.8; w = 0.68.
    assert_close(&trajectory("sgd(lr: 0.1)", 2), &[0.6, 0.68]);
    // Momentum: v = -1, w = 0.6; g = -0.8, v = 0.9 (-1) - 0.8 = -1.7, w = 0.77.
    assert_close(&trajectory("sgd(lr: 0.1, momentum: 0.9)", 2), &[0.6, 0.77]);
    // AdaGrad: s = 1, w = 0.5 + 0.1 * 1 / (1 + 1e-10);
    // g = -0.8, s = 1.64, w += 0.1 * 0.8 / (sqrt(1.64) + 1e-10).
    let w1 = 0.5 + 0.1 / (1.0 + 1e-10);
    let g2 = 2.0 * (w1 - 1.0);
    let s2: f64 = 1.0 + g2 * g2;
    let w2 = w1 - 0.1 * g2 / (s2.sqrt() + 1e-10);
    assert!((w2 - 0.662470).abs() < 1e-6, "{w2}");
    assert_close(&trajectory("adagrad(lr: 0.1)", 2), &[w1, w2]);
    // RMSProp (decay 0.9): s = 0.1, w = 0.5 + 0.01 / (sqrt(0.1) + 1e-8);
    // s = 0.9 * 0.1 + 0.1 g^2, w -= 0.01 g / (sqrt(s) + 1e-8).
    let w1 = 0.5 + 0.01 / (0.1f64.sqrt() + 1e-8);
    let g2 = 2.0 * (w1 - 1.0);
    let s2: f64 = 0.09 + 0.1 * g2 * g2;
    let w2 = w1 - 0.01 * g2 / (s2.sqrt() + 1e-8);
    assert!((w1 - 0.531623).abs() < 1e-6, "{w1}");
    assert_close(&trajectory("rmsprop(lr: 0.01, decay: 0.9)", 2), &[w1, w2]);
    // Adam: the first step is lr times the sign of -g (bias-corrected
    // m / sqrt(v) = g / |g|), less the eps share.
    let w1 = 0.5 + 0.01 * 1.0 / (1.0 + 1e-8);
    assert_close(&trajectory("adam(lr: 0.01)", 1), &[w1]);
}

/// Checks `source` (with the digits data) and returns its diagnostics as
/// (message, the text they point at).
fn diagnostics(sweep: &str) -> Vec<(String, String)> {
    let source = format!(
        "const H = 8\nconst NORM = true\n\
         data digits = csv(\"data/digits.csv\", x: \"p0\"..\"p63\", y: \"label\", classes: 10)\n\
         model m(x: f32[B, 64]) -> f32[B, 10] {{ linear(relu(linear(x, H)), 10) }}\n\
         loss cross_entropy(m(digits.x), digits.y)\n\
         optimizer adam()\n\
         train {{ steps: 10 }}\n\
         eval {{ metrics: [loss, accuracy] }}\n\
         {sweep}\n"
    );
    let options = nnc::check::Options {
        base_dir: Some(root().join("examples")),
        overrides: Vec::new(),
        ..Default::default()
    };
    let program = nnc::check::check_source("sweep.nn", &source, &options);
    program
        .diagnostics
        .iter()
        .map(|d| {
            let span = d.primary.span;
            let text = source[span.start as usize..span.end as usize].to_string();
            (d.message.clone(), text)
        })
        .collect()
}

#[test]
fn sweep_values_are_checked_where_they_are_written() {
    let ok = diagnostics(
        "sweep { optimizer: [sgd(lr: 0.1), adam(lr: 1e-3)], schedule: [constant(), [warmup(5), cosine()]], NORM: [true, false], rank_by: accuracy }",
    );
    assert!(ok.is_empty(), "{ok:?}");
    let found = diagnostics("sweep { optimizer: [sgd(lr: 0.1), adamm(lr: 1e-3)] }");
    assert_eq!(found, [("unknown optimizer `adamm`".to_string(), "adamm".to_string())]);
    let found = diagnostics("sweep { optimizer: [sgd(lr: -1)] }");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1, "-1");
    let found = diagnostics("sweep { schedule: [[cosine(), warmup(5)]] }");
    assert_eq!(
        found,
        [(
            "`warmup` must come first in a schedule".to_string(),
            "warmup(5)".to_string()
        )]
    );
    let found = diagnostics("sweep { rank_by: exact_match }");
    assert_eq!(
        found,
        [(
            "the sweep ranks by `exact_match`, which `eval` does not compute".to_string(),
            "exact_match".to_string()
        )]
    );
    let found = diagnostics("sweep { NORM: [1, 0] }");
    assert_eq!(
        found[0].0,
        "`NORM` is a boolean constant: sweep it over `true` and `false`"
    );
    assert_eq!(found[0].1, "1");
    let found = diagnostics("sweep { optimizer: adam() }");
    assert_eq!(
        found,
        [(
            "`optimizer` needs a list of optimizers to try".to_string(),
            "adam()".to_string()
        )]
    );
    let found = diagnostics("sweep { Hx: [1, 2] }");
    assert_eq!(found, [("cannot sweep `Hx`".to_string(), "Hx".to_string())]);
    let found = diagnostics("sweep { batch: [0.5] }");
    assert_eq!(found[0].1, "0.5");
}

/// Every variant checks before any trains. A variant that does not check is
/// an error of `nnc check` at the swept value; beyond 32 combinations the
/// checker checks each value once, and `nnc run` checks the combinations
/// left before the first variant trains: here only P=6 with Q=6 gives a
/// layer of zero units.
#[test]
fn every_variant_checks_before_the_first_trains() {
    let found = diagnostics("sweep { H: [8, 0, 16] }");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].0.starts_with("the sweep's variant `H=0` does not check: "),
        "{found:?}"
    );
    assert_eq!(found[0].1, "0");
    let dir = scratch("interaction");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("interaction.nn");
    let data = root().join("examples/data/digits.csv");
    std::fs::write(
        &file,
        format!(
            "const P = 1\nconst Q = 1\n\
             data digits = csv(\"{}\", x: \"p0\"..\"p63\", y: \"label\", classes: 10)\n\
             model m(x: f32[B, 64]) -> f32[B, 10] {{ linear(relu(linear(x, 36 - P * Q)), 10) }}\n\
             loss cross_entropy(m(digits.x), digits.y)\n\
             optimizer adam()\n\
             train {{ steps: 1, batch: 4 }}\n\
             sweep {{ P: [1, 2, 3, 4, 5, 6], Q: [1, 2, 3, 4, 5, 6] }}\n",
            data.display()
        ),
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (code, _, stderr) = nnc(&["check", path]);
    assert_eq!(code, 0, "36 combinations, each value checked once: {stderr}");
    let out = dir.join("run");
    let (code, stdout, stderr) = nnc(&["run", path, "--out", out.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("the sweep's variant `P=6,Q=6` does not check"),
        "{stderr}"
    );
    assert!(!stderr.contains("variant P=1,Q=1"), "a variant trained: {stderr}");
    assert!(!out.join("P=1,Q=1").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs `example` as a sweep with extra arguments; the summary event and
/// the run directory.
pub(crate) fn sweep_run(example: &str, name: &str, extra: &[&str]) -> (Value, PathBuf) {
    let out = scratch(name);
    let file = format!("examples/{example}");
    let mut args = vec!["run", file.as_str(), "--json", "--out", out.to_str().unwrap()];
    args.extend(extra);
    let (code, stdout, stderr) = nnc(&args);
    assert_eq!(code, 0, "{stderr}");
    let summary: Value = serde_json::from_str(stdout.lines().last().expect("a summary")).unwrap();
    assert_eq!(summary["event"], "summary", "{summary}");
    (summary, out)
}

/// The table's rows: (rank, variant label, cells).
pub(crate) fn table_rows(dir: &Path) -> Vec<(usize, String, Vec<String>)> {
    let text = std::fs::read_to_string(dir.join("sweep.md")).unwrap();
    text.lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| rank") && !l.starts_with("| ---"))
        .map(|l| {
            let cells: Vec<String> = l.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect();
            (
                cells[0].parse().unwrap(),
                cells[1].trim_matches('`').to_string(),
                cells[2..].to_vec(),
            )
        })
        .collect()
}

/// The mean of a `0.1234 ± 0.0100` cell (or of a plain number).
fn mean(cell: &str) -> f64 {
    cell.split(" ± ").next().unwrap().parse().unwrap()
}

/// `sweep.svg` parses as SVG and has, in each panel, one curve per
/// variant: as many `series` polylines of each variant's colour as there
/// are panels. Returns the panels' titles.
pub(crate) fn check_plot(dir: &Path, variants: usize) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("sweep.svg")).unwrap();
    let document = roxmltree::Document::parse(&text).expect("sweep.svg is well-formed XML");
    let svg = document.root_element();
    assert_eq!(svg.tag_name().name(), "svg");
    let curves: Vec<String> = svg
        .descendants()
        .filter(|n| n.tag_name().name() == "polyline" && n.attribute("class") == Some("series"))
        .map(|n| n.attribute("stroke").unwrap().to_lowercase())
        .collect();
    let texts: Vec<String> = svg
        .descendants()
        .filter(|n| n.tag_name().name() == "text")
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .collect();
    let panels: Vec<String> = texts
        .iter()
        .filter(|t| t.contains("loss (mean of each") || t.starts_with("validation ") || t == &"learning rate per step")
        .cloned()
        .collect();
    for variant in 0..variants {
        let color = nnc::runtime::report::charts::css_color(variant);
        let count = curves.iter().filter(|c| **c == color).count();
        assert_eq!(count, panels.len(), "variant {variant}: {count} curves in {panels:?}");
    }
    assert_eq!(curves.len(), variants * panels.len());
    panels
}

/// Five optimizers on the digits, 150 steps each: the table is ranked by
/// validation loss, the plot has every variant's curves (and the rates,
/// which differ), and the adaptive methods beat plain SGD.
#[test]
fn optimizers_are_ranked_by_validation_loss() {
    let (summary, out) = sweep_run("optimizers.nn", "optimizers", &["--steps", "150"]);
    let rows = table_rows(&out);
    let labels: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(rows.len(), 5, "{rows:?}");
    // Columns: train loss, validation loss, validation accuracy, steps, time.
    let losses: Vec<f64> = rows.iter().map(|r| mean(&r.2[1])).collect();
    assert!(losses.windows(2).all(|w| w[0] <= w[1]), "not ranked: {rows:?}");
    assert_eq!(summary["best"]["settings"], labels[0]);
    assert_eq!(summary["rank_by"], "loss");
    let variant_loss = |label: &str| {
        summary["variants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["settings"] == label)
            .unwrap_or_else(|| panic!("no variant {label}"))["val_loss"]
            .as_f64()
            .unwrap()
    };
    for (label, loss) in labels.iter().zip(&losses) {
        assert!((variant_loss(label) - loss).abs() < 1e-4, "{label}");
    }
    // The reduced target: after 150 steps Adam and RMSProp are below plain
    // SGD (0.02), and the best reaches 90 % accuracy.
    assert!(variant_loss("adam(lr=1e-3)") < variant_loss("sgd(lr=0.02)"));
    assert!(variant_loss("rmsprop(lr=1e-3)") < variant_loss("sgd(lr=0.02)"));
    assert!(mean(&rows[0].2[2]) >= 0.9, "{rows:?}");
    let panels = check_plot(&out, 5);
    assert_eq!(
        panels.len(),
        3,
        "train loss, validation loss, learning rate: {panels:?}"
    );
    assert!(out.join("sgd(lr=0.02,momentum=0.9)/checkpoint.safetensors").exists());
    std::fs::remove_dir_all(out).unwrap();
}

/// Constant, warm-up then cosine, and step decay over 400 steps: the rate
/// of each step as the schedules say, drawn in the plot.
#[test]
fn schedules_are_compared_with_their_rates() {
    let (summary, out) = sweep_run("lr_schedule.nn", "schedules", &["--steps", "400"]);
    let labels: Vec<&str> = summary["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["settings"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["constant()", "warmup(100)+cosine()", "step(every=300,gamma=0.3)"]
    );
    // The rates the runs logged (a step event every 20 steps).
    let rate = |label: &str, step: u64| -> f64 {
        let log = std::fs::read_to_string(out.join(label).join("metrics.jsonl")).unwrap();
        log.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|e| e["event"] == "step" && e["step"] == step)
            .unwrap_or_else(|| panic!("{label}: no step {step}"))["lr"]
            .as_f64()
            .unwrap()
    };
    // An event at step n gives the rate of step n (the n-th, 1-based).
    assert!((rate("constant()", 380) - 0.2).abs() < 1e-12);
    // Step 20 is the 20th of 100 warm-up steps; step 260 is 159 steps into
    // the 300 of cosine decay.
    assert!((rate("warmup(100)+cosine()", 20) - 0.04).abs() < 1e-12);
    let cosine = 0.2 * 0.5 * (1.0 + (std::f64::consts::PI * 159.0 / 300.0).cos());
    let found = rate("warmup(100)+cosine()", 260);
    assert!((found - cosine).abs() < 1e-12, "{found} against {cosine}");
    assert!((rate("step(every=300,gamma=0.3)", 300) - 0.2).abs() < 1e-12);
    assert!((rate("step(every=300,gamma=0.3)", 320) - 0.06).abs() < 1e-12);
    let panels = check_plot(&out, 3);
    assert!(panels.iter().any(|p| p == "learning rate per step"), "{panels:?}");
    // The reduced target: every schedule learns the digits (90 %).
    for variant in summary["variants"].as_array().unwrap() {
        assert!(variant["metrics"]["accuracy"].as_f64().unwrap() >= 0.9, "{variant}");
    }
    std::fs::remove_dir_all(out).unwrap();
}

/// Three sizes, five folds each, 1,500 steps: the largest network has the
/// lowest training loss but not the lowest validation loss, and the table
/// names the size with the lowest mean validation loss.
#[test]
fn cross_validation_chooses_a_size() {
    let (summary, out) = sweep_run("overfitting.nn", "overfitting", &["--steps", "1500"]);
    let rows = table_rows(&out);
    assert_eq!(rows.len(), 3);
    let by_label = |label: &str| rows.iter().find(|r| r.1 == label).unwrap().2.clone();
    for label in ["H=1", "H=8", "H=256"] {
        let cells = by_label(label);
        assert!(cells[0].contains(" ± ") && cells[1].contains(" ± "), "{cells:?}");
        for fold in 0..5 {
            assert!(out.join(label).join(format!("fold-{fold}/metrics.jsonl")).exists());
        }
    }
    let train = |label: &str| mean(&by_label(label)[0]);
    let val = |label: &str| mean(&by_label(label)[1]);
    assert!(
        train("H=256") < train("H=8") && train("H=256") < train("H=1"),
        "{rows:?}"
    );
    assert!(val("H=256") > val("H=8"), "{rows:?}");
    assert!(train("H=1") > 0.3, "too small to fit the sine: {rows:?}");
    // The chosen size: the lowest mean validation loss, ranked first.
    assert_eq!(rows[0].1, "H=8");
    assert_eq!(summary["best"]["settings"], "H=8");
    let table = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    assert!(table.contains("mean ± standard deviation over 5 folds"), "{table}");
    assert!(table.contains("Chosen: `H=8`, the lowest validation loss"), "{table}");
    // The spread in the summary is the folds' standard deviation.
    let folds: Vec<f64> = (0..5)
        .map(|fold| {
            let log = std::fs::read_to_string(out.join(format!("H=8/fold-{fold}/metrics.jsonl"))).unwrap();
            let summary: Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
            summary["metrics"]["loss"].as_f64().unwrap()
        })
        .collect();
    let m = folds.iter().sum::<f64>() / 5.0;
    let sd = (folds.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 5.0).sqrt();
    let best = &summary["best"];
    assert!((best["metrics"]["loss"].as_f64().unwrap() - m).abs() < 1e-9);
    assert!((best["metrics_std"]["loss"].as_f64().unwrap() - sd).abs() < 1e-9);
    check_plot(&out, 3);
    std::fs::remove_dir_all(out).unwrap();
}

/// The same network at a high rate with and without batch norm, 300
/// steps: with it at least 93 %, and better than without.
#[test]
fn batch_norm_trains_at_a_high_rate() {
    let (summary, out) = sweep_run("digits_bn.nn", "batch_norm", &["--steps", "300"]);
    let accuracy = |label: &str| {
        summary["variants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["settings"] == label)
            .and_then(|v| v["metrics"]["accuracy"].as_f64())
    };
    let with = accuracy("NORM=true").expect("the batch-norm variant finishes");
    assert!(with >= 0.93, "with batch norm {with}");
    if let Some(without) = accuracy("NORM=false") {
        assert!(with > without, "with {with}, without {without}");
    }
    assert_eq!(summary["best"]["settings"], "NORM=true");
    let rows = table_rows(&out);
    assert_eq!(
        rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        ["NORM=true", "NORM=false"]
    );
    check_plot(&out, 2);
    std::fs::remove_dir_all(out).unwrap();
}

/// An interrupted sweep resumed with `--resume DIR` alone (the hint it
/// prints, shell-quoted) ends as the uninterrupted sweep: the finished
/// variants read back, the interrupted one continued from its checkpoint,
/// the rest run, with the command line's settings from `sweep.json`.
#[test]
fn an_interrupted_sweep_resumes_to_the_uninterrupted_one() {
    let (whole, parts) = (scratch("resume-whole"), scratch("resume-parts"));
    let file = "examples/optimizers.nn";
    let settings = ["--steps", "30", "--set", "H=16", "--json"];
    let variants = |stdout: &str| -> Vec<Value> {
        // The sweep's summary is the last (each variant's run has one too).
        let summary = crate::common::events(stdout)
            .into_iter()
            .rfind(|e| e["event"] == "summary");
        summary.expect("a summary")["variants"].as_array().unwrap().clone()
    };
    let run = |extra: &[&str]| {
        let args: Vec<&str> = ["run", file].iter().chain(extra).copied().collect();
        let (code, stdout, stderr) = nnc(&args);
        assert_eq!(code, 0, "{stderr}");
        (stdout, stderr)
    };
    let (stdout, _) = run(&[&settings[..], &["--out", whole.to_str().unwrap()]].concat());
    let expected = variants(&stdout);
    // Stopped in the first variant.
    let (_, stderr) = run(&[
        "--steps",
        "30",
        "--set",
        "H=16",
        "--stop-after",
        "12",
        "--out",
        parts.to_str().unwrap(),
    ]);
    assert!(
        stderr.contains(&format!("resume with --resume {}", parts.display())),
        "{stderr}"
    );
    let (stdout, _) = run(&["--json", "--resume", parts.to_str().unwrap()]);
    let resumed = variants(&stdout);
    assert_eq!(resumed.len(), 5);
    for (a, b) in expected.iter().zip(&resumed) {
        assert_eq!(a["settings"], b["settings"]);
        assert_eq!(a["steps"], 30);
        assert_eq!(a["val_loss"], b["val_loss"], "{}", a["settings"]);
        assert_eq!(a["metrics"], b["metrics"], "{}", a["settings"]);
    }
    // A finished sweep resumed reads every variant back.
    let (_, stderr) = run(&["--resume", parts.to_str().unwrap()]);
    assert_eq!(stderr.matches("finished before").count(), 5, "{stderr}");
    // A sweep directory is not run into again without --resume.
    let (code, _, stderr) = nnc(&["run", file, "--steps", "30", "--out", parts.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("holds a sweep already"), "{stderr}");
    std::fs::remove_dir_all(whole).unwrap();
    std::fs::remove_dir_all(parts).unwrap();
}
