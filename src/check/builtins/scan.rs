//! `scan`: a block run over the time axis, its parameters shared by every
//! step. The step is traced once, as the body of a loop node
//! ([`crate::ir::loops`]); a step that draws random numbers, updates a
//! state or records an output is unrolled instead, step by step.

use super::args::{bool_arg, tensor};
use super::{Args, Out};
use crate::check::dims::Dim;
use crate::check::eval::{ArgValue, Checker};
use crate::check::types::{Tensor, TensorType, Value};
use crate::diagnostics::{codes, Diagnostic, Span};
use crate::prim::Prim;
use std::collections::HashMap;
use std::sync::Arc;

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
    let mut init = tensor(checker, a, 2)?;
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
    // Decoding one step at a time: the initial carry comes from outside.
    let carry = crate::check::decode::carry_in(checker, &mut init, reverse, length);
    let mut x_shape = xs.ty.shape.clone();
    x_shape.remove(1);
    let x_ty = TensorType::new(xs.ty.dtype, x_shape);
    let instances = checker.child_counts();
    let step_call = StepCall {
        a,
        step: &step,
        forwarded: &forwarded,
        xs: &xs,
        init: &init,
        x_ty: &x_ty,
        instances: &instances,
    };
    let out = scan_over(checker, &step_call, length, reverse);
    let _ = callee_span;
    crate::check::decode::carry_out(checker, carry, &init, &out);
    out
}

/// The stacked carries of `call`'s step over `length` steps: a loop node,
/// or the steps unrolled.
fn scan_over(checker: &mut Checker, call: &StepCall, length: i64, reverse: bool) -> Out {
    let StepCall {
        a,
        step,
        forwarded,
        xs,
        init,
        x_ty,
        instances,
    } = *call;
    match traced_once(checker, call, length, reverse) {
        Traced::Loop(out) => return out,
        Traced::Unroll => {}
    }
    // A loop has no length limit; an unrolled scan grows the program with
    // every step.
    const MAX_STEPS: i64 = 10_000;
    if length > MAX_STEPS {
        checker.report(
            Diagnostic::error(
                codes::BAD_VALUE,
                format!(
                    "a `scan` whose step draws random numbers or updates a state is unrolled when compiling and allows at most {MAX_STEPS} steps, found {length}"
                ),
                a.span(1),
            )
            .label("sequence too long"),
        );
        return None;
    }
    // Unrolled over time; every step is the same block instance, so its
    // parameters are shared.
    let mut one_step = xs.ty.shape.clone();
    one_step[1] = Dim::constant(1);
    let slice_ty = TensorType::new(xs.ty.dtype, one_step);
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
        let x_t = checker.emit(Prim::Reshape, x_ty, &[sliced]);
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
            other => return scan_mismatch(checker, a, init, other),
        }
    }
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

/// What a call of the step needs, whichever way it is traced.
struct StepCall<'s> {
    a: &'s Args,
    step: &'s Value,
    forwarded: &'s [ArgValue],
    xs: &'s Tensor,
    init: &'s Tensor,
    x_ty: &'s TensorType,
    instances: &'s HashMap<String, usize>,
}

enum Traced {
    Loop(Out),
    Unroll,
}

/// Traces the step once over arguments standing for any step (`Arg` leaves)
/// and records one scan node. Parameters the step reads and tensors passed
/// on to it become captured operands.
fn traced_once(checker: &mut Checker, call: &StepCall, length: i64, reverse: bool) -> Traced {
    let (Some(xs_node), Some(init_node)) = (call.xs.node, call.init.node) else {
        return Traced::Unroll;
    };
    let streams = checker.random_streams;
    let diagnostics = checker.diagnostics.len();
    let outer = std::mem::take(&mut checker.trace);
    let carry = checker
        .trace
        .push(Prim::Arg(0), call.init.ty.dtype, call.init.ty.shape.clone(), Vec::new());
    let x_t = checker
        .trace
        .push(Prim::Arg(1), call.x_ty.dtype, call.x_ty.shape.clone(), Vec::new());
    // Tensors passed on to the step are captured, as arguments 2, 3, ...
    let mut captured: Vec<usize> = Vec::new();
    let mut forwarded = call.forwarded.to_vec();
    for arg in &mut forwarded {
        if let Value::Tensor(t) = &mut arg.value {
            match t.node {
                Some(node) => {
                    let index = 2 + captured.len();
                    captured.push(node);
                    t.node = Some(
                        checker
                            .trace
                            .push(Prim::Arg(index), t.ty.dtype, t.ty.shape.clone(), Vec::new()),
                    );
                }
                None => {
                    checker.trace = outer;
                    return Traced::Unroll;
                }
            }
        }
    }
    let mut args = vec![
        ArgValue {
            name: None,
            value: Value::Tensor(Tensor {
                ty: call.x_ty.clone(),
                origin: call.xs.origin,
                node: Some(x_t),
            }),
            span: call.a.span(1),
        },
        ArgValue {
            name: None,
            value: Value::Tensor(Tensor {
                node: Some(carry),
                ..call.init.clone()
            }),
            span: call.a.span(2),
        },
    ];
    args.extend(forwarded);
    checker.set_child_counts(call.instances.clone());
    let result = checker.call(call.step.clone(), call.a.span(0), args, call.a.span);
    let mut body = std::mem::replace(&mut checker.trace, outer);
    let next = match result {
        Value::Tensor(next) if next.ty == call.init.ty => next,
        other => return Traced::Loop(scan_mismatch(checker, call.a, call.init, other)),
    };
    let loops_cleanly = next.node.is_some()
        && body.outputs.is_empty()
        && !body
            .nodes
            .iter()
            .any(|n| matches!(n.op, Prim::Random { .. } | Prim::State(_)));
    let Some(next_node) = next.node.filter(|_| loops_cleanly) else {
        // Traced again step by step: the same streams, no repeated errors.
        checker.random_streams = streams;
        checker.diagnostics.truncate(diagnostics);
        return Traced::Unroll;
    };
    // Leaves of the outer program (parameters, inputs) are captured too.
    for node in &mut body.nodes {
        if let Prim::Param(_) | Prim::Input(_) = node.op {
            let outer_leaf = checker
                .trace
                .push(node.op.clone(), node.dtype, node.shape.clone(), Vec::new());
            node.op = Prim::Arg(2 + captured.len());
            captured.push(outer_leaf);
        }
    }
    body.set_output("carry 0", next_node);
    body.set_output("y 0", next_node);
    let looped = crate::ir::loops::Loop {
        body: crate::ir::lower::lower_loops(&body),
        length: length as usize,
        reverse,
        carries: 1,
        sequences: 1,
        captured: captured.len(),
        ys: 1,
    };
    let (Some(flat), Some(pieces)) = (looped.flat_shape(), looped.pieces()) else {
        unreachable!("the body has its outputs")
    };
    let mut operands = vec![Some(init_node), Some(xs_node)];
    operands.extend(captured.into_iter().map(Some));
    let dtype = call.init.ty.dtype;
    let node = checker.emit(Prim::Scan(Arc::new(looped)), &TensorType::new(dtype, flat), &operands);
    let stacked = &pieces[1];
    let op = Prim::Slice {
        axis: 0,
        start: stacked.offset.clone(),
        step: 1,
    };
    let taken = checker.emit(op, &TensorType::new(dtype, vec![stacked.size()]), &[node]);
    let ty = TensorType::new(dtype, stacked.shape.clone());
    let node = checker.emit(Prim::Reshape, &ty, &[taken]);
    Traced::Loop(Some((ty, node)))
}
