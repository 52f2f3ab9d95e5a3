//! Every primitive on the JIT against the interpreter, on random inputs:
//! forward and backward, odd sizes and size-1 axes, as built and after the
//! passes. Tolerance as in [`crate::jit`]. The cases' helpers serve the
//! fused patterns too (`jit_patterns.rs`).

use std::collections::HashMap;

use ndarray::{ArrayD, IxDyn};
use nnc::check::dims::Dim;
use nnc::interp::{self, Env};
use nnc::ir::Graph;
use nnc::ir::NodeId;
use nnc::prim::{BinaryOp, DType, Distribution, Prim, ReduceOp, UnaryOp, Window};

use crate::jit::{compare_outputs, ATOL, RTOL};

fn numbers(n: usize, seed: u64, low: f64, high: f64) -> Vec<f64> {
    (0..n)
        .map(|i| low + (high - low) * interp::random::uniform(seed, 11, 5, i as u64))
        .collect()
}

pub(crate) fn array(shape: &[usize], seed: u64, low: f64, high: f64) -> ArrayD<f64> {
    let n = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), numbers(n, seed, low, high)).unwrap()
}

pub(crate) fn f32s(shape: &[usize], seed: u64) -> ArrayD<f64> {
    array(shape, seed, -1.0, 1.0)
}

pub(crate) fn positive(shape: &[usize], seed: u64) -> ArrayD<f64> {
    array(shape, seed, 0.5, 2.0)
}

pub(crate) fn dims(shape: &[usize]) -> Vec<Dim> {
    shape.iter().map(|&d| Dim::constant(d as i64)).collect()
}

pub(crate) fn ints(shape: &[usize], values: &[f64]) -> (DType, ArrayD<f64>) {
    (
        DType::I32,
        ArrayD::from_shape_vec(IxDyn(shape), values.to_vec()).unwrap(),
    )
}

fn bools(shape: &[usize], seed: u64) -> (DType, ArrayD<f64>) {
    let values = numbers(shape.iter().product(), seed, 0.0, 1.0);
    (
        DType::Bool,
        ArrayD::from_shape_vec(
            IxDyn(shape),
            values.iter().map(|v| f64::from(u8::from(*v > 0.5))).collect(),
        )
        .unwrap(),
    )
}

type Build = dyn Fn(&mut Graph, &[NodeId], &[NodeId]) -> NodeId;

/// Float inputs (parameters, differentiated), fixed inputs (ids,
/// conditions) and the op built from their nodes.
pub(crate) struct Case {
    name: String,
    inputs: Vec<ArrayD<f64>>,
    fixed: Vec<(DType, ArrayD<f64>)>,
    build: Box<Build>,
}

pub(crate) fn case(
    name: &str,
    inputs: Vec<ArrayD<f64>>,
    fixed: Vec<(DType, ArrayD<f64>)>,
    build: impl Fn(&mut Graph, &[NodeId], &[NodeId]) -> NodeId + 'static,
) -> Case {
    Case {
        name: name.to_string(),
        inputs,
        fixed,
        build: Box::new(build),
    }
}

