//! Reductions: `sum`, `max`, `mean` over one axis, a list or all of them,
//! `sync_mean` (the mean over every data-parallel process's share of the
//! batch) and `argmax`.

use super::args::{self, bad_axis, bool_arg, float_tensor, tensor};
use super::{Args, Out};
use crate::check::dims::Dim;
use crate::check::eval::Checker;
use crate::check::ops;
use crate::check::types::{TensorType, Value};
use crate::diagnostics::{codes, Diagnostic};
use crate::prim::{Prim, ReduceOp};
use crate::syntax::ast::DType;

/// The axes of a reduction: one axis, a list, or all when omitted.
pub(super) fn axes(checker: &mut Checker, a: &Args, i: usize, rank: usize) -> Option<Vec<usize>> {
    let Some(arg) = a.get(i) else {
        return Some((0..rank).collect());
    };
    let raw: Vec<Value> = match &arg.value {
        Value::List(items) => items.clone(),
        other => vec![other.clone()],
    };
    let mut out = Vec::new();
    for value in raw {
        let Some(n) = value.as_const_int() else {
            checker.report(
                Diagnostic::error(
                    codes::WRONG_KIND,
                    format!(
                        "axes of `{}` are constant integers, found {}",
                        a.name,
                        value.kind_name()
                    ),
                    arg.span,
                )
                .label("not an axis"),
            );
            return None;
        };
        let Some(axis) = ops::normalize_axis(n, rank) else {
            checker.report(bad_axis(a.name, n, rank, arg.span));
            return None;
        };
        if out.contains(&axis) {
            checker.report(
                Diagnostic::error(codes::BAD_AXIS, format!("axis {n} is listed twice"), arg.span)
                    .label("repeated axis"),
            );
            return None;
        }
        out.push(axis);
    }
    Some(out)
}

pub(super) fn reduce(checker: &mut Checker, a: &Args) -> Out {
    let t = if a.name == "max" {
        tensor(checker, a, 0)?
    } else {
        float_tensor(checker, a, 0)?
    };
    if t.ty.dtype == DType::Bool {
        checker.report(
            Diagnostic::error(
                codes::DTYPE_MISMATCH,
                format!("`{}` is not defined on bool tensors", a.name),
                a.span(0),
            )
            .label("bool tensor")
            .with_help("convert with `f32(...)` to count"),
        );
        return None;
    }
    let reduced = axes(checker, a, 1, t.ty.rank())?;
    let keepdims = bool_arg(checker, a, 2, false)?;
    let mut shape = Vec::new();
    for (i, d) in t.ty.shape.iter().enumerate() {
        if !reduced.contains(&i) {
            shape.push(d.clone());
        } else if keepdims {
            shape.push(Dim::constant(1));
        }
    }
    let ty = TensorType::new(t.ty.dtype, shape);
    let op = match a.name {
        "sum" => ReduceOp::Sum,
        "max" => ReduceOp::Max,
        _ => ReduceOp::Mean,
    };
    let mut axes = reduced;
    axes.sort_unstable();
    let mut node = checker.emit(Prim::Reduce { op, axes, keepdims }, &ty, &[t.node]);
    // While training, `sync_mean` is this process's mean summed over the
    // processes; the training step of one of P divides by P (the shares are
    // equal), that of a single process drops the sum
    // (`autodiff::optimizer::replicated_training_step`). In evaluation it is
    // `mean`: the processes evaluate alike.
    if a.name == "sync_mean" && checker.training {
        node = checker.emit(Prim::AllReduce, &ty, &[node]);
    }
    Some((ty, node))
}

pub(super) fn argmax(checker: &mut Checker, a: &Args) -> Out {
    let t = tensor(checker, a, 0)?;
    let axis = match a.get(1) {
        None if t.ty.rank() > 0 => t.ty.rank() - 1,
        None => {
            checker.report(
                Diagnostic::error(codes::RANK_MISMATCH, "`argmax` needs at least one dimension", a.span(0))
                    .label("a scalar"),
            );
            return None;
        }
        Some(_) => args::axis(checker, a, 1, t.ty.rank())?,
    };
    let mut shape = t.ty.shape.clone();
    shape.remove(axis);
    let ty = TensorType::new(DType::I32, shape);
    let node = checker.emit(Prim::ArgMax { axis }, &ty, &[t.node]);
    Some((ty, node))
}
