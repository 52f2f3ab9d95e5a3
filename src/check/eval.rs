//! The checker's evaluator: walks expressions with compile-time values and
//! tensor types, elaborating every block call with its own bindings, so each
//! shape is known (symbolically) and each mistake found before anything runs.

mod calls;
mod operators;
mod statements;

use std::collections::{HashMap, HashSet};

use super::dims::{format_shape, Dim};
use super::ops::{self, Operand};
use super::scope::{suggest, Binding, BindingKind, Scope};
use super::types::{Callable, Initializer, Tensor, TensorType, Value};
use super::{Dataset, ParamInfo};
use crate::diagnostics::{codes, Diagnostic, Span};
use crate::prim::{self, Prim};
use crate::syntax::ast::{self, BinaryOp, BlockDecl, BlockKind, DimExpr, Expr, ExprKind, Stmt, TypeExpr, UnaryOp};
use statements::initializer_name;

/// Limits on how far a program may expand when elaborated.
const MAX_REPEAT: i64 = 1000;
const MAX_BLOCK_CALLS: usize = 200_000;
pub const MAX_TRACE_NODES: usize = 2_000_000;

/// Deepest expression nesting evaluated (long operator chains included).
const MAX_DEPTH: usize = 5000;

/// The model's name, tensor inputs (name and type) and output type.
pub type ModelSignature = (String, Vec<(String, TensorType)>, TensorType);

/// One block instance on the elaboration stack.
struct Frame {
    block: String,
    call_span: Span,
    /// Dotted path of the instance, e.g. `gpt.gpt_layer_1.attention`.
    path: String,
    /// How many instances of each block this instance has created so far.
    children: HashMap<String, usize>,
}

pub struct Checker<'a> {
    pub user_file: u32,
    pub blocks: HashMap<String, &'a BlockDecl>,
    pub globals: HashMap<String, Binding>,
    pub datasets: Vec<Dataset>,
    pub diagnostics: Vec<Diagnostic>,
    /// Value of `training` in this pass (the checker runs a train and an eval pass).
    pub training: bool,
    /// Parameters and states declared by elaborated blocks, in order.
    pub params: Vec<ParamInfo>,
    pub states: Vec<ParamInfo>,
    /// Models already instantiated: later calls share their parameters.
    pub instantiated_models: HashSet<String>,
    /// The model's name, tensor inputs and output at its first call.
    pub model_signature: Option<ModelSignature>,
    frames: Vec<Frame>,
    /// Whether parameters of the current instance are recorded.
    recording: bool,
    /// Current nesting of `eval`, bounded by [`MAX_DEPTH`].
    depth: usize,
    /// Block calls elaborated so far, bounded by [`MAX_BLOCK_CALLS`].
    block_calls: usize,
    /// `require`s that did not hold so far: a body stops at one, since
    /// what follows it would fail because of it (dropout's `1 / (1 - p)`).
    pub unmet_requirements: usize,
    /// The program as primitive ops, for the current pass.
    pub trace: super::trace::Trace,
    /// In the probe pass: the block whose first output becomes the trace's
    /// `hidden` output.
    pub probe: Option<String>,
    /// In the decoding pass: the scans' carries so far ([`super::decode`]).
    pub decode: Option<super::decode::Carries>,
    /// Random ops created so far (each gets its own stream).
    pub random_streams: u32,
    /// Names declared by items that did not parse: using them is not a new error.
    pub poisoned: HashSet<String>,
    /// Whether the user's constants are in scope: not inside the standard
    /// library, whose blocks see only their own names.
    globals_visible: bool,
    /// Blocks elaborated at least once (the others get only their names
    /// checked, `resolve.rs`).
    pub called: HashSet<String>,
    /// The innermost expression of the user's file being evaluated: where
    /// the nodes emitted now come from (inside a library block, the user's
    /// call of it).
    pub user_span: Option<Span>,
    /// With `Some`, every value computed at a span of the user's file
    /// (`observe.rs`, for editors).
    pub observed: Option<super::observe::Observations>,
}

/// Whether a tensor type has a dimension known to be zero. Such a tensor
/// holds nothing (and a layer of width zero computes nothing), so the
/// checker rejects it where it is made rather than let code generation see
/// it.
fn has_zero_size(ty: &TensorType) -> bool {
    ty.shape.iter().any(|d| d.as_const() == Some(0))
}

