//! Calls: a block or builtin applied to evaluated arguments — binding
//! arguments to parameters, unifying input shapes with the declared ones,
//! elaborating the block with its own scope, `repeat`, and instance paths.

use super::statements::initializer_call;
use super::*;

impl<'a> Checker<'a> {
    pub fn call(&mut self, callee: Value, callee_span: Span, args: Vec<ArgValue>, span: Span) -> Value {
        match callee {
            Value::Error => Value::Error,
            Value::Fn(Callable::Block(name)) => {
                let Some(decl) = self.blocks.get(&name).copied() else {
                    return Value::Error;
                };
                self.call_block(decl, args, span, callee_span)
            }
            Value::Fn(Callable::Builtin(name)) => crate::check::builtins::call(self, name, args, span, callee_span),
            Value::Init(base) => match initializer_call(self, &base, args, span) {
                Some(init) => Value::Init(init),
                None => Value::Error,
            },
            other => self.error(
                Diagnostic::error(
                    codes::NOT_CALLABLE,
                    format!("{} cannot be called", other.kind_name()),
                    callee_span,
                )
                .label("not a block or function"),
            ),
        }
    }

    pub(super) fn repeat(
        &mut self,
        count: &Expr,
        block: &ast::Ident,
        args: &[ast::Arg],
        scope: &mut Scope,
        span: Span,
    ) -> Value {
        let count_value = self.eval(count, scope);
        let args = self.eval_args(args, scope);
        let n = match count_value.as_const_int() {
            Some(n) if (1..=MAX_REPEAT).contains(&n) => n,
            Some(n) if n > MAX_REPEAT => {
                return self.error(
                    Diagnostic::error(
                        codes::BAD_VALUE,
                        format!("`repeat` allows at most {MAX_REPEAT} copies, found {n}"),
                        count.span,
                    )
                    .label("too many copies"),
                )
            }
            _ if matches!(count_value, Value::Error) => return Value::Error,
            Some(n) => {
                return self.error(
                    Diagnostic::error(
                        codes::BAD_VALUE,
                        format!("`repeat` needs a count of at least 1, found {n}"),
                        count.span,
                    )
                    .label("must be 1 or more"),
                )
            }
            None => {
                return self.error(
                    Diagnostic::error(
                        codes::NOT_CONSTANT,
                        format!(
                            "`repeat` needs a constant integer count, found {}",
                            count_value.kind_name()
                        ),
                        count.span,
                    )
                    .label("not a constant integer"),
                )
            }
        };
        let Some(decl) = self.blocks.get(&block.name).copied() else {
            let value = self.lookup(&block.name, block.span, scope);
            if matches!(value, Value::Fn(Callable::Builtin(_))) {
                return self.error(
                    Diagnostic::error(
                        codes::WRONG_KIND,
                        format!("`repeat` needs a block, but `{}` is a primitive", block.name),
                        block.span,
                    )
                    .label("not a block")
                    .with_help("primitives have no parameters to repeat; call it directly"),
                );
            }
            return Value::Error;
        };
        if args.first().is_none_or(|a| a.name.is_some()) {
            return self.error(
                Diagnostic::error(
                    codes::MISSING_ARGUMENT,
                    "`repeat` needs the input as the first positional argument",
                    span,
                )
                .label("the first argument feeds the first copy"),
            );
        }
        let mut args = args;
        for _ in 0..n {
            let output = self.call_block(decl, args.clone(), span, block.span);
            if matches!(output, Value::Error) {
                return Value::Error;
            }
            args[0].value = output;
        }
        args.swap_remove(0).value
    }

