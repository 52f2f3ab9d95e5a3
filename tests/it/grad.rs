//! Gradient rules against central finite differences, in f64 on the
//! interpreter: every primitive on random inputs of several shapes
//! (broadcast and size-1 dimensions included), then every example model at
//! a small size through its loss.

use std::collections::HashMap;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use nnc::check::dims::Dim;
use nnc::interp::{self, Env};
use nnc::ir::{Graph, NodeId};
use nnc::prim::{BinaryOp, DType, Prim, ReduceOp, UnaryOp, Window};

/// Finite-difference step and tolerance: |analytic - numeric| must be below
/// `TOLERANCE * max(1, |numeric|)`. With h = 1e-6 in f64 the truncation
/// error is ~1e-12 and the rounding error ~1e-10.
const H: f64 = 1e-6;
const TOLERANCE: f64 = 1e-6;

/// Deterministic pseudo-random numbers for test inputs.
fn numbers(n: usize, seed: u64, low: f64, high: f64) -> Vec<f64> {
    (0..n)
        .map(|i| low + (high - low) * interp::random::uniform(seed, 7, 3, i as u64))
        .collect()
}

pub(crate) fn array(shape: &[usize], seed: u64, low: f64, high: f64) -> ArrayD<f64> {
    let n = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), numbers(n, seed, low, high)).unwrap()
}

pub(crate) fn dims(shape: &[usize]) -> Vec<Dim> {
    shape.iter().map(|&d| Dim::constant(d as i64)).collect()
}

/// Builds the op under test from the float inputs' and fixed inputs' nodes.
pub(crate) type Build = dyn Fn(&mut Graph, &[NodeId], &[NodeId]) -> NodeId;

/// A case: float inputs (differentiated), fixed inputs (ids, conditions)
/// and how the op is built from their nodes.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) inputs: Vec<ArrayD<f64>>,
    pub(crate) fixed: Vec<(DType, ArrayD<f64>)>,
    pub(crate) build: Box<Build>,
}

fn case(
    name: &'static str,
    inputs: Vec<ArrayD<f64>>,
    fixed: Vec<(DType, ArrayD<f64>)>,
    build: impl Fn(&mut Graph, &[NodeId], &[NodeId]) -> NodeId + 'static,
) -> Case {
    Case {
        name,
        inputs,
        fixed,
        build: Box::new(build),
    }
}

/// The case's graph in f64 up to the output `loss = sum(op(x...) * w)`
/// (parameters `x{i}`, fixed inputs `c{i}`, weights `w`), verified; its
/// parameters and loss; and the feeds of every leaf (`w` drawn with seed 99).
pub(crate) fn weighted_loss(case: &Case) -> (Graph, Vec<NodeId>, NodeId, HashMap<String, ArrayD<f64>>) {
    let mut graph = Graph::new();
    let params: Vec<NodeId> = case
        .inputs
        .iter()
        .enumerate()
        .map(|(i, a)| graph.add(Prim::Param(format!("x{i}")), DType::F64, dims(a.shape()), &[]))
        .collect();
    let fixed: Vec<NodeId> = case
        .fixed
        .iter()
        .enumerate()
        .map(|(i, (dtype, a))| graph.add(Prim::Input(format!("c{i}")), *dtype, dims(a.shape()), &[]))
        .collect();
    let y = (case.build)(&mut graph, &params, &fixed);
    nnc::ir::verify::assert_valid(&graph, case.name);
    let y_shape = graph.shape(y);
    let w = graph.add(Prim::Input("w".into()), DType::F64, y_shape.clone(), &[]);
    let product = graph.mul(y, w);
    let loss = graph.sum_all(product);
    graph.set_output("loss", loss);

    let y_size: Vec<usize> = y_shape.iter().map(|d| d.as_const().unwrap() as usize).collect();
    let mut feeds: HashMap<String, ArrayD<f64>> = HashMap::new();
    feeds.insert("w".into(), array(&y_size, 99, -1.0, 1.0));
    for (i, (_, a)) in case.fixed.iter().enumerate() {
        feeds.insert(format!("c{i}"), a.clone());
    }
    for (i, a) in case.inputs.iter().enumerate() {
        feeds.insert(format!("x{i}"), a.clone());
    }
    (graph, params, loss, feeds)
}

