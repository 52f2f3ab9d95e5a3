//! Statements: the `let`, `param`, `state` and `update` lines of a body,
//! evaluated into its scope — a `let` binds a value, a `param` or `state`
//! becomes a named leaf of the trace (recorded once, with its initializer),
//! an `update` checks the state's new value and records it as an output.

use super::*;

impl Checker<'_> {
    pub(super) fn statement(&mut self, stmt: &Stmt, scope: &mut Scope) {
        match stmt {
            Stmt::Let { name, value, .. } => {
                let value = self.eval(value, scope);
                if matches!(
                    scope.get(&name.name).map(|b| b.kind),
                    Some(BindingKind::Param | BindingKind::State)
                ) {
                    self.report(
                        Diagnostic::error(
                            codes::BAD_STATEMENT,
                            format!("`{}` is a parameter or state and cannot be reassigned", name.name),
                            name.span,
                        )
                        .label("assigned here")
                        .with_help("use `update` to give a state its next value"),
                    );
                    return;
                }
                let value = retag(value, name.span);
                self.observe(name.span, &value);
                scope.bind(
                    &name.name,
                    Binding {
                        value,
                        span: name.span,
                        kind: BindingKind::Let,
                    },
                );
            }
            Stmt::Param { name, ty, init, span } | Stmt::State { name, ty, init, span } => {
                let is_param = matches!(stmt, Stmt::Param { .. });
                let tensor_type = self.tensor_type(ty, scope, None).filter(|t| {
                    let empty = has_zero_size(t);
                    if empty {
                        self.report(
                            Diagnostic::error(codes::ZERO_SIZE, ZERO_SIZE_MESSAGE, ty.span)
                                .label(format!("`{}` would be {t}", name.name))
                                .with_help(ZERO_SIZE_HELP),
                        );
                    }
                    let large = !empty && t.is_too_large();
                    if large {
                        self.report(tensor_too_large(ty.span, format!("`{}` would be {t}", name.name)));
                    }
                    !empty && !large
                });
                let Some(tensor_type) = tensor_type else {
                    scope.bind(
                        &name.name,
                        Binding {
                            value: Value::Error,
                            span: name.span,
                            kind: BindingKind::Param,
                        },
                    );
                    return;
                };
                let initializer = match init {
                    Some(init) => self.initializer(init, scope),
                    None if is_param && tensor_type.rank() >= 2 => Some(Initializer::Xavier { gain: 1.0 }),
                    None => Some(Initializer::Zeros),
                };
                let node = self.declare_param(name, &tensor_type, initializer, *span, ty.span, is_param);
                let value = Value::Tensor(Tensor {
                    ty: tensor_type,
                    origin: ty.span,
                    node,
                });
                self.observe(name.span, &value);
                scope.bind(
                    &name.name,
                    Binding {
                        value,
                        span: name.span,
                        kind: if is_param {
                            BindingKind::Param
                        } else {
                            BindingKind::State
                        },
                    },
                );
            }
            Stmt::Update { name, value, span } => {
                let new_value = self.eval(value, scope);
                let Some(binding) = scope.get(&name.name).cloned() else {
                    self.lookup(&name.name, name.span, scope);
                    return;
                };
                if binding.kind != BindingKind::State {
                    self.report(
                        Diagnostic::error(
                            codes::BAD_STATEMENT,
                            format!("`update` needs a state, but `{}` is not one", name.name),
                            name.span,
                        )
                        .label("not declared with `state`")
                        .with_secondary(binding.span, "declared here"),
                    );
                    return;
                }
                if let (Value::Tensor(state), Value::Tensor(next)) = (&binding.value, &new_value) {
                    if state.ty == next.ty {
                        if let Some(node) = next.node {
                            let path = self.member_path(&name.name);
                            self.trace.set_output(&format!("update {path}"), node);
                        }
                    }
                    if state.ty != next.ty {
                        self.report(
                            Diagnostic::error(
                                codes::SHAPE_MISMATCH,
                                format!(
                                    "the new value of `{}` is {}, but the state is {}",
                                    name.name, next.ty, state.ty
                                ),
                                value.span,
                            )
                            .label(format!("this is {}", next.ty))
                            .with_secondary(state.origin, format!("the state is declared as {}", state.ty)),
                        );
                    }
                } else if !matches!(new_value, Value::Error | Value::Tensor(_)) {
                    self.report(
                        Diagnostic::error(
                            codes::WRONG_KIND,
                            format!("a state's new value must be a tensor, found {}", new_value.kind_name()),
                            *span,
                        )
                        .label("not a tensor"),
                    );
                }
            }
        }
    }

    fn declare_param(
        &mut self,
        name: &ast::Ident,
        ty: &TensorType,
        init: Option<Initializer>,
        span: Span,
        type_span: Span,
        is_param: bool,
    ) -> Option<usize> {
        if let Some(symbolic) = ty.shape.iter().find(|d| d.is_symbolic()) {
            self.report(
                Diagnostic::error(
                    codes::BAD_DIMENSION,
                    format!(
                        "the shape of `{}` must be known when compiling, but it is {ty}",
                        name.name
                    ),
                    type_span,
                )
                .label(format!("`{symbolic}` is only known when the program runs"))
                .with_help("parameter sizes come from constants and hyper-parameters, not from the batch"),
            );
            return None;
        }
        let path = self.member_path(&name.name);
        let leaf = if is_param {
            Prim::Param(path.clone())
        } else {
            Prim::State(path.clone())
        };
        let node = self.emit(leaf, ty, &[]);
        // A model called again, or a `scan` step at its next time step, reuses
        // the parameters it declared the first time.
        let list = if is_param { &self.params } else { &self.states };
        if self.recording && !list.iter().any(|p| p.path == path) {
            let info = ParamInfo {
                path,
                ty: ty.clone(),
                init: init.unwrap_or(Initializer::Zeros),
                span,
            };
            if is_param {
                self.params.push(info);
            } else {
                self.states.push(info);
            }
        }
        node
    }

    /// The path of a parameter or state `name` of the current instance.
    fn member_path(&self, name: &str) -> String {
        match self.frames.last() {
            Some(frame) => format!("{}.{name}", frame.path),
            None => name.to_string(),
        }
    }

    /// `xavier`, `zeros`, `normal(std: 0.02)`, ...
    fn initializer(&mut self, expr: &Expr, scope: &mut Scope) -> Option<Initializer> {
        let value = self.eval(expr, scope);
        match value {
            Value::Init(init) => Some(init),
            Value::Fn(Callable::Builtin("zeros")) => Some(Initializer::Zeros),
            Value::Fn(Callable::Builtin("ones")) => Some(Initializer::Ones),
            Value::Error => None,
            Value::Int(_) | Value::Float(_) => Some(Initializer::Constant(value.as_number().unwrap_or(0.0))),
            other => {
                self.report(
                    Diagnostic::error(
                        codes::WRONG_KIND,
                        format!("expected an initializer, found {}", other.kind_name()),
                        expr.span,
                    )
                    .label("not an initializer")
                    .with_help(
                        "initializers: zeros, ones, normal(std: ..), uniform(low, high), xavier, kaiming, or a number",
                    ),
                );
                None
            }
        }
    }
}