    /// Matches arguments to a signature: positional in order, then by name.
    /// Reports unknown, duplicate, missing and surplus arguments.
    pub fn bind_args(
        &mut self,
        callee: &str,
        params: &[(&str, Span, bool)],
        args: Vec<ArgValue>,
        call_span: Span,
    ) -> Option<Vec<Option<ArgValue>>> {
        let mut bound: Vec<Option<ArgValue>> = vec![None; params.len()];
        let mut ok = true;
        let mut seen_named = false;
        let mut position = 0;
        for arg in args {
            match &arg.name {
                None => {
                    if seen_named {
                        self.report(
                            Diagnostic::error(
                                codes::POSITIONAL_AFTER_NAMED,
                                "a positional argument cannot follow named ones",
                                arg.span,
                            )
                            .label("positional argument")
                            .with_help("give it a name, or move it before the named arguments"),
                        );
                        ok = false;
                        continue;
                    }
                    if position >= params.len() {
                        let mut diagnostic = Diagnostic::error(
                            codes::TOO_MANY_ARGUMENTS,
                            format!(
                                "`{callee}` takes {} argument{}, but more were given",
                                params.len(),
                                plural(params.len())
                            ),
                            arg.span,
                        )
                        .label("unexpected argument");
                        if let Some((_, span, _)) = params.last() {
                            if *span != Span::default() {
                                diagnostic = diagnostic.with_secondary(*span, "the last parameter");
                            }
                        }
                        self.report(diagnostic);
                        ok = false;
                        continue;
                    }
                    bound[position] = Some(arg);
                    position += 1;
                }
                Some(name) => {
                    seen_named = true;
                    let Some(index) = params.iter().position(|(p, _, _)| *p == name.name) else {
                        let names: Vec<&str> = params.iter().map(|(p, _, _)| *p).collect();
                        let mut diagnostic = Diagnostic::error(
                            codes::UNKNOWN_ARGUMENT,
                            format!("`{callee}` has no parameter named `{}`", name.name),
                            name.span,
                        )
                        .label("unknown argument");
                        diagnostic = match suggest(&name.name, names.iter().copied()) {
                            Some(close) => diagnostic.with_help(format!("did you mean `{close}`?")),
                            None => diagnostic.with_help(format!("its parameters are: {}", names.join(", "))),
                        };
                        self.report(diagnostic);
                        ok = false;
                        continue;
                    };
                    if let Some(previous) = &bound[index] {
                        self.report(
                            Diagnostic::error(
                                codes::DUPLICATE_ARGUMENT,
                                format!("argument `{}` is given twice", name.name),
                                name.span,
                            )
                            .label("given again here")
                            .with_secondary(previous.span, "first given here"),
                        );
                        ok = false;
                        continue;
                    }
                    bound[index] = Some(arg);
                }
            }
        }
        for (i, (name, span, required)) in params.iter().enumerate() {
            if *required && bound[i].is_none() {
                let mut diagnostic = Diagnostic::error(
                    codes::MISSING_ARGUMENT,
                    format!("missing argument `{name}` of `{callee}`"),
                    call_span,
                )
                .label(format!("`{name}` is required"));
                if *span != Span::default() {
                    diagnostic = diagnostic.with_secondary(*span, "declared here without a default");
                }
                self.report(diagnostic);
                ok = false;
            }
        }
        ok.then_some(bound)
    }

    /// Elaborates one call of a block: binds arguments, unifies tensor
    /// inputs with the signature (binding its size names), evaluates the body
    /// and checks the result against the declared output type.
    pub fn call_block(
        &mut self,
        decl: &'a BlockDecl,
        args: Vec<ArgValue>,
        call_span: Span,
        callee_span: Span,
    ) -> Value {
        let name = decl.name.name.as_str();
        if self.frames.iter().any(|f| f.block == name) {
            return self.error(
                Diagnostic::error(codes::RECURSION, format!("`{name}` calls itself"), callee_span)
                    .label("recursive call")
                    .with_secondary(decl.name.span, "defined here")
                    .with_help("blocks are expanded when compiling; use `repeat` or `scan` for repetition"),
            );
        }
        self.block_calls += 1;
        self.called.insert(name.to_string());
        if self.block_calls > MAX_BLOCK_CALLS || self.trace.nodes.len() > MAX_TRACE_NODES {
            return self.error(
                Diagnostic::error(
                    codes::BAD_VALUE,
                    format!(
                        "the program expands to more than {MAX_BLOCK_CALLS} block calls or {MAX_TRACE_NODES} operations"
                    ),
                    callee_span,
                )
                .label("expansion stopped here")
                .with_help("check `repeat` counts and sequence lengths"),
            );
        }
        if self.frames.len() > 64 {
            return self.error(
                Diagnostic::error(codes::RECURSION, "blocks are nested too deeply", callee_span)
                    .label("64 levels deep"),
            );
        }
        let Some(bound) = self.bind_args(name, &block_signature(decl), args, call_span) else {
            return Value::Error;
        };
        if bound.iter().flatten().any(|a| matches!(a.value, Value::Error)) {
            return Value::Error;
        }
        let mut scope = Scope::new();
        let saved_visibility = self.globals_visible;
        self.globals_visible = decl.span.file == self.user_file;
        let result = self.elaborate(decl, &bound, &mut scope, call_span);
        self.globals_visible = saved_visibility;
        result
    }