/// Checks `d sum(op(x...) * w) / dx` against central differences.
fn check(case: &Case) {
    let (mut graph, params, loss, feeds) = weighted_loss(case);
    let grads = nnc::autodiff::gradients(&mut graph, loss, &params);
    for (i, g) in grads.iter().enumerate() {
        graph.set_output(&format!("grad {i}"), *g);
    }
    nnc::ir::verify::assert_valid(&graph, &format!("{} gradient", case.name));

    let run = |feeds: &HashMap<String, ArrayD<f64>>| {
        let env = Env {
            feeds: feeds.clone(),
            ..Env::default()
        };
        interp::run_outputs(&graph, &env).unwrap_or_else(|e| panic!("{}: {e}", case.name))
    };
    let outputs = run(&feeds);
    let mut worst = (0.0f64, String::new());
    for (i, input) in case.inputs.iter().enumerate() {
        let analytic = &outputs[&format!("grad {i}")];
        for k in 0..input.len() {
            let mut plus = feeds.clone();
            let mut minus = feeds.clone();
            plus.get_mut(&format!("x{i}")).unwrap().as_slice_mut().unwrap()[k] += H;
            minus.get_mut(&format!("x{i}")).unwrap().as_slice_mut().unwrap()[k] -= H;
            let numeric = (run(&plus)["loss"].sum() - run(&minus)["loss"].sum()) / (2.0 * H);
            let exact = analytic.as_slice().unwrap()[k];
            let error = (exact - numeric).abs() / numeric.abs().max(1.0);
            if error > worst.0 {
                worst = (
                    error,
                    format!("input {i} element {k}: analytic {exact:.9}, numeric {numeric:.9}"),
                );
            }
        }
    }
    assert!(
        worst.0 <= TOLERANCE,
        "{}: largest relative difference {:.3e} > {TOLERANCE:e} at {}",
        case.name,
        worst.0,
        worst.1
    );
}

fn f64s(shape: &[usize], seed: u64) -> ArrayD<f64> {
    array(shape, seed, -1.0, 1.0)
}

fn positive(shape: &[usize], seed: u64) -> ArrayD<f64> {
    array(shape, seed, 0.5, 2.0)
}

fn ids(shape: &[usize], values: &[f64]) -> (DType, ArrayD<f64>) {
    (
        DType::I32,
        ArrayD::from_shape_vec(IxDyn(shape), values.to_vec()).unwrap(),
    )
}

fn unary(op: UnaryOp) -> impl Fn(&mut Graph, &[NodeId], &[NodeId]) -> NodeId {
    move |g, x, _| g.unary(op, x[0])
}

fn binary(op: BinaryOp) -> impl Fn(&mut Graph, &[NodeId], &[NodeId]) -> NodeId {
    move |g, x, _| g.add(Prim::Binary(op), DType::F64, g.shape(x[0]), &[x[0], x[1]])
}

