//! Whole programs from `examples/` through check, lowering and the
//! interpreter; and bad input, which is an error and never a panic.

use std::collections::HashMap;
use std::path::PathBuf;

use ndarray::ArrayD;

use super::{arr, Case};
use crate::check::dims::Dim;
use crate::check::{check_source, Options};
use crate::interp::{eval_shape, random, run, run_outputs, Env};
use crate::ir::Graph;
use crate::prim::{BinaryOp, DType, Prim, Window};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// The training-mode forward graph of an example.
fn train_graph(file: &str) -> Graph {
    let dir = examples();
    let text = std::fs::read_to_string(dir.join(file)).expect("the example exists");
    let options = Options {
        base_dir: Some(dir),
        ..Options::default()
    };
    let program = check_source(file, &text, &options);
    assert!(!program.has_errors(), "{file} has errors");
    crate::ir::lower::lower(&program.train_trace)
}

/// Feeds for every leaf: `param` gives parameter values from their shape,
/// float inputs are uniform in [0, 1), i32 inputs count 0, 1, ... modulo
/// `classes` (bool inputs modulo 2), states are 0 (running means) or 1
/// (variances, names ending in `var`).
fn feeds(
    graph: &Graph,
    dims: &HashMap<String, i64>,
    classes: usize,
    param: &dyn Fn(&[usize], u64) -> ArrayD<f64>,
) -> HashMap<String, ArrayD<f64>> {
    let mut feeds = HashMap::new();
    for (salt, id) in graph.topo_order().into_iter().enumerate() {
        let node = graph.node(id);
        let shape = eval_shape(&node.shape, dims).expect("sizes are bound");
        let count: usize = shape.iter().product();
        let (name, value) = match &node.op {
            Prim::Param(path) => (path, param(&shape, salt as u64)),
            Prim::State(path) => {
                let fill = if path.ends_with("var") { 1.0 } else { 0.0 };
                (path, ArrayD::from_elem(shape, fill))
            }
            Prim::Input(name) if node.dtype == DType::I32 => {
                let data: Vec<f64> = (0..count).map(|i| (i % classes) as f64).collect();
                (name, arr(&shape, &data))
            }
            Prim::Input(name) if node.dtype == DType::Bool => {
                let data: Vec<f64> = (0..count).map(|i| (i % 2) as f64).collect();
                (name, arr(&shape, &data))
            }
            Prim::Input(name) => {
                let data: Vec<f64> = (0..count as u64)
                    .map(|i| random::uniform(9, 0, salt as u64, i))
                    .collect();
                (name, arr(&shape, &data))
            }
            _ => continue,
        };
        feeds.insert(name.clone(), value);
    }
    feeds
}

fn batch(b: i64) -> HashMap<String, i64> {
    HashMap::from([("B".to_string(), b)])
}

#[test]
fn digits_mlp_with_zero_weights_has_loss_ln_10() {
    let graph = train_graph("digits_mlp.nn");
    let dims = batch(4);
    let zeros = |shape: &[usize], _| ArrayD::zeros(shape.to_vec());
    let env = Env {
        feeds: feeds(&graph, &dims, 10, &zeros),
        dims,
        seed: 0,
        step: 1,
        collective: None,
    };
    let outputs = run_outputs(&graph, &env).unwrap_or_else(|e| panic!("{e}"));
    let loss = outputs["loss"].first().copied().expect("a scalar loss");
    let expected = 10f64.ln();
    assert_eq!(outputs["loss"].shape(), &[] as &[usize]);
    assert!(
        (loss - expected).abs() <= 1e-9,
        "loss {loss}, want ln 10 = {expected} within 1e-9"
    );
    assert_eq!(outputs["model_output"].shape(), &[4, 10]);
}

#[test]
fn every_example_runs_with_random_weights() {
    let small = |shape: &[usize], salt| {
        let count: usize = shape.iter().product();
        let data: Vec<f64> = (0..count as u64).map(|i| 0.1 * random::normal(5, 0, salt, i)).collect();
        arr(shape, &data)
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples())
        .expect("examples/ is readable")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "nn"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "found {files:?}");
    for path in files {
        let file = path.file_name().unwrap().to_str().unwrap();
        let graph = train_graph(file);
        let dims = batch(2);
        let env = Env {
            feeds: feeds(&graph, &dims, 3, &small),
            dims,
            seed: 1,
            step: 1,
            collective: None,
        };
        let values = run(&graph, &env).unwrap_or_else(|e| panic!("{file}: {e}"));
        let loss = values.output("loss").expect("a loss output");
        assert!(
            loss.len() == 1 && loss.iter().all(|l| l.is_finite() && *l > 0.0),
            "{file}: loss {loss}"
        );
    }
}

#[track_caller]
fn assert_error(case: &Case, parts: &[&str]) {
    let message = case.error();
    for part in parts {
        assert!(message.contains(part), "`{part}` is not in: {message}");
    }
}

#[test]
fn bad_feeds_are_errors() {
    let mut case = Case::new();
    let x = case.f("x", &[2], &[1., 2.]);
    case.op(Prim::StopGrad, DType::F32, &[2], &[x]);
    case.env.feeds.remove("x");
    assert_error(&case, &["%0 = input x", "no feed named `x`"]);
    case.env.feeds.insert("x".into(), arr(&[3], &[1., 2., 3.]));
    assert_error(&case, &["%0 = input x", "[3]", "[2]"]);

    let mut case = Case::new();
    case.input("n", DType::I32, arr(&[2], &[1., 2.5]));
    assert_error(&case, &["2.5", "not a i32"]);

    let mut case = Case::new();
    let shape = vec![Dim::symbol("B")];
    case.graph.add(Prim::Const(0.0), DType::F32, shape, &[]);
    assert_error(&case, &["%0 = const 0", "`B`"]);
}

