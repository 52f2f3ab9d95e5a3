//! Shape and dtype rules of the operators: broadcasting, element-wise
//! arithmetic, comparisons and the matrix product.

use super::dims::{format_shape, Dim};
use super::types::{Tensor, TensorType};
use crate::diagnostics::{codes, Diagnostic, Span};
use crate::syntax::ast::{BinaryOp, DType};

/// An operand as the rules see it: its tensor and the expression it came from.
pub struct Operand<'a> {
    pub tensor: &'a Tensor,
    pub span: Span,
}

/// Adds labels saying what an operand is and where its shape was declared.
pub fn explain(mut diagnostic: Diagnostic, name: &str, operand: &Operand) -> Diagnostic {
    diagnostic = diagnostic.with_secondary(operand.span, format!("{name} is {}", operand.tensor.ty));
    let origin = operand.tensor.origin;
    let overlaps =
        origin.file == operand.span.file && origin.start < operand.span.end && operand.span.start < origin.end;
    if !overlaps && origin != Span::default() {
        diagnostic = diagnostic.with_secondary(origin, format!("{name}'s shape comes from here"));
    }
    diagnostic
}

/// Numpy broadcasting: align on the right; equal sizes or a size of 1.
pub fn broadcast(a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>, (usize, Dim, Dim)> {
    let rank = a.len().max(b.len());
    let one = Dim::constant(1);
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            &a[i + a.len() - rank]
        } else {
            &one
        };
        let db = if i + b.len() >= rank {
            &b[i + b.len() - rank]
        } else {
            &one
        };
        if da == db || *db == one {
            out.push(da.clone());
        } else if *da == one {
            out.push(db.clone());
        } else {
            return Err((i, da.clone(), db.clone()));
        }
    }
    Ok(out)
}

/// The result type of an element-wise binary operator on two tensors.
pub fn elementwise(op: BinaryOp, op_span: Span, lhs: Operand, rhs: Operand) -> Result<TensorType, Diagnostic> {
    let kind = match op {
        BinaryOp::And | BinaryOp::Or => ElementwiseKind::Logical,
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            ElementwiseKind::Comparison
        }
        _ => ElementwiseKind::Arithmetic,
    };
    elementwise_named(op.symbol(), kind, op_span, lhs, rhs)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ElementwiseKind {
    Arithmetic,
    Comparison,
    Logical,
}

/// Element-wise rule for an operator or a two-input primitive (`maximum`).
pub fn elementwise_named(
    symbol: &str,
    kind: ElementwiseKind,
    op_span: Span,
    lhs: Operand,
    rhs: Operand,
) -> Result<TensorType, Diagnostic> {
    let (a, b) = (&lhs.tensor.ty, &rhs.tensor.ty);
    let logical = kind == ElementwiseKind::Logical;
    let comparison = kind == ElementwiseKind::Comparison;
    if a.dtype != b.dtype {
        let diagnostic = Diagnostic::error(
            codes::DTYPE_MISMATCH,
            format!(
                "`{symbol}` needs operands of one dtype, found {} and {}",
                a.dtype.name(),
                b.dtype.name()
            ),
            op_span,
        )
        .label(format!("{} {symbol} {}", a.dtype.name(), b.dtype.name()))
        .with_help(format!("convert one side, e.g. `{}(...)`", a.dtype.name()));
        return Err(explain(
            explain(diagnostic, "the left operand", &lhs),
            "the right operand",
            &rhs,
        ));
    }
    if logical && a.dtype != DType::Bool {
        return Err(Diagnostic::error(
            codes::DTYPE_MISMATCH,
            format!("`{symbol}` needs bool operands, found {}", a.dtype.name()),
            op_span,
        )
        .label("not a bool tensor"));
    }
    if !logical && !comparison && a.dtype == DType::Bool {
        return Err(Diagnostic::error(
            codes::DTYPE_MISMATCH,
            format!("`{symbol}` is not defined on bool tensors"),
            op_span,
        )
        .label("bool operands")
        .with_help("convert with `f32(...)` to compute with masks"));
    }
    let shape = broadcast(&a.shape, &b.shape).map_err(|(axis, da, db)| {
        let diagnostic = Diagnostic::error(
            codes::BROADCAST_MISMATCH,
            format!(
                "shapes {} and {} do not broadcast: size {da} against {db}",
                format_shape(&a.shape),
                format_shape(&b.shape)
            ),
            op_span,
        )
        .label(format!("axis {axis} of the result: {da} vs {db}"))
        .with_help("sizes must be equal, or one of them 1");
        explain(explain(diagnostic, "the left operand", &lhs), "the right operand", &rhs)
    })?;
    let dtype = if comparison || logical { DType::Bool } else { a.dtype };
    Ok(TensorType::new(dtype, shape))
}