pub(crate) fn cases() -> Vec<Case> {
    let s = [2, 1, 3];
    let mut cases = vec![
        case("neg", vec![f64s(&s, 1)], vec![], unary(UnaryOp::Neg)),
        case("exp", vec![f64s(&s, 2)], vec![], unary(UnaryOp::Exp)),
        case("log", vec![positive(&s, 3)], vec![], unary(UnaryOp::Log)),
        case("sqrt", vec![positive(&s, 4)], vec![], unary(UnaryOp::Sqrt)),
        case("tanh", vec![f64s(&s, 5)], vec![], unary(UnaryOp::Tanh)),
        case("sigmoid", vec![f64s(&s, 55)], vec![], unary(UnaryOp::Sigmoid)),
        case("sin", vec![f64s(&s, 6)], vec![], unary(UnaryOp::Sin)),
        case("cos", vec![f64s(&s, 7)], vec![], unary(UnaryOp::Cos)),
        case("abs", vec![f64s(&s, 8)], vec![], unary(UnaryOp::Abs)),
        case(
            "add",
            vec![f64s(&[4, 3], 9), f64s(&[4, 3], 10)],
            vec![],
            binary(BinaryOp::Add),
        ),
        case(
            "sub",
            vec![f64s(&[4, 3], 11), f64s(&[4, 3], 12)],
            vec![],
            binary(BinaryOp::Sub),
        ),
        case(
            "mul",
            vec![f64s(&[4, 3], 13), f64s(&[4, 3], 14)],
            vec![],
            binary(BinaryOp::Mul),
        ),
        case(
            "div",
            vec![f64s(&[4, 3], 15), positive(&[4, 3], 16)],
            vec![],
            binary(BinaryOp::Div),
        ),
        case(
            "max",
            vec![f64s(&[4, 3], 17), f64s(&[4, 3], 18)],
            vec![],
            binary(BinaryOp::Max),
        ),
        case(
            "min",
            vec![f64s(&[4, 3], 19), f64s(&[4, 3], 20)],
            vec![],
            binary(BinaryOp::Min),
        ),
        case(
            "pow",
            vec![positive(&[4, 3], 21), f64s(&[4, 3], 22)],
            vec![],
            binary(BinaryOp::Pow),
        ),
        case(
            "select",
            vec![f64s(&[2, 3], 23), f64s(&[2, 3], 24)],
            vec![(
                DType::Bool,
                ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1., 0., 1., 0., 0., 1.]).unwrap(),
            )],
            |g, x, c| g.select(c[0], x[0], x[1]),
        ),
        case("cast", vec![f64s(&[3], 25)], vec![], |g, x, _| {
            let narrow = g.cast(x[0], DType::F32);
            g.cast(narrow, DType::F64)
        }),
        case(
            "all_reduce in one process",
            vec![f64s(&[3, 2], 27)],
            vec![],
            |g, x, _| {
                let summed = g.add(Prim::AllReduce, DType::F64, g.shape(x[0]), &[x[0]]);
                let squared = g.mul(summed, x[0]);
                g.unary(UnaryOp::Tanh, squared)
            },
        ),
        case("stop_grad blocks", vec![f64s(&[3], 26)], vec![], |g, x, _| {
            let stopped = g.add(Prim::StopGrad, DType::F64, g.shape(x[0]), &[x[0]]);
            let sum = g.add_nodes(stopped, x[0]);
            g.sub(sum, stopped)
        }),
        case("sum axis 1 keepdims", vec![f64s(&[2, 3, 4], 27)], vec![], |g, x, _| {
            g.reduce(ReduceOp::Sum, x[0], vec![1], true)
        }),
        case("mean axes 0 and 2", vec![f64s(&[2, 3, 4], 28)], vec![], |g, x, _| {
            g.reduce(ReduceOp::Mean, x[0], vec![0, 2], false)
        }),
        case("max axis 2", vec![f64s(&[2, 3, 4], 29)], vec![], |g, x, _| {
            g.reduce(ReduceOp::Max, x[0], vec![2], false)
        }),
        // Ties: a pair of equal maxima shares the gradient, matching the
        // one-sided differences' average.
        case(
            "max axis 1 with a tied pair",
            vec![ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![0.5, 0.5, -1.0, 0.2, 0.7, 0.7]).unwrap()],
            vec![],
            |g, x, _| g.reduce(ReduceOp::Max, x[0], vec![1], false),
        ),
        case(
            "maximum of a tensor and itself",
            vec![f64s(&[3], 48)],
            vec![],
            |g, x, _| g.add(Prim::Binary(BinaryOp::Max), DType::F64, g.shape(x[0]), &[x[0], x[0]]),
        ),
        case("reshape", vec![f64s(&[2, 3, 4], 30)], vec![], |g, x, _| {
            g.reshape(x[0], dims(&[6, 4]))
        }),
        case("permute", vec![f64s(&[2, 3, 4], 31)], vec![], |g, x, _| {
            g.permute(x[0], vec![2, 0, 1])
        }),
        case(
            "broadcast size-1 and leading",
            vec![f64s(&[3, 1], 32)],
            vec![],
            |g, x, _| g.broadcast(x[0], &dims(&[2, 3, 4])),
        ),
        case("slice", vec![f64s(&[5, 3], 33)], vec![], |g, x, _| {
            g.slice(x[0], 0, Dim::constant(1), Dim::constant(3), 1)
        }),
        case("slice step 2", vec![f64s(&[3, 7], 34)], vec![], |g, x, _| {
            g.slice(x[0], 1, Dim::constant(1), Dim::constant(3), 2)
        }),
        case(
            "concat",
            vec![f64s(&[2, 3], 35), f64s(&[2, 1], 36)],
            vec![],
            |g, x, _| g.add(Prim::Concat { axis: 1 }, DType::F64, dims(&[2, 4]), &[x[0], x[1]]),
        ),
        case("pad", vec![f64s(&[2, 3], 37)], vec![], |g, x, _| {
            g.pad(x[0], 0, Dim::constant(1), Dim::constant(2))
        }),
        case(
            "take",
            vec![f64s(&[5, 3], 38)],
            vec![ids(&[2, 3], &[0., 4., 4., 1., 7., 2.])],
            |g, x, c| g.add(Prim::Take, DType::F64, dims(&[2, 3, 3]), &[x[0], c[0]]),
        ),
        case(
            "scatter_rows",
            vec![f64s(&[4, 2], 39)],
            vec![ids(&[4], &[1., 1., 3., 0.])],
            |g, x, c| {
                g.add(
                    Prim::ScatterRows { rows: Dim::constant(5) },
                    DType::F64,
                    dims(&[5, 2]),
                    &[x[0], c[0]],
                )
            },
        ),
        case(
            "pick",
            vec![f64s(&[3, 4], 40)],
            vec![ids(&[3], &[0., 3., 2.])],
            |g, x, c| g.add(Prim::Pick, DType::F64, dims(&[3]), &[x[0], c[0]]),
        ),
        case(
            "place",
            vec![f64s(&[3], 41)],
            vec![ids(&[3], &[1., 0., 2.])],
            |g, x, c| {
                g.add(
                    Prim::Place {
                        classes: Dim::constant(4),
                    },
                    DType::F64,
                    dims(&[3, 4]),
                    &[x[0], c[0]],
                )
            },
        ),
        case(
            "matmul",
            vec![f64s(&[3, 4], 42), f64s(&[4, 2], 43)],
            vec![],
            |g, x, _| g.matmul(x[0], x[1]),
        ),
        case(
            "matmul batched",
            vec![f64s(&[2, 3, 4], 44), f64s(&[2, 4, 5], 45)],
            vec![],
            |g, x, _| g.matmul(x[0], x[1]),
        ),
    ];
    let window = Window {
        kernel: 3,
        stride: 2,
        padding: 1,
    };
    cases.push(case(
        "unfold2d",
        vec![f64s(&[2, 2, 5, 5], 46)],
        vec![],
        move |g, x, _| g.add(Prim::Unfold2d(window), DType::F64, dims(&[2, 3, 3, 18]), &[x[0]]),
    ));
    cases.push(case(
        "fold2d",
        vec![f64s(&[2, 3, 3, 18], 47)],
        vec![],
        move |g, x, _| g.add(Prim::Fold2d(window), DType::F64, dims(&[2, 2, 5, 5]), &[x[0]]),
    ));
    cases
}

