//! Tensors made from sizes alone: `zeros`, `ones`, `full`, `arange`, the
//! random numbers `rand` and `randn` (each call its own stream), and
//! `progress()`.

use super::args::{int_arg, shape_arg};
use super::{Args, Out};
use crate::check::eval::Checker;
use crate::check::types::{TensorType, Value};
use crate::diagnostics::{codes, Diagnostic};
use crate::prim::{Distribution, Prim};
use crate::syntax::ast::DType;

/// `zeros`, `ones`, `rand`, `randn`: an `f32` tensor of the given shape.
pub(super) fn filled(checker: &mut Checker, a: &Args) -> Out {
    shape_arg(checker, a, 0).map(|s| {
        let ty = TensorType::new(DType::F32, s);
        let op = match a.name {
            "zeros" => Prim::Const(0.0),
            "ones" => Prim::Const(1.0),
            "rand" => Prim::Random {
                dist: Distribution::Uniform,
                stream: checker.random_stream(),
                offset: 0,
            },
            _ => Prim::Random {
                dist: Distribution::Normal,
                stream: checker.random_stream(),
                offset: 0,
            },
        };
        let node = checker.emit(op, &ty, &[]);
        (ty, node)
    })
}

/// `arange(n)`: `0, 1, ..., n - 1` as `i32`.
pub(super) fn arange(checker: &mut Checker, a: &Args) -> Out {
    int_arg(checker, a, 0).map(|n| {
        let ty = TensorType::new(DType::I32, vec![n]);
        let node = checker.emit(Prim::Iota { axis: 0 }, &ty, &[]);
        (ty, node)
    })
}

pub(super) fn full(checker: &mut Checker, a: &Args) -> Out {
    let shape = shape_arg(checker, a, 0)?;
    let dtype = match a.value(1) {
        Value::Float(_) => DType::F32,
        Value::Int(_) => DType::I32,
        Value::Bool(_) => DType::Bool,
        other => {
            checker.report(
                Diagnostic::error(
                    codes::WRONG_KIND,
                    format!("`full` needs a number or boolean, found {}", other.kind_name()),
                    a.span(1),
                )
                .label("not a constant"),
            );
            return None;
        }
    };
    let ty = TensorType::new(dtype, shape);
    let node = checker.scalar_node(&a.value(1), dtype).and_then(|_| {
        let x = match a.value(1) {
            Value::Bool(b) => f64::from(u8::from(b)),
            v => v.as_number().unwrap_or(0.0),
        };
        checker.emit(Prim::Const(x), &ty, &[])
    });
    Some((ty, node))
}

/// `progress()`: the share of training done before this step, `f32[]` in
/// `[0, 1)` (step / steps, fed by the runtime each step as the input
/// `progress`, like the learning rate). In evaluation mode (`training`
/// false) it is the constant 1: evaluation and generation see the model as
/// trained to the end.
pub(super) fn progress(checker: &mut Checker) -> (TensorType, Option<usize>) {
    let ty = TensorType::scalar(DType::F32);
    let op = if checker.training {
        Prim::Input(PROGRESS.to_string())
    } else {
        Prim::Const(1.0)
    };
    let node = checker.emit(op, &ty, &[]);
    (ty, node)
}

/// The name of the step input `progress()` reads.
pub const PROGRESS: &str = "progress";
