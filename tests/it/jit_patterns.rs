//! Fused patterns on the JIT against the interpreter: what layers make of
//! several primitives (softmax, cross entropy, layer norm, an Adam update,
//! masked attention, a convolution as unfold and product, ...), checked as
//! `jit_ops.rs` checks each primitive.

use nnc::ir::{Graph, NodeId};
use nnc::prim::{BinaryOp, DType, Prim, ReduceOp, UnaryOp, Window};

use crate::jit_ops::{array, case, check_case, dims, f32s, ints, positive, Case};

/// Layer norm over the last axis with a learned scale and shift.
fn layer_norm(g: &mut Graph, x: NodeId, gamma: NodeId, beta: NodeId) -> NodeId {
    let shape = g.shape(x);
    let last = shape.len() - 1;
    let mean = g.reduce(ReduceOp::Mean, x, vec![last], true);
    let mean = g.broadcast(mean, &shape);
    let centered = g.sub(x, mean);
    let square = g.mul(centered, centered);
    let var = g.reduce(ReduceOp::Mean, square, vec![last], true);
    let eps = g.scalar(1e-5, DType::F32);
    let var = g.add_nodes(var, eps);
    let std = g.unary(UnaryOp::Sqrt, var);
    let std = g.broadcast(std, &shape);
    let normed = g.div(centered, std);
    let gamma = g.broadcast(gamma, &shape);
    let beta = g.broadcast(beta, &shape);
    let scaled = g.mul(normed, gamma);
    g.add_nodes(scaled, beta)
}

/// Softmax over the last axis.
fn softmax(g: &mut Graph, x: NodeId) -> NodeId {
    let shape = g.shape(x);
    let last = shape.len() - 1;
    let max = g.reduce(ReduceOp::Max, x, vec![last], true);
    let max = g.broadcast(max, &shape);
    let shifted = g.sub(x, max);
    let e = g.unary(UnaryOp::Exp, shifted);
    let sum = g.reduce(ReduceOp::Sum, e, vec![last], true);
    let sum = g.broadcast(sum, &shape);
    g.div(e, sum)
}