/// The case's graph: output `y`, and unless `forward_only`, the gradient
/// of `sum(y * w)` for every float input.
fn case_graph(case: &Case, backward: bool) -> (Graph, Env) {
    let mut graph = Graph::new();
    let params: Vec<NodeId> = case
        .inputs
        .iter()
        .enumerate()
        .map(|(i, a)| graph.add(Prim::Param(format!("x{i}")), DType::F32, dims(a.shape()), &[]))
        .collect();
    let fixed: Vec<NodeId> = case
        .fixed
        .iter()
        .enumerate()
        .map(|(i, (dtype, a))| graph.add(Prim::Input(format!("c{i}")), *dtype, dims(a.shape()), &[]))
        .collect();
    let y = (case.build)(&mut graph, &params, &fixed);
    graph.set_output("y", y);
    let mut feeds: HashMap<String, ArrayD<f64>> = HashMap::new();
    for (i, (_, a)) in case.fixed.iter().enumerate() {
        feeds.insert(format!("c{i}"), a.clone());
    }
    for (i, a) in case.inputs.iter().enumerate() {
        feeds.insert(format!("x{i}"), a.clone());
    }
    let differentiable = graph.dtype(y).is_float();
    if backward && differentiable && !params.is_empty() {
        let shape = graph.shape(y);
        let w = graph.add(Prim::Input("w".into()), DType::F32, shape.clone(), &[]);
        let product = graph.mul(y, w);
        let loss = graph.sum_all(product);
        graph.set_output("loss", loss);
        let grads = nnc::autodiff::gradients(&mut graph, loss, &params);
        for (i, g) in grads.iter().enumerate() {
            graph.set_output(&format!("grad {i}"), *g);
        }
        let size: Vec<usize> = shape.iter().map(|d| d.as_const().unwrap() as usize).collect();
        feeds.insert("w".into(), array(&size, 99, -1.0, 1.0));
    }
    nnc::ir::verify::assert_valid(&graph, &case.name);
    let env = Env {
        feeds,
        seed: 3,
        step: 4,
        ..Env::default()
    };
    (graph, env)
}

pub(crate) fn check_case(case: &Case) {
    let (graph, env) = case_graph(case, true);
    compare_outputs(&case.name, &graph, &env, RTOL, ATOL);
    // The optimized form too: passes fold and merge, which fuses differently.
    let mut optimized = graph.clone();
    nnc::passes::optimize(&mut optimized);
    compare_outputs(&format!("{} (optimized)", case.name), &optimized, &env, RTOL, ATOL);
}

fn unary(op: UnaryOp) -> impl Fn(&mut Graph, &[NodeId], &[NodeId]) -> NodeId {
    move |g, x, _| g.unary(op, x[0])
}

fn binary(op: BinaryOp) -> impl Fn(&mut Graph, &[NodeId], &[NodeId]) -> NodeId {
    move |g, x, _| g.binary(op, x[0], x[1])
}