    pub(super) fn elaborate(
        &mut self,
        decl: &'a BlockDecl,
        bound: &[Option<ArgValue>],
        scope: &mut Scope,
        call_span: Span,
    ) -> Value {
        let name = decl.name.name.as_str();
        let Some(ellipsis) = self.unify_inputs(decl, bound, scope, call_span) else {
            return Value::Error;
        };
        let is_model = decl.kind == BlockKind::Model;
        let was_recording = self.recording;
        let path = self.instance_path(name, is_model);
        if is_model && !self.instantiated_models.insert(name.to_string()) {
            self.recording = false;
        }
        self.frames.push(Frame {
            block: name.to_string(),
            call_span,
            path,
            children: HashMap::new(),
        });
        let result = self.eval_body(&decl.body, scope);
        let result = self.check_result(decl, result, scope, &ellipsis);
        self.frames.pop();
        if self.probe.as_deref() == Some(name) && self.trace.outputs.iter().all(|(n, _)| n != "hidden") {
            if let Value::Tensor(Tensor { node: Some(node), .. }) = &result {
                self.trace.set_output("hidden", *node);
            }
        }
        if is_model && self.trace.outputs.iter().all(|(n, _)| n != "model_output") {
            if let Value::Tensor(Tensor { node: Some(node), .. }) = &result {
                self.trace.set_output("model_output", *node);
            }
        }
        if is_model && self.recording && self.model_signature.is_none() {
            if let Value::Tensor(output) = &result {
                let inputs = decl
                    .params
                    .iter()
                    .zip(bound)
                    .filter_map(|(p, a)| match a.as_ref().map(|a| &a.value) {
                        Some(Value::Tensor(t)) => Some((p.name.name.clone(), t.ty.clone())),
                        _ => None,
                    })
                    .collect();
                self.model_signature = Some((name.to_string(), inputs, output.ty.clone()));
            }
        }
        self.recording = was_recording;
        retag(result, call_span)
    }

    /// How many instances of each block the current instance has made; with
    /// [`Checker::set_child_counts`], lets `scan` call its step as the same
    /// instance at every time step.
    pub fn child_counts(&self) -> HashMap<String, usize> {
        self.frames.last().map(|f| f.children.clone()).unwrap_or_default()
    }

    pub fn set_child_counts(&mut self, counts: HashMap<String, usize>) {
        if let Some(frame) = self.frames.last_mut() {
            frame.children = counts;
        }
    }

    pub(super) fn instance_path(&mut self, name: &str, is_model: bool) -> String {
        if is_model {
            return name.to_string();
        }
        match self.frames.last_mut() {
            Some(parent) => {
                let count = parent.children.entry(name.to_string()).or_insert(0);
                let path = if *count == 0 {
                    format!("{}.{name}", parent.path)
                } else {
                    format!("{}.{name}_{count}", parent.path)
                };
                *count += 1;
                path
            }
            None => name.to_string(),
        }
    }

