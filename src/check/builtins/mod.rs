//! The primitive functions callable from `.nn` (`exp`, `sum`, `reshape`,
//! `take`, `unfold2d`, `scan`, ...): their signatures and shape rules.
//! Layers built from them live in the standard library, not here.
//!
//! In: a builtin's name and the arguments of a call; out: the result's
//! type and its node in the trace, or a diagnostic. This file holds the
//! table of builtins and their parameters and [`call`], which binds the
//! arguments and dispatches by name to one family: `args.rs` (argument
//! kinds shared by all), `elementwise.rs`, `reduce.rs`, `layout.rs`,
//! `gather.rs`, `create.rs` (constants, `arange`, random numbers,
//! `progress()`), `window.rs` (`unfold2d`), `scan.rs`, `require.rs`; and
//! `index.rs` checks `x[...]` ([`slice()`]).

mod args;
mod create;
mod elementwise;
mod gather;
mod index;
mod layout;
mod reduce;
mod require;
mod scan;
mod window;

use super::eval::{ArgValue, Checker};
use super::types::{Tensor, TensorType, Value};
use crate::diagnostics::Span;
use crate::prim::Prim;
use crate::syntax::ast::DType;

use args::tensor;
use create::{arange, filled, full, progress};
use elementwise::{binary, cast, select, unary_float, unary_numeric};
use gather::{one_hot, pick, take};
use layout::{broadcast_to, concat, pad, permute, reshape, transpose};
use reduce::{argmax, reduce};
use require::require;
use scan::scan;
use window::unfold2d;

pub use create::PROGRESS;
pub use index::slice;

/// Every builtin: name and parameters `(name, required)`.
const BUILTINS: &[(&str, &[(&str, bool)])] = &[
    ("exp", &[("x", true)]),
    ("log", &[("x", true)]),
    ("sqrt", &[("x", true)]),
    ("tanh", &[("x", true)]),
    ("sigmoid", &[("x", true)]),
    ("sin", &[("x", true)]),
    ("cos", &[("x", true)]),
    ("abs", &[("x", true)]),
    ("maximum", &[("a", true), ("b", true)]),
    ("minimum", &[("a", true), ("b", true)]),
    ("pow", &[("x", true), ("p", true)]),
    ("where", &[("condition", true), ("a", true), ("b", true)]),
    ("f32", &[("x", true)]),
    ("i32", &[("x", true)]),
    ("stop_grad", &[("x", true)]),
    ("sum", &[("x", true), ("axis", false), ("keepdims", false)]),
    ("max", &[("x", true), ("axis", false), ("keepdims", false)]),
    ("mean", &[("x", true), ("axis", false), ("keepdims", false)]),
    ("sync_mean", &[("x", true), ("axis", false), ("keepdims", false)]),
    ("argmax", &[("x", true), ("axis", false)]),
    ("reshape", &[("x", true), ("shape", true)]),
    ("transpose", &[("x", true), ("a", false), ("b", false)]),
    ("permute", &[("x", true), ("axes", true)]),
    ("concat", &[("tensors", true), ("axis", false)]),
    (
        "pad",
        &[
            ("x", true),
            ("before", true),
            ("after", true),
            ("axis", false),
            ("value", false),
        ],
    ),
    ("broadcast", &[("x", true), ("shape", true)]),
    ("shape", &[("x", true)]),
    ("take", &[("table", true), ("ids", true)]),
    ("pick", &[("x", true), ("ids", true)]),
    ("one_hot", &[("ids", true), ("classes", true)]),
    (
        "unfold2d",
        &[("x", true), ("kernel", true), ("stride", false), ("padding", false)],
    ),
    ("zeros", &[("shape", true)]),
    ("ones", &[("shape", true)]),
    ("full", &[("shape", true), ("value", true)]),
    ("arange", &[("n", true)]),
    ("rand", &[("shape", true)]),
    ("randn", &[("shape", true)]),
    ("progress", &[]),
    (
        "scan",
        &[("step", true), ("xs", true), ("init", true), ("reverse", false)],
    ),
    ("require", &[("condition", true), ("message", true)]),
];

pub fn lookup(name: &str) -> Option<&'static str> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(n, _)| *n)
}

