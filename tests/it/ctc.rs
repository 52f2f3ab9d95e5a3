//! CTC (`stdlib/ctc.nn`): the loss against a brute-force sum over every
//! alignment (f64, interpreter), its gradient against central finite
//! differences, the JIT against the interpreter on long, peaked inputs,
//! labels that do not fit their frames, lengths out of range, and the
//! `speech` example: trained to a reduced target, and run by `nnc run`.

use std::collections::HashMap;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use nnc::check::{check_source, Options, Program};
use nnc::interp::{self, Env};
use nnc::ir::Graph;

/// A program whose model is `log_softmax(x + w)` over the frames of a
/// `speech` dataset with `features` = classes, so the test chooses the
/// scores (`s.x`) and differentiates through `w`.
fn program(vocab: i64, max_len: i64, max_duration: i64, blank: i64) -> Program {
    let classes = vocab + 1;
    let source = format!(
        "data s = speech(vocab: {vocab}, len: 1..{max_len}, duration: 1..{max_duration}, features: {classes}, train: 4, val: 4)\n\
         model m(x: f32[B, s.frames, {classes}]) -> f32[B, s.frames, {classes}] {{\n\
             param w: f32[s.frames, {classes}] = zeros\n\
             log_softmax(x + w)\n\
         }}\n\
         loss ctc_loss(m(s.x), s.input_lengths, s.labels, s.label_lengths, blank: {blank})\n\
         optimizer sgd(lr: 0.1)\n\
         train {{ steps: 1 }}\n"
    );
    let program = check_source("ctc_test.nn", &source, &Options::default());
    assert!(
        !program.has_errors(),
        "{}",
        program.sources.render(&program.diagnostics, false)
    );
    program
}

/// The forward graph with `grad w` added as an output.
fn graph_with_gradient(program: &Program) -> (Graph, String) {
    let mut graph = nnc::ir::lower::lower(&program.train_trace);
    let loss = graph.output("loss").expect("a loss");
    let path = program.params[0].path.clone();
    let (_, w) = graph
        .leaves(nnc::ir::param_name)
        .into_iter()
        .find(|(name, _)| *name == path)
        .expect("the parameter is a leaf");
    let grads = nnc::autodiff::gradients(&mut graph, loss, &[w]);
    graph.set_output("grad w", grads[0]);
    (graph, path)
}

/// One example: its frames' scores and labels.
struct Example {
    frames: usize,
    labels: Vec<usize>,
}

/// Feeds for `examples` with scores `x` ([N, T, C]) and weights `w`.
fn env(examples: &[Example], x: &ArrayD<f64>, w: &ArrayD<f64>, w_path: &str, max_len: usize, filler: usize) -> Env {
    let n = examples.len();
    let mut labels = vec![filler as f64; n * max_len];
    for (e, example) in examples.iter().enumerate() {
        for (i, &l) in example.labels.iter().enumerate() {
            labels[e * max_len + i] = l as f64;
        }
    }
    let vector = |values: Vec<f64>| ArrayD::from_shape_vec(IxDyn(&[values.len()]), values).unwrap();
    let feeds = HashMap::from([
        ("s.x".to_string(), x.clone()),
        (
            "s.input_lengths".to_string(),
            vector(examples.iter().map(|e| e.frames as f64).collect()),
        ),
        (
            "s.labels".to_string(),
            ArrayD::from_shape_vec(IxDyn(&[n, max_len]), labels).unwrap(),
        ),
        (
            "s.label_lengths".to_string(),
            vector(examples.iter().map(|e| e.labels.len() as f64).collect()),
        ),
        (w_path.to_string(), w.clone()),
    ]);
    Env {
        dims: HashMap::from([("B".to_string(), n as i64)]),
        feeds,
        seed: 0,
        step: 0,
        collective: None,
    }
}

