//! Layout builtins: `reshape` (one size may be inferred), `transpose`,
//! `permute`, `concat`, `pad` and `broadcast`.

use super::args::{axis, int_arg, shape_arg, tensor};
use super::reduce::axes;
use super::{Args, Out};
use crate::check::dims::{format_shape, Dim};
use crate::check::eval::{tensor_too_large, Checker};
use crate::check::ops;
use crate::check::types::{TensorType, Value};
use crate::diagnostics::{codes, Diagnostic};
use crate::prim::Prim;

fn product(dims: &[Dim]) -> Dim {
    dims.iter().fold(Dim::constant(1), |acc, d| acc.mul(d))
}

pub(super) fn reshape(checker: &mut Checker, a: &Args) -> Out {
    let t = tensor(checker, a, 0)?;
    let span = a.span(1);
    let Value::List(items) = a.value(1) else {
        let found = a.value(1).kind_name();
        checker.report(
            Diagnostic::error(
                codes::WRONG_KIND,
                format!("`reshape` needs a shape such as `[N, -1]`, found {found}"),
                span,
            )
            .label("not a list of sizes"),
        );
        return None;
    };
    let mut shape = Vec::new();
    let mut inferred = None;
    for (i, item) in items.into_iter().enumerate() {
        if item.as_const_int() == Some(-1) {
            if inferred.is_some() {
                checker.report(
                    Diagnostic::error(
                        codes::RESHAPE_MISMATCH,
                        "`reshape` can infer only one size (`-1`)",
                        span,
                    )
                    .label("more than one -1"),
                );
                return None;
            }
            inferred = Some(i);
            shape.push(Dim::constant(1));
        } else {
            shape.push(checker.expect_dim(item, span)?);
        }
    }
    let total = product(&t.ty.shape);
    let known = product(&shape);
    let written = |shape: &[Dim]| {
        let parts: Vec<String> = shape
            .iter()
            .enumerate()
            .map(|(i, d)| {
                if Some(i) == inferred {
                    "-1".to_string()
                } else {
                    d.to_string()
                }
            })
            .collect();
        format!("[{}]", parts.join(", "))
    };
    if known.is_overflow() {
        checker.report(tensor_too_large(
            span,
            format!("{} would have more elements than an integer holds", written(&shape)),
        ));
        return None;
    }
    if let Some(i) = inferred {
        match total.div_exact(&known) {
            Some(d) => shape[i] = d,
            None => {
                checker.report(
                    Diagnostic::error(
                        codes::RESHAPE_MISMATCH,
                        format!(
                            "cannot reshape {} into {}: {total} elements do not divide by {known}",
                            t.ty,
                            written(&shape)
                        ),
                        a.span,
                    )
                    .label("no whole size fits the -1"),
                );
                return None;
            }
        }
    } else if total != known {
        checker.report(
            Diagnostic::error(
                codes::RESHAPE_MISMATCH,
                format!(
                    "cannot reshape {} ({total} elements) into {} ({known} elements)",
                    t.ty,
                    format_shape(&shape)
                ),
                a.span,
            )
            .label("element counts differ")
            .with_secondary(a.span(0), format!("this is {}", t.ty)),
        );
        return None;
    }
    let ty = TensorType::new(t.ty.dtype, shape);
    let node = checker.emit(Prim::Reshape, &ty, &[t.node]);
    Some((ty, node))
}

pub(super) fn transpose(checker: &mut Checker, a: &Args) -> Out {
    let t = tensor(checker, a, 0)?;
    let rank = t.ty.rank();
    if rank < 2 {
        checker.report(
            Diagnostic::error(
                codes::RANK_MISMATCH,
                format!("`transpose` needs 2 or more dimensions, found {}", t.ty),
                a.span(0),
            )
            .label("too few dimensions"),
        );
        return None;
    }
    let first = if a.get(1).is_some() {
        axis(checker, a, 1, rank)?
    } else {
        rank - 2
    };
    let second = if a.get(2).is_some() {
        axis(checker, a, 2, rank)?
    } else {
        rank - 1
    };
    let mut perm: Vec<usize> = (0..rank).collect();
    perm.swap(first, second);
    let shape = perm.iter().map(|&i| t.ty.shape[i].clone()).collect();
    let ty = TensorType::new(t.ty.dtype, shape);
    let node = checker.emit(Prim::Permute(perm), &ty, &[t.node]);
    Some((ty, node))
}