fn pattern_cases() -> Vec<Case> {
    vec![
        case(
            "softmax rows of 13",
            vec![array(&[7, 13], 120, -5.0, 5.0)],
            vec![],
            |g, x, _| softmax(g, x[0]),
        ),
        case("softmax rows of 1", vec![f32s(&[5, 1], 121)], vec![], |g, x, _| {
            softmax(g, x[0])
        }),
        case(
            "cross entropy",
            vec![array(&[7, 13], 122, -3.0, 3.0)],
            vec![ints(&[7], &[0., 12., 5., 3., -1., 7., 1.])],
            |g, x, c| {
                let shape = g.shape(x[0]);
                let max = g.reduce(ReduceOp::Max, x[0], vec![1], true);
                let max = g.broadcast(max, &shape);
                let shifted = g.sub(x[0], max);
                let e = g.unary(UnaryOp::Exp, shifted);
                let sum = g.reduce(ReduceOp::Sum, e, vec![1], true);
                let log = g.unary(UnaryOp::Log, sum);
                let log = g.broadcast(log, &shape);
                let logp = g.sub(shifted, log);
                let picked = g.add(Prim::Pick, DType::F32, dims(&[7]), &[logp, c[0]]);
                let nll = g.neg(picked);
                let minus_one = g.add(Prim::Const(-1.0), DType::I32, dims(&[7]), &[]);
                let valid = g.binary(BinaryOp::Ne, c[0], minus_one);
                let valid = g.cast(valid, DType::F32);
                let masked = g.mul(nll, valid);
                let total = g.sum_all(masked);
                let count = g.sum_all(valid);
                g.div(total, count)
            },
        ),
        case(
            "layer norm",
            vec![f32s(&[2, 3, 13], 123), positive(&[13], 124), f32s(&[13], 125)],
            vec![],
            |g, x, _| layer_norm(g, x[0], x[1], x[2]),
        ),
        case(
            "residual then layer norm",
            vec![
                f32s(&[5, 7], 126),
                f32s(&[5, 7], 127),
                positive(&[7], 128),
                f32s(&[7], 129),
            ],
            vec![],
            |g, x, _| {
                let sum = g.add_nodes(x[0], x[1]);
                let normed = layer_norm(g, sum, x[2], x[3]);
                g.add_nodes(normed, sum)
            },
        ),
        case(
            "linear and relu",
            vec![f32s(&[5, 7], 130), f32s(&[7, 13], 131), f32s(&[13], 132)],
            vec![],
            |g, x, _| {
                let y = g.matmul(x[0], x[1]);
                let b = g.broadcast(x[2], &g.shape(y));
                let y = g.add_nodes(y, b);
                let zero = g.fill_like(y, 0.0);
                g.binary(BinaryOp::Max, y, zero)
            },
        ),
        case(
            "adam update",
            vec![
                f32s(&[13, 7], 133),
                f32s(&[13, 7], 134),
                f32s(&[13, 7], 135),
                positive(&[13, 7], 136),
            ],
            vec![],
            |g, x, _| {
                // x0 = param, x1 = gradient, x2 = m, x3 = v
                let (p, grad, m, v) = (x[0], x[1], x[2], x[3]);
                let m_kept = g.scale(m, 0.9);
                let m_new = g.scale(grad, 0.1);
                let m_next = g.add_nodes(m_kept, m_new);
                let square = g.mul(grad, grad);
                let v_kept = g.scale(v, 0.999);
                let v_new = g.scale(square, 0.001);
                let v_next = g.add_nodes(v_kept, v_new);
                let step = g.scalar(3.0, DType::F32);
                let beta = g.scalar(0.9, DType::F32);
                let power = g.binary(BinaryOp::Pow, beta, step);
                let one = g.scalar(1.0, DType::F32);
                let correction = g.sub(one, power);
                let m_hat = g.div(m_next, correction);
                let root = g.unary(UnaryOp::Sqrt, v_next);
                let eps = g.scalar(1e-8, DType::F32);
                let denominator = g.add_nodes(root, eps);
                let direction = g.div(m_hat, denominator);
                let lr = g.scalar(0.01, DType::F32);
                let stepped = g.mul(direction, lr);
                g.sub(p, stepped)
            },
        ),
        case(
            "masked attention",
            vec![f32s(&[2, 5, 3], 137), f32s(&[2, 5, 3], 138), f32s(&[2, 5, 3], 139)],
            vec![],
            |g, x, _| {
                let kt = g.transpose_last(x[1]);
                let scores = g.matmul(x[0], kt);
                let scores = g.scale(scores, 1.0 / 3f64.sqrt());
                let shape = dims(&[2, 5, 5]);
                let row = g.add(Prim::Iota { axis: 1 }, DType::I32, shape.clone(), &[]);
                let col = g.add(Prim::Iota { axis: 2 }, DType::I32, shape.clone(), &[]);
                let causal = g.binary(BinaryOp::Le, col, row);
                let minus = g.add(Prim::Const(-1e9), DType::F32, shape, &[]);
                let masked = g.select(causal, scores, minus);
                let weights = softmax(g, masked);
                g.matmul(weights, x[2])
            },
        ),
        case(
            "bias gradient over a batch",
            vec![f32s(&[4, 3, 13], 140), f32s(&[13], 141)],
            vec![],
            |g, x, _| {
                let b = g.broadcast(x[1], &g.shape(x[0]));
                let y = g.add_nodes(x[0], b);
                g.unary(UnaryOp::Tanh, y)
            },
        ),
        case(
            "convolution as unfold and matmul",
            vec![f32s(&[2, 3, 6, 5], 142), f32s(&[27, 4], 143)],
            vec![],
            |g, x, _| {
                let window = Window {
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                };
                let patches = g.add(Prim::Unfold2d(window), DType::F32, dims(&[2, 6, 5, 27]), &[x[0]]);
                let rows = g.reshape(patches, dims(&[2, 30, 27]));
                let w = g.broadcast(x[1], &dims(&[2, 27, 4]));
                let y = g.matmul(rows, w);
                let zero = g.fill_like(y, 0.0);
                g.binary(BinaryOp::Max, y, zero)
            },
        ),
        case(
            "sum of matrix products",
            vec![
                f32s(&[5, 7], 146),
                f32s(&[7, 13], 147),
                f32s(&[5, 3], 148),
                f32s(&[3, 13], 149),
                f32s(&[5, 13], 150),
            ],
            vec![],
            |g, x, _| {
                let p = g.matmul(x[0], x[1]);
                let q = g.matmul(x[2], x[3]);
                let r = g.matmul(x[0], x[1]);
                let s = g.add_nodes(p, q);
                let s = g.add_nodes(s, r);
                g.mul(s, x[4])
            },
        ),
        case(
            "embedding lookup and positional sum",
            vec![f32s(&[11, 6], 144), f32s(&[5, 6], 145)],
            vec![ints(
                &[3, 5],
                &[0., 1., 2., 10., 4., 5., 5., 5., 9., 0., 3., 3., 7., 8., 6.],
            )],
            |g, x, c| {
                let e = g.add(Prim::Take, DType::F32, dims(&[3, 5, 6]), &[x[0], c[0]]);
                let p = g.broadcast(x[1], &dims(&[3, 5, 6]));
                let s = g.add_nodes(e, p);
                g.unary(UnaryOp::Tanh, s)
            },
        ),
    ]
}

#[test]
fn every_fused_pattern_matches_the_interpreter() {
    for case in &pattern_cases() {
        check_case(case);
    }
}
