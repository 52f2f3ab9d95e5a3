//! `nnc run` end to end: the run directory, JSON events, determinism,
//! resuming an interrupted run, and diagnostics for bad data.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{nnc, root};
use serde_json::Value;

fn scratch(name: &str) -> PathBuf {
    crate::common::scratch("test", name)
}

fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn json_events_end_with_the_summary() {
    let out = scratch("json");
    let (code, stdout, stderr) = nnc(&[
        "run",
        "examples/views_linear.nn",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let events = events(&stdout);
    assert_eq!(events[0]["event"], "start");
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    for key in [
        "steps",
        "train_loss",
        "val_loss",
        "metrics",
        "steps_per_s",
        "compile_ms",
        "wall_s",
    ] {
        assert!(summary.get(key).is_some(), "summary lacks `{key}`: {summary}");
    }
    assert_eq!(summary["steps"], 1980);
    // In views (0.6 standard deviations of the training values, 786.1).
    assert!(summary["metrics"]["mae"].as_f64().unwrap() < 0.6 * 786.13, "{summary}");
    // The target: at least 5 % below "same weekday last week" (563
    // views); the file's run reaches about 422.
    let (mae, naive) = (
        summary["baseline"]["mae"].as_f64().unwrap(),
        summary["baseline"]["naive_mae"].as_f64().unwrap(),
    );
    assert_eq!(summary["metrics"]["mae"].as_f64().unwrap(), mae, "{summary}");
    assert!((naive - 562.84).abs() < 0.01, "{summary}");
    assert!(mae < 0.95 * naive, "{summary}");
    assert!(events.iter().any(|e| e["event"] == "eval"));
    // The run directory holds the same events, the plot and the checkpoint.
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(log.lines().count(), events.len());
    assert!(std::fs::read_to_string(out.join("loss.svg"))
        .unwrap()
        .starts_with("<svg"));
    let checkpoint = nnc::runtime::checkpoint::load(&out.join("checkpoint.safetensors")).unwrap();
    assert_eq!(checkpoint.step, 1980);
    assert!(checkpoint.tensors.contains_key("linear_model.linear.w"));
    assert!(checkpoint.tensors.contains_key("optimizer.m.linear_model.linear.w"));
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn the_same_seed_gives_the_same_numbers() {
    let run = |name: &str| {
        let out = scratch(name);
        let (code, stdout, stderr) = nnc(&[
            "run",
            "examples/digits_mlp.nn",
            "--steps",
            "60",
            "--json",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{stderr}");
        std::fs::remove_dir_all(out).unwrap();
        events(&stdout)
            .into_iter()
            .filter(|e| e["event"] == "step" || e["event"] == "eval")
            .map(|mut e| {
                e.as_object_mut().unwrap().remove("steps_per_s");
                e
            })
            .collect::<Vec<_>>()
    };
    let (first, second) = (run("seed-a"), run("seed-b"));
    assert!(first.len() > 3);
    assert_eq!(first, second);
}

/// A run stopped part-way and resumed ends with exactly the parameters of
/// an uninterrupted run.
#[test]
fn a_resumed_run_matches_an_uninterrupted_one() {
    let whole = scratch("whole");
    let parts = scratch("parts");
    let file = "examples/digits_cnn.nn";
    let steps = "40";
    let (code, _, stderr) = nnc(&[
        "run",
        file,
        "--steps",
        steps,
        "--quiet",
        "--out",
        whole.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = nnc(&[
        "run",
        file,
        "--steps",
        steps,
        "--quiet",
        "--stop-after",
        "17",
        "--out",
        parts.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let interrupted = nnc::runtime::checkpoint::load(&parts.join("checkpoint.safetensors")).unwrap();
    assert!(interrupted.step < 40, "stopped at {}", interrupted.step);
    let (code, _, stderr) = nnc(&[
        "run",
        file,
        "--steps",
        steps,
        "--quiet",
        "--resume",
        parts.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let a = nnc::runtime::checkpoint::load(&whole.join("checkpoint.safetensors")).unwrap();
    let b = nnc::runtime::checkpoint::load(&parts.join("checkpoint.safetensors")).unwrap();
    assert_eq!(a.step, 40);
    assert_eq!(b.step, 40);
    assert_eq!(
        a.tensors.keys().collect::<Vec<_>>(),
        b.tensors.keys().collect::<Vec<_>>()
    );
    for (name, tensor) in &a.tensors {
        assert_eq!(tensor, &b.tensors[name], "{name} differs after resuming");
    }
    std::fs::remove_dir_all(whole).unwrap();
    std::fs::remove_dir_all(parts).unwrap();
}

/// Resuming with settings that change the model's shapes is refused
/// before anything is written: the checkpoint stays as it was.
#[test]
fn a_checkpoint_that_does_not_fit_is_refused_and_kept() {
    let dir = scratch("misfit");
    let file = "examples/digits_mlp.nn";
    let (code, _, stderr) = nnc(&[
        "run",
        file,
        "--steps",
        "40",
        "--quiet",
        "--stop-after",
        "5",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let checkpoint = dir.join("checkpoint.safetensors");
    let before = std::fs::read(&checkpoint).unwrap();
    let (code, _, stderr) = nnc(&[
        "run",
        file,
        "--steps",
        "40",
        "--quiet",
        "--set",
        "H=32",
        "--resume",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("does not fit this program")
            && stderr.contains("`mlp_classifier.linear.w` is [64, 128] there, [64, 32] here"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&checkpoint).unwrap(), before, "the checkpoint changed");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `--resume DIR` alone continues with the settings the run started with
/// (steps, learning rate, batch, seed, `--set` constants, from its
/// `run.json`), to the parameters of the uninterrupted run.
#[test]
fn a_resumed_run_keeps_the_settings_it_started_with() {
    let whole = scratch("settings-whole");
    let parts = scratch("settings-parts");
    let file = "examples/digits_mlp.nn";
    let settings = [
        "--steps", "30", "--lr", "0.02", "--batch", "16", "--seed", "7", "--set", "H=24", "--quiet",
    ];
    let run = |extra: &[&str]| {
        let mut args = vec!["run", file];
        args.extend(extra);
        let (code, _, stderr) = nnc(&args);
        assert_eq!(code, 0, "{stderr}");
    };
    run(&[&settings[..], &["--out", whole.to_str().unwrap()]].concat());
    run(&[&settings[..], &["--stop-after", "11", "--out", parts.to_str().unwrap()]].concat());
    run(&["--quiet", "--resume", parts.to_str().unwrap()]);
    let a = nnc::runtime::checkpoint::load(&whole.join("checkpoint.safetensors")).unwrap();
    let b = nnc::runtime::checkpoint::load(&parts.join("checkpoint.safetensors")).unwrap();
    assert_eq!((a.step, b.step), (30, 30));
    assert_eq!(a.tensors["mlp_classifier.linear.b"].len(), 24);
    for (name, tensor) in &a.tensors {
        assert_eq!(tensor, &b.tensors[name], "{name} differs after resuming");
    }
    std::fs::remove_dir_all(whole).unwrap();
    std::fs::remove_dir_all(parts).unwrap();
}

#[test]
fn init_from_reports_what_matched() {
    let first = scratch("init-a");
    let (code, _, stderr) = nnc(&[
        "run",
        "examples/digits_mlp.nn",
        "--steps",
        "5",
        "--quiet",
        "--out",
        first.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let second = scratch("init-b");
    let checkpoint = first.join("checkpoint.safetensors");
    let (code, _, stderr) = nnc(&[
        "run",
        "examples/digits_mlp.nn",
        "--steps",
        "1",
        "--set",
        "H=64",
        "--init-from",
        checkpoint.to_str().unwrap(),
        "--out",
        second.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("1 of 4 parameters matched; shape differs: mlp_classifier.linear.w [64, 128], mlp_classifier.linear.b [128], mlp_classifier.linear_1.w [128, 10]"), "{stderr}");
    std::fs::remove_dir_all(first).unwrap();
    std::fs::remove_dir_all(second).unwrap();
}

/// Bad data is a diagnostic and exit code 1 before anything trains: at the
/// setting in the program when the checker can judge it (a class beyond
/// `classes`, a series too short for its windows), else at the cell in the
/// data file when the data loads.
#[test]
fn bad_data_is_reported_in_the_data_file() {
    insta::glob!("../data/data_err", "*.nn", |path| {
        let relative = path.strip_prefix(root()).unwrap().to_str().unwrap().to_string();
        let out = scratch("bad-data");
        let (code, stdout, stderr) = nnc(&["run", &relative, "--quiet", "--out", out.to_str().unwrap()]);
        assert_eq!(code, 1, "{relative}: {stderr}");
        assert!(stdout.is_empty());
        insta::assert_snapshot!(stderr);
        let _ = std::fs::remove_dir_all(out);
    });
}

#[test]
fn a_nan_stops_the_run_with_the_step_and_the_op() {
    let out = scratch("nan");
    let (code, _, stderr) = nnc(&["run", "tests/data/ok/nan.nn", "--quiet", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with("error: step "), "{stderr}");
    assert!(stderr.contains("became NaN or infinite at `%"), "{stderr}");
    assert!(
        stderr.contains(" = log`"),
        "the first non-finite value comes from the log: {stderr}"
    );
    let _ = std::fs::remove_dir_all(out);
}

/// A step whose exact values leave f32's range stops the JIT run with a
/// diagnostic naming the value the interpreter's replay found (not a claim
/// of overflow without one).
#[test]
fn an_f32_overflow_stops_the_run_and_names_the_value() {
    let out = scratch("f32-overflow");
    let (code, _, stderr) = nnc(&[
        "run",
        "tests/data/ok/f32_overflow.nn",
        "--backend",
        "jit",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.starts_with("error: step 1: "), "{stderr}");
    assert!(
        stderr.contains("the interpreter's f64 replay stayed finite, but `%")
            && stderr.contains("beyond the range of f32"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(out);
}

/// A saturated sigmoid (pre-activations near ±1000) trains on both
/// backends: its gradient is zero there, not NaN.
#[test]
fn a_saturated_sigmoid_has_a_finite_gradient() {
    for backend in ["interp", "jit"] {
        let out = scratch(&format!("saturated-{backend}"));
        let (code, stdout, stderr) = nnc(&[
            "run",
            "tests/data/saturated/sigmoid.nn",
            "--backend",
            backend,
            "--json",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{backend}: {stderr}");
        let summary = events(&stdout).pop().expect("a summary");
        let loss = summary["train_loss"].as_f64().expect("a training loss");
        assert!(loss.is_finite() && loss >= 0.0, "{backend}: {summary}");
        let _ = std::fs::remove_dir_all(out);
    }
}

#[test]
fn k_fold_cross_validation_runs_each_fold() {
    let out = scratch("folds");
    let (code, stdout, stderr) = nnc(&[
        "run",
        "tests/data/ok/cross_validation.nn",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let events = events(&stdout);
    assert_eq!(events.iter().filter(|e| e["event"] == "fold").count(), 3);
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["folds"], 3);
    assert_eq!(summary["fold_metrics"].as_array().unwrap().len(), 3);
    let accuracy = summary["metrics"]["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.85, "mean accuracy {accuracy}");
    assert!(summary["metrics_std"]["accuracy"].as_f64().unwrap() < 0.2);
    for fold in 0..3 {
        assert!(out.join(format!("fold-{fold}/checkpoint.safetensors")).exists());
    }
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn a_sweep_runs_every_combination_and_names_the_best() {
    let out = scratch("sweep");
    let (code, stdout, stderr) = nnc(&[
        "run",
        "tests/data/ok/sweep.nn",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let events = events(&stdout);
    let labels: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "variant")
        .map(|e| e["settings"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["H=8,lr=0.001", "H=8,lr=0.01", "H=32,lr=0.001", "H=32,lr=0.01"]);
    let summary = events.last().unwrap();
    assert_eq!(summary["variants"].as_array().unwrap().len(), 4);
    // The widest, fastest-learning variant wins in 60 steps.
    assert_eq!(summary["best"]["settings"], "H=32,lr=0.01");
    assert!(out.join("H=32,lr=0.01/checkpoint.safetensors").exists());
    std::fs::remove_dir_all(out).unwrap();
}

/// A run killed with SIGKILL part-way and resumed from its last checkpoint
/// ends with the same parameters as a run that was never interrupted.
#[test]
fn a_killed_run_resumes_to_the_same_parameters() {
    let file = "tests/data/ok/kill.nn";
    let killed = scratch("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(["run", file, "--quiet", "--out", killed.to_str().unwrap()])
        .current_dir(root())
        .spawn()
        .unwrap();
    // Wait for a checkpoint past step 50, then kill without warning.
    let log = killed.join("metrics.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let checkpointed = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|e| e["event"] == "checkpoint" && e["step"].as_u64().unwrap_or(0) >= 50);
        if checkpointed || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = nnc::runtime::checkpoint::load(&killed.join("checkpoint.safetensors")).unwrap();
    assert!(at_kill.step >= 50, "killed before the first checkpoint");
    let (code, _, stderr) = nnc(&["run", file, "--quiet", "--resume", killed.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let whole = scratch("never-killed");
    let (code, _, stderr) = nnc(&["run", file, "--quiet", "--out", whole.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let a = nnc::runtime::checkpoint::load(&whole.join("checkpoint.safetensors")).unwrap();
    let b = nnc::runtime::checkpoint::load(&killed.join("checkpoint.safetensors")).unwrap();
    assert_eq!((a.step, b.step), (3000, 3000));
    for (name, tensor) in &a.tensors {
        assert_eq!(
            tensor, &b.tensors[name],
            "{name} differs (killed at step {})",
            at_kill.step
        );
    }
    std::fs::remove_dir_all(killed).unwrap();
    std::fs::remove_dir_all(whole).unwrap();
}

/// Sequence models end to end at a small size: training, evaluation and
/// generation (sampling for text, beam search for the encoder–decoder).
#[test]
fn sequence_examples_train_and_generate() {
    let cases: &[(&str, &[&str])] = &[
        ("examples/char_lstm.nn", &["--set", "T=8", "--set", "H=16"]),
        (
            "examples/gpt.nn",
            &["--set", "T=8", "--set", "D=16", "--set", "LAYERS=1"],
        ),
        ("examples/transformer.nn", &["--set", "D=16", "--set", "LAYERS=1"]),
    ];
    for (file, settings) in cases {
        let out = scratch("sequence");
        let mut args = vec![
            "run",
            file,
            "--steps",
            "4",
            "--batch",
            "8",
            "--json",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(settings);
        let (code, stdout, stderr) = nnc(&args);
        assert_eq!(code, 0, "{file}: {stderr}");
        let events = events(&stdout);
        let samples: Vec<&Value> = events.iter().filter(|e| e["event"] == "sample").collect();
        assert!(!samples.is_empty(), "{file}: no samples");
        let summary = events.last().unwrap();
        assert!(summary["val_loss"].as_f64().unwrap().is_finite(), "{file}: {summary}");
        if file.contains("transformer") {
            assert!(summary["metrics"]["decoded_exact_match"].is_number(), "{summary}");
            assert!(summary["metrics"]["token_accuracy"].is_number(), "{summary}");
        } else {
            let text = samples[0]["text"].as_str().unwrap();
            assert!(text.chars().count() >= 100, "{file}: short sample {text:?}");
            assert!(summary["metrics"]["perplexity"].as_f64().unwrap() > 1.0);
        }
        std::fs::remove_dir_all(out).unwrap();
    }
}

#[test]
fn the_analyze_section_reports_before_training() {
    let out = scratch("analyze");
    let (code, stdout, stderr) = nnc(&[
        "run",
        "tests/data/ok/analyze.nn",
        "--steps",
        "1",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let events = events(&stdout);
    let report = events
        .iter()
        .find(|e| e["event"] == "analyze")
        .expect("an analyze event");
    insta::assert_snapshot!(report["report"].as_str().unwrap());
    std::fs::remove_dir_all(out).unwrap();
}

/// The masked language model learns from context: 400 steps at a small
/// size (one layer, width 64, 32 characters) bring the validation loss at
/// the corrupted positions under 2.9 nats, where the best model that
/// ignores context (the characters' frequencies) gets 3.31 (measured 2.64
/// in a release build).
#[test]
fn the_masked_language_model_learns_from_context() {
    let out = scratch("bert");
    let (code, stdout, stderr) = nnc(&[
        "run",
        "examples/bert_mlm.nn",
        "--set",
        "D=64",
        "--set",
        "LAYERS=1",
        "--set",
        "T=32",
        "--steps",
        "400",
        "--batch",
        "32",
        "--lr",
        "2e-3",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let events = events(&stdout);
    let summary = events.last().unwrap();
    let loss = summary["val_loss"].as_f64().unwrap();
    assert!(loss < 2.9, "validation loss {loss:.3}: {summary}");
    std::fs::remove_dir_all(out).unwrap();
}

/// The per-token tagger of `tests/data/fuzz/tagger_copy.nn` scores source
/// positions, not target tokens: decoding it directly is an error, not an
/// index out of bounds, and `nnc run` skips decoding for it (see
/// `pipeline_fuzz::fuzz_regressions_run_to_their_summary`).
#[test]
fn decoding_a_model_that_does_not_fit_is_an_error_not_a_panic() {
    let path = crate::common::root().join("tests/data/fuzz/tagger_copy.nn");
    let program = nnc::check::check_file(&path).unwrap();
    assert!(
        !program.has_errors(),
        "{}",
        program.sources.render(&program.diagnostics, false)
    );
    let fit = nnc::check::generation::fit(&program.datasets, &program.eval_trace);
    assert_eq!(
        fit,
        Err("the model gives f32[B, 5, 9], but decoding reads the scores of the next token at each of the 6 positions: it must give f32[B, 6, V]".to_string())
    );
    let options = nnc::runtime::Overrides {
        batch: Some(4),
        backend: nnc::runtime::Backend::Interp,
        ..Default::default()
    };
    let mut session = nnc::runtime::Session::new(program, path.parent().unwrap(), &options)
        .unwrap_or_else(|d| panic!("{}", d.0.message));
    let data = std::mem::take(&mut session.data);
    let decoded =
        nnc::runtime::generate::translate(&mut session, &data[0], &[0, 1], &nnc::runtime::generate::Method::Greedy);
    let Err(error) = decoded else {
        panic!("decoding a tagger gave {decoded:?}");
    };
    assert!(error.to_string().contains("does not fit decoding"), "{error}");
}

/// A series' `weekday` column gives each target's weekday (0 = Monday) as
/// the field `day`, and `season` compares the validation MAE, in the
/// series' units, with the value one season before each target.
#[test]
fn series_weekdays_and_the_seasonal_baseline() {
    let path = root().join("tests/data/ok/weekdays.nn");
    let program = nnc::check::check_file(&path).unwrap();
    assert!(
        !program.has_errors(),
        "{}",
        program.sources.render(&program.diagnostics, false)
    );
    let session = nnc::runtime::Session::new(program, path.parent().unwrap(), &Default::default())
        .unwrap_or_else(|(d, _)| panic!("{}", d.message));
    let data = &session.data[0];
    let day = |split| nnc::runtime::data::batch(data, split, &[0, 1, 2], None)["days.day"].clone();
    // Targets: Tue, Wed, Thu for training; Fri, Sat, "sunday" for validation.
    assert_eq!(day(&data.train).into_raw_vec_and_offset().0, vec![1.0, 2.0, 3.0]);
    assert_eq!(day(&data.val).into_raw_vec_and_offset().0, vec![4.0, 5.0, 6.0]);
    // 30, 50, 20 against 10, 40, 10: errors 20, 10, 10.
    let baseline = data.baseline.as_ref().unwrap();
    assert_eq!(
        (baseline.column.as_str(), baseline.season, baseline.horizon),
        ("views", 3, 1)
    );
    assert!((baseline.mae - 40.0 / 3.0).abs() < 1e-12, "{baseline:?}");
    assert!((baseline.last_mae - 70.0 / 3.0).abs() < 1e-12, "{baseline:?}");

    let out = scratch("weekdays");
    let (code, stdout, stderr) = nnc(&[
        "run",
        "tests/data/ok/weekdays.nn",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let summary = events(&stdout).pop().unwrap();
    let baseline = &summary["baseline"];
    // The metric is in views already (`views.rs` works it out by hand).
    let mae = summary["metrics"]["mae"].as_f64().unwrap();
    assert!((baseline["mae"].as_f64().unwrap() - mae).abs() < 1e-9, "{summary}");
    assert!((baseline["naive_mae"].as_f64().unwrap() - 40.0 / 3.0).abs() < 1e-12);
    // Yesterday's value: 10, 30, 50 against 30, 50, 20: errors 20, 20, 30.
    assert!((baseline["last_value_mae"].as_f64().unwrap() - 70.0 / 3.0).abs() < 1e-12);
    let text = baseline["text"].as_str().unwrap();
    let start = format!("validation MAE {mae:.1} views; the seasonal naive forecast (the value 3 steps before): 13.3 views; the model is ");
    assert!(text.starts_with(&start), "{text}");
    assert!(
        text.ends_with("; the last value seen (1 step before): 23.3 views"),
        "{text}"
    );
    std::fs::remove_dir_all(out).unwrap();
}

/// Runs an example for a bounded number of steps and returns its summary.
fn bounded_run(file: &str, args: &[&str]) -> Value {
    let name = Path::new(file).file_stem().unwrap().to_str().unwrap();
    let out = scratch(&format!("bounded-{name}"));
    let mut all = vec!["run", file, "--json", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = nnc(&all);
    assert_eq!(code, 0, "{file}: {stderr}");
    std::fs::remove_dir_all(out).unwrap();
    events(&stdout).pop().unwrap()
}

// The examples' full runs and their targets are in examples/README.md; these
// bounded runs (seed 0, the file's schedule over fewer steps) hold reduced
// targets that the files' settings reach with room (measured in brackets).

#[test]
fn digits_cnn_reaches_97_percent_in_300_steps() {
    let summary = bounded_run("examples/digits_cnn.nn", &["--steps", "300"]);
    // (98.9 %; the full 880 steps reach 99.4 %)
    assert!(summary["metrics"]["accuracy"].as_f64().unwrap() >= 0.97, "{summary}");
}

#[test]
fn char_lstm_reaches_2_55_nats_in_400_steps() {
    let summary = bounded_run("examples/char_lstm.nn", &["--steps", "400"]);
    // (2.43; the full 5,000 steps reach 1.90, against 4.38 for a uniform guess)
    assert!(summary["val_loss"].as_f64().unwrap() < 2.55, "{summary}");
}

#[test]
fn a_narrow_gpt_reaches_2_75_nats_in_400_steps() {
    let summary = bounded_run(
        "examples/gpt.nn",
        &["--steps", "400", "--set", "D=64", "--set", "LAYERS=1"],
    );
    // (2.52; the full model and 5,000 steps reach about 1.77)
    assert!(summary["val_loss"].as_f64().unwrap() < 2.75, "{summary}");
}

/// A run of no steps leaves a checkpoint (so `--resume` and `--init-from`
/// take its directory) and no `null` in the table; an interrupted run
/// leaves its plot and logs its last checkpoint.
#[test]
fn runs_of_no_steps_and_interrupted_runs_leave_their_files() {
    let empty = scratch("no-steps");
    let (code, _, stderr) = nnc(&[
        "run",
        "examples/digits_mlp.nn",
        "--steps",
        "0",
        "--out",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("null"), "{stderr}");
    let loss_row = stderr.lines().find(|l| l.starts_with("loss ")).expect("a loss row");
    assert_eq!(loss_row.split_whitespace().nth(1), Some("-"), "{stderr}");
    assert_eq!(
        nnc::runtime::checkpoint::load(&empty.join("checkpoint.safetensors"))
            .unwrap()
            .step,
        0
    );
    let stopped = scratch("stopped-files");
    let (code, stdout, stderr) = nnc(&[
        "run",
        "examples/digits_mlp.nn",
        "--steps",
        "40",
        "--stop-after",
        "7",
        "--json",
        "--out",
        stopped.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stopped.join("loss.svg").is_file());
    let events = crate::common::events(&stdout);
    let last_checkpoint = events
        .iter()
        .rfind(|e| e["event"] == "checkpoint")
        .expect("a checkpoint event");
    assert_eq!(last_checkpoint["step"], 7);
    std::fs::remove_dir_all(empty).unwrap();
    std::fs::remove_dir_all(stopped).unwrap();
}