pub(super) fn permute(checker: &mut Checker, a: &Args) -> Out {
    let t = tensor(checker, a, 0)?;
    let rank = t.ty.rank();
    let order = axes(checker, a, 1, rank)?;
    if order.len() != rank {
        checker.report(
            Diagnostic::error(
                codes::BAD_AXIS,
                format!("`permute` needs all {rank} axes of {}, found {}", t.ty, order.len()),
                a.span(1),
            )
            .label("not a permutation"),
        );
        return None;
    }
    let shape = order.iter().map(|&i| t.ty.shape[i].clone()).collect();
    let ty = TensorType::new(t.ty.dtype, shape);
    let node = checker.emit(Prim::Permute(order), &ty, &[t.node]);
    Some((ty, node))
}

pub(super) fn concat(checker: &mut Checker, a: &Args) -> Out {
    let span = a.span(0);
    let Value::List(items) = a.value(0) else {
        let found = a.value(0).kind_name();
        checker.report(
            Diagnostic::error(
                codes::WRONG_KIND,
                format!("`concat` needs a list of tensors, found {found}"),
                span,
            )
            .label("not a list"),
        );
        return None;
    };
    let mut tensors = Vec::new();
    for item in items {
        match item {
            Value::Tensor(t) => tensors.push(t),
            Value::Error => return None,
            other => {
                checker.report(
                    Diagnostic::error(
                        codes::WRONG_KIND,
                        format!("`concat` joins tensors, found {}", other.kind_name()),
                        span,
                    )
                    .label("not a tensor"),
                );
                return None;
            }
        }
    }
    let Some(first) = tensors.first() else {
        checker.report(
            Diagnostic::error(codes::BAD_VALUE, "`concat` needs at least one tensor", span).label("empty list"),
        );
        return None;
    };
    let rank = first.ty.rank();
    let axis = if a.get(1).is_some() {
        axis(checker, a, 1, rank)?
    } else {
        rank.checked_sub(1)?
    };
    let mut shape = first.ty.shape.clone();
    for t in &tensors[1..] {
        let same_rest = t.ty.rank() == rank
            && t.ty.dtype == first.ty.dtype
            && (0..rank).all(|i| i == axis || t.ty.shape[i] == first.ty.shape[i]);
        if !same_rest {
            checker.report(
                Diagnostic::error(
                    codes::SHAPE_MISMATCH,
                    format!(
                        "`concat` along axis {axis} needs matching tensors, found {} and {}",
                        first.ty, t.ty
                    ),
                    span,
                )
                .label("all sizes except the joined axis must agree, and the dtypes"),
            );
            return None;
        }
        shape[axis] = shape[axis].add(&t.ty.shape[axis]);
    }
    let ty = TensorType::new(first.ty.dtype, shape);
    let nodes: Vec<Option<usize>> = tensors.iter().map(|t| t.node).collect();
    let node = checker.emit(Prim::Concat { axis }, &ty, &nodes);
    Some((ty, node))
}

pub(super) fn pad(checker: &mut Checker, a: &Args) -> Out {
    let t = tensor(checker, a, 0)?;
    let before = int_arg(checker, a, 1)?;
    let after = int_arg(checker, a, 2)?;
    let rank = t.ty.rank();
    let axis = if a.get(3).is_some() {
        axis(checker, a, 3, rank)?
    } else {
        rank.checked_sub(1)?
    };
    if let Some(value) = a.get(4) {
        if value.value.as_number().is_none() && !matches!(value.value, Value::Bool(_)) {
            checker.report(
                Diagnostic::error(
                    codes::WRONG_KIND,
                    format!("the padding value must be a number, found {}", value.value.kind_name()),
                    value.span,
                )
                .label("not a number"),
            );
            return None;
        }
    }
    let value = match a.get(4).map(|v| &v.value) {
        Some(Value::Bool(b)) => f64::from(u8::from(*b)),
        Some(v) => v.as_number().unwrap_or(0.0),
        None => 0.0,
    };
    let mut shape = t.ty.shape.clone();
    shape[axis] = shape[axis].add(&before).add(&after);
    let ty = TensorType::new(t.ty.dtype, shape);
    let op = Prim::Pad {
        axis,
        before,
        after,
        value,
    };
    let node = checker.emit(op, &ty, &[t.node]);
    Some((ty, node))
}

pub(super) fn broadcast_to(checker: &mut Checker, a: &Args) -> Out {
    let t = tensor(checker, a, 0)?;
    let target = shape_arg(checker, a, 1)?;
    match ops::broadcast(&t.ty.shape, &target) {
        Ok(shape) if shape == target => {
            let ty = TensorType::new(t.ty.dtype, shape);
            let node = checker.broadcast_node(&t, &ty.shape);
            Some((ty, node))
        }
        _ => {
            checker.report(
                Diagnostic::error(
                    codes::BROADCAST_MISMATCH,
                    format!("cannot broadcast {} to {}", t.ty, format_shape(&target)),
                    a.span,
                )
                .label("sizes must be equal, or 1 in the input"),
            );
            None
        }
    }
}
