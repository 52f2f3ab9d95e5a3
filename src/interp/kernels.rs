//! Kernels for leaves that make values, element-wise ops, reductions and
//! matrix products. Each takes its operands and returns the result or a
//! message saying what is wrong with the operands; the caller checks the
//! result's shape against the node.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array3, ArrayD, Axis, IxDyn, Zip};

use super::random;
use crate::prim::{BinaryOp, Distribution, ReduceOp, UnaryOp};

pub type KResult = Result<ArrayD<f64>, String>;

/// Kernels whose result can be larger than their operands call this before
/// allocating: an ill-formed node fails here instead of allocating a
/// tensor of the wrong (possibly huge) size.
pub fn expect_shape(computed: &[usize], node: &[usize]) -> Result<(), String> {
    if computed == node {
        Ok(())
    } else {
        Err(format!("the result is {computed:?}, but the node is {node:?}"))
    }
}

/// `shape` with every element `value`.
pub fn fill(shape: &[usize], value: f64) -> ArrayD<f64> {
    ArrayD::from_elem(IxDyn(shape), value)
}

/// Row-major array of `shape` whose element at flat index `i` is `f(i)`.
fn from_flat(shape: &[usize], f: impl Fn(usize) -> f64) -> ArrayD<f64> {
    let count: usize = shape.iter().product();
    let data: Vec<f64> = (0..count).map(f).collect();
    ArrayD::from_shape_vec(IxDyn(shape), data).expect("the data has the shape's size")
}

/// `0, 1, 2, ...` along `axis`.
pub fn iota(shape: &[usize], axis: usize) -> KResult {
    if axis >= shape.len() {
        return Err(format!("axis {axis} of a rank-{} shape", shape.len()));
    }
    let size = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    // With a zero-size shape there are no elements and the closure never runs.
    Ok(from_flat(shape, |i| ((i / inner) % size) as f64))
}

/// Element `i` (row-major) is draw `i` of the stream.
/// Draws `offset..offset + count` of `stream` at `(seed, step)`.
pub fn random(shape: &[usize], dist: Distribution, (seed, step): (u64, u64), stream: u64, offset: u64) -> ArrayD<f64> {
    let draw = match dist {
        Distribution::Uniform => random::tensor_uniform,
        Distribution::Normal => random::tensor_normal,
    };
    from_flat(shape, |i| draw(seed, step, stream, offset + i as u64))
}

pub fn unary(op: UnaryOp, x: &ArrayD<f64>) -> ArrayD<f64> {
    x.mapv(|v| op.apply(v))
}

fn same_shape(what: &str, a: &ArrayD<f64>, b: &ArrayD<f64>) -> Result<(), String> {
    if a.shape() == b.shape() {
        Ok(())
    } else {
        Err(format!(
            "{what} have different shapes: {:?} and {:?}",
            a.shape(),
            b.shape()
        ))
    }
}

pub fn binary(op: BinaryOp, a: &ArrayD<f64>, b: &ArrayD<f64>) -> KResult {
    same_shape("the operands", a, b)?;
    Ok(Zip::from(a).and(b).map_collect(|&x, &y| op.apply(x, y)))
}

/// `(condition, a, b)`: `a` where the condition is non-zero, else `b`.
pub fn select(condition: &ArrayD<f64>, a: &ArrayD<f64>, b: &ArrayD<f64>) -> KResult {
    same_shape("the condition and the first branch", condition, a)?;
    same_shape("the branches", a, b)?;
    Ok(Zip::from(condition)
        .and(a)
        .and(b)
        .map_collect(|&c, &x, &y| if c != 0.0 { x } else { y }))
}

/// Sum, max or mean over `axes` (in any order; repeats count once). Mean
/// divides by the number of reduced elements; max of nothing is -inf.
pub fn reduce(op: ReduceOp, axes: &[usize], keepdims: bool, x: &ArrayD<f64>) -> KResult {
    let mut axes = axes.to_vec();
    axes.sort_unstable();
    axes.dedup();
    if let Some(bad) = axes.iter().find(|&&a| a >= x.ndim()) {
        return Err(format!("axis {bad} of a rank-{} operand", x.ndim()));
    }
    let mut y = x.clone();
    // Highest axis first, so the lower axis numbers stay valid.
    for &axis in axes.iter().rev() {
        y = match op {
            ReduceOp::Sum | ReduceOp::Mean => y.sum_axis(Axis(axis)),
            ReduceOp::Max => y.fold_axis(Axis(axis), f64::NEG_INFINITY, |&m, &v| m.max(v)),
        };
    }
    if op == ReduceOp::Mean {
        let count: usize = axes.iter().map(|&a| x.shape()[a]).product();
        y.mapv_inplace(|v| v / count as f64);
    }
    if keepdims {
        let kept: Vec<usize> = (0..x.ndim())
            .map(|a| if axes.contains(&a) { 1 } else { x.shape()[a] })
            .collect();
        y = super::layout::reshape(&y, &kept)?;
    }
    Ok(y)
}

/// Index of the largest element along `axis`; the first one on ties (a NaN
/// is never larger).
pub fn argmax(axis: usize, x: &ArrayD<f64>) -> KResult {
    if axis >= x.ndim() {
        return Err(format!("axis {axis} of a rank-{} operand", x.ndim()));
    }
    if x.shape()[axis] == 0 {
        return Err(format!("argmax along axis {axis}, which is empty"));
    }
    Ok(x.map_axis(Axis(axis), |lane| {
        let mut best = 0;
        for (i, &v) in lane.iter().enumerate() {
            if v > lane[best] {
                best = i;
            }
        }
        best as f64
    }))
}

/// `[..., m, k] @ [..., k, n]` with equal batch dimensions: one GEMM per
/// batch entry.
pub fn matmul(a: &ArrayD<f64>, b: &ArrayD<f64>, node: &[usize]) -> KResult {
    let rank = a.ndim();
    let (sa, sb) = (a.shape(), b.shape());
    if rank < 2 || b.ndim() != rank {
        return Err(format!("needs equal ranks of at least 2: {sa:?} @ {sb:?}"));
    }
    if sa[..rank - 2] != sb[..rank - 2] || sa[rank - 1] != sb[rank - 2] {
        return Err(format!("shapes do not fit: {sa:?} @ {sb:?}"));
    }
    let (m, k, n) = (sa[rank - 2], sa[rank - 1], sb[rank - 1]);
    let mut shape = sa[..rank - 1].to_vec();
    shape.push(n);
    expect_shape(&shape, node)?;
    let batch: usize = sa[..rank - 2].iter().product();
    let a = a.as_standard_layout();
    let b = b.as_standard_layout();
    let a3 = a
        .view()
        .into_shape_with_order((batch, m, k))
        .map_err(|e| e.to_string())?;
    let b3 = b
        .view()
        .into_shape_with_order((batch, k, n))
        .map_err(|e| e.to_string())?;
    let mut out = Array3::<f64>::zeros((batch, m, n));
    if m > 0 && k > 0 && n > 0 {
        for i in 0..batch {
            general_mat_mul(
                1.0,
                &a3.index_axis(Axis(0), i),
                &b3.index_axis(Axis(0), i),
                0.0,
                &mut out.index_axis_mut(Axis(0), i),
            );
        }
    }
    out.into_dyn()
        .into_shape_with_order(IxDyn(&shape))
        .map_err(|e| e.to_string())
}
