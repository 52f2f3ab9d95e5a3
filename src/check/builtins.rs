//! The primitive functions callable from `.nn` (`exp`, `sum`, `reshape`,
//! `take`, `unfold2d`, `scan`, ...): their signatures and shape rules.
//! Layers built from them live in the standard library, not here.

use super::dims::{format_shape, Dim};
use super::eval::{plural, ArgValue, Checker};
use super::ops::{self, ElementwiseKind, Operand};
use super::scope::Scope;
use super::types::{Tensor, TensorType, Value};
use crate::diagnostics::{codes, Diagnostic, Span};
use crate::prim::{BinaryOp, Distribution, Prim, ReduceOp, UnaryOp, Window};
use crate::syntax::ast::{self, DType};

/// Every builtin: name and parameters `(name, required)`.
const BUILTINS: &[(&str, &[(&str, bool)])] = &[
    ("exp", &[("x", true)]),
    ("log", &[("x", true)]),
    ("sqrt", &[("x", true)]),
    ("tanh", &[("x", true)]),
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
        "exp" | "log" | "sqrt" | "tanh" | "sin" | "cos" => unary_float(checker, &a),
        "abs" => unary_numeric(checker, &a),
        "maximum" | "minimum" | "pow" => binary(checker, &a),
        "where" => select(checker, &a),
        "f32" => cast(checker, &a, DType::F32),
        "i32" => cast(checker, &a, DType::I32),
        "stop_grad" => tensor(checker, &a, 0).map(|t| {
            let node = checker.emit(Prim::StopGrad, &t.ty, &[t.node]);
            (t.ty, node)
        }),
        "sum" | "max" | "mean" => reduce(checker, &a),
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
        "zeros" | "ones" | "rand" | "randn" => shape_arg(checker, &a, 0).map(|s| {
            let ty = TensorType::new(DType::F32, s);
            let op = match name {
                "zeros" => Prim::Const(0.0),
                "ones" => Prim::Const(1.0),
                "rand" => Prim::Random {
                    dist: Distribution::Uniform,
                    stream: checker.random_stream(),
                },
                _ => Prim::Random {
                    dist: Distribution::Normal,
                    stream: checker.random_stream(),
                },
            };
            let node = checker.emit(op, &ty, &[]);
            (ty, node)
        }),
        "full" => full(checker, &a),
        "progress" => Some(progress(checker)),
        "arange" => int_arg(checker, &a, 0).map(|n| {
            let ty = TensorType::new(DType::I32, vec![n]);
            let node = checker.emit(Prim::Iota { axis: 0 }, &ty, &[]);
            (ty, node)
        }),
        "scan" => scan(checker, &a, forwarded, callee_span),
        "require" => return require(checker, &a),
        _ => None,
    };
    match result {
        Some((ty, node)) => Value::Tensor(Tensor { ty, origin: span, node }),
        None => Value::Error,
    }
}

// ------------------------------------------------------------ argument kinds