fn normals(shape: &[usize], seed: u64, scale: f64) -> ArrayD<f64> {
    let count = shape.iter().product::<usize>();
    let values = (0..count)
        .map(|i| scale * interp::random::normal(seed, 0, 11, i as u64))
        .collect();
    ArrayD::from_shape_vec(IxDyn(shape), values).unwrap()
}

/// -log p(labels | frames) by enumerating every path of `classes^frames`
/// classes, or `None` when no path gives the labels.
fn brute_force_nll(logits: &[f64], classes: usize, frames: usize, labels: &[usize], blank: usize) -> Option<f64> {
    let log_probs: Vec<f64> = logits[..frames * classes]
        .chunks(classes)
        .flat_map(|row| {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let total = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            row.iter().map(move |v| v - total).collect::<Vec<_>>()
        })
        .collect();
    let mut total = 0.0;
    let mut any = false;
    for code in 0..classes.pow(frames as u32) {
        let mut rest = code;
        let mut logp = 0.0;
        let mut collapsed = Vec::new();
        let mut previous = None;
        for t in 0..frames {
            let c = rest % classes;
            rest /= classes;
            logp += log_probs[t * classes + c];
            if c != blank && previous != Some(c) {
                collapsed.push(c);
            }
            previous = Some(c);
        }
        if collapsed == labels {
            total += logp.exp();
            any = true;
        }
    }
    any.then(|| -total.ln())
}

/// Examples covering the cases of the recursion: full length, a repeat,
/// labels that need more frames than given, no labels (ids past the
/// length are ignored), a repeat that exactly fits, a single frame.
fn cases(blank: usize) -> Vec<Example> {
    // Label ids avoid the blank: 0..=2 shifted past it.
    let id = |k: usize| if k >= blank { k + 1 } else { k };
    vec![
        Example {
            frames: 7,
            labels: vec![id(0), id(1), id(2)],
        },
        Example {
            frames: 5,
            labels: vec![id(0), id(0)],
        },
        Example {
            frames: 4,
            labels: vec![id(1), id(1), id(1)],
        },
        Example {
            frames: 4,
            labels: vec![],
        },
        Example {
            frames: 3,
            labels: vec![id(2), id(2)],
        },
        Example {
            frames: 1,
            labels: vec![id(1)],
        },
    ]
}

/// The loss (blank 0 and blank 3) equals the brute-force mean over the
/// batch, infeasible examples counting 0, within 1e-9 relative.
#[test]
fn ctc_loss_equals_the_sum_over_all_alignments() {
    for blank in [0usize, 3] {
        let program = program(3, 3, 1, blank as i64);
        let (graph, w_path) = graph_with_gradient(&program);
        let examples = cases(blank);
        let (n, t, c) = (examples.len(), 7, 4);
        let x = normals(&[n, t, c], 1 + blank as u64, 2.0);
        let w = normals(&[t, c], 2, 0.5);
        // Entries past each label length hold a valid non-blank id.
        let filler = if blank == 0 { 2 } else { 1 };
        let env = env(&examples, &x, &w, &w_path, 3, filler);
        let loss = interp::run_outputs(&graph, &env).unwrap()["loss"].sum();
        let scores = &x + &w;
        let scores = scores.as_standard_layout();
        let scores = scores.as_slice().unwrap();
        let mut expected = 0.0;
        let mut feasible = 0;
        for (e, example) in examples.iter().enumerate() {
            let row = &scores[e * t * c..(e + 1) * t * c];
            if let Some(nll) = brute_force_nll(row, c, example.frames, &example.labels, blank) {
                expected += nll;
                feasible += 1;
            }
        }
        expected /= n as f64;
        assert_eq!(feasible, 5, "exactly the example needing 5 frames of 4 is infeasible");
        assert!(
            (loss - expected).abs() <= 1e-9 * expected.abs(),
            "blank {blank}: loss {loss}, brute force {expected}"
        );
    }
}