/// One message for every empty tensor, so a layer whose parameters are all
/// empty (`linear(x, 0)`: `w` and `b`) is reported once at the call.
const ZERO_SIZE_MESSAGE: &str = "a tensor would have a size of zero";

const ZERO_SIZE_HELP: &str = "sizes must be at least 1: check the constants and arguments that give this size";

/// The error for a tensor with more elements than can be addressed, at
/// `span`, its label saying which size.
pub(super) fn tensor_too_large(span: Span, label: impl Into<String>) -> Diagnostic {
    Diagnostic::error(codes::TOO_LARGE, "a tensor would be too large", span)
        .label(label)
        .with_help(format!(
            "a tensor holds at most {} elements: check the constants and arguments that give this size",
            super::group_thousands(super::types::MAX_ELEMENTS)
        ))
}

/// The same for an integer (a size) whose arithmetic overflowed
/// ([`Dim::is_overflow`]), reported at the expression that overflowed.
const INTEGER_TOO_LARGE_MESSAGE: &str = "an integer would be too large";

fn integer_too_large_help() -> String {
    format!(
        "integers lie between {} and {}: check the constants and arguments that give this value",
        super::group_thousands(i64::MIN),
        super::group_thousands(i64::MAX)
    )
}

/// An argument after evaluation.
#[derive(Clone)]
pub struct ArgValue {
    pub name: Option<ast::Ident>,
    pub value: Value,
    pub span: Span,
}

/// A block's parameters as [`Checker::bind_args`] takes them: name,
/// span, and whether the call must give it.
pub fn block_signature(decl: &BlockDecl) -> Vec<(&str, Span, bool)> {
    decl.params
        .iter()
        .map(|p| (p.name.name.as_str(), p.span, p.default.is_none()))
        .collect()
}

impl<'a> Checker<'a> {
    pub fn new(user_file: u32, blocks: HashMap<String, &'a BlockDecl>) -> Checker<'a> {
        Checker {
            user_file,
            blocks,
            globals: HashMap::new(),
            datasets: Vec::new(),
            diagnostics: Vec::new(),
            training: true,
            params: Vec::new(),
            states: Vec::new(),
            instantiated_models: HashSet::new(),
            model_signature: None,
            frames: Vec::new(),
            recording: true,
            globals_visible: true,
            called: HashSet::new(),
            poisoned: HashSet::new(),
            trace: Default::default(),
            probe: None,
            decode: None,
            random_streams: 0,
            depth: 0,
            block_calls: 0,
            unmet_requirements: 0,
            user_span: None,
            observed: None,
        }
    }

    /// Records `value` at `span` when observing (see `observe.rs`).
    pub fn observe(&mut self, span: Span, value: &Value) {
        if span.file == self.user_file {
            if let Some(seen) = &mut self.observed {
                seen.push((span, value.clone()));
            }
        }
    }

    /// Records a diagnostic and returns the poison value. An error inside the
    /// standard library is reported at the user's call that led there.
    pub fn error(&mut self, diagnostic: Diagnostic) -> Value {
        self.report(diagnostic);
        Value::Error
    }

    pub fn report(&mut self, mut diagnostic: Diagnostic) {
        if diagnostic.primary.span.file != self.user_file {
            let user_frame = self.frames.iter().rev().find(|f| f.call_span.file == self.user_file);
            if let Some(frame) = user_frame {
                let inner = std::mem::replace(
                    &mut diagnostic.primary,
                    crate::diagnostics::Label {
                        span: frame.call_span,
                        message: format!("in this call to `{}`", frame.block),
                    },
                );
                let text = if inner.message.is_empty() {
                    "the problem is here".to_string()
                } else {
                    inner.message
                };
                diagnostic.secondary.insert(
                    0,
                    crate::diagnostics::Label {
                        span: inner.span,
                        message: text,
                    },
                );
            }
        }
        // One mistake reached through several paths (e.g. a bad size used in
        // three places of a library block) is reported once.
        let repeated = self.diagnostics.iter().any(|d| {
            d.code == diagnostic.code && d.message == diagnostic.message && d.primary.span == diagnostic.primary.span
        });
        if !repeated {
            self.diagnostics.push(diagnostic);
        }
    }

    // ------------------------------------------------------------ names

    /// Makes the user's constants visible or not; returns the old setting.
    pub(super) fn set_globals_visible(&mut self, visible: bool) -> bool {
        std::mem::replace(&mut self.globals_visible, visible)
    }

    /// Whether `name` is one of the user's constants (or other globals).
    pub(super) fn is_global(&self, name: &str) -> bool {
        self.globals.contains_key(name)
    }

    pub fn lookup(&mut self, name: &str, span: Span, scope: &Scope) -> Value {
        if let Some(binding) = scope.get(name) {
            return binding.value.clone();
        }
        if let Some(binding) = self.globals.get(name).filter(|_| self.globals_visible) {
            return binding.value.clone();
        }
        if self.blocks.contains_key(name) {
            return Value::Fn(Callable::Block(name.to_string()));
        }
        if let Some(builtin) = super::builtins::lookup(name) {
            return Value::Fn(Callable::Builtin(builtin));
        }
        if let Some(init) = initializer_name(name) {
            return Value::Init(init);
        }
        if self.globals_visible && self.poisoned.contains(name) {
            return Value::Error;
        }
        let mut candidates: Vec<&str> = scope.names().collect();
        if self.globals_visible {
            candidates.extend(self.globals.keys().map(String::as_str));
        }
        candidates.extend(self.blocks.keys().map(String::as_str));
        for builtin in super::builtins::names().chain(["xavier", "kaiming", "normal", "uniform"]) {
            candidates.push(builtin);
        }
        let close = suggest(name, candidates).map(str::to_string);
        let mut diagnostic =
            Diagnostic::error(codes::UNKNOWN_NAME, format!("unknown name `{name}`"), span).label("not defined here");
        if let Some(close) = close {
            diagnostic = diagnostic.with_help(format!("did you mean `{close}`?"));
        } else if name.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
            diagnostic = diagnostic.with_help(format!(
                "declare it with `const {name} = ...`, or name it in a signature"
            ));
        }
        self.error(diagnostic)
    }

