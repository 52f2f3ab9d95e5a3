//! Every recurrent layer of the standard library (rnn, Jordan, LSTM with
//! and without peepholes, GRU, bidirectional, reversed) in a small
//! character model at several sequence lengths, T = 1 included: one
//! training step on the JIT against the interpreter, and the gradients
//! against central finite differences. These pin `scan`'s meaning at
//! every length, whatever way it is compiled.

use std::path::Path;

use crate::common::{root, scratch};

/// A character model around `LAYER` (which reads `x: [B, T, E]`); plain
/// SGD, so that the update does not amplify the rounding of near-zero
/// gradients as Adam's division does.
pub(crate) const MODEL: &str = "\
const V = 12
const E = 3
const H = 3
const T = 2

data plays = text(\"DATA\", context: T, vocab: V, val: 0.1)

model recurrent(chars: i32[B, T]) -> f32[B, T, V] {
    x = embed(chars, V, E)
    linear(LAYER, V)
}

loss cross_entropy(recurrent(plays.x), plays.y)
optimizer sgd(lr: 0.1)
train { steps: 1, batch: 3, seed: 0 }
";

pub(crate) const LAYERS: &[(&str, &str)] = &[
    ("rnn", "rnn(x, hidden: H)"),
    ("rnn reversed", "rnn(x, hidden: H, reverse: true)"),
    ("jordan", "jordan_rnn(x, hidden: H)"),
    ("lstm", "lstm(x, hidden: H)"),
    ("lstm with peepholes", "lstm(x, hidden: H, peephole: true)"),
    ("lstm reversed", "lstm(x, hidden: H, reverse: true)"),
    ("gru", "gru(x, hidden: H)"),
    ("gru reversed", "gru(x, hidden: H, reverse: true)"),
    ("bidirectional rnn", "bidirectional(x, hidden: H)"),
    ("bidirectional gru", "bidirectional(x, hidden: H, layer: gru)"),
    ("bidirectional lstm", "bidirectional_lstm(x, hidden: H)"),
];

pub(crate) const LENGTHS: [f64; 3] = [1.0, 2.0, 5.0];

/// Writes the model around `layer` in a scratch directory of `test`;
/// returns the directory.
pub(crate) fn write_model(test: &str, label: &str, layer: &str) -> std::path::PathBuf {
    let dir = scratch(test, &label.replace(' ', "_"));
    std::fs::create_dir_all(&dir).unwrap();
    let data = root().join("examples/data/shakespeare.txt");
    let text = MODEL.replace("DATA", data.to_str().unwrap()).replace("LAYER", layer);
    std::fs::write(dir.join("model.nn"), text).unwrap();
    dir
}

/// The session of a model file with `constants` and batch `batch`.
pub(crate) fn session(dir: &Path, file: &str, constants: &[(&str, f64)], batch: usize) -> nnc::runtime::Session {
    let program = crate::common::checked_program(dir, file, constants);
    let options = nnc::runtime::Overrides {
        batch: Some(batch),
        ..Default::default()
    };
    nnc::runtime::Session::new(program, dir, &options).unwrap_or_else(|d| panic!("{}", d.0.message))
}

/// The training step with every scan a loop, as the runtime builds it
/// before the passes for loops it keeps (`NNC_UNROLL_STEPS=0`): forward
/// loops and their gradients as backward loops.
pub(crate) fn step_with_loops(session: &nnc::runtime::Session) -> nnc::ir::Graph {
    let mut forward = nnc::ir::lower::lower_loops(&session.program.train_trace);
    nnc::passes::prepare_forward_up_to(&mut forward, 0);
    let optimizer = session.program.optimizer.as_ref().expect("an optimizer");
    nnc::autodiff::optimizer::training_step(&forward, optimizer)
}

/// One training step on the JIT (loss, output, gradients, updated
/// parameters) within 1e-3 relative + 1e-4 of the interpreter.
#[test]
fn every_recurrent_layer_on_the_jit_matches_the_interpreter_at_every_length() {
    for (label, layer) in LAYERS {
        let dir = write_model("recurrent-jit", label, layer);
        for t in LENGTHS {
            let session = session(&dir, "model.nn", &[("T", t)], 3);
            let env = session.step_env(0);
            crate::jit::compare_outputs(&format!("{label}, T = {t}"), &session.step_graph, &env, 1e-3, 1e-4);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// Every parameter's gradient (three entries each, batch 3, in f64)
/// within 1e-5 relative of central differences of the loss.
#[test]
fn every_recurrent_layer_matches_finite_differences_at_every_length() {
    for (label, layer) in LAYERS {
        let dir = write_model("recurrent-grad", label, layer);
        for t in LENGTHS {
            crate::grad::file_gradients_match_finite_differences(Path::new(&dir), "model.nn", &[("T", t)]);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// The same with each scan kept a loop: the gradient is a reverse loop
/// whose body is the step's vector-Jacobian product (`autodiff/loops.rs`).
#[test]
fn every_recurrent_layer_as_a_loop_matches_finite_differences_at_every_length() {
    for (label, layer) in LAYERS {
        let dir = write_model("recurrent-loop-grad", label, layer);
        for t in LENGTHS {
            let lower = nnc::ir::lower::lower_loops;
            let loops =
                crate::grad::gradients_match_finite_differences(Path::new(&dir), "model.nn", &[("T", t)], lower);
            // A forward and a backward loop per scan.
            let scans = if label.starts_with("bidirectional") { 2 } else { 1 };
            assert_eq!(loops, 2 * scans, "{label}, T = {t}: loops in the training step");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// The passes keep every value of the training step with its loops: the
/// step as differentiated and the step as optimized (products summed after
/// the backward loops, then unrolled and simplified; or optimized with the
/// loops kept, bodies included) agree on every output within 1e-9 on the
/// interpreter.
#[test]
fn the_passes_keep_the_values_of_every_recurrent_step() {
    for (label, layer) in LAYERS {
        let dir = write_model("recurrent-passes", label, layer);
        for t in LENGTHS {
            let session = session(&dir, "model.nn", &[("T", t)], 3);
            let step = step_with_loops(&session);
            let mut summed = step.clone();
            use nnc::passes::Pass;
            assert!(
                nnc::passes::SumProductsAfterLoops.run(&mut summed),
                "{label}: a weight gradient is summed after the backward loop"
            );
            nnc::ir::verify::assert_valid(&summed, "sum-after-loops");
            let mut optimized = step.clone();
            nnc::passes::optimize(&mut optimized);
            let mut looped = step.clone();
            nnc::passes::optimize_loops_up_to(&mut looped, 0);
            nnc::ir::verify::assert_valid(&looped, "optimize_loops");
            let env = session.step_env(0);
            let expected = nnc::interp::run_outputs(&step, &env).unwrap();
            for graph in [&summed, &optimized, &looped] {
                let got = nnc::interp::run_outputs(graph, &env).unwrap();
                for (name, value) in &expected {
                    let worst = value
                        .iter()
                        .zip(got[name].iter())
                        .map(|(a, b)| (a - b).abs() / a.abs().max(1.0))
                        .fold(0.0, f64::max);
                    assert!(worst < 1e-9, "{label}, T = {t}: `{name}` differs by {worst:.2e}");
                }
            }
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// A loop has no length limit: the LSTM checks at T = 20,000 (traced once,
/// one loop node), where an unrolled scan stops at 10,000 steps.
#[test]
fn a_long_sequence_checks_as_one_loop() {
    let dir = write_model("recurrent-long", "lstm", "lstm(x, hidden: H)");
    let program = crate::common::checked_program(&dir, "model.nn", &[("T", 20_000.0)]);
    let scans = program
        .train_trace
        .nodes
        .iter()
        .filter(|n| matches!(&n.op, nnc::prim::Prim::Scan(l) if l.length == 20_000))
        .count();
    assert_eq!(scans, 1);
    std::fs::remove_dir_all(dir).unwrap();
}