/// The tensor argument `i`; numbers become scalar tensors (`f32` for
/// fractions, `i32` for whole numbers).
fn tensor(checker: &mut Checker, a: &Args, i: usize) -> Option<Tensor> {
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
fn float_tensor(checker: &mut Checker, a: &Args, i: usize) -> Option<Tensor> {
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

fn int_arg(checker: &mut Checker, a: &Args, i: usize) -> Option<Dim> {
    let value = a.value(i);
    checker.expect_dim(value, a.span(i))
}

fn const_int(checker: &mut Checker, a: &Args, i: usize, what: &str) -> Option<i64> {
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

fn bool_arg(checker: &mut Checker, a: &Args, i: usize, default: bool) -> Option<bool> {
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
fn shape_arg(checker: &mut Checker, a: &Args, i: usize) -> Option<Vec<Dim>> {
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

fn axis(checker: &mut Checker, a: &Args, i: usize, rank: usize) -> Option<usize> {
    let raw = const_int(checker, a, i, "the axis")?;
    match ops::normalize_axis(raw, rank) {
        Some(axis) => Some(axis),
        None => {
            checker.report(bad_axis(a.name, raw, rank, a.span(i)));
            None
        }
    }
}

fn bad_axis(name: &str, raw: i64, rank: usize, span: Span) -> Diagnostic {
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

// ------------------------------------------------------------- element-wise

fn unary_float(checker: &mut Checker, a: &Args) -> Out {
    let t = float_tensor(checker, a, 0)?;
    let op = match a.name {
        "exp" => UnaryOp::Exp,
        "log" => UnaryOp::Log,
        "sqrt" => UnaryOp::Sqrt,
        "tanh" => UnaryOp::Tanh,
        "sin" => UnaryOp::Sin,
        _ => UnaryOp::Cos,
    };
    let node = checker.emit(Prim::Unary(op), &t.ty, &[t.node]);
    Some((t.ty, node))
}

fn unary_numeric(checker: &mut Checker, a: &Args) -> Out {
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

fn binary(checker: &mut Checker, a: &Args) -> Out {
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

fn select(checker: &mut Checker, a: &Args) -> Out {
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

fn cast(checker: &mut Checker, a: &Args, dtype: DType) -> Out {
    let t = tensor(checker, a, 0)?;
    let node = checker.cast_node(&t, dtype);
    Some((TensorType::new(dtype, t.ty.shape), node))
}

// --------------------------------------------------------------- reductions

/// The axes of a reduction: one axis, a list, or all when omitted.
fn axes(checker: &mut Checker, a: &Args, i: usize, rank: usize) -> Option<Vec<usize>> {
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

fn reduce(checker: &mut Checker, a: &Args) -> Out {
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
    let node = checker.emit(Prim::Reduce { op, axes, keepdims }, &ty, &[t.node]);
    Some((ty, node))
}

fn argmax(checker: &mut Checker, a: &Args) -> Out {
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
        Some(_) => self::axis(checker, a, 1, t.ty.rank())?,
    };
    let mut shape = t.ty.shape.clone();
    shape.remove(axis);
    let ty = TensorType::new(DType::I32, shape);
    let node = checker.emit(Prim::ArgMax { axis }, &ty, &[t.node]);
    Some((ty, node))
}

// ------------------------------------------------------------------- layout

fn product(dims: &[Dim]) -> Dim {
    dims.iter().fold(Dim::constant(1), |acc, d| acc.mul(d))
}

fn reshape(checker: &mut Checker, a: &Args) -> Out {
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

fn transpose(checker: &mut Checker, a: &Args) -> Out {
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

fn permute(checker: &mut Checker, a: &Args) -> Out {
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

fn concat(checker: &mut Checker, a: &Args) -> Out {
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

fn pad(checker: &mut Checker, a: &Args) -> Out {
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

fn broadcast_to(checker: &mut Checker, a: &Args) -> Out {
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

// ------------------------------------------------------------------ gathers

fn ids(checker: &mut Checker, a: &Args, i: usize) -> Option<Tensor> {
    let t = tensor(checker, a, i)?;
    if t.ty.dtype != DType::I32 {
        checker.report(
            Diagnostic::error(
                codes::DTYPE_MISMATCH,
                format!("`{}` needs i32 ids, found {}", a.name, t.ty),
                a.span(i),
            )
            .label(format!("this is {}", t.ty))
            .with_help("convert with `i32(...)`"),
        );
        return None;
    }
    Some(t)
}

/// `take(table, ids)`: rows of `table[V, ...]` at `ids[...]`.
fn take(checker: &mut Checker, a: &Args) -> Out {
    let table = tensor(checker, a, 0)?;
    let ids = ids(checker, a, 1)?;
    if table.ty.rank() == 0 {
        checker.report(
            Diagnostic::error(
                codes::RANK_MISMATCH,
                "`take` needs a table with at least one dimension",
                a.span(0),
            )
            .label("a scalar"),
        );
        return None;
    }
    let mut shape = ids.ty.shape.clone();
    shape.extend_from_slice(&table.ty.shape[1..]);
    let ty = TensorType::new(table.ty.dtype, shape);
    let node = checker.emit(Prim::Take, &ty, &[table.node, ids.node]);
    Some((ty, node))
}

/// `pick(x, ids)`: `x[..., C]` at `ids[...]` along the last axis.
fn pick(checker: &mut Checker, a: &Args) -> Out {
    let x = tensor(checker, a, 0)?;
    let ids = ids(checker, a, 1)?;
    let rank = x.ty.rank();
    if rank == 0 || x.ty.shape[..rank - 1] != ids.ty.shape[..] {
        checker.report(
            Diagnostic::error(
                codes::SHAPE_MISMATCH,
                format!(
                    "`pick` needs ids shaped like the values without their last axis: {} against {}",
                    ids.ty, x.ty
                ),
                a.span,
            )
            .label("shapes do not line up")
            .with_secondary(a.span(0), format!("values are {}", x.ty))
            .with_secondary(a.span(1), format!("ids are {}", ids.ty)),
        );
        return None;
    }
    let ty = TensorType::new(x.ty.dtype, ids.ty.shape.clone());
    let node = checker.emit(Prim::Pick, &ty, &[x.node, ids.node]);
    Some((ty, node))
}

fn one_hot(checker: &mut Checker, a: &Args) -> Out {
    let ids = ids(checker, a, 0)?;
    let classes = int_arg(checker, a, 1)?;
    // one_hot(ids, n) = f32(iota == ids[..., newaxis])
    let mut shape = ids.ty.shape.clone();
    shape.push(Dim::constant(1));
    let column = checker.emit(Prim::Reshape, &TensorType::new(DType::I32, shape), &[ids.node]);
    let mut shape = ids.ty.shape.clone();
    shape.push(classes);
    let wide = TensorType::new(DType::I32, shape.clone());
    let spread = checker.emit(Prim::Broadcast, &wide, &[column]);
    let iota = checker.emit(Prim::Iota { axis: shape.len() - 1 }, &wide, &[]);
    let mask = TensorType::new(DType::Bool, shape.clone());
    let equal = checker.emit(Prim::Binary(BinaryOp::Eq), &mask, &[spread, iota]);
    let ty = TensorType::new(DType::F32, shape);
    let node = checker.emit(Prim::Cast(DType::F32), &ty, &[equal]);
    Some((ty, node))
}

fn full(checker: &mut Checker, a: &Args) -> Out {
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
fn progress(checker: &mut Checker) -> (TensorType, Option<usize>) {
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

/// `unfold2d(x[N, C, H, W], kernel, stride, padding)`: every `kernel x
/// kernel` patch as a row, `[N, OH, OW, C * kernel * kernel]`, channel-major.
fn unfold2d(checker: &mut Checker, a: &Args) -> Out {
    let x = float_tensor(checker, a, 0)?;
    if x.ty.rank() != 4 {
        checker.report(
            Diagnostic::error(
                codes::RANK_MISMATCH,
                format!("`unfold2d` needs images [N, C, H, W], found {}", x.ty),
                a.span(0),
            )
            .label(format!("{} dimension{}", x.ty.rank(), plural(x.ty.rank()))),
        );
        return None;
    }
    let kernel = const_int(checker, a, 1, "the kernel size")?;
    let stride = if a.get(2).is_some() {
        const_int(checker, a, 2, "the stride")?
    } else {
        1
    };
    let padding = if a.get(3).is_some() {
        const_int(checker, a, 3, "the padding")?
    } else {
        0
    };
    for (value, what, index, min) in [
        (kernel, "kernel", 1, 1),
        (stride, "stride", 2, 1),
        (padding, "padding", 3, 0),
    ] {
        if value < min {
            checker.report(
                Diagnostic::error(
                    codes::BAD_VALUE,
                    format!("the {what} of `unfold2d` must be at least {min}, found {value}"),
                    a.span(index),
                )
                .label("out of range"),
            );
            return None;
        }
    }
    let mut out = vec![x.ty.shape[0].clone()];
    for (axis, name) in [(2, "height"), (3, "width")] {
        let Some(size) = x.ty.shape[axis].as_const() else {
            checker.report(
                Diagnostic::error(
                    codes::NOT_CONSTANT,
                    format!(
                        "the image {name} must be known when compiling, found {}",
                        x.ty.shape[axis]
                    ),
                    a.span(0),
                )
                .label(format!("this is {}", x.ty)),
            );
            return None;
        };
        let span = size + 2 * padding - kernel;
        if span < 0 {
            checker.report(
                Diagnostic::error(
                    codes::SHAPE_MISMATCH,
                    format!(
                        "the kernel {kernel} is larger than the padded image {name} {}",
                        size + 2 * padding
                    ),
                    a.span,
                )
                .label("kernel does not fit")
                .with_secondary(a.span(0), format!("this is {}", x.ty)),
            );
            return None;
        }
        out.push(Dim::constant(span / stride + 1));
    }
    out.push(x.ty.shape[1].mul(&Dim::constant(kernel * kernel)));
    let ty = TensorType::new(x.ty.dtype, out);
    let window = Window {
        kernel: kernel as usize,
        stride: stride as usize,
        padding: padding as usize,
    };
    let node = checker.emit(Prim::Unfold2d(window), &ty, &[x.node]);
    Some((ty, node))
}

// ------------------------------------------------------------------ require

/// `require(condition, message)`: a check of hyper-parameters when
/// compiling. A false condition is error E0501 with `message` at the call
/// (in a library block: at the user's call of it); the result is the
/// condition, so a block can bind it (`ok = require(blank >= 0, "...")`).
fn require(checker: &mut Checker, a: &Args) -> Value {
    let message = match a.value(1) {
        Value::Str(message) => message,
        other => {
            checker.report(
                Diagnostic::error(
                    codes::WRONG_KIND,
                    format!("the message of `require` must be a string, found {}", other.kind_name()),
                    a.span(1),
                )
                .label("not a string"),
            );
            return Value::Error;
        }
    };
    match a.value(0) {
        Value::Bool(true) => Value::Bool(true),
        Value::Bool(false) => {
            checker.error(Diagnostic::error(codes::BAD_VALUE, message, a.span).label("this requirement does not hold"))
        }
        other => {
            checker.report(
                Diagnostic::error(
                    codes::NOT_CONSTANT,
                    format!(
                        "the condition of `require` must be known when compiling, found {}",
                        other.kind_name()
                    ),
                    a.span(0),
                )
                .label("not a constant boolean")
                .with_help("compare hyper-parameters or sizes, e.g. `blank >= 0`"),
            );
            Value::Error
        }
    }
}

// --------------------------------------------------------------------- scan

/// `scan(step, xs[N, T, ...], init[N, ...])`: runs `step(x_t, carry)` over the
/// T steps (backwards with `reverse: true`) and stacks the carries,
/// `[N, T, ...]`. Named arguments it does not know go to `step`; the step's
/// parameters are shared by all time steps.
fn scan(checker: &mut Checker, a: &Args, forwarded: Vec<ArgValue>, callee_span: Span) -> Out {
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

// ------------------------------------------------------------------ slicing

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