fn primitive_cases() -> Vec<Case> {
    let odd = [3, 1, 13];
    let mut cases = vec![
        case("neg", vec![f32s(&odd, 1)], vec![], unary(UnaryOp::Neg)),
        case("exp", vec![array(&odd, 2, -20.0, 20.0)], vec![], unary(UnaryOp::Exp)),
        // Its whole finite range: 2^n built from two halves of n near the
        // ends of the exponent.
        case(
            "exp to the ends of its range",
            vec![array(&odd, 56, -87.0, 88.5)],
            vec![],
            unary(UnaryOp::Exp),
        ),
        case("log", vec![array(&odd, 3, 1e-3, 50.0)], vec![], unary(UnaryOp::Log)),
        case("sqrt", vec![positive(&odd, 4)], vec![], unary(UnaryOp::Sqrt)),
        case("tanh", vec![array(&odd, 5, -6.0, 6.0)], vec![], unary(UnaryOp::Tanh)),
        // Past +-80 too, where the interpreter and the JIT both cap exp.
        case(
            "sigmoid",
            vec![array(&odd, 55, -100.0, 100.0)],
            vec![],
            unary(UnaryOp::Sigmoid),
        ),
        case("sin", vec![array(&odd, 6, -4.0, 4.0)], vec![], unary(UnaryOp::Sin)),
        case("cos", vec![array(&odd, 7, -4.0, 4.0)], vec![], unary(UnaryOp::Cos)),
        case("abs", vec![f32s(&odd, 8)], vec![], unary(UnaryOp::Abs)),
        case("not", vec![], vec![bools(&[7], 9)], |g, _, c| {
            g.unary(UnaryOp::Not, c[0])
        }),
    ];
    for (i, op) in [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Max,
        BinaryOp::Min,
    ]
    .into_iter()
    .enumerate()
    {
        let seed = 20 + 2 * i as u64;
        let b = if op == BinaryOp::Div {
            positive(&[7, 13], seed + 1)
        } else {
            f32s(&[7, 13], seed + 1)
        };
        cases.push(case(op.name(), vec![f32s(&[7, 13], seed), b], vec![], binary(op)));
    }
    cases.push(case(
        "pow",
        vec![positive(&[13], 40), f32s(&[13], 41)],
        vec![],
        binary(BinaryOp::Pow),
    ));
    for (i, op) in [
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
    ]
    .into_iter()
    .enumerate()
    {
        // Rounded to tenths so that equal values occur.
        let a = array(&[3, 13], 50 + i as u64, -3.0, 3.0).mapv(|v| v.round() / 10.0);
        let b = array(&[3, 13], 60 + i as u64, -3.0, 3.0).mapv(|v| v.round() / 10.0);
        cases.push(case(op.name(), vec![a, b], vec![], move |g, x, _| {
            let p = g.binary(op, x[0], x[1]);
            g.cast(p, DType::F32)
        }));
    }
    for op in [BinaryOp::And, BinaryOp::Or] {
        cases.push(case(
            op.name(),
            vec![],
            vec![bools(&[13], 70), bools(&[13], 71)],
            move |g, _, c| g.binary(op, c[0], c[1]),
        ));
    }
    cases.extend([
        case(
            "select",
            vec![f32s(&[2, 7], 72), f32s(&[2, 7], 73)],
            vec![bools(&[2, 7], 74)],
            |g, x, c| g.select(c[0], x[0], x[1]),
        ),
        case(
            "cast to i32 truncates",
            vec![array(&[13], 75, -5.0, 5.0)],
            vec![],
            |g, x, _| {
                let i = g.cast(x[0], DType::I32);
                g.cast(i, DType::F32)
            },
        ),
        case(
            "i32 division truncates",
            vec![],
            vec![ints(&[5], &[7., -7., 9., 1., -3.]), ints(&[5], &[2., 2., -4., 3., 2.])],
            |g, _, c| g.binary(BinaryOp::Div, c[0], c[1]),
        ),
        case("stop_grad", vec![f32s(&[7], 76)], vec![], |g, x, _| {
            let stopped = g.add(Prim::StopGrad, DType::F32, g.shape(x[0]), &[x[0]]);
            g.mul(stopped, x[0])
        }),
        // One process: the sum over the processes is the value itself (the
        // sum over several is tested in `distributed.rs`).
        case(
            "all_reduce in one process",
            vec![f32s(&[3, 5], 78)],
            vec![],
            |g, x, _| {
                let e = g.unary(UnaryOp::Exp, x[0]);
                let summed = g.add(Prim::AllReduce, DType::F32, g.shape(x[0]), &[e]);
                let direct = g.add(Prim::AllReduce, DType::F32, g.shape(x[0]), &[x[0]]);
                let both = g.mul(summed, direct);
                g.mul(both, x[0])
            },
        ),
        case("const, count and iota", vec![f32s(&[3, 5], 77)], vec![], |g, x, _| {
            let iota = g.add(Prim::Iota { axis: 1 }, DType::I32, dims(&[3, 5]), &[]);
            let iota = g.cast(iota, DType::F32);
            let count = g.add(Prim::Count(Dim::constant(5)), DType::F32, vec![], &[]);
            let count = g.broadcast(count, &dims(&[3, 5]));
            let c = g.fill_like(x[0], 0.25);
            let s = g.add_nodes(iota, count);
            let s = g.add_nodes(s, c);
            g.mul(s, x[0])
        }),
        case(
            "random uniform and normal",
            vec![f32s(&[4, 7], 78)],
            vec![],
            |g, x, _| {
                let u = g.add(
                    Prim::Random {
                        dist: Distribution::Uniform,
                        stream: 3,
                        offset: 0,
                    },
                    DType::F32,
                    dims(&[4, 7]),
                    &[],
                );
                let n = g.add(
                    Prim::Random {
                        dist: Distribution::Normal,
                        stream: 9,
                        offset: 0,
                    },
                    DType::F32,
                    dims(&[4, 7]),
                    &[],
                );
                let s = g.add_nodes(u, n);
                g.mul(s, x[0])
            },
        ),
        // A data-parallel process's share draws from an offset.
        case(
            "random draws from an offset",
            vec![f32s(&[3, 8], 80)],
            vec![],
            |g, x, _| {
                let mut draw = |dist, stream| {
                    let op = Prim::Random {
                        dist,
                        stream,
                        offset: 1000,
                    };
                    g.add(op, DType::F32, dims(&[3, 8]), &[])
                };
                let (u, n) = (draw(Distribution::Uniform, 4), draw(Distribution::Normal, 5));
                let s = g.add_nodes(u, n);
                g.mul(s, x[0])
            },
        ),
        case("dropout mask", vec![f32s(&[5, 13], 79)], vec![], |g, x, _| {
            let u = g.add(
                Prim::Random {
                    dist: Distribution::Uniform,
                    stream: 0,
                    offset: 0,
                },
                DType::F32,
                dims(&[5, 13]),
                &[],
            );
            let p = g.fill_like(u, 0.3);
            let keep = g.binary(BinaryOp::Ge, u, p);
            let keep = g.cast(keep, DType::F32);
            g.mul(x[0], keep)
        }),
    ]);
    let x3 = || f32s(&[3, 5, 7], 80);
    for (name, op, axes, keep) in [
        ("sum last axis", ReduceOp::Sum, vec![2], false),
        ("sum axis 1 keepdims", ReduceOp::Sum, vec![1], true),
        ("sum leading axis", ReduceOp::Sum, vec![0], false),
        ("sum axes 0 and 2", ReduceOp::Sum, vec![0, 2], true),
        ("sum all", ReduceOp::Sum, vec![0, 1, 2], false),
        ("mean last axis keepdims", ReduceOp::Mean, vec![2], true),
        ("mean leading axes", ReduceOp::Mean, vec![0, 1], false),
        ("max last axis", ReduceOp::Max, vec![2], false),
        ("max axis 0", ReduceOp::Max, vec![0], true),
        ("max all", ReduceOp::Max, vec![0, 1, 2], false),
    ] {
        cases.push(case(name, vec![x3()], vec![], move |g, x, _| {
            g.reduce(op, x[0], axes.clone(), keep)
        }));
    }
    // Large enough to be split between threads by columns (29 and 37 are
    // not multiples of the vector width).
    for (name, op, shape, axes, keep) in [
        (
            "sum leading axes split by columns",
            ReduceOp::Sum,
            [40, 3, 29],
            vec![0, 1],
            false,
        ),
        (
            "mean axis 0 split by columns",
            ReduceOp::Mean,
            [20, 64, 37],
            vec![0],
            true,
        ),
        (
            "max axis 0 split by columns",
            ReduceOp::Max,
            [50, 1, 37],
            vec![0],
            false,
        ),
        // Every axis but a narrow last one: sums kept in registers (four
        // lanes, and single columns left over).
        (
            "max of rows of 16 in registers",
            ReduceOp::Max,
            [30, 4, 16],
            vec![0, 1],
            true,
        ),
        (
            "mean of rows of 10 in registers",
            ReduceOp::Mean,
            [64, 1, 10],
            vec![0, 1],
            false,
        ),
    ] {
        cases.push(case(name, vec![f32s(&shape, 85)], vec![], move |g, x, _| {
            g.reduce(op, x[0], axes.clone(), keep)
        }));
    }
    cases.extend([
        case("argmax last axis", vec![f32s(&[4, 7], 81)], vec![], |g, x, _| {
            let a = g.add(Prim::ArgMax { axis: 1 }, DType::I32, dims(&[4]), &[x[0]]);
            g.cast(a, DType::F32)
        }),
        case("argmax first axis", vec![f32s(&[4, 7], 82)], vec![], |g, x, _| {
            let a = g.add(Prim::ArgMax { axis: 0 }, DType::I32, dims(&[7]), &[x[0]]);
            g.cast(a, DType::F32)
        }),
        case("reshape", vec![f32s(&[3, 5, 7], 83)], vec![], |g, x, _| {
            let r = g.reshape(x[0], dims(&[5, 21]));
            let e = g.unary(UnaryOp::Exp, r);
            g.reshape(e, dims(&[7, 15]))
        }),
        case("permute", vec![f32s(&[3, 5, 7], 84)], vec![], |g, x, _| {
            let p = g.permute(x[0], vec![2, 0, 1]);
            let t = g.unary(UnaryOp::Tanh, p);
            g.permute(t, vec![1, 0, 2])
        }),
        case(
            "broadcast size-1 and leading",
            vec![f32s(&[5, 1], 85), f32s(&[2, 5, 7], 86)],
            vec![],
            |g, x, _| {
                let b = g.broadcast(x[0], &dims(&[2, 5, 7]));
                g.mul(b, x[1])
            },
        ),
        case("slice", vec![f32s(&[9, 13], 87)], vec![], |g, x, _| {
            g.slice(x[0], 0, Dim::constant(2), Dim::constant(5), 1)
        }),
        case("slice step 3", vec![f32s(&[5, 13], 88)], vec![], |g, x, _| {
            g.slice(x[0], 1, Dim::constant(1), Dim::constant(4), 3)
        }),
        case(
            "concat",
            vec![f32s(&[2, 3], 89), f32s(&[2, 1], 90), f32s(&[2, 9], 91)],
            vec![],
            |g, x, _| {
                g.add(
                    Prim::Concat { axis: 1 },
                    DType::F32,
                    dims(&[2, 13]),
                    &[x[0], x[1], x[2]],
                )
            },
        ),
        case(
            "concat leading axis",
            vec![f32s(&[2, 7], 92), f32s(&[3, 7], 93)],
            vec![],
            |g, x, _| {
                let c = g.add(Prim::Concat { axis: 0 }, DType::F32, dims(&[5, 7]), &[x[0], x[1]]);
                g.unary(UnaryOp::Exp, c)
            },
        ),
        case("pad", vec![f32s(&[3, 7], 94)], vec![], |g, x, _| {
            g.pad(x[0], 1, Dim::constant(2), Dim::constant(4))
        }),
        case(
            "take",
            vec![f32s(&[5, 7], 95)],
            vec![ints(&[2, 3], &[0., 4., 4., 1., 7., -1.])],
            |g, x, c| g.add(Prim::Take, DType::F32, dims(&[2, 3, 7]), &[x[0], c[0]]),
        ),
        case(
            "scatter_rows",
            vec![f32s(&[4, 7], 96)],
            vec![ints(&[4], &[1., 1., 3., 9.])],
            |g, x, c| {
                g.add(
                    Prim::ScatterRows { rows: Dim::constant(5) },
                    DType::F32,
                    dims(&[5, 7]),
                    &[x[0], c[0]],
                )
            },
        ),
        case(
            "pick",
            vec![f32s(&[3, 13], 97)],
            vec![ints(&[3], &[0., 12., 13.])],
            |g, x, c| g.add(Prim::Pick, DType::F32, dims(&[3]), &[x[0], c[0]]),
        ),
        case(
            "place",
            vec![f32s(&[3], 98)],
            vec![ints(&[3], &[1., 0., -2.])],
            |g, x, c| {
                g.add(
                    Prim::Place {
                        classes: Dim::constant(13),
                    },
                    DType::F32,
                    dims(&[3, 13]),
                    &[x[0], c[0]],
                )
            },
        ),
        case(
            "matmul",
            vec![f32s(&[7, 13], 100), f32s(&[13, 5], 101)],
            vec![],
            |g, x, _| g.matmul(x[0], x[1]),
        ),
        case(
            "matmul of a transpose",
            vec![f32s(&[13, 7], 102), f32s(&[13, 5], 103)],
            vec![],
            |g, x, _| {
                let t = g.transpose_last(x[0]);
                g.matmul(t, x[1])
            },
        ),
        case(
            "matmul batched",
            vec![f32s(&[2, 3, 7], 104), f32s(&[2, 7, 5], 105)],
            vec![],
            |g, x, _| g.matmul(x[0], x[1]),
        ),
        case(
            "matmul with a broadcast weight",
            vec![f32s(&[2, 3, 7], 106), f32s(&[7, 5], 107)],
            vec![],
            |g, x, _| {
                let w = g.broadcast(x[1], &dims(&[2, 7, 5]));
                g.matmul(x[0], w)
            },
        ),
        case(
            "matmul of an expression",
            vec![f32s(&[4, 7], 108), f32s(&[7, 13], 109)],
            vec![],
            |g, x, _| {
                let e = g.unary(UnaryOp::Tanh, x[0]);
                g.matmul(e, x[1])
            },
        ),
        // Heads merged: the product is written straight into the
        // permutation's buffer (`fuse::written_product`).
        case(
            "matmul written through a permutation",
            vec![f32s(&[2, 3, 4, 5], 112), f32s(&[2, 3, 5, 6], 113)],
            vec![],
            |g, x, _| {
                let p = g.matmul(x[0], x[1]);
                g.permute(p, vec![0, 2, 1, 3])
            },
        ),
        case(
            "matmul written through a permutation, read merged",
            vec![f32s(&[2, 3, 4, 5], 114), f32s(&[2, 3, 5, 6], 115)],
            vec![],
            |g, x, _| {
                let p = g.matmul(x[0], x[1]);
                let merged = g.permute(p, vec![0, 2, 1, 3]);
                let merged = g.add(Prim::Reshape, DType::F32, dims(&[2, 4, 18]), &[merged]);
                g.unary(UnaryOp::Tanh, merged)
            },
        ),
        case(
            "matmul transposed by a permutation",
            vec![f32s(&[2, 3, 4, 5], 116), f32s(&[2, 3, 5, 6], 117)],
            vec![],
            |g, x, _| {
                let p = g.matmul(x[0], x[1]);
                g.permute(p, vec![0, 1, 3, 2])
            },
        ),
        // A layer's input gradient at a training batch (`dY·Wᵀ`, few rows,
        // wide): cut between the threads by columns (`wide_transposed`).
        case(
            "matmul of a wide transposed weight",
            vec![f32s(&[64, 260], 118), f32s(&[300, 260], 119)],
            vec![],
            |g, x, _| {
                let t = g.transpose_last(x[1]);
                g.matmul(x[0], t)
            },
        ),
        // A weight's product at a training batch: cut between the threads
        // along `k` (`gemm::by_depth`); its input gradient is the case above.
        case(
            "matmul of a parameter cut by depth",
            vec![f32s(&[64, 520], 120), f32s(&[520, 300], 121)],
            vec![],
            |g, x, _| g.matmul(x[0], x[1]),
        ),
        case(
            "matmul with a size-1 dimension",
            vec![f32s(&[1, 7], 110), f32s(&[7, 1], 111)],
            vec![],
            |g, x, _| g.matmul(x[0], x[1]),
        ),
    ]);
    let window = Window {
        kernel: 3,
        stride: 2,
        padding: 1,
    };
    cases.push(case(
        "unfold2d",
        vec![f32s(&[2, 2, 5, 7], 112)],
        vec![],
        move |g, x, _| g.add(Prim::Unfold2d(window), DType::F32, dims(&[2, 3, 4, 18]), &[x[0]]),
    ));
    cases.push(case(
        "fold2d",
        vec![f32s(&[2, 3, 4, 18], 113)],
        vec![],
        move |g, x, _| g.add(Prim::Fold2d(window), DType::F32, dims(&[2, 2, 5, 7]), &[x[0]]),
    ));
    let pool = Window {
        kernel: 2,
        stride: 2,
        padding: 0,
    };
    cases.push(case(
        "unfold2d pooling window",
        vec![f32s(&[2, 3, 4, 6], 114)],
        vec![],
        move |g, x, _| {
            let u = g.add(Prim::Unfold2d(pool), DType::F32, dims(&[2, 2, 3, 12]), &[x[0]]);
            let r = g.reshape(u, dims(&[2, 2, 3, 3, 4]));
            g.reduce(ReduceOp::Max, r, vec![4], false)
        },
    ));
    cases
}

