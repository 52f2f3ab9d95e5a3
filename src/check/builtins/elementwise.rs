//! Element-wise builtins: `exp`, `log`, `sqrt`, `tanh`, `sigmoid`, `sin`, `cos`,
//! `abs`, `maximum`, `minimum`, `pow`, `where` and the casts `f32`, `i32`.

use super::args::{float_tensor, tensor};
use super::{Args, Out};
use crate::check::dims::format_shape;
use crate::check::eval::Checker;
use crate::check::ops::{self, ElementwiseKind, Operand};
use crate::check::types::{Tensor, TensorType};
use crate::diagnostics::{codes, Diagnostic};
use crate::prim::{BinaryOp, Prim, UnaryOp};
use crate::syntax::ast::DType;

pub(super) fn unary_float(checker: &mut Checker, a: &Args) -> Out {
    let t = float_tensor(checker, a, 0)?;
    let op = match a.name {
        "exp" => UnaryOp::Exp,
        "log" => UnaryOp::Log,
        "sqrt" => UnaryOp::Sqrt,
        "tanh" => UnaryOp::Tanh,
        "sigmoid" => UnaryOp::Sigmoid,
        "sin" => UnaryOp::Sin,
        _ => UnaryOp::Cos,
    };
    let node = checker.emit(Prim::Unary(op), &t.ty, &[t.node]);
    Some((t.ty, node))
}

pub(super) fn unary_numeric(checker: &mut Checker, a: &Args) -> Out {
    let t = tensor(checker, a, 0)?;
    if t.ty.dtype == DType::Bool {
        checker.report(
            Diagnostic::error(
                codes::DTYPE_MISMATCH,
                format!("`{}` is not defined on bool tensors", a.name),
                a.span(0),
            )
            .label("bool tensor"),
        );
        return None;
    }
    let node = checker.emit(Prim::Unary(UnaryOp::Abs), &t.ty, &[t.node]);
    Some((t.ty, node))
}

/// Numbers next to a tensor take the tensor's dtype, as in operators.
fn operands(checker: &mut Checker, a: &Args, first: usize, second: usize) -> Option<(Tensor, Tensor)> {
    let (x, y) = (a.value(first), a.value(second));
    let tx = checker.promote(&x, &y, a.span(first));
    let ty = checker.promote(&y, &x, a.span(second));
    match (tx, ty) {
        (Some(tx), Some(ty)) => Some((tx, ty)),
        _ => {
            let bad = if checker.promote(&x, &y, a.span(first)).is_none() {
                first
            } else {
                second
            };
            checker.report(
                Diagnostic::error(
                    codes::WRONG_KIND,
                    format!(
                        "`{}` needs tensors or numbers, found {}",
                        a.name,
                        a.value(bad).kind_name()
                    ),
                    a.span(bad),
                )
                .label("not a tensor"),
            );
            None
        }
    }
}

pub(super) fn binary(checker: &mut Checker, a: &Args) -> Out {
    let (x, y) = operands(checker, a, 0, 1)?;
    let result = ops::elementwise_named(
        a.name,
        ElementwiseKind::Arithmetic,
        a.span,
        Operand {
            tensor: &x,
            span: a.span(0),
        },
        Operand {
            tensor: &y,
            span: a.span(1),
        },
    );
    let ty = result.map_err(|d| checker.report(d)).ok()?;
    let op = match a.name {
        "maximum" => BinaryOp::Max,
        "minimum" => BinaryOp::Min,
        _ => BinaryOp::Pow,
    };
    let node = checker.elementwise_node(op, &x, &y, &ty);
    Some((ty, node))
}

pub(super) fn select(checker: &mut Checker, a: &Args) -> Out {
    let condition = tensor(checker, a, 0)?;
    if condition.ty.dtype != DType::Bool {
        checker.report(
            Diagnostic::error(
                codes::DTYPE_MISMATCH,
                format!("the condition of `where` must be a bool tensor, found {}", condition.ty),
                a.span(0),
            )
            .label("not bool")
            .with_help("compare to make a mask, e.g. `x > 0.0`"),
        );
        return None;
    }
    let (x, y) = operands(checker, a, 1, 2)?;
    let values = ops::elementwise_named(
        "where",
        ElementwiseKind::Arithmetic,
        a.span,
        Operand {
            tensor: &x,
            span: a.span(1),
        },
        Operand {
            tensor: &y,
            span: a.span(2),
        },
    );
    let values = match values {
        Ok(ty) => ty,
        Err(d) => {
            checker.report(d);
            return None;
        }
    };
    match ops::broadcast(&condition.ty.shape, &values.shape) {
        Ok(shape) => {
            let ty = TensorType::new(values.dtype, shape);
            let c = checker.broadcast_node(&condition, &ty.shape);
            let p = checker.broadcast_node(&x, &ty.shape);
            let q = checker.broadcast_node(&y, &ty.shape);
            let node = checker.emit(Prim::Select, &ty, &[c, p, q]);
            Some((ty, node))
        }
        Err((axis, dc, dv)) => {
            checker.report(
                Diagnostic::error(
                    codes::BROADCAST_MISMATCH,
                    format!(
                        "the condition {} of `where` does not broadcast with the values {}",
                        format_shape(&condition.ty.shape),
                        format_shape(&values.shape)
                    ),
                    a.span(0),
                )
                .label(format!("axis {axis}: {dc} vs {dv}")),
            );
            None
        }
    }
}

pub(super) fn cast(checker: &mut Checker, a: &Args, dtype: DType) -> Out {
    let t = tensor(checker, a, 0)?;
    let node = checker.cast_node(&t, dtype);
    Some((TensorType::new(dtype, t.ty.shape), node))
}
