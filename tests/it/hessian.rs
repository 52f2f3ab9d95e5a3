//! The Hessian analysis: Hessian-vector products (autodiff applied to the
//! gradient graph) against central finite differences of the gradient, for
//! every primitive and for whole models; eigenvalues against a dense
//! Hessian built by finite differences; the lecture's saddle; the command.

use std::collections::HashMap;
use std::path::Path;

use ndarray::ArrayD;
use nnc::interp::{self, Env};
use nnc::runtime::hessian::{self, CriticalPoint, Method, Products, Settings};
use serde_json::Value;

use crate::common::{nnc, root};
use crate::grad::{array, cases, weighted_loss, Case};

/// Central differences of the gradient along a direction: step `H`, and
/// `|H v - numeric| <= TOLERANCE * max(1, |numeric|)` element-wise. In f64
/// the truncation error is ~H² and the rounding error ~1e-16 / H.
const H: f64 = 1e-5;
const TOLERANCE: f64 = 1e-6;

/// The largest relative difference between `exact` and `numeric`.
fn worst(exact: &[f64], numeric: &[f64]) -> (f64, usize) {
    assert_eq!(exact.len(), numeric.len());
    exact
        .iter()
        .zip(numeric)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .enumerate()
        .fold((0.0, 0), |best, (i, e)| if e > best.0 { (e, i) } else { best })
}

/// `H v` of `sum(op(x) * w)` against central differences of its gradient
/// along `v`: every gradient rule's own ops must be differentiable.
fn second_order(case: &Case) {
    let (graph, _, _, mut feeds) = weighted_loss(case);
    let graph = hessian::product_graph(&graph).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    for (i, a) in case.inputs.iter().enumerate() {
        feeds.insert(format!("direction x{i}"), array(a.shape(), 200 + i as u64, -1.0, 1.0));
    }
    let run = |feeds: &HashMap<String, ArrayD<f64>>| {
        let env = Env {
            feeds: feeds.clone(),
            ..Env::default()
        };
        interp::run_outputs(&graph, &env).unwrap_or_else(|e| panic!("{}: {e}", case.name))
    };
    let outputs = run(&feeds);
    let moved = |sign: f64| {
        let mut moved = feeds.clone();
        for i in 0..case.inputs.len() {
            let v = feeds[&format!("direction x{i}")].clone();
            let x = moved.get_mut(&format!("x{i}")).unwrap();
            x.zip_mut_with(&v, |a, b| *a += sign * H * b);
        }
        run(&moved)
    };
    let (plus, minus) = (moved(1.0), moved(-1.0));
    for i in 0..case.inputs.len() {
        let exact: Vec<f64> = outputs[&format!("hvp x{i}")].iter().copied().collect();
        let key = format!("grad x{i}");
        let numeric: Vec<f64> = plus[&key]
            .iter()
            .zip(minus[&key].iter())
            .map(|(a, b)| (a - b) / (2.0 * H))
            .collect();
        let (error, at) = worst(&exact, &numeric);
        assert!(
            error <= TOLERANCE,
            "{}: input {i} element {at}: H v {} vs differences {} ({error:.3e})",
            case.name,
            exact[at],
            numeric[at]
        );
    }
}

/// The cases that sit where the gradient jumps (a tie of maxima that a
/// random direction breaks): no second derivative to compare with.
const ON_A_KINK: &[&str] = &["max axis 1 with a tied pair"];

#[test]
fn every_gradient_rule_is_itself_differentiable() {
    let cases = cases();
    let mut checked = 0;
    for case in cases.iter().filter(|c| !ON_A_KINK.contains(&c.name)) {
        second_order(case);
        checked += 1;
    }
    assert!(checked >= 35, "{checked}");
}

/// A session on the interpreter of an example with constants overridden.
fn session(example: &str, constants: &[(&str, f64)]) -> nnc::runtime::Session {
    let dir = root().join("examples");
    let program = crate::common::checked_program(&dir, example, constants);
    let options = nnc::runtime::Overrides {
        backend: nnc::runtime::Backend::Interp,
        ..Default::default()
    };
    nnc::runtime::Session::load(program, &dir, &options).unwrap_or_else(|(d, _)| panic!("{}", d.message))
}

fn direction(n: usize, seed: u64) -> Vec<f64> {
    array(&[n], seed, -1.0, 1.0).iter().copied().collect()
}