/// The gradient of the loss with respect to the scores matches central
/// differences (h = 1e-6, f64) within 1e-6 relative, at every element.
#[test]
fn ctc_gradient_matches_finite_differences() {
    let program = program(3, 3, 1, 0);
    let (graph, w_path) = graph_with_gradient(&program);
    let examples = cases(0);
    let (n, t, c) = (examples.len(), 7, 4);
    let x = normals(&[n, t, c], 5, 2.0);
    let w = normals(&[t, c], 6, 0.5);
    let base = env(&examples, &x, &w, &w_path, 3, 2);
    let analytic = interp::run_outputs(&graph, &base).unwrap()["grad w"].clone();
    let loss_at = |env: &Env| interp::run_outputs(&graph, env).unwrap()["loss"].sum();
    let h = 1e-6;
    let mut worst = (0.0f64, String::new());
    for k in 0..t * c {
        let mut plus = base.clone();
        let mut minus = base.clone();
        plus.feeds.get_mut(&w_path).unwrap().as_slice_mut().unwrap()[k] += h;
        minus.feeds.get_mut(&w_path).unwrap().as_slice_mut().unwrap()[k] -= h;
        let numeric = (loss_at(&plus) - loss_at(&minus)) / (2.0 * h);
        let exact = analytic.as_slice().unwrap()[k];
        let error = (exact - numeric).abs() / numeric.abs().max(1.0);
        if error > worst.0 {
            worst = (error, format!("w[{k}]: analytic {exact:.9}, numeric {numeric:.9}"));
        }
    }
    assert!(analytic.iter().any(|g| g.abs() > 1e-3), "the gradient is not trivial");
    assert!(
        worst.0 <= 1e-6,
        "largest relative difference {:.3e} at {}",
        worst.0,
        worst.1
    );
}

/// Labels that need more frames than given (every example) give a loss of
/// exactly 0 and a zero gradient: never NaN or infinity.
#[test]
fn ctc_labels_longer_than_their_input_count_zero() {
    let program = program(3, 3, 1, 0);
    let (graph, w_path) = graph_with_gradient(&program);
    let examples = vec![
        Example {
            frames: 2,
            labels: vec![1, 2, 3],
        },
        Example {
            frames: 2,
            labels: vec![1, 1],
        },
        Example {
            frames: 0,
            labels: vec![2],
        },
    ];
    let x = normals(&[3, 7, 4], 8, 3.0);
    let w = normals(&[7, 4], 9, 0.5);
    let outputs = interp::run_outputs(&graph, &env(&examples, &x, &w, &w_path, 3, 1)).unwrap();
    assert_eq!(outputs["loss"].sum(), 0.0);
    assert!(outputs["grad w"].iter().all(|g| *g == 0.0), "{:?}", outputs["grad w"]);
}

/// Long inputs (56 frames) with peaked scores (logits of standard
/// deviation 8): the JIT's loss and gradient (f32) agree with the
/// interpreter (f64) within 1e-3 relative + 1e-4, and the loss is finite.
#[test]
fn ctc_on_the_jit_matches_the_interpreter_on_long_inputs() {
    let program = program(3, 3, 8, 0);
    let (graph, w_path) = graph_with_gradient(&program);
    let t = 56;
    let examples = vec![
        Example {
            frames: 56,
            labels: vec![1, 2, 3],
        },
        Example {
            frames: 40,
            labels: vec![3, 3, 1],
        },
        Example {
            frames: 9,
            labels: vec![2],
        },
        Example {
            frames: 2,
            labels: vec![1, 1],
        },
    ];
    let x = normals(&[4, t, 4], 12, 8.0);
    let w = normals(&[t, 4], 13, 0.5);
    let env = env(&examples, &x, &w, &w_path, 3, 1);
    let oracle = interp::run_outputs(&graph, &env).unwrap();
    assert!(oracle["loss"].sum().is_finite() && oracle["loss"].sum() > 1.0);
    crate::jit::compare_outputs("ctc", &graph, &env, 1e-3, 1e-4);
}