    // ------------------------------------------------------- expressions

    pub fn eval(&mut self, expr: &Expr, scope: &mut Scope) -> Value {
        if self.depth >= MAX_DEPTH {
            return self.error(
                Diagnostic::error(
                    codes::SYNTAX,
                    format!("the expression is nested more than {MAX_DEPTH} levels deep"),
                    expr.span,
                )
                .label("too deep")
                .with_help("split it with intermediate names"),
            );
        }
        self.depth += 1;
        let outer = self.user_span;
        if expr.span.file == self.user_file {
            self.user_span = Some(expr.span);
        }
        let value = self.eval_inner(expr, scope);
        self.user_span = outer;
        self.depth -= 1;
        self.observe(expr.span, &value);
        match value {
            Value::Tensor(t) if has_zero_size(&t.ty) => self.error(
                Diagnostic::error(codes::ZERO_SIZE, ZERO_SIZE_MESSAGE, expr.span)
                    .label(format!("this would be {}", t.ty))
                    .with_help(ZERO_SIZE_HELP),
            ),
            Value::Tensor(t) if t.ty.is_too_large() => {
                self.error(tensor_too_large(expr.span, format!("this would be {}", t.ty)))
            }
            Value::Int(d) if d.is_overflow() => self.error(
                Diagnostic::error(codes::TOO_LARGE, INTEGER_TOO_LARGE_MESSAGE, expr.span)
                    .label("this overflows a 64-bit integer")
                    .with_help(integer_too_large_help()),
            ),
            value => value,
        }
    }