/// Whole models through their loss: `H v` against differences of the
/// gradient along `v`, near the initial parameters.
#[test]
fn products_match_finite_differences_of_the_gradient() {
    let models: &[(&str, &[(&str, f64)])] = &[
        ("critical_points_mlp.nn", &[]),
        ("views_sigmoid.nn", &[("UNITS", 3.0), ("W", 4.0)]),
        ("transformer.nn", &[("D", 8.0), ("HEADS", 2.0), ("LAYERS", 1.0)]),
        ("digits_bn.nn", &[("H", 4.0)]),
        ("char_lstm.nn", &[("T", 3.0), ("E", 4.0), ("H", 4.0), ("V", 12.0)]),
        (
            "gpt.nn",
            &[("T", 4.0), ("D", 8.0), ("HEADS", 2.0), ("LAYERS", 1.0), ("V", 12.0)],
        ),
    ];
    for (example, constants) in models {
        let session = session(example, constants);
        let products = Products::new(&session, 3).unwrap();
        // Near the initial parameters, at a generic point: zero biases put
        // ReLUs exactly on their kinks, where the gradient jumps.
        let shift = direction(products.dimension(), 12);
        let w: Vec<f64> = products
            .point(&session)
            .iter()
            .zip(&shift)
            .map(|(a, b)| a + 0.1 * b)
            .collect();
        let v = direction(w.len(), 11);
        let exact = products.product(&w, &v).unwrap();
        let at = |sign: f64| -> Vec<f64> {
            let moved: Vec<f64> = w.iter().zip(&v).map(|(a, b)| a + sign * H * b).collect();
            products.gradient(&moved).unwrap().1
        };
        let (plus, minus) = (at(1.0), at(-1.0));
        let numeric: Vec<f64> = plus.iter().zip(&minus).map(|(a, b)| (a - b) / (2.0 * H)).collect();
        let (error, index) = worst(&exact, &numeric);
        println!(
            "{example}: {} parameters, largest relative difference {error:.2e}",
            w.len()
        );
        assert!(
            error <= TOLERANCE,
            "{example}: element {index}: H v {} vs differences {} ({error:.3e})",
            exact[index],
            numeric[index]
        );
        assert!(exact.iter().any(|x| x.abs() > 1e-3), "{example}: H v is all but zero");
    }
}

/// A model of 19 parameters: the analysis's eigenvalues (dense, and by
/// Lanczos with as many steps as parameters) against those of the Hessian
/// built column by column from differences of the gradient.
#[test]
fn eigenvalues_match_a_dense_finite_difference_hessian() {
    let mut session = session("critical_points_mlp.nn", &[("H", 2.0)]);
    let products = Products::new(&session, 16).unwrap();
    let w = products.point(&session);
    let n = w.len();
    assert_eq!(n, 7 * 2 + 2 + 2 + 1);
    let mut matrix = vec![0.0; n * n];
    for j in 0..n {
        let at = |sign: f64| {
            let mut moved = w.clone();
            moved[j] += sign * H;
            products.gradient(&moved).unwrap().1
        };
        let (plus, minus) = (at(1.0), at(-1.0));
        for i in 0..n {
            matrix[i * n + j] = (plus[i] - minus[i]) / (2.0 * H);
        }
    }
    let expected = hessian::eigen::dense(n, &matrix).unwrap().values;
    let settings = |method| Settings {
        method,
        examples: 16,
        gradient_tolerance: 1e-3,
        saddle_step: 0.1,
    };
    for method in [Method::Dense, Method::Lanczos(n)] {
        let analysis = hessian::analyze(&mut session, &settings(method)).unwrap();
        assert_eq!(analysis.eigenvalues.len(), n, "{method:?}");
        let (error, index) = worst(&analysis.eigenvalues, &expected);
        assert!(
            error <= TOLERANCE,
            "{method:?}: eigenvalue {index}: {} vs {} from differences",
            analysis.eigenvalues[index],
            expected[index]
        );
        // At the initial parameters the gradient is far from zero.
        assert!(analysis.gradient_norm > 1e-2, "{}", analysis.gradient_norm);
        assert_eq!(analysis.critical_point, CriticalPoint::NotCritical);
        let positive = expected.iter().filter(|&&x| x > 1e-6 * expected[n - 1].abs()).count();
        if method == Method::Dense {
            assert_eq!(analysis.minimum_ratio, positive as f64 / n as f64);
        }
    }
    // Fewer Lanczos steps: the largest eigenvalue converges first.
    let analysis = hessian::analyze(&mut session, &settings(Method::Lanczos(8))).unwrap();
    assert_eq!(analysis.eigenvalues.len(), 8);
    let top = analysis.eigenvalues[7];
    assert!(
        (top - expected[n - 1]).abs() <= 1e-6 * expected[n - 1].abs(),
        "{top} vs {}",
        expected[n - 1]
    );
}

