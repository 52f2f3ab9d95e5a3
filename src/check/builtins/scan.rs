//! `scan`: a block run over the time axis, unrolled when compiling, its
//! parameters shared by every step.

use super::args::{bool_arg, tensor};
use super::{Args, Out};
use crate::check::dims::Dim;
use crate::check::eval::{ArgValue, Checker};
use crate::check::types::{Tensor, TensorType, Value};
use crate::diagnostics::{codes, Diagnostic, Span};
use crate::prim::Prim;

/// `scan(step, xs[N, T, ...], init[N, ...])`: runs `step(x_t, carry)` over the
/// T steps (backwards with `reverse: true`) and stacks the carries,
/// `[N, T, ...]`. Named arguments it does not know go to `step`; the step's
/// parameters are shared by all time steps.
pub(super) fn scan(checker: &mut Checker, a: &Args, forwarded: Vec<ArgValue>, callee_span: Span) -> Out {
    let step = a.value(0);
    if !matches!(step, Value::Fn(_)) {
        checker.report(
            Diagnostic::error(
                codes::WRONG_KIND,
                format!("the step of `scan` must be a block, found {}", step.kind_name()),
                a.span(0),
            )
            .label("not a block"),
        );
        return None;
    }
    let xs = tensor(checker, a, 1)?;
    let init = tensor(checker, a, 2)?;
    if xs.ty.rank() < 2 || init.ty.rank() < 1 {
        checker.report(
            Diagnostic::error(
                codes::RANK_MISMATCH,
                format!("`scan` needs inputs [N, T, ...], found {}", xs.ty),
                a.span(1),
            )
            .label("no time axis"),
        );
        return None;
    }
    let reverse = bool_arg(checker, a, 3, false)?;
    const MAX_STEPS: i64 = 10_000;
    if let Some(length) = xs.ty.shape[1].as_const().filter(|n| *n > MAX_STEPS) {
        checker.report(
            Diagnostic::error(
                codes::BAD_VALUE,
                format!("`scan` is unrolled when compiling and allows at most {MAX_STEPS} steps, found {length}"),
                a.span(1),
            )
            .label("sequence too long"),
        );
        return None;
    }
    let Some(length) = xs.ty.shape[1].as_const() else {
        checker.report(
            Diagnostic::error(
                codes::NOT_CONSTANT,
                format!(
                    "`scan` needs a sequence length known when compiling, found {}",
                    xs.ty.shape[1]
                ),
                a.span(1),
            )
            .label(format!("this is {}", xs.ty)),
        );
        return None;
    };
    // Unrolled over time; every step is the same block instance, so its
    // parameters are shared.
    let mut x_shape = xs.ty.shape.clone();
    x_shape.remove(1);
    let x_ty = TensorType::new(xs.ty.dtype, x_shape);
    let mut one_step = xs.ty.shape.clone();
    one_step[1] = Dim::constant(1);
    let slice_ty = TensorType::new(xs.ty.dtype, one_step);
    let instances = checker.child_counts();
    let mut carry = init.clone();
    let mut stacked: Vec<Option<usize>> = vec![None; length.max(0) as usize];
    let times: Vec<i64> = if reverse {
        (0..length).rev().collect()
    } else {
        (0..length).collect()
    };
    for t in times {
        checker.set_child_counts(instances.clone());
        let op = Prim::Slice {
            axis: 1,
            start: Dim::constant(t),
            step: 1,
        };
        let sliced = checker.emit(op, &slice_ty, &[xs.node]);
        let x_t = checker.emit(Prim::Reshape, &x_ty, &[sliced]);
        let mut args = vec![
            ArgValue {
                name: None,
                value: Value::Tensor(Tensor {
                    ty: x_ty.clone(),
                    origin: xs.origin,
                    node: x_t,
                }),
                span: a.span(1),
            },
            ArgValue {
                name: None,
                value: Value::Tensor(carry.clone()),
                span: a.span(2),
            },
        ];
        args.extend(forwarded.iter().cloned());
        match checker.call(step.clone(), a.span(0), args, a.span) {
            Value::Tensor(next) if next.ty == init.ty => {
                let mut shape = next.ty.shape.clone();
                shape.insert(1, Dim::constant(1));
                let row = TensorType::new(next.ty.dtype, shape);
                stacked[t as usize] = checker.emit(Prim::Reshape, &row, &[next.node]);
                carry = next;
            }
            other => return scan_mismatch(checker, a, &init, other),
        }
    }
    let _ = callee_span;
    let mut shape = init.ty.shape.clone();
    shape.insert(1, xs.ty.shape[1].clone());
    let ty = TensorType::new(init.ty.dtype, shape);
    let node = if stacked.len() == 1 {
        stacked[0]
    } else {
        checker.emit(Prim::Concat { axis: 1 }, &ty, &stacked)
    };
    Some((ty, node))
}

fn scan_mismatch(checker: &mut Checker, a: &Args, init: &Tensor, output: Value) -> Out {
    match output {
        Value::Error => None,
        other => {
            checker.report(
                Diagnostic::error(
                    codes::SHAPE_MISMATCH,
                    format!(
                        "the step of `scan` must return its carry {}, found {}",
                        init.ty,
                        other.kind_name()
                    ),
                    a.span(0),
                )
                .label("carry changes between steps")
                .with_secondary(a.span(2), format!("the carry starts as {}", init.ty)),
            );
            None
        }
    }
}