/// A builtin's parameters `(name, required)`.
fn params(name: &str) -> Option<&'static [(&'static str, bool)]> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}

/// A builtin's parameters as [`Checker::bind_args`] takes them.
pub fn signature(name: &str) -> Option<Vec<(&'static str, Span, bool)>> {
    params(name).map(as_signature)
}

fn as_signature(params: &[(&'static str, bool)]) -> Vec<(&'static str, Span, bool)> {
    params.iter().map(|(p, r)| (*p, Span::default(), *r)).collect()
}

pub fn names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(n, _)| *n)
}

/// A builtin's result: its type and its node in the trace.
type Out = Option<(TensorType, Option<usize>)>;

/// Arguments of one builtin call, matched to its parameters.
struct Args {
    name: &'static str,
    values: Vec<Option<ArgValue>>,
    span: Span,
}

impl Args {
    fn get(&self, i: usize) -> Option<&ArgValue> {
        self.values.get(i).and_then(Option::as_ref)
    }

    fn value(&self, i: usize) -> Value {
        self.get(i).map(|a| a.value.clone()).unwrap_or(Value::Error)
    }

    fn span(&self, i: usize) -> Span {
        self.get(i).map(|a| a.span).unwrap_or(self.span)
    }
}

/// Calls builtin `name`. Every result is a tensor, a list of sizes (`shape`)
/// or [`Value::Error`] after a reported diagnostic.
pub fn call(
    checker: &mut Checker,
    name: &'static str,
    mut args: Vec<ArgValue>,
    span: Span,
    callee_span: Span,
) -> Value {
    let Some(params) = params(name) else {
        return Value::Error;
    };
    // `scan` forwards extra named arguments to its step.
    let mut forwarded = Vec::new();
    if name == "scan" {
        let (keep, extra): (Vec<_>, Vec<_>) = args
            .into_iter()
            .partition(|a| a.name.as_ref().is_none_or(|n| params.iter().any(|(p, _)| *p == n.name)));
        args = keep;
        forwarded = extra;
    }
    let Some(values) = checker.bind_args(name, &as_signature(params), args, span) else {
        return Value::Error;
    };
    if values.iter().flatten().any(|a| matches!(a.value, Value::Error)) {
        return Value::Error;
    }
    let a = Args { name, values, span };
    let result = match name {
        "exp" | "log" | "sqrt" | "tanh" | "sigmoid" | "sin" | "cos" => unary_float(checker, &a),
        "abs" => unary_numeric(checker, &a),
        "maximum" | "minimum" | "pow" => binary(checker, &a),
        "where" => select(checker, &a),
        "f32" => cast(checker, &a, DType::F32),
        "i32" => cast(checker, &a, DType::I32),
        "stop_grad" => tensor(checker, &a, 0).map(|t| {
            let node = checker.emit(Prim::StopGrad, &t.ty, &[t.node]);
            (t.ty, node)
        }),
        "sum" | "max" | "mean" | "sync_mean" => reduce(checker, &a),
        "argmax" => argmax(checker, &a),
        "reshape" => reshape(checker, &a),
        "transpose" => transpose(checker, &a),
        "permute" => permute(checker, &a),
        "concat" => concat(checker, &a),
        "pad" => pad(checker, &a),
        "broadcast" => broadcast_to(checker, &a),
        "shape" => {
            return match tensor(checker, &a, 0) {
                Some(t) => Value::List(t.ty.shape.into_iter().map(Value::Int).collect()),
                None => Value::Error,
            }
        }
        "take" => take(checker, &a),
        "pick" => pick(checker, &a),
        "one_hot" => one_hot(checker, &a),
        "unfold2d" => unfold2d(checker, &a),
        "zeros" | "ones" | "rand" | "randn" => filled(checker, &a),
        "full" => full(checker, &a),
        "progress" => Some(progress(checker)),
        "arange" => arange(checker, &a),
        "scan" => scan(checker, &a, forwarded, callee_span),
        "require" => return require(checker, &a),
        _ => None,
    };
    match result {
        Some((ty, node)) => Value::Tensor(Tensor { ty, origin: span, node }),
        None => Value::Error,
    }
}
