//! Operators: unary and binary arithmetic on values (constants folded,
//! tensors broadcast and promoted), fields and indexing.

use super::*;

impl Checker<'_> {
    pub(super) fn unary(&mut self, op: UnaryOp, value: Value, span: Span) -> Value {
        match (op, value) {
            (_, Value::Error) => Value::Error,
            (UnaryOp::Neg, Value::Int(d)) => Value::Int(d.neg()),
            (UnaryOp::Neg, Value::Float(x)) => Value::Float(-x),
            (UnaryOp::Neg, Value::Tensor(t)) if t.ty.dtype != ast::DType::Bool => {
                self.tensor_value(Prim::Unary(prim::UnaryOp::Neg), t.ty, &[t.node], span)
            }
            (UnaryOp::Not, Value::Bool(b)) => Value::Bool(!b),
            (UnaryOp::Not, Value::Tensor(t)) if t.ty.dtype == ast::DType::Bool => {
                self.tensor_value(Prim::Unary(prim::UnaryOp::Not), t.ty, &[t.node], span)
            }
            (op, other) => {
                let (symbol, wanted) = match op {
                    UnaryOp::Neg => ("-", "a number or a numeric tensor"),
                    UnaryOp::Not => ("not", "a boolean or a bool tensor"),
                };
                self.error(
                    Diagnostic::error(
                        codes::WRONG_KIND,
                        format!("`{symbol}` needs {wanted}, found {}", other.kind_name()),
                        span,
                    )
                    .label(format!("cannot apply `{symbol}` here")),
                )
            }
        }
    }

    pub fn binary(&mut self, op: BinaryOp, op_span: Span, lhs: (Value, Span), rhs: (Value, Span)) -> Value {
        let ((a, a_span), (b, b_span)) = (lhs, rhs);
        if matches!(a, Value::Error) || matches!(b, Value::Error) {
            return Value::Error;
        }
        if op == BinaryOp::Range {
            return Value::Range(Box::new(a), Box::new(b));
        }
        // Compile-time arithmetic and logic.
        if let Some(value) = self.constant_binary(op, op_span, &a, &b) {
            return value;
        }
        // A tensor divided by a divisor known to be zero is infinite or NaN
        // everywhere (`dropout(x, p: 1.0)` divides by `1.0 - p`).
        if op == BinaryOp::Div && b.as_number() == Some(0.0) {
            return self.error(
                Diagnostic::error(codes::DIVISION, "division by zero", op_span)
                    .label("the divisor is 0")
                    .with_secondary(b_span, "this is 0 when compiling"),
            );
        }
        let a_tensor = self.promote(&a, &b, a_span);
        let b_tensor = self.promote(&b, &a, b_span);
        let (Some(ta), Some(tb)) = (a_tensor, b_tensor) else {
            return self.error(
                Diagnostic::error(
                    codes::WRONG_KIND,
                    format!(
                        "`{}` cannot combine {} and {}",
                        op.symbol(),
                        a.kind_name(),
                        b.kind_name()
                    ),
                    op_span,
                )
                .label("unsupported operands")
                .with_secondary(a_span, a.kind_name())
                .with_secondary(b_span, b.kind_name()),
            );
        };
        let lhs = Operand {
            tensor: &ta,
            span: a_span,
        };
        let rhs = Operand {
            tensor: &tb,
            span: b_span,
        };
        let result = if op == BinaryOp::MatMul {
            ops::matmul(op_span, lhs, rhs)
        } else {
            ops::elementwise(op, op_span, lhs, rhs)
        };
        match result {
            Ok(ty) => {
                let node = match crate::check::emit::binary_prim(op) {
                    Some(prim) => self.elementwise_node(prim, &ta, &tb, &ty),
                    None => self.matmul_node(&ta, &tb, &ty),
                };
                Value::Tensor(Tensor {
                    ty,
                    origin: a_span.to(b_span),
                    node,
                })
            }
            Err(diagnostic) => self.error(diagnostic),
        }
    }

    /// Turns a number used beside a tensor into a scalar tensor of the
    /// tensor's dtype. Float numbers do not silently become integers.
    pub fn promote(&mut self, value: &Value, other: &Value, span: Span) -> Option<Tensor> {
        let other_dtype = match other {
            Value::Tensor(t) => t.ty.dtype,
            _ => ast::DType::F32,
        };
        let mut scalar = |dtype| {
            let node = self.scalar_node(value, dtype);
            Some(Tensor {
                ty: TensorType::scalar(dtype),
                origin: span,
                node,
            })
        };
        match value {
            Value::Tensor(t) => Some(t.clone()),
            Value::Int(_) => match other_dtype {
                ast::DType::Bool => scalar(ast::DType::I32),
                dtype => scalar(dtype),
            },
            Value::Float(_) if other_dtype.is_float() => scalar(other_dtype),
            Value::Float(_) => scalar(ast::DType::F32),
            Value::Bool(_) => scalar(ast::DType::Bool),
            _ => None,
        }
    }

    pub(super) fn constant_binary(&mut self, op: BinaryOp, op_span: Span, a: &Value, b: &Value) -> Option<Value> {
        use BinaryOp::*;
        match (a, b) {
            (Value::Int(x), Value::Int(y)) => Some(match op {
                Add => Value::Int(x.add(y)),
                Sub => Value::Int(x.sub(y)),
                Mul => Value::Int(x.mul(y)),
                Div => match x.div_exact(y) {
                    Some(q) => Value::Int(q),
                    None => match (x.as_const(), y.as_const()) {
                        (_, Some(0)) => self.error(
                            Diagnostic::error(codes::DIVISION, "division by zero", op_span).label("the divisor is 0"),
                        ),
                        (Some(p), Some(q)) => Value::Float(p as f64 / q as f64),
                        _ => self.error(
                            Diagnostic::error(codes::DIVISION, format!("{x} is not divisible by {y}"), op_span)
                                .label("sizes must divide exactly"),
                        ),
                    },
                },
                Eq | Ne | Lt | Le | Gt | Ge => {
                    if op == Eq || op == Ne {
                        return Some(Value::Bool((x == y) == (op == Eq)));
                    }
                    let (Some(p), Some(q)) = (x.as_const(), y.as_const()) else {
                        return Some(
                            self.error(
                                Diagnostic::error(
                                    codes::NOT_CONSTANT,
                                    format!("cannot compare {x} and {y} when compiling"),
                                    op_span,
                                )
                                .label("one side is only known when the program runs"),
                            ),
                        );
                    };
                    Value::Bool(compare(op, p as f64, q as f64))
                }
                MatMul | And | Or | Range => return None,
            }),
            (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
                let (Some(x), Some(y)) = (a.as_number(), b.as_number()) else {
                    return Some(
                        self.error(
                            Diagnostic::error(
                                codes::NOT_CONSTANT,
                                "a symbolic size cannot be mixed with a fractional number",
                                op_span,
                            )
                            .label("only known when the program runs"),
                        ),
                    );
                };
                Some(match op {
                    Add => Value::Float(x + y),
                    Sub => Value::Float(x - y),
                    Mul => Value::Float(x * y),
                    Div if y == 0.0 => self.error(
                        Diagnostic::error(codes::DIVISION, "division by zero", op_span).label("the divisor is 0"),
                    ),
                    Div => Value::Float(x / y),
                    Eq | Ne | Lt | Le | Gt | Ge => Value::Bool(compare(op, x, y)),
                    MatMul | And | Or | Range => return None,
                })
            }
            (Value::Bool(x), Value::Bool(y)) => match op {
                And => Some(Value::Bool(*x && *y)),
                Or => Some(Value::Bool(*x || *y)),
                Eq => Some(Value::Bool(x == y)),
                Ne => Some(Value::Bool(x != y)),
                _ => None,
            },
            (Value::Str(x), Value::Str(y)) => match op {
                Eq => Some(Value::Bool(x == y)),
                Ne => Some(Value::Bool(x != y)),
                Add => Some(Value::Str(format!("{x}{y}"))),
                _ => None,
            },
            _ => None,
        }
    }

    // ----------------------------------------------------- fields, index

    pub(super) fn field(&mut self, value: Value, name: &ast::Ident) -> Value {
        match value {
            Value::Error => Value::Error,
            Value::Data(index) => crate::check::data::field(self, index, name),
            other => self.error(
                Diagnostic::error(
                    codes::UNKNOWN_FIELD,
                    format!("{} has no field `{}`", other.kind_name(), name.name),
                    name.span,
                )
                .label("no such field")
                .with_help("fields belong to datasets, as in `digits.x`"),
            ),
        }
    }

    pub(super) fn index(
        &mut self,
        base: Value,
        base_span: Span,
        items: &[ast::IndexItem],
        scope: &mut Scope,
        span: Span,
    ) -> Value {
        match base {
            Value::Error => Value::Error,
            Value::List(list) => {
                let [ast::IndexItem::Index(index)] = items else {
                    return self.error(
                        Diagnostic::error(codes::WRONG_KIND, "a list takes one integer index", span)
                            .label("slices apply to tensors"),
                    );
                };
                let position = self.eval(index, scope);
                let Some(i) = position.as_const_int() else {
                    return if matches!(position, Value::Error) {
                        Value::Error
                    } else {
                        self.error(
                            Diagnostic::error(codes::WRONG_KIND, "a list index must be a constant integer", index.span)
                                .label(position.kind_name()),
                        )
                    };
                };
                match ops::normalize_axis(i, list.len()) {
                    Some(i) => list[i].clone(),
                    None => self.error(
                        Diagnostic::error(
                            codes::INDEX_OUT_OF_RANGE,
                            format!("index {i} is out of range for a list of {} items", list.len()),
                            index.span,
                        )
                        .label("out of range"),
                    ),
                }
            }
            Value::Tensor(tensor) => crate::check::builtins::slice(self, tensor, base_span, items, scope, span),
            other => self.error(
                Diagnostic::error(
                    codes::WRONG_KIND,
                    format!("cannot index {}", other.kind_name()),
                    base_span,
                )
                .label("not a tensor or a list"),
            ),
        }
    }
}