    fn eval_inner(&mut self, expr: &Expr, scope: &mut Scope) -> Value {
        match &expr.kind {
            ExprKind::Int(n) => Value::Int(Dim::constant(*n)),
            ExprKind::Float(x) => Value::Float(*x),
            ExprKind::Str(s) => Value::Str(s.clone()),
            ExprKind::Bool(b) => Value::Bool(*b),
            ExprKind::Training => Value::Bool(self.training),
            ExprKind::Name(name) => self.lookup(name, expr.span, scope),
            ExprKind::List(items) => Value::List(items.iter().map(|e| self.eval(e, scope)).collect()),
            ExprKind::Unary { op, operand } => {
                let value = self.eval(operand, scope);
                self.unary(*op, value, expr.span)
            }
            ExprKind::Binary { op, op_span, lhs, rhs } => {
                let a = self.eval(lhs, scope);
                let b = self.eval(rhs, scope);
                self.binary(*op, *op_span, (a, lhs.span), (b, rhs.span))
            }
            ExprKind::Call { callee, args } => {
                let callee_value = self.eval(callee, scope);
                let args = self.eval_args(args, scope);
                self.call(callee_value, callee.span, args, expr.span)
            }
            ExprKind::Index { base, items } => {
                let value = self.eval(base, scope);
                self.index(value, base.span, items, scope, expr.span)
            }
            ExprKind::Field { base, name } => {
                let value = self.eval(base, scope);
                self.field(value, name)
            }
            ExprKind::If {
                cond,
                then_body,
                else_body,
            } => {
                let condition = self.eval(cond, scope);
                match condition {
                    Value::Bool(true) => self.eval_body(then_body, scope),
                    Value::Bool(false) => self.eval_body(else_body, scope),
                    Value::Error => Value::Error,
                    other => self.error(
                        Diagnostic::error(
                            codes::WRONG_KIND,
                            format!(
                                "an `if` condition must be known when compiling, found {}",
                                other.kind_name()
                            ),
                            cond.span,
                        )
                        .label("not a compile-time boolean")
                        .with_help("use `where(mask, a, b)` to choose between tensors element by element"),
                    ),
                }
            }
            ExprKind::Repeat { count, block, args } => self.repeat(count, block, args, scope, expr.span),
        }
    }

    pub fn eval_args(&mut self, args: &[ast::Arg], scope: &mut Scope) -> Vec<ArgValue> {
        args.iter()
            .map(|arg| ArgValue {
                name: arg.name.clone(),
                value: self.eval(&arg.value, scope),
                span: arg.value.span,
            })
            .collect()
    }

    /// Evaluates statements then the result, in a nested scope; a
    /// `require` that does not hold ends the body with an error value.
    pub fn eval_body(&mut self, body: &ast::Body, scope: &mut Scope) -> Value {
        scope.push();
        let unmet = self.unmet_requirements;
        for stmt in &body.stmts {
            self.statement(stmt, scope);
            if self.unmet_requirements > unmet {
                scope.pop();
                return Value::Error;
            }
        }
        let result = self.eval(&body.result, scope);
        scope.pop();
        result
    }

    // ------------------------------------------------------------- types

    /// Evaluates a declared tensor type. With `ellipsis`, a `...` stands for
    /// those dimensions; without, `...` is an error.
    pub fn tensor_type(
        &mut self,
        ty: &ast::TensorType,
        scope: &mut Scope,
        ellipsis: Option<&[Dim]>,
    ) -> Option<TensorType> {
        let mut shape = Vec::new();
        let mut ok = true;
        for dim in &ty.dims {
            match dim {
                DimExpr::Ellipsis(span) => match ellipsis {
                    Some(dims) => shape.extend_from_slice(dims),
                    None => {
                        self.report(
                            Diagnostic::error(codes::BAD_DIMENSION, "`...` is only allowed in a signature", *span)
                                .label("write the dimensions out"),
                        );
                        ok = false;
                    }
                },
                DimExpr::Expr(expr) => match self.dim_value(expr, scope) {
                    Some(d) => shape.push(d),
                    None => ok = false,
                },
            }
        }
        ok.then(|| TensorType::new(ty.dtype, shape))
    }

    /// Evaluates an expression that must be a size.
    pub fn dim_value(&mut self, expr: &Expr, scope: &mut Scope) -> Option<Dim> {
        let value = self.eval(expr, scope);
        self.expect_dim(value, expr.span)
    }