#[test]
fn every_primitive_matches_finite_differences() {
    let cases = cases();
    for case in &cases {
        check(case);
    }
    assert!(cases.len() >= 35);
}

/// Every example at a small size: the step graph's gradient of every
/// parameter tensor (a few elements each) against finite differences of
/// the loss. Tolerance 1e-5 relative (whole models in f64).
#[test]
fn every_example_model_matches_finite_differences() {
    let small: &[(&str, &[(&str, f64)])] = &[
        ("views_linear.nn", &[]),
        ("digits_mlp.nn", &[("H", 8.0)]),
        ("digits_cnn.nn", &[]),
        ("views_sigmoid.nn", &[("UNITS", 4.0)]),
        ("views_relu.nn", &[("LAYERS", 3.0), ("UNITS", 12.0)]),
        ("views_relu.nn", &[("HARD", 1.0), ("UNITS", 6.0)]),
        ("digits_bn.nn", &[("H", 8.0)]),
        ("char_lstm.nn", &[("T", 3.0), ("E", 4.0), ("H", 4.0), ("V", 12.0)]),
        ("ctc.nn", &[("H", 4.0)]),
        (
            "gpt.nn",
            &[("T", 4.0), ("D", 8.0), ("HEADS", 2.0), ("LAYERS", 1.0), ("V", 12.0)],
        ),
        ("transformer.nn", &[("D", 8.0), ("HEADS", 2.0), ("LAYERS", 1.0)]),
        (
            "bert_mlm.nn",
            &[("T", 4.0), ("D", 8.0), ("HEADS", 2.0), ("LAYERS", 1.0), ("V", 12.0)],
        ),
        (
            "bert_pair.nn",
            &[("T", 8.0), ("D", 8.0), ("HEADS", 2.0), ("LAYERS", 1.0)],
        ),
        (
            "bert_qa.nn",
            &[("T", 32.0), ("D", 8.0), ("HEADS", 2.0), ("LAYERS", 1.0)],
        ),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for (example, constants) in small {
        file_gradients_match_finite_differences(&dir, example, constants);
    }
}

/// Max pooling of odd-sized maps (the last row and column dropped) through
/// both the strided-view path and the runtime's layout pass, against finite
/// differences like the examples.
#[test]
fn odd_sized_max_pooling_matches_finite_differences() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pool_odd");
    file_gradients_match_finite_differences(&dir, "pool.nn", &[]);
}

