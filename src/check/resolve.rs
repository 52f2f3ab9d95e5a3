//! Names in blocks the program never calls.
//!
//! The checker elaborates a block at each call, with its arguments' shapes,
//! so a block that nothing calls yet would be skipped whole: a misspelt
//! name in it would surface only on its first call, maybe in another
//! session. This pass walks such blocks of the user's file and reports
//! every name that resolves to nothing (with the same diagnostic, and the
//! same suggestions, as a call would give), and every call whose arguments
//! do not fit the callee's parameters (unknown, duplicate, missing or
//! surplus). Shapes and types are not checked: without arguments there are
//! none to check.
//!
//! In: a block declaration and the checker's globals. Out: diagnostics.

use super::eval::{ArgValue, Checker};
use super::scope::{Binding, BindingKind, Scope};
use super::types::{Callable, Value};
use crate::diagnostics::Span;
use crate::syntax::ast::{Arg, BlockDecl, Body, DimExpr, Expr, ExprKind, IndexItem, Stmt, TensorType, TypeExpr};

impl Checker<'_> {
    /// Reports the unknown names of `decl`, a block of the user's file that
    /// was not called.
    pub fn resolve_uncalled(&mut self, decl: &BlockDecl) {
        let saved = self.set_globals_visible(true);
        let mut scope = Scope::new();
        let bind = |scope: &mut Scope, name: &str, span, kind| {
            scope.bind(
                name,
                Binding {
                    value: Value::Error,
                    span,
                    kind,
                },
            )
        };
        // The signature first: every input and hyper-parameter, and every
        // size it names (`B` in `f32[B, D]` binds `B` unless it is a
        // constant).
        for param in &decl.params {
            match &param.ty {
                TypeExpr::Tensor(ty) => {
                    for dim in &ty.dims {
                        if let DimExpr::Expr(Expr {
                            kind: ExprKind::Name(size),
                            span,
                        }) = dim
                        {
                            if !self.is_global(size) {
                                bind(&mut scope, size, *span, BindingKind::ShapeVar);
                            }
                        }
                    }
                    bind(&mut scope, &param.name.name, param.name.span, BindingKind::Input);
                }
                TypeExpr::Hyper(..) => bind(&mut scope, &param.name.name, param.name.span, BindingKind::Hyper),
            }
        }
        for param in &decl.params {
            if let Some(default) = &param.default {
                self.resolve_expr(default, &mut scope);
            }
            if let TypeExpr::Tensor(ty) = &param.ty {
                self.resolve_compound_dims(ty, &mut scope);
            }
        }
        self.resolve_body(&decl.body, &mut scope);
        self.set_globals_visible(saved);
    }

    /// Sizes written as expressions (`4 * D`): their names must resolve.
    fn resolve_compound_dims(&mut self, ty: &TensorType, scope: &mut Scope) {
        for dim in &ty.dims {
            if let DimExpr::Expr(expr) = dim {
                if !matches!(expr.kind, ExprKind::Name(_)) {
                    self.resolve_expr(expr, scope);
                }
            }
        }
    }

    fn resolve_type(&mut self, ty: &TensorType, scope: &mut Scope) {
        for dim in &ty.dims {
            if let DimExpr::Expr(expr) = dim {
                self.resolve_expr(expr, scope);
            }
        }
    }

    fn resolve_body(&mut self, body: &Body, scope: &mut Scope) {
        let bind = |scope: &mut Scope, name: &crate::syntax::ast::Ident, kind| {
            scope.bind(
                &name.name,
                Binding {
                    value: Value::Error,
                    span: name.span,
                    kind,
                },
            )
        };
        for stmt in &body.stmts {
            match stmt {
                Stmt::Param { name, ty, init, .. } | Stmt::State { name, ty, init, .. } => {
                    self.resolve_type(ty, scope);
                    if let Some(init) = init {
                        self.resolve_expr(init, scope);
                    }
                    let kind = if matches!(stmt, Stmt::Param { .. }) {
                        BindingKind::Param
                    } else {
                        BindingKind::State
                    };
                    bind(scope, name, kind);
                }
                Stmt::Update { name, value, .. } => {
                    self.resolve_expr(value, scope);
                    self.lookup(&name.name, name.span, scope);
                }
                Stmt::Let { name, value, .. } => {
                    self.resolve_expr(value, scope);
                    bind(scope, name, BindingKind::Let);
                }
            }
        }
        self.resolve_expr(&body.result, scope);
    }

    fn resolve_expr(&mut self, expr: &Expr, scope: &mut Scope) {
        match &expr.kind {
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Training => {}
            ExprKind::Name(name) => {
                self.lookup(name, expr.span, scope);
            }
            ExprKind::List(items) => items.iter().for_each(|e| self.resolve_expr(e, scope)),
            ExprKind::Unary { operand, .. } => self.resolve_expr(operand, scope),
            ExprKind::Binary { lhs, rhs, .. } => {
                self.resolve_expr(lhs, scope);
                self.resolve_expr(rhs, scope);
            }
            ExprKind::Call { callee, args } => {
                // A named callee resolves as `resolve_expr` would resolve
                // it; a block or builtin then has its arguments matched.
                let callable = match &callee.kind {
                    ExprKind::Name(name) => match self.lookup(name, callee.span, scope) {
                        Value::Fn(callable) => Some(callable),
                        _ => None,
                    },
                    _ => {
                        self.resolve_expr(callee, scope);
                        None
                    }
                };
                args.iter().for_each(|a| self.resolve_expr(&a.value, scope));
                if let Some(callable) = callable {
                    self.resolve_args(&callable, args, expr.span);
                }
            }
            ExprKind::Index { base, items } => {
                self.resolve_expr(base, scope);
                for item in items {
                    match item {
                        IndexItem::Ellipsis(_) => {}
                        IndexItem::Index(e) => self.resolve_expr(e, scope),
                        IndexItem::Slice { start, end, step, .. } => {
                            for e in [start, end, step].into_iter().flatten() {
                                self.resolve_expr(e, scope);
                            }
                        }
                    }
                }
            }
            // A field's name depends on the value (a dataset's columns).
            ExprKind::Field { base, .. } => self.resolve_expr(base, scope),
            ExprKind::If {
                cond,
                then_body,
                else_body,
            } => {
                self.resolve_expr(cond, scope);
                for body in [then_body, else_body] {
                    scope.push();
                    self.resolve_body(body, scope);
                    scope.pop();
                }
            }
            ExprKind::Repeat { count, block, args } => {
                self.resolve_expr(count, scope);
                self.lookup(&block.name, block.span, scope);
                args.iter().for_each(|a| self.resolve_expr(&a.value, scope));
            }
        }
    }

    /// Matches `args` to the parameters of `callee` (the same checks a call
    /// makes, on placeholder values).
    fn resolve_args(&mut self, callee: &Callable, args: &[Arg], span: Span) {
        let params = match callee {
            Callable::Block(block) => match self.blocks.get(block.as_str()) {
                Some(decl) => super::eval::block_signature(decl),
                None => return,
            },
            // `scan` forwards extra named arguments to its step.
            Callable::Builtin(builtin) if *builtin != "scan" => match super::builtins::signature(builtin) {
                Some(signature) => signature,
                None => return,
            },
            Callable::Builtin(_) => return,
        };
        let values = args
            .iter()
            .map(|a| ArgValue {
                name: a.name.clone(),
                value: Value::Error,
                span: a.span,
            })
            .collect();
        let _ = self.bind_args(callee.name(), &params, values, span);
    }
}