#[test]
fn every_primitive_matches_the_interpreter() {
    let cases = primitive_cases();
    for case in &cases {
        check_case(case);
    }
    assert!(cases.len() >= 50, "{} cases", cases.len());
}

/// `exp`, `sigmoid` and `tanh` on the JIT at the values where their caps,
/// their cut-offs and their NaN handling decide (both sides of ±80, of
/// exp's ends and of tanh's ±9, the infinities, NaN): as the interpreter,
/// and exactly 0, ∞, 1 or ±1 where the result is, in vector lanes and a
/// scalar tail.
#[test]
fn exp_sigmoid_and_tanh_at_their_edges() {
    let edges = [
        f64::NEG_INFINITY,
        -1000.0,
        -100.0,
        -88.8,
        -87.4,
        -87.3,
        -80.5,
        -80.0,
        -9.5,
        -9.0,
        -20.0,
        -1e-8,
        0.0,
        1e-8,
        9.0,
        9.5,
        20.0,
        80.0,
        80.5,
        87.4,
        88.7,
        100.0,
        1000.0,
        f64::INFINITY,
        f64::NAN,
    ];
    for op in [UnaryOp::Exp, UnaryOp::Sigmoid, UnaryOp::Tanh] {
        // (`exp` of 100 or 1000: finite in `f64`, ∞ in `f32`.)
        let edges: Vec<f64> = edges
            .iter()
            .copied()
            .filter(|&v| op != UnaryOp::Exp || !(88.8..1e300).contains(&v))
            .collect();
        let x = ArrayD::from_shape_vec(IxDyn(&[edges.len()]), edges.clone()).unwrap();
        let case = case(op.name(), vec![x], vec![], unary(op));
        let (graph, env) = case_graph(&case, false);
        let compiled = compare_outputs(&case.name, &graph, &env, RTOL, ATOL);
        let y = compiled.output("y").unwrap();
        for (&v, &got) in edges.iter().zip(y.iter()) {
            let exact = match op {
                UnaryOp::Exp if v < -87.4 => Some(0.0),
                UnaryOp::Exp if v > 88.8 => Some(f64::INFINITY),
                UnaryOp::Sigmoid if v >= 100.0 => Some(1.0),
                UnaryOp::Tanh if v.abs() >= 9.0 => Some(v.signum()),
                _ => None,
            };
            if v.is_nan() {
                assert!(got.is_nan(), "{}(NaN) = {got}", op.name());
            } else if let Some(exact) = exact {
                assert_eq!(got, exact, "{}({v})", op.name());
            }
        }
    }
}