/// The step graph's gradient of every parameter tensor of `dir/file` (three
/// elements each, batch 3) against central differences of the loss;
/// tolerance 1e-5 relative (whole models in f64).
pub(crate) fn file_gradients_match_finite_differences(dir: &Path, example: &str, constants: &[(&str, f64)]) {
    let loops = gradients_match_finite_differences(dir, example, constants, nnc::ir::lower::lower);
    assert_eq!(loops, 0, "`lower` unrolls every loop");
}

/// [`file_gradients_match_finite_differences`] on the forward graph as
/// `lower` makes it (`lower_loops` keeps each scan a loop, so the
/// gradient is a reverse loop).
pub(crate) fn gradients_match_finite_differences(
    dir: &Path,
    example: &str,
    constants: &[(&str, f64)],
    lower: fn(&nnc::check::trace::Trace) -> nnc::ir::Graph,
) -> usize {
    let program = crate::common::checked_program(dir, example, constants);
    let options = nnc::runtime::Overrides {
        batch: Some(3),
        ..Default::default()
    };
    let session = nnc::runtime::Session::new(program, dir, &options).unwrap_or_else(|(d, _)| panic!("{}", d.message));
    // Use the unoptimized step so the check covers the rules as written
    // (on the forward graph as the runtime prepares it).
    let mut forward = lower(&session.program.train_trace);
    nnc::passes::prepare_forward(&mut forward);
    let graph = nnc::autodiff::optimizer::training_step(&forward, session.program.optimizer.as_ref().unwrap());
    nnc::ir::verify::assert_valid(&graph, "autodiff");
    let loops = crate::loops::loops(&graph);
    let env = session.step_env(0);
    let loss_at = |env: &Env| interp::run_outputs(&graph, env).unwrap()["loss"].sum();
    let outputs = interp::run_outputs(&graph, &env).unwrap();
    let mut worst = (0.0f64, String::new());
    let mut checked = 0;
    for param in &session.program.params {
        let analytic = &outputs[&format!("grad {}", param.path)];
        let count = analytic.len();
        for k in [0, count / 2, count - 1] {
            let mut plus = env.clone();
            let mut minus = env.clone();
            plus.feeds.get_mut(&param.path).unwrap().as_slice_mut().unwrap()[k] += 1e-5;
            minus.feeds.get_mut(&param.path).unwrap().as_slice_mut().unwrap()[k] -= 1e-5;
            let numeric = (loss_at(&plus) - loss_at(&minus)) / 2e-5;
            let exact = analytic.as_slice().unwrap()[k];
            let error = (exact - numeric).abs() / numeric.abs().max(1e-3);
            checked += 1;
            if error > worst.0 {
                worst = (
                    error,
                    format!("{}[{k}]: analytic {exact:.9}, numeric {numeric:.9}", param.path),
                );
            }
        }
    }
    println!(
        "{example}: {checked} gradient entries, largest relative difference {:.2e}",
        worst.0
    );
    assert!(
        worst.0 < 1e-5,
        "{example}: largest relative difference {:.3e} at {}",
        worst.0,
        worst.1
    );
    loops
}
