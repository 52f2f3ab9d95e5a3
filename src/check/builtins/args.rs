//! Argument kinds shared by the builtins: a tensor (numbers become scalar
//! tensors), a float tensor, a size, a constant integer, a boolean, a shape
//! and an axis, each reporting a diagnostic at the argument when it does
//! not fit.

use super::Args;
use crate::check::dims::Dim;
use crate::check::eval::{plural, Checker};
use crate::check::ops;
use crate::check::types::{Tensor, TensorType, Value};
use crate::diagnostics::{codes, Diagnostic, Span};
use crate::syntax::ast::DType;

/// The tensor argument `i`; numbers become scalar tensors (`f32` for
/// fractions, `i32` for whole numbers).
pub(super) fn tensor(checker: &mut Checker, a: &Args, i: usize) -> Option<Tensor> {
    let span = a.span(i);
    let value = a.value(i);
    let scalar = |checker: &mut Checker, dtype| {
        Some(Tensor {
            ty: TensorType::scalar(dtype),
            origin: span,
            node: checker.scalar_node(&value, dtype),
        })
    };
    match &value {
        Value::Tensor(t) => Some(t.clone()),
        Value::Float(_) => scalar(checker, DType::F32),
        Value::Int(_) => scalar(checker, DType::I32),
        Value::Bool(_) => scalar(checker, DType::Bool),
        Value::Error => None,
        other => {
            checker.report(
                Diagnostic::error(
                    codes::WRONG_KIND,
                    format!("`{}` needs a tensor, found {}", a.name, other.kind_name()),
                    span,
                )
                .label("not a tensor"),
            );
            None
        }
    }
}

/// A float tensor argument; whole numbers are accepted as `f32` scalars.
pub(super) fn float_tensor(checker: &mut Checker, a: &Args, i: usize) -> Option<Tensor> {
    let value = a.value(i);
    let mut t = tensor(checker, a, i)?;
    if matches!(value, Value::Int(_)) {
        t.ty.dtype = DType::F32;
        t.node = checker.scalar_node(&value, DType::F32);
    }
    if !t.ty.dtype.is_float() {
        checker.report(
            Diagnostic::error(
                codes::DTYPE_MISMATCH,
                format!("`{}` needs a float tensor, found {}", a.name, t.ty),
                a.span(i),
            )
            .label(format!("this is {}", t.ty))
            .with_help("convert with `f32(...)`"),
        );
        return None;
    }
    Some(t)
}

pub(super) fn int_arg(checker: &mut Checker, a: &Args, i: usize) -> Option<Dim> {
    let value = a.value(i);
    checker.expect_dim(value, a.span(i))
}

pub(super) fn const_int(checker: &mut Checker, a: &Args, i: usize, what: &str) -> Option<i64> {
    let value = a.value(i);
    match value.as_const_int() {
        Some(n) => Some(n),
        None if matches!(value, Value::Error) => None,
        None => {
            checker.report(
                Diagnostic::error(
                    codes::NOT_CONSTANT,
                    format!(
                        "{what} of `{}` must be a constant integer, found {}",
                        a.name,
                        value.kind_name()
                    ),
                    a.span(i),
                )
                .label("not a constant integer"),
            );
            None
        }
    }
}

pub(super) fn bool_arg(checker: &mut Checker, a: &Args, i: usize, default: bool) -> Option<bool> {
    match a.get(i).map(|a| &a.value) {
        None => Some(default),
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            let text = other.kind_name();
            checker.report(
                Diagnostic::error(
                    codes::WRONG_KIND,
                    format!("`{}` needs `true` or `false` here, found {text}", a.name),
                    a.span(i),
                )
                .label("not a boolean"),
            );
            None
        }
    }
}

/// A shape given as a list of sizes, e.g. `[N, 4 * D]`.
pub(super) fn shape_arg(checker: &mut Checker, a: &Args, i: usize) -> Option<Vec<Dim>> {
    let span = a.span(i);
    match a.value(i) {
        Value::List(items) => {
            let mut shape = Vec::new();
            for item in items {
                shape.push(checker.expect_dim(item, span)?);
            }
            Some(shape)
        }
        Value::Error => None,
        other => {
            checker.report(
                Diagnostic::error(
                    codes::WRONG_KIND,
                    format!(
                        "`{}` needs a shape such as `[N, 10]`, found {}",
                        a.name,
                        other.kind_name()
                    ),
                    span,
                )
                .label("not a list of sizes"),
            );
            None
        }
    }
}

pub(super) fn axis(checker: &mut Checker, a: &Args, i: usize, rank: usize) -> Option<usize> {
    let raw = const_int(checker, a, i, "the axis")?;
    match ops::normalize_axis(raw, rank) {
        Some(axis) => Some(axis),
        None => {
            checker.report(bad_axis(a.name, raw, rank, a.span(i)));
            None
        }
    }
}

pub(super) fn bad_axis(name: &str, raw: i64, rank: usize, span: Span) -> Diagnostic {
    Diagnostic::error(
        codes::BAD_AXIS,
        format!(
            "axis {raw} is out of range for `{name}` of a tensor with {rank} dimension{}",
            plural(rank)
        ),
        span,
    )
    .label(format!("valid axes are {} to {}", -(rank as i64), rank as i64 - 1))
}
