//! Scheduled sampling: `progress()` is the share of training done, fed each
//! step; the library's `scheduled_sampling` replaces the share of decoder
//! inputs its `p` says, which with `0.25 * progress()` follows the schedule
//! over the run (on the interpreter and the JIT alike); and
//! `examples/scheduled_sampling.nn` in a bounded run (seed 0, the file's
//! schedule over fewer steps) holds reduced targets. The full run's result
//! is in examples/README.md.

use std::collections::HashMap;

use ndarray::{ArrayD, Axis};
use serde_json::Value;

use crate::common::{events, example_summary, nnc, scratch};

/// A decoder-input mixer alone: every replaced input becomes EOS, which the
/// teacher's tokens (BOS and 8 digits) never hold, so the model's output
/// (1 where an input is EOS, times a parameter of 1) shows which inputs
/// were replaced.
const MIXER: &str = r#"
data pairs = sort(vocab: 10, len: 8..8, train: 1024, val: 16, seed: 0)

const EOS = pairs.eos

model mixer(tgt: i32[B, T]) -> f32[B, T] {
    param w: f32[] = ones
    scores = one_hot(tgt * 0 + EOS, pairs.tokens)
    mixed = scheduled_sampling(tgt, scores, 0.25 * progress())
    f32(mixed == EOS) * w
}

loss mean(mixer(pairs.tgt_in))
optimizer sgd(lr: 0.1)
train { steps: 1000, batch: 1024, seed: 0 }
"#;

fn mixer_session(backend: nnc::runtime::Backend) -> nnc::runtime::Session {
    let options = nnc::check::Options::default();
    let program = nnc::check::check_source("mixer.nn", MIXER, &options);
    assert!(
        !program.has_errors(),
        "{}",
        program.sources.render(&program.diagnostics, false)
    );
    let overrides = nnc::runtime::Overrides {
        backend,
        ..Default::default()
    };
    nnc::runtime::Session::new(program, std::path::Path::new("."), &overrides)
        .unwrap_or_else(|d| panic!("{}", d.0.message))
}

/// The replaced inputs of the step at `step` (0-based) as 0/1, `[B, T]`.
fn replaced(session: &nnc::runtime::Session, step: u64) -> ArrayD<f64> {
    let env = session.step_env(step);
    let outputs = nnc::interp::run_outputs(&session.step_graph, &env).unwrap();
    outputs
        .into_iter()
        .find(|(name, _)| name == "model_output")
        .expect("a model output")
        .1
}

/// The share of replaced inputs follows `0.25 * step / steps`: at each of
/// five steps, over the 1,024 x 8 inputs after BOS, within four binomial
/// standard deviations (at most 0.019 at p = 0.25) of the schedule; none at
/// the first step, and never BOS.
#[test]
fn the_share_of_replaced_inputs_follows_the_schedule() {
    let session = mixer_session(nnc::runtime::Backend::Interp);
    assert_eq!(session.total_steps, 1000);
    let mut shares = Vec::new();
    for step in [0u64, 200, 500, 800, 999] {
        assert_eq!(session.progress(step), step as f64 / 1000.0);
        let fed = session.step_inputs(step)["progress"].clone();
        assert_eq!(fed.shape(), &[] as &[usize]);
        assert_eq!(fed.first().copied(), Some(step as f64 / 1000.0));
        let mask = replaced(&session, step);
        assert_eq!(mask.shape(), &[1024, 9]);
        assert!(
            mask.index_axis(Axis(1), 0).iter().all(|&x| x == 0.0),
            "BOS replaced at step {step}"
        );
        let after_bos = mask.slice_axis(Axis(1), ndarray::Slice::from(1..));
        let n = after_bos.len() as f64;
        let share = after_bos.sum() / n;
        let expected = 0.25 * step as f64 / 1000.0;
        let tolerance = 4.0 * (expected * (1.0 - expected) / n).sqrt();
        assert!(
            (share - expected).abs() <= tolerance,
            "step {step}: {share:.4} of the inputs replaced, the schedule says {expected:.4} (± {tolerance:.4})"
        );
        shares.push(share);
    }
    assert_eq!(shares[0], 0.0, "nothing is replaced at the first step");
    assert!(shares.windows(2).all(|w| w[0] < w[1]), "rising: {shares:?}");
    // Fresh draws each step: two steps at the same progress replace
    // different inputs.
    let mut later = mixer_session(nnc::runtime::Backend::Interp);
    later.total_steps = 2000;
    assert_ne!(replaced(&session, 500), replaced(&later, 1000));
}