/// The example at a reduced size and length (H = 16, 300 steps, on the
/// JIT): validation label error rate below 0.15 with greedy decoding (0.058
/// when written), and beam search no worse than greedy by more than a label
/// in a hundred (0.037 when written). The full run reaches 0.008.
#[test]
fn speech_example_learns_to_transcribe() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let program = nnc::check::check_file_with(&dir.join("ctc.nn"), vec![("H".into(), 16.0)]).unwrap();
    assert!(!program.has_errors());
    let overrides = nnc::runtime::Overrides {
        steps: Some(300),
        backend: nnc::runtime::Backend::Jit,
        ..Default::default()
    };
    let mut session =
        nnc::runtime::Session::new(program, &dir, &overrides).unwrap_or_else(|(d, _)| panic!("{}", d.message));
    for _ in 0..session.total_steps {
        session.train_step().expect("finite step");
    }
    let names = ["loss".to_string(), "label_error_rate".to_string()];
    let beam = session.evaluate(&names, usize::MAX).unwrap();
    session.program.sections.remove("eval");
    let greedy = session.evaluate(&names, usize::MAX).unwrap();
    println!("after 300 steps: greedy {greedy:?}, beam {beam:?}");
    assert!(
        greedy["label_error_rate"] < 0.15,
        "label error rate {:.3}",
        greedy["label_error_rate"]
    );
    assert!(beam["label_error_rate"] <= greedy["label_error_rate"] + 0.01);
}

/// Label lengths past the labels' width count as the width, and input
/// lengths past the frames as the frames: the same loss as the clamped
/// lengths, not a huge or undefined one.
#[test]
fn ctc_lengths_out_of_range_are_clamped() {
    let program = program(3, 3, 1, 0);
    let (graph, w_path) = graph_with_gradient(&program);
    let examples = vec![
        Example {
            frames: 7,
            labels: vec![1, 2, 3],
        },
        Example {
            frames: 5,
            labels: vec![2, 2],
        },
    ];
    let x = normals(&[2, 7, 4], 21, 2.0);
    let w = normals(&[7, 4], 22, 0.5);
    let clamped = env(&examples, &x, &w, &w_path, 3, 1);
    let mut wide = clamped.clone();
    wide.feeds.get_mut("s.label_lengths").unwrap()[0] = 9.0;
    wide.feeds.get_mut("s.input_lengths").unwrap()[0] = 50.0;
    let loss = |env: &Env| interp::run_outputs(&graph, env).unwrap()["loss"].sum();
    let expected = loss(&clamped);
    assert!(expected.is_finite() && expected > 0.0);
    assert!(
        (loss(&wide) - expected).abs() <= 1e-12 * expected,
        "{} vs {expected}",
        loss(&wide)
    );
}

/// `nnc run` of the example for a few steps: the summary carries the
/// validation `label_error_rate` (finite, at least 0; above 1 when an
/// untrained model inserts labels) and three sample
/// events show reference labels and their decoding.
#[test]
fn a_run_reports_the_label_error_rate_and_transcriptions() {
    let out = std::env::temp_dir().join(format!("nnc-test-{}-ctc-run", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let (code, stdout, stderr) = crate::common::nnc(&[
        "run",
        "examples/ctc.nn",
        "--steps",
        "3",
        "--set",
        "H=4",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let events: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let summary = events.last().unwrap();
    let rate = summary["metrics"]["label_error_rate"].as_f64().unwrap();
    assert!(rate.is_finite() && rate >= 0.0, "{summary}");
    let samples: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "sample")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(samples.len(), 3, "{stdout}");
    // References are 2..6 symbols in 1..=10.
    for sample in samples {
        let reference = sample.split(" -> ").next().unwrap();
        let ids: Vec<usize> = reference.split(' ').map(|id| id.parse().unwrap()).collect();
        assert!(
            (2..=6).contains(&ids.len()) && ids.iter().all(|id| (1..=10).contains(id)),
            "{sample}"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}