/// The JIT's sigmoid computes `1 / (1 + exp(min(-x, 80)))` with an `exp`
/// that knows its argument is at most 80 (no cap above, `2^n` in one
/// product): the same bits as the general `exp` in that formula, from -100
/// to 100 in steps of 0.01 and at the edges of `exp`'s range.
#[test]
fn sigmoid_has_the_bits_of_its_formula() {
    let mut values: Vec<f64> = (0..=20_000).map(|i| -100.0 + f64::from(i) * 0.01).collect();
    values.extend([
        -87.336_55,
        -87.336_56,
        -80.0,
        80.0,
        87.336_55,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ]);
    let x = ArrayD::from_shape_vec(IxDyn(&[values.len()]), values.clone()).unwrap();
    let mut g = Graph::new();
    let input = g.add(Prim::Input("x".into()), DType::F32, dims(&[values.len()]), &[]);
    let sigmoid = g.unary(UnaryOp::Sigmoid, input);
    let minus = g.unary(UnaryOp::Neg, input);
    let cap = g.fill_like(input, 80.0);
    let capped = g.binary(BinaryOp::Min, minus, cap);
    let e = g.unary(UnaryOp::Exp, capped);
    let one = g.fill_like(input, 1.0);
    let sum = g.binary(BinaryOp::Add, one, e);
    let formula = g.binary(BinaryOp::Div, one, sum);
    g.set_output("sigmoid", sigmoid);
    g.set_output("formula", formula);
    let mut compiled = nnc::codegen::Compiled::compile(&g, &HashMap::new(), &Default::default()).unwrap();
    compiled.run(&HashMap::from([("x".to_string(), x)]), 0, 0).unwrap();
    let (s, f) = (compiled.output("sigmoid").unwrap(), compiled.output("formula").unwrap());
    for ((v, a), b) in values.iter().zip(s.iter()).zip(f.iter()) {
        assert_eq!(a.to_bits(), b.to_bits(), "sigmoid({v}): {a} against the formula's {b}");
    }
}