    /// Binds tensor inputs and their size names, then hyper-parameters, then
    /// checks the sizes written as expressions. Returns the `...` dimensions.
    pub(super) fn unify_inputs(
        &mut self,
        decl: &BlockDecl,
        bound: &[Option<ArgValue>],
        scope: &mut Scope,
        call_span: Span,
    ) -> Option<Vec<Dim>> {
        let hyper_names: HashSet<&str> = decl
            .params
            .iter()
            .filter(|p| matches!(p.ty, TypeExpr::Hyper(..)))
            .map(|p| p.name.name.as_str())
            .collect();
        let mut ellipsis: Option<(Vec<Dim>, Span)> = None;
        let mut deferred: Vec<(&Expr, Dim, &ast::ParamDecl, usize, Tensor, Span)> = Vec::new();
        let mut ok = true;
        // Pass 1: tensor inputs, binding bare size names.
        for (param, arg) in decl.params.iter().zip(bound) {
            let TypeExpr::Tensor(ty) = &param.ty else {
                continue;
            };
            let Some(arg) = arg else {
                self.report(
                    Diagnostic::error(codes::BAD_STATEMENT, "a tensor input cannot have a default", param.span)
                        .label("give the tensor as an argument"),
                );
                ok = false;
                continue;
            };
            let tensor = match &arg.value {
                Value::Tensor(t) => t.clone(),
                Value::Int(_) | Value::Float(_)
                    if ty.dims.iter().all(|d| matches!(d, DimExpr::Ellipsis(_))) || ty.dims.is_empty() =>
                {
                    Tensor {
                        ty: TensorType::scalar(ty.dtype),
                        origin: arg.span,
                        node: self.scalar_node(&arg.value, ty.dtype),
                    }
                }
                other => {
                    self.report(
                        Diagnostic::error(
                            codes::WRONG_KIND,
                            format!(
                                "`{}` of `{}` must be a tensor {}, found {}",
                                param.name.name,
                                decl.name.name,
                                type_text(ty),
                                other.kind_name()
                            ),
                            arg.span,
                        )
                        .label("not a tensor")
                        .with_secondary(param.span, "declared here"),
                    );
                    ok = false;
                    continue;
                }
            };
            if tensor.ty.dtype != ty.dtype {
                self.report(
                    Diagnostic::error(
                        codes::DTYPE_MISMATCH,
                        format!(
                            "`{}` of `{}` must be {}, found {}",
                            param.name.name,
                            decl.name.name,
                            ty.dtype.name(),
                            tensor.ty.dtype.name()
                        ),
                        arg.span,
                    )
                    .label(format!("this is {}", tensor.ty))
                    .with_secondary(ty.span, format!("declared as {}", type_text(ty)))
                    .with_help(format!("convert with `{}(...)`", ty.dtype.name())),
                );
                ok = false;
                continue;
            }
            let has_ellipsis = ty.dims.iter().any(|d| matches!(d, DimExpr::Ellipsis(_)));
            let fixed = ty.dims.len() - usize::from(has_ellipsis);
            let rank = tensor.ty.rank();
            if (has_ellipsis && rank < fixed) || (!has_ellipsis && rank != fixed) {
                self.report(
                    Diagnostic::error(
                        codes::RANK_MISMATCH,
                        format!(
                            "`{}` of `{}` expects {} dimension{}, found {} ({})",
                            param.name.name,
                            decl.name.name,
                            if has_ellipsis {
                                format!("at least {fixed}")
                            } else {
                                fixed.to_string()
                            },
                            plural(fixed),
                            rank,
                            tensor.ty
                        ),
                        arg.span,
                    )
                    .label(format!("this is {}", tensor.ty))
                    .with_secondary(ty.span, format!("declared as {}", type_text(ty))),
                );
                ok = false;
                continue;
            }
            // Line the declared dimensions up with the actual ones.
            let mut actual = 0;
            for dim in &ty.dims {
                match dim {
                    DimExpr::Ellipsis(span) => {
                        let count = rank - fixed;
                        let dims = tensor.ty.shape[actual..actual + count].to_vec();
                        actual += count;
                        match &ellipsis {
                            None => ellipsis = Some((dims, arg.span)),
                            Some((previous, previous_span)) if *previous != dims => {
                                self.report(
                                    Diagnostic::error(
                                        codes::SHAPE_MISMATCH,
                                        format!(
                                            "the leading dimensions `...` of `{}` differ between inputs: {} and {}",
                                            decl.name.name,
                                            format_shape(previous),
                                            format_shape(&dims)
                                        ),
                                        arg.span,
                                    )
                                    .label(format!("`...` is {} here", format_shape(&dims)))
                                    .with_secondary(*previous_span, format!("`...` is {} here", format_shape(previous)))
                                    .with_secondary(*span, "`...` must be the same in every input"),
                                );
                                ok = false;
                            }
                            Some(_) => {}
                        }
                    }
                    DimExpr::Expr(expr) => {
                        let actual_dim = tensor.ty.shape[actual].clone();
                        let axis = actual;
                        actual += 1;
                        if let ExprKind::Name(size_name) = &expr.kind {
                            let is_constant = self.globals_visible && self.globals.contains_key(size_name);
                            let is_size_var = !(hyper_names.contains(size_name.as_str()) || is_constant);
                            if is_size_var {
                                match scope.get(size_name) {
                                    None => scope.bind(
                                        size_name,
                                        Binding {
                                            value: Value::Int(actual_dim),
                                            span: expr.span,
                                            kind: BindingKind::ShapeVar,
                                        },
                                    ),
                                    Some(existing) => {
                                        let existing = existing.clone();
                                        if existing.value != Value::Int(actual_dim.clone()) {
                                            let Value::Int(expected) = &existing.value else {
                                                continue;
                                            };
                                            self.report(size_mismatch(
                                                decl,
                                                param,
                                                size_name,
                                                expected,
                                                &actual_dim,
                                                &tensor,
                                                arg.span,
                                                axis,
                                                existing.span,
                                            ));
                                            ok = false;
                                        }
                                    }
                                }
                                continue;
                            }
                        }
                        deferred.push((expr, actual_dim, param, axis, tensor.clone(), arg.span));
                    }
                }
            }
            // In the user's own blocks, an input's shape "comes from" its
            // declared type; in library blocks, from the caller's argument.
            let origin = if decl.span.file == self.user_file {
                ty.span
            } else {
                tensor.origin
            };
            let value = Value::Tensor(Tensor {
                ty: tensor.ty.clone(),
                origin,
                node: tensor.node,
            });
            self.observe(param.name.span, &value);
            scope.bind(
                &param.name.name,
                Binding {
                    value,
                    span: param.name.span,
                    kind: BindingKind::Input,
                },
            );
        }
        // Pass 2: hyper-parameters, from arguments or defaults.
        for (param, arg) in decl.params.iter().zip(bound) {
            let TypeExpr::Hyper(kind, _) = &param.ty else {
                continue;
            };
            let (value, span) = match arg {
                Some(arg) => (arg.value.clone(), arg.span),
                None => {
                    let default = param.default.as_ref().expect("bind_args checked required parameters");
                    (self.eval(default, scope), default.span)
                }
            };
            let value = match coerce_hyper(*kind, value) {
                Ok(value) => value,
                Err(value) => {
                    if !matches!(value, Value::Error) {
                        self.report(
                            Diagnostic::error(
                                codes::WRONG_KIND,
                                format!(
                                    "`{}` of `{}` must be {}, found {}",
                                    param.name.name,
                                    decl.name.name,
                                    hyper_kind_text(*kind),
                                    value.kind_name()
                                ),
                                span,
                            )
                            .label(format!("expected {}", hyper_kind_text(*kind)))
                            .with_secondary(param.span, "declared here"),
                        );
                    }
                    ok = false;
                    Value::Error
                }
            };
            self.observe(param.name.span, &value);
            scope.bind(
                &param.name.name,
                Binding {
                    value,
                    span: param.name.span,
                    kind: BindingKind::Hyper,
                },
            );
        }
        // Pass 3: sizes written as expressions (`4 * D`, `heads`).
        for (expr, actual, param, axis, tensor, arg_span) in deferred {
            let Some(expected) = self.dim_value(expr, scope) else {
                ok = false;
                continue;
            };
            if expected != actual {
                let name = match &expr.kind {
                    ExprKind::Name(n) => n.clone(),
                    _ => String::new(),
                };
                self.report(size_mismatch(
                    decl, param, &name, &expected, &actual, &tensor, arg_span, axis, expr.span,
                ));
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        let _ = call_span;
        Some(ellipsis.map(|(dims, _)| dims).unwrap_or_default())
    }

    pub(super) fn check_result(
        &mut self,
        decl: &BlockDecl,
        result: Value,
        scope: &mut Scope,
        ellipsis: &[Dim],
    ) -> Value {
        let Some(ret) = &decl.ret else { return result };
        let Some(declared) = self.tensor_type(ret, scope, Some(ellipsis)) else {
            return Value::Error;
        };
        match &result {
            Value::Error => Value::Error,
            Value::Tensor(t) if t.ty == declared => result,
            Value::Tensor(t) => self.error(
                Diagnostic::error(
                    codes::RETURN_MISMATCH,
                    format!(
                        "`{}` must return {declared}, but its result is {}",
                        decl.name.name, t.ty
                    ),
                    decl.body.result.span,
                )
                .label(format!("this is {}", t.ty))
                .with_secondary(ret.span, format!("declared output {declared}")),
            ),
            other => self.error(
                Diagnostic::error(
                    codes::RETURN_MISMATCH,
                    format!(
                        "`{}` must return a tensor {declared}, found {}",
                        decl.name.name,
                        other.kind_name()
                    ),
                    decl.body.result.span,
                )
                .label("not a tensor")
                .with_secondary(ret.span, "declared output"),
            ),
        }
    }
}