    pub fn expect_dim(&mut self, value: Value, span: Span) -> Option<Dim> {
        match value {
            Value::Int(d) => {
                if let Some(n) = d.as_const() {
                    if n < 0 {
                        self.report(
                            Diagnostic::error(
                                codes::BAD_DIMENSION,
                                format!("a size cannot be negative, found {n}"),
                                span,
                            )
                            .label("negative size"),
                        );
                        return None;
                    }
                }
                Some(d)
            }
            Value::Float(x) => {
                self.report(
                    Diagnostic::error(
                        codes::BAD_DIMENSION,
                        format!("a size must be a whole number, found {}", short_number(x)),
                        span,
                    )
                    .label("not a whole number")
                    .with_help("check that the division is exact, e.g. the width by the number of heads"),
                );
                None
            }
            Value::Error => None,
            other => {
                self.report(
                    Diagnostic::error(
                        codes::WRONG_KIND,
                        format!("a size must be an integer, found {}", other.kind_name()),
                        span,
                    )
                    .label("not an integer"),
                );
                None
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn size_mismatch(
    decl: &BlockDecl,
    param: &ast::ParamDecl,
    size_name: &str,
    expected: &Dim,
    actual: &Dim,
    tensor: &Tensor,
    arg_span: Span,
    axis: usize,
    bound_at: Span,
) -> Diagnostic {
    let (said, secondary) = if size_name.is_empty() {
        (
            format!("the signature says {expected}"),
            format!("declared as {expected} here"),
        )
    } else {
        (
            format!("`{size_name}` is {expected}"),
            format!("`{size_name}` = {expected} from here"),
        )
    };
    Diagnostic::error(
        codes::SHAPE_MISMATCH,
        format!(
            "`{}` of `{}` has size {actual} on axis {axis}, but {said}",
            param.name.name, decl.name.name
        ),
        arg_span,
    )
    .label(format!("this is {}", tensor.ty))
    .with_secondary(bound_at, secondary)
}

fn compare(op: BinaryOp, x: f64, y: f64) -> bool {
    match op {
        BinaryOp::Eq => x == y,
        BinaryOp::Ne => x != y,
        BinaryOp::Lt => x < y,
        BinaryOp::Le => x <= y,
        BinaryOp::Gt => x > y,
        _ => x >= y,
    }
}

/// Marks where a tensor value now comes from (a name or a call).
fn retag(value: Value, span: Span) -> Value {
    match value {
        Value::Tensor(t) => Value::Tensor(Tensor { origin: span, ..t }),
        other => other,
    }
}

fn coerce_hyper(kind: ast::HyperType, value: Value) -> Result<Value, Value> {
    use ast::HyperType::*;
    match (kind, value) {
        (Int, v @ Value::Int(_)) => Ok(v),
        (Float, Value::Int(d)) if d.as_const().is_some() => Ok(Value::Float(d.as_const().unwrap_or(0) as f64)),
        (Float, v @ Value::Float(_)) => Ok(v),
        (Bool, v @ Value::Bool(_)) => Ok(v),
        (Str, v @ Value::Str(_)) => Ok(v),
        (Fn, v @ Value::Fn(_)) => Ok(v),
        (_, v) => Err(v),
    }
}

fn hyper_kind_text(kind: ast::HyperType) -> &'static str {
    match kind {
        ast::HyperType::Int => "an integer",
        ast::HyperType::Float => "a number",
        ast::HyperType::Bool => "`true` or `false`",
        ast::HyperType::Str => "a string",
        ast::HyperType::Fn => "a function such as `relu`",
    }
}

/// The declared type as written, e.g. `f32[..., I]`.
pub fn type_text(ty: &ast::TensorType) -> String {
    let dims: Vec<String> = ty
        .dims
        .iter()
        .map(|d| match d {
            DimExpr::Ellipsis(_) => "...".to_string(),
            DimExpr::Expr(e) => expr_text(e),
        })
        .collect();
    format!("{}[{}]", ty.dtype.name(), dims.join(", "))
}

fn expr_text(expr: &Expr) -> String {
    match &expr.kind {
        ExprKind::Int(n) => n.to_string(),
        ExprKind::Name(n) => n.clone(),
        ExprKind::Binary { op, lhs, rhs, .. } => {
            format!("{} {} {}", expr_text(lhs), op.symbol(), expr_text(rhs))
        }
        _ => "?".to_string(),
    }
}

/// A number with at most 4 decimals, for messages: `2.6667`.
pub fn short_number(x: f64) -> String {
    let text = format!("{x:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