/// `y = w1 * w2 * x` fitted to (1, 1) from w = (0, 0): the loss is
/// `(w1 w2 - 1)^2`, its gradient at 0 is zero and its Hessian
/// `[[0, -2], [-2, 0]]`, eigenvalues -2 and 2 along (1, -1) and (1, 1).
#[test]
fn the_lecture_saddle_is_a_saddle_point() {
    let mut session = session("critical_points.nn", &[]);
    let settings = Settings::for_command(&session.program);
    assert_eq!(settings.method, Method::Dense);
    let analysis = hessian::analyze(&mut session, &settings).unwrap();
    assert_eq!(analysis.critical_point, CriticalPoint::SaddlePoint);
    assert_eq!(analysis.eigenvalues.len(), 2);
    assert!(
        (analysis.eigenvalues[0] + 2.0).abs() < 1e-12,
        "{:?}",
        analysis.eigenvalues
    );
    assert!(
        (analysis.eigenvalues[1] - 2.0).abs() < 1e-12,
        "{:?}",
        analysis.eigenvalues
    );
    assert_eq!(analysis.minimum_ratio, 0.5);
    assert_eq!(analysis.gradient_norm, 0.0);
    assert_eq!(analysis.loss, 1.0);
    let descent = analysis.descent.as_ref().unwrap();
    let [a, b] = descent.direction[..] else {
        panic!("{:?}", descent.direction)
    };
    assert!(
        (a.abs() - 0.5f64.sqrt()).abs() < 1e-12 && (a - b).abs() < 1e-12,
        "{a} {b}"
    );
    // One step of 0.1 along (1, 1)/sqrt 2: w1 w2 = 0.005, loss 0.995^2.
    assert_eq!(descent.step, 0.1);
    assert!((descent.loss - 0.995f64.powi(2)).abs() < 1e-12, "{}", descent.loss);
    let text = analysis.text();
    assert!(text.contains("eigenvalues: -2, 2"), "{text}");
    assert!(text.contains("critical point: saddle_point"), "{text}");
    assert!(text.contains("lowers the loss: 1 -> 0.990025"), "{text}");
}