/// `a @ b`: `[..., m, k] @ [..., k, n] -> [..., m, n]`, batch dimensions broadcast.
pub fn matmul(op_span: Span, lhs: Operand, rhs: Operand) -> Result<TensorType, Diagnostic> {
    let (a, b) = (&lhs.tensor.ty, &rhs.tensor.ty);
    for (operand, name) in [(&lhs, "left"), (&rhs, "right")] {
        let ty = &operand.tensor.ty;
        if ty.rank() < 2 {
            let diagnostic = Diagnostic::error(
                codes::RANK_MISMATCH,
                format!("`@` needs matrices (rank 2 or more), but the {name} operand is {ty}"),
                op_span,
            )
            .label(format!("the {name} operand has rank {}", ty.rank()))
            .with_help("reshape vectors to [1, n] or [n, 1], or use `sum(a * b)` for a dot product");
            return Err(explain(diagnostic, &format!("the {name} operand"), operand));
        }
        if !ty.dtype.is_float() {
            return Err(explain(
                Diagnostic::error(
                    codes::DTYPE_MISMATCH,
                    format!("`@` needs float tensors, but the {name} operand is {ty}"),
                    op_span,
                )
                .label("not a float tensor")
                .with_help("convert with `f32(...)`"),
                &format!("the {name} operand"),
                operand,
            ));
        }
    }
    if a.dtype != b.dtype {
        let diagnostic = Diagnostic::error(
            codes::DTYPE_MISMATCH,
            format!(
                "`@` needs operands of one dtype, found {} and {}",
                a.dtype.name(),
                b.dtype.name()
            ),
            op_span,
        )
        .label("different dtypes");
        return Err(explain(
            explain(diagnostic, "the left operand", &lhs),
            "the right operand",
            &rhs,
        ));
    }
    let (m, k) = (&a.shape[a.rank() - 2], &a.shape[a.rank() - 1]);
    let (k2, n) = (&b.shape[b.rank() - 2], &b.shape[b.rank() - 1]);
    if k != k2 {
        let diagnostic = Diagnostic::error(
            codes::MATMUL_MISMATCH,
            format!("inner dimensions of `@` differ: {k} and {k2}"),
            op_span,
        )
        .label(format!("{} @ {}: {k} != {k2}", a, b))
        .with_help("in `a @ b` the last dimension of `a` must equal the second-to-last of `b`");
        return Err(explain(
            explain(diagnostic, "the left operand", &lhs),
            "the right operand",
            &rhs,
        ));
    }
    let batch = broadcast(&a.shape[..a.rank() - 2], &b.shape[..b.rank() - 2]).map_err(|(axis, da, db)| {
        let diagnostic = Diagnostic::error(
            codes::BROADCAST_MISMATCH,
            format!("batch dimensions of `@` do not broadcast: {da} against {db}"),
            op_span,
        )
        .label(format!("batch axis {axis}: {da} vs {db}"));
        explain(explain(diagnostic, "the left operand", &lhs), "the right operand", &rhs)
    })?;
    let mut shape = batch;
    shape.push(m.clone());
    shape.push(n.clone());
    Ok(TensorType::new(a.dtype, shape))
}

/// Normalizes an axis (negative counts from the end) against a rank.
pub fn normalize_axis(axis: i64, rank: usize) -> Option<usize> {
    let rank = rank as i64;
    let axis = if axis < 0 { axis + rank } else { axis };
    (0..rank).contains(&axis).then_some(axis as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(list: &[&str]) -> Vec<Dim> {
        list.iter()
            .map(|s| s.parse::<i64>().map(Dim::constant).unwrap_or_else(|_| Dim::symbol(s)))
            .collect()
    }

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(
            broadcast(&dims(&["B", "T", "4"]), &dims(&["4"])),
            Ok(dims(&["B", "T", "4"]))
        );
        assert_eq!(broadcast(&dims(&["B", "1"]), &dims(&["1", "7"])), Ok(dims(&["B", "7"])));
        assert_eq!(
            broadcast(&dims(&["T", "T"]), &dims(&["B", "H", "T", "T"])),
            Ok(dims(&["B", "H", "T", "T"]))
        );
        assert!(broadcast(&dims(&["B", "3"]), &dims(&["4"])).is_err());
        assert!(broadcast(&dims(&["B"]), &dims(&["T"])).is_err());
    }

    #[test]
    fn axes_normalize() {
        assert_eq!(normalize_axis(-1, 3), Some(2));
        assert_eq!(normalize_axis(3, 3), None);
        assert_eq!(normalize_axis(-4, 3), None);
    }
}