#[test]
fn ill_formed_graphs_are_errors() {
    let mut case = Case::new();
    let a = case.f("a", &[2], &[1., 2.]);
    let b = case.f("b", &[3], &[1., 2., 3.]);
    case.op(Prim::Binary(BinaryOp::Add), DType::F32, &[2], &[a, b]);
    assert_error(&case, &["%2 = add", "different shapes"]);

    let mut case = Case::new();
    let a = case.f("a", &[2], &[1., 2.]);
    case.op(Prim::Binary(BinaryOp::Add), DType::F32, &[2], &[a]);
    assert_error(&case, &["takes 2 operand(s), found 1"]);

    let mut case = Case::new();
    let x = case.f("x", &[1, 1, 2, 2], &[0.; 4]);
    let window = Window {
        kernel: 5,
        stride: 1,
        padding: 1,
    };
    case.op(Prim::Unfold2d(window), DType::F32, &[1, 1, 1, 25], &[x]);
    assert_error(&case, &["unfold2d", "does not fit"]);

    // An attribute that disagrees with the node's shape fails before the
    // kernel allocates 2^40 rows.
    let mut case = Case::new();
    let v = case.f("v", &[2, 2], &[0.; 4]);
    let ids = case.input("ids", DType::I32, arr(&[2], &[0., 1.]));
    let rows = Dim::constant(1 << 40);
    case.op(Prim::ScatterRows { rows }, DType::F32, &[2, 2], &[v, ids]);
    assert_error(&case, &["%2 = scatter_rows rows=1099511627776", "[2, 2]"]);

    let mut case = Case::new();
    let huge = vec![Dim::constant(1 << 40); 2];
    case.graph.add(Prim::Const(0.0), DType::F32, huge, &[]);
    assert_error(&case, &["%0 = const 0", "too large"]);

    let mut case = Case::new();
    let x = case.f("x", &[2, 2], &[0.; 4]);
    case.op(Prim::Permute(vec![0, 0]), DType::F32, &[2, 2], &[x]);
    case.op(Prim::Broadcast, DType::F32, &[3], &[x]);
    assert_error(&case, &["%1 = permute [0, 0]", "not a permutation"]);
}

/// The interpreter is fast enough to train: digits_mlp's whole training step
/// (forward, gradients, Adam) at batch 64, on a synthetic task whose labels
/// are the argmax of a fixed linear map of the inputs.
#[test]
fn training_digits_mlp_lowers_the_loss() {
    let dir = examples();
    let text = std::fs::read_to_string(dir.join("digits_mlp.nn")).expect("the example exists");
    let options = Options {
        base_dir: Some(dir),
        ..Options::default()
    };
    let program = check_source("digits_mlp.nn", &text, &options);
    let forward = crate::ir::lower::lower(&program.train_trace);
    let optimizer = program.optimizer.as_ref().expect("an optimizer");
    let graph = crate::autodiff::optimizer::training_step(&forward, optimizer);
    let dims = batch(64);
    let init = |shape: &[usize], salt| {
        let count: usize = shape.iter().product();
        let scale = if shape.len() == 2 {
            (2.0 / shape[0] as f64).sqrt()
        } else {
            0.0
        };
        let data: Vec<f64> = (0..count as u64)
            .map(|i| scale * random::normal(11, 0, salt, i))
            .collect();
        arr(shape, &data)
    };
    let mut env = Env {
        feeds: feeds(&graph, &dims, 10, &init),
        dims,
        seed: 0,
        step: 0,
        collective: None,
    };
    for (name, value) in env.feeds.iter_mut() {
        if name.starts_with("optimizer.") {
            value.fill(0.0);
        }
    }
    let teacher = ndarray::Array2::from_shape_fn((64, 10), |(i, j)| random::normal(13, 0, 0, (i * 10 + j) as u64));
    let steps = 2000;
    let started = std::time::Instant::now();
    let mut losses = Vec::new();
    for step in 1..=steps {
        let x = ndarray::Array2::from_shape_fn((64, 64), |(i, j)| {
            random::uniform(17, step, 0, (i * 64 + j) as u64) - 0.5
        });
        let labels = x.dot(&teacher).map_axis(ndarray::Axis(1), |row| {
            (0..10).fold(0, |best, j| if row[j] > row[best] { j } else { best }) as f64
        });
        env.feeds.insert("digits.x".into(), x.into_dyn());
        env.feeds.insert("digits.y".into(), labels.into_dyn());
        env.feeds.insert("lr".into(), arr(&[], &[1e-3]));
        env.feeds.insert("step".into(), arr(&[], &[step as f64]));
        env.step = step;
        let outputs = run_outputs(&graph, &env).unwrap_or_else(|e| panic!("step {step}: {e}"));
        losses.push(outputs["loss"].first().copied().unwrap_or(f64::NAN));
        for (name, value) in outputs {
            if let Some(path) = name.strip_prefix("new ") {
                env.feeds.insert(path.to_string(), value);
            }
        }
    }
    let elapsed = started.elapsed();
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    let (first, last) = (mean(&losses[..50]), mean(&losses[losses.len() - 50..]));
    eprintln!("{steps} steps in {elapsed:?}: loss {first:.3} -> {last:.3}");
    assert!(
        last < 0.5 * first,
        "mean loss of the first 50 steps {first}, of the last 50 {last}: want at least halved"
    );
}
