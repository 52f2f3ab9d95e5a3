//! Indexing a tensor: `x[i]`, `x[:, 0:H]`, `x[..., -1]` (not a builtin
//! function, but the same kind of shape rule).

use crate::check::dims::Dim;
use crate::check::eval::{plural, Checker};
use crate::check::scope::Scope;
use crate::check::types::{Tensor, TensorType, Value};
use crate::diagnostics::{codes, Diagnostic, Span};
use crate::prim::Prim;
use crate::syntax::ast;

/// `x[i]`, `x[:, 0:H]`, `x[..., -1]`: constant indices and slices; an index
/// removes its axis.
pub fn slice(
    checker: &mut Checker,
    tensor: Tensor,
    base_span: Span,
    items: &[ast::IndexItem],
    scope: &mut Scope,
    span: Span,
) -> Value {
    let rank = tensor.ty.rank();
    let ellipses = items
        .iter()
        .filter(|i| matches!(i, ast::IndexItem::Ellipsis(_)))
        .count();
    if ellipses > 1 {
        return checker.error(
            Diagnostic::error(codes::BAD_AXIS, "an index can hold only one `...`", span).label("more than one `...`"),
        );
    }
    let explicit = items.len() - ellipses;
    if explicit > rank {
        return checker.error(
            Diagnostic::error(
                codes::INDEX_OUT_OF_RANGE,
                format!("{explicit} indices for a tensor with {rank} dimension{}", plural(rank)),
                span,
            )
            .label("too many indices")
            .with_secondary(base_span, format!("this is {}", tensor.ty)),
        );
    }
    let mut shape = Vec::new();
    let mut axis = 0;
    // The tensor so far keeps every axis (indexed ones with size 1) until a
    // final reshape drops the indexed axes.
    let mut node = tensor.node;
    let mut full_shape = tensor.ty.shape.clone();
    let mut indexed = false;
    for item in items {
        match item {
            ast::IndexItem::Ellipsis(_) => {
                let count = rank - explicit;
                shape.extend_from_slice(&tensor.ty.shape[axis..axis + count]);
                axis += count;
            }
            ast::IndexItem::Index(expr) => {
                let size = tensor.ty.shape[axis].clone();
                let value = checker.eval(expr, scope);
                let position = match value.as_const_int() {
                    Some(n) if n < 0 => match size.as_const() {
                        Some(len) if n + len >= 0 => Dim::constant(n + len),
                        _ => {
                            return checker.error(
                                Diagnostic::error(
                                    codes::INDEX_OUT_OF_RANGE,
                                    format!("index {n} is out of range for axis {axis} of size {size}"),
                                    expr.span,
                                )
                                .label("out of range"),
                            )
                        }
                    },
                    _ => match checker.expect_dim(value, expr.span) {
                        Some(position) => position,
                        None => return Value::Error,
                    },
                };
                if let (Some(p), Some(n)) = (position.as_const(), size.as_const()) {
                    if p >= n {
                        return checker.error(
                            Diagnostic::error(
                                codes::INDEX_OUT_OF_RANGE,
                                format!("index {p} is out of range for axis {axis} of size {n}"),
                                expr.span,
                            )
                            .label("out of range")
                            .with_secondary(base_span, format!("this is {}", tensor.ty)),
                        );
                    }
                }
                full_shape[axis] = Dim::constant(1);
                let ty = TensorType::new(tensor.ty.dtype, full_shape.clone());
                let op = Prim::Slice {
                    axis,
                    start: position,
                    step: 1,
                };
                node = checker.emit(op, &ty, &[node]);
                indexed = true;
                axis += 1;
            }
            ast::IndexItem::Slice {
                start,
                end,
                step,
                span: item_span,
            } => {
                let size = tensor.ty.shape[axis].clone();
                let mut bound = |expr: &Option<Box<ast::Expr>>, default: Dim| -> Option<Dim> {
                    let Some(expr) = expr else {
                        return Some(default);
                    };
                    let value = checker.eval(expr, scope);
                    // Negative constants count from the end.
                    if let Some(n) = value.as_const_int() {
                        if n < 0 {
                            return Some(size.add(&Dim::constant(n)));
                        }
                    }
                    checker.expect_dim(value, expr.span)
                };
                let Some(lo) = bound(start, Dim::constant(0)) else {
                    return Value::Error;
                };
                let Some(hi) = bound(end, size.clone()) else {
                    return Value::Error;
                };
                let stride = match step {
                    None => 1,
                    Some(expr) => {
                        let value = checker.eval(expr, scope);
                        match value.as_const_int() {
                            Some(n) if n >= 1 => n,
                            _ => {
                                return checker.error(
                                    Diagnostic::error(
                                        codes::BAD_VALUE,
                                        "a slice step must be a constant of at least 1",
                                        expr.span,
                                    )
                                    .label("bad step"),
                                )
                            }
                        }
                    }
                };
                let length = hi.sub(&lo);
                let in_range = match (lo.as_const(), hi.as_const(), size.as_const()) {
                    (Some(l), Some(h), Some(n)) => 0 <= l && l <= h && h <= n,
                    (Some(l), Some(h), None) => 0 <= l && l <= h,
                    _ => true,
                };
                if !in_range || length.as_const().is_some_and(|n| n < 0) {
                    return checker.error(
                        Diagnostic::error(
                            codes::INDEX_OUT_OF_RANGE,
                            format!("slice {lo}:{hi} is out of range for axis {axis} of size {size}"),
                            *item_span,
                        )
                        .label("out of range")
                        .with_secondary(base_span, format!("this is {}", tensor.ty)),
                    );
                }
                let length = if stride == 1 {
                    length
                } else {
                    match length.as_const() {
                        Some(n) => Dim::constant((n + stride - 1) / stride),
                        None => {
                            return checker.error(
                                Diagnostic::error(
                                    codes::NOT_CONSTANT,
                                    "a strided slice needs known bounds",
                                    *item_span,
                                )
                                .label("bounds are symbolic"),
                            )
                        }
                    }
                };
                if !(lo.as_const() == Some(0) && length == size && stride == 1) {
                    full_shape[axis] = length.clone();
                    let ty = TensorType::new(tensor.ty.dtype, full_shape.clone());
                    let op = Prim::Slice {
                        axis,
                        start: lo,
                        step: stride,
                    };
                    node = checker.emit(op, &ty, &[node]);
                }
                shape.push(length);
                axis += 1;
            }
        }
    }
    shape.extend_from_slice(&tensor.ty.shape[axis..]);
    let ty = TensorType::new(tensor.ty.dtype, shape);
    if indexed {
        node = checker.emit(Prim::Reshape, &ty, &[node]);
    }
    Value::Tensor(Tensor { ty, origin: span, node })
}