/// In evaluation mode `progress()` is 1 and `scheduled_sampling` gives the
/// teacher's tokens: the evaluation graph replaces nothing and reads no
/// `progress` input.
#[test]
fn evaluation_reads_the_teachers_tokens() {
    let session = mixer_session(nnc::runtime::Backend::Interp);
    let inputs: Vec<String> = session
        .eval_graph
        .leaves(nnc::ir::input_name)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(inputs, vec!["pairs.tgt_in".to_string()]);
    let batch: HashMap<String, ArrayD<f64>> = session.step_inputs(999);
    let mut feeds: HashMap<String, ArrayD<f64>> = session.tensors.clone().into_iter().collect();
    feeds.insert("pairs.tgt_in".into(), batch["pairs.tgt_in"].clone());
    let env = nnc::interp::Env {
        dims: HashMap::from([("B".to_string(), 1024)]),
        feeds,
        seed: 0,
        step: 999,
        collective: None,
    };
    let outputs = nnc::interp::run_outputs(&session.eval_graph, &env).unwrap();
    let output = &outputs.iter().find(|(n, _)| n.as_str() == "model_output").unwrap().1;
    assert_eq!(output.sum(), 0.0);
}

/// The JIT mixes as the interpreter does: the same inputs replaced at the
/// middle of the run (p = 0.125, exact in f32; the uniforms are multiples
/// of 2^-24 on both backends), the same loss and gradient.
#[test]
fn the_jit_replaces_the_inputs_the_interpreter_does() {
    let session = mixer_session(nnc::runtime::Backend::Interp);
    let env = session.step_env(500);
    let compiled = crate::jit::compare_outputs("mixer", &session.step_graph, &env, 1e-6, 1e-6);
    let jit = compiled.output("model_output").unwrap();
    let share = jit.slice_axis(Axis(1), ndarray::Slice::from(1..)).sum() / (1024.0 * 8.0);
    assert!((share - 0.125).abs() < 0.02, "{share}");
}

#[test]
fn the_example_checks_with_its_interface() {
    // Encoder: embed 13*64 + one layer (4 * 4160 + 33088 + 256) + 128;
    // decoder: embed 13*64 + one layer (2 * 16640 + 33088 + 384); head
    // 128 + 64*13 + 13. The first pass is the same model: no parameters of
    // its own.
    assert_eq!(
        example_summary("scheduled_sampling.nn"),
        "model sorter(src: i32[B, 12], tgt: i32[B, 13]) -> f32[B, 13, 13], 119,501 parameters in 50 tensors"
    );
}

/// Runs the example's sweep with `--json` and returns its events.
fn bounded_run(args: &[&str]) -> Vec<Value> {
    let out = scratch("scheduled", &args.join("_").replace(['=', '-'], ""));
    let mut all = vec![
        "run",
        "examples/scheduled_sampling.nn",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = nnc(&all);
    assert_eq!(code, 0, "{stderr}");
    std::fs::remove_dir_all(out).unwrap();
    events(&stdout)
}

/// 300 steps of each variant: both decode (greedily, 200 validation
/// sorts) at least 20 % exactly (measured 26.5 % each; the full 1,000 steps
/// reach 99.5 %), and their teacher-forced exact match is within 5 points
/// of each other (27.1 % and 27.8 %): on this task the mix costs nothing.
#[test]
fn both_variants_are_trained_and_decoded() {
    let events = bounded_run(&["--steps", "300"]);
    let decodes = events.iter().filter(|e| e["event"] == "decode").count();
    assert_eq!(decodes, 2, "one decoding per variant");
    let summary = events.last().unwrap();
    let metric = |label: &str, name: &str| {
        summary["variants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["settings"] == label)
            .unwrap_or_else(|| panic!("variant {label} in {summary}"))["metrics"][name]
            .as_f64()
            .unwrap()
    };
    for label in ["SS=0", "SS=0.25"] {
        let decoded = metric(label, "decoded_exact_match");
        assert!(decoded >= 0.2, "{label}: decoded exact match {decoded}");
    }
    let (with, without) = (metric("SS=0.25", "exact_match"), metric("SS=0", "exact_match"));
    assert!((with - without).abs() <= 0.05, "{with} against {without}");
}