/// `nnc run FILE --json` into a fresh scratch directory named by `suffix`:
/// the directory and the run's `hessian` event.
fn run_for_hessian(file: &str, suffix: &str) -> (std::path::PathBuf, Value) {
    let out = std::env::temp_dir().join(format!("nnc-test-{}-{suffix}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let (code, stdout, stderr) = nnc(&["run", file, "--json", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let hessian = json_lines(&stdout)
        .into_iter()
        .find(|e| e["event"] == "hessian")
        .expect("a hessian event");
    (out, hessian)
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn analyze_command_prints_the_saddle_and_reads_checkpoints() {
    let (code, stdout, stderr) = nnc(&["analyze", "examples/critical_points.nn", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let events = json_lines(&stdout);
    assert_eq!(events.len(), 1, "{stdout}");
    let event = &events[0];
    assert_eq!(event["event"], "hessian");
    assert_eq!(event["critical_point"], "saddle_point");
    assert_eq!(event["minimum_ratio"], 0.5);
    assert_eq!(event["gradient_norm"], 0.0);
    let values: Vec<f64> = event["eigenvalues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(values.len(), 2);
    assert!(
        (values[0] + 2.0).abs() < 1e-12 && (values[1] - 2.0).abs() < 1e-12,
        "{values:?}"
    );
    assert!(event["saddle"]["loss_along"].as_f64().unwrap() < 1.0, "{event}");

    let (code, stdout, stderr) = nnc(&["analyze", "examples/critical_points.nn"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("critical point: saddle_point"), "{stdout}");

    // Training from the saddle never leaves it (the gradient is zero), and
    // the run reports the Hessian after training.
    let (out, hessian) = run_for_hessian("examples/critical_points.nn", "hessian");
    assert_eq!(hessian["step"], 20);
    assert_eq!(hessian["critical_point"], "saddle_point");

    let checkpoint = out.join("checkpoint.safetensors");
    let (code, stdout, stderr) = nnc(&[
        "analyze",
        "examples/critical_points.nn",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json_lines(&stdout)[0]["step"], 20);
    // A checkpoint of another model: which tensors did not fit, exit 1.
    let (code, _, stderr) = nnc(&[
        "analyze",
        "examples/critical_points_mlp.nn",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("does not fit the program"), "{stderr}");
    assert!(stderr.contains("mlp.linear.w is not in the checkpoint"), "{stderr}");
    let (code, _, stderr) = nnc(&[
        "analyze",
        "examples/critical_points.nn",
        "--checkpoint",
        "no/such/checkpoint.safetensors",
    ]);
    assert_eq!(code, 2, "{stderr}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn settings_out_of_range_are_diagnostics() {
    let check = |section: &str| {
        let text = format!(
            "data point = csv(\"data/saddle.csv\", x: \"x\", y: \"y\", val: 0.5)\n\
             model m(x: f32[B, 1]) -> f32[B] {{\n    linear(x, 1)[:, 0]\n}}\n\
             loss mse(m(point.x), point.y)\noptimizer sgd()\ntrain {{ steps: 1 }}\n{section}\n"
        );
        let options = nnc::check::Options {
            base_dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")),
            overrides: Vec::new(),
            ..Default::default()
        };
        let program = nnc::check::check_source("t.nn", &text, &options);
        program
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.message.clone())
            .collect::<Vec<_>>()
    };
    assert!(check("analyze { hessian: true, eigenvalues: lanczos(steps: 20) }").is_empty());
    assert!(check("analyze { hessian: true, eigenvalues: all }").is_empty());
    assert_eq!(
        check("analyze { hessian: true, eigenvalues: lanczos(steps: 1) }"),
        ["`steps` must be between 2 and 500, found 1"]
    );
    assert_eq!(
        check("analyze { hessian: true, eigenvalues: lanczos(steps: 501) }"),
        ["`steps` must be between 2 and 500, found 501"]
    );
    assert_eq!(
        check("analyze { hessian: true, gradient_tolerance: 0 }"),
        ["`gradient_tolerance` must be positive, found 0"]
    );
    assert_eq!(
        check("analyze { examples: 10 }"),
        ["`examples` is a setting of the Hessian analysis, which is off"]
    );
    assert_eq!(
        check("analyze { hessian: true, eigenvalues: dense }"),
        ["unknown eigenvalues `dense`"]
    );
}

/// The small MLP, trained full-batch to a critical point, is analyzed
/// after training; `nnc analyze --checkpoint` at the run's checkpoint
/// finds the same spectrum.
#[test]
fn the_trained_mlp_is_analyzed_after_training() {
    let (out, hessian) = run_for_hessian("examples/critical_points_mlp.nn", "hessian-mlp");
    assert_eq!(hessian["step"], 10000);
    assert_eq!(hessian["parameters"], 37);
    assert_eq!(hessian["examples"], 1092);
    let values: Vec<f64> = hessian["eigenvalues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(values.len(), 37);
    assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
    // Trained to a critical point: the gradient norm is below the
    // tolerance, and the curvature is all but entirely positive.
    let gradient_norm = hessian["gradient_norm"].as_f64().unwrap();
    assert!(gradient_norm < 1e-3, "{hessian}");
    assert!(hessian["minimum_ratio"].as_f64().unwrap() >= 0.9, "{hessian}");
    let band = 1e-6 * values[36];
    let expected = if values[0] < -band {
        "saddle_point"
    } else {
        "local_minimum"
    };
    assert_eq!(hessian["critical_point"], expected, "{hessian}");
    assert!(values[36] > 1.0, "{values:?}");

    let checkpoint = out.join("checkpoint.safetensors");
    let (code, stdout, stderr) = nnc(&[
        "analyze",
        "examples/critical_points_mlp.nn",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let again = &json_lines(&stdout)[0];
    assert_eq!(again["critical_point"], hessian["critical_point"]);
    for (a, b) in again["eigenvalues"].as_array().unwrap().iter().zip(&values) {
        assert!((a.as_f64().unwrap() - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} vs {b}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