pub(super) fn initializer_name(name: &str) -> Option<Initializer> {
    Some(match name {
        "xavier" => Initializer::Xavier { gain: 1.0 },
        "kaiming" => Initializer::Kaiming { gain: 1.0 },
        "normal" => Initializer::Normal { mean: 0.0, std: 1.0 },
        "uniform" => Initializer::Uniform { low: -1.0, high: 1.0 },
        _ => return None,
    })
}

/// `normal(std: 0.02)`, `uniform(-0.1, 0.1)`, `xavier(gain: 2)`: the named
/// initializer with its arguments applied.
pub(super) fn initializer_call(
    checker: &mut Checker,
    base: &Initializer,
    args: Vec<ArgValue>,
    span: Span,
) -> Option<Initializer> {
    let (name, params): (&str, &[&str]) = match base {
        Initializer::Normal { .. } => ("normal", &["std", "mean"]),
        Initializer::Uniform { .. } => ("uniform", &["low", "high"]),
        Initializer::Xavier { .. } => ("xavier", &["gain"]),
        Initializer::Kaiming { .. } => ("kaiming", &["gain"]),
        _ => ("constant", &["value"]),
    };
    let signature: Vec<(&str, Span, bool)> = params.iter().map(|p| (*p, Span::default(), false)).collect();
    let bound = checker.bind_args(name, &signature, args, span)?;
    let mut numbers = Vec::new();
    for arg in &bound {
        match arg {
            None => numbers.push(None),
            Some(arg) => match arg.value.as_number() {
                Some(x) => numbers.push(Some(x)),
                None => {
                    if !matches!(arg.value, Value::Error) {
                        checker.report(
                            Diagnostic::error(
                                codes::WRONG_KIND,
                                format!("arguments of `{name}` are numbers, found {}", arg.value.kind_name()),
                                arg.span,
                            )
                            .label("not a number"),
                        );
                    }
                    return None;
                }
            },
        }
    }
    let get = |i: usize, default: f64| numbers.get(i).copied().flatten().unwrap_or(default);
    let init = match base {
        Initializer::Normal { .. } => Initializer::Normal {
            std: get(0, 1.0),
            mean: get(1, 0.0),
        },
        Initializer::Uniform { .. } => Initializer::Uniform {
            low: get(0, -1.0),
            high: get(1, 1.0),
        },
        Initializer::Xavier { .. } => Initializer::Xavier { gain: get(0, 1.0) },
        Initializer::Kaiming { .. } => Initializer::Kaiming { gain: get(0, 1.0) },
        _ => Initializer::Constant(get(0, 0.0)),
    };
    let bad = match &init {
        Initializer::Normal { std, .. } if *std < 0.0 => Some("`std` cannot be negative"),
        Initializer::Uniform { low, high } if low > high => Some("`low` must not exceed `high`"),
        _ => None,
    };
    if let Some(message) = bad {
        checker.report(Diagnostic::error(codes::BAD_VALUE, message, span).label("invalid initializer"));
        return None;
    }
    Some(init)
}
