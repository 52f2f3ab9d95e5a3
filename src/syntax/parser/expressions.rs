//! Expressions: a pest `expr` pair in, an [`Expr`] out — operators by
//! precedence (the Pratt table below), literals (negative numbers folded,
//! strings unescaped), calls, indexing and slices, fields, `if` and `repeat`.

use std::sync::LazyLock;

use pest::pratt_parser::{Assoc, Op, PrattParser};

use super::*;

static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::range, Assoc::Left))
        .op(Op::infix(Rule::or, Assoc::Left))
        .op(Op::infix(Rule::and, Assoc::Left))
        .op(Op::infix(Rule::eq, Assoc::Left)
            | Op::infix(Rule::ne, Assoc::Left)
            | Op::infix(Rule::lt, Assoc::Left)
            | Op::infix(Rule::le, Assoc::Left)
            | Op::infix(Rule::gt, Assoc::Left)
            | Op::infix(Rule::ge, Assoc::Left))
        .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
        .op(Op::infix(Rule::mul, Assoc::Left)
            | Op::infix(Rule::div, Assoc::Left)
            | Op::infix(Rule::matmul, Assoc::Left))
        .op(Op::prefix(Rule::neg) | Op::prefix(Rule::not))
        .op(Op::postfix(Rule::call_args) | Op::postfix(Rule::index) | Op::postfix(Rule::field))
});

impl Builder {
    pub(super) fn expr(&self, pair: Pair<Rule>) -> Result<Expr> {
        debug_assert_eq!(pair.as_rule(), Rule::expr);
        PRATT
            .map_primary(|p| self.primary(p))
            .map_prefix(|op, operand| {
                let operand = operand?;
                let op_span = self.span(&op);
                let kind = if op.as_rule() == Rule::neg {
                    UnaryOp::Neg
                } else {
                    UnaryOp::Not
                };
                // Fold `-3` and `-1e-3` into literals so they stay constants.
                let span = op_span.to(operand.span);
                let kind = match (kind, &operand.kind) {
                    (UnaryOp::Neg, ExprKind::Int(n)) => ExprKind::Int(-n),
                    (UnaryOp::Neg, ExprKind::Float(x)) => ExprKind::Float(-x),
                    _ => ExprKind::Unary {
                        op: kind,
                        operand: Box::new(operand),
                    },
                };
                Ok(Expr { kind, span })
            })
            .map_postfix(|base, op| {
                let base = base?;
                let op_span = self.span(&op);
                let span = base.span.to(op_span);
                let kind = match op.as_rule() {
                    Rule::call_args => ExprKind::Call {
                        callee: Box::new(base),
                        args: self.args(op)?,
                    },
                    Rule::index => ExprKind::Index {
                        base: Box::new(base),
                        items: self.index_items(op)?,
                    },
                    Rule::field => ExprKind::Field {
                        base: Box::new(base),
                        name: self.ident(op.into_inner().next().expect("field name")),
                    },
                    other => unreachable!("not a postfix: {other:?}"),
                };
                Ok(Expr { kind, span })
            })
            .map_infix(|lhs, op, rhs| {
                let (lhs, rhs) = (lhs?, rhs?);
                let op_kind = match op.as_rule() {
                    Rule::range => BinaryOp::Range,
                    Rule::or => BinaryOp::Or,
                    Rule::and => BinaryOp::And,
                    Rule::eq => BinaryOp::Eq,
                    Rule::ne => BinaryOp::Ne,
                    Rule::lt => BinaryOp::Lt,
                    Rule::le => BinaryOp::Le,
                    Rule::gt => BinaryOp::Gt,
                    Rule::ge => BinaryOp::Ge,
                    Rule::add => BinaryOp::Add,
                    Rule::sub => BinaryOp::Sub,
                    Rule::mul => BinaryOp::Mul,
                    Rule::div => BinaryOp::Div,
                    Rule::matmul => BinaryOp::MatMul,
                    other => unreachable!("not an infix: {other:?}"),
                };
                let span = lhs.span.to(rhs.span);
                Ok(Expr {
                    kind: ExprKind::Binary {
                        op: op_kind,
                        op_span: self.span(&op),
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                    },
                    span,
                })
            })
            .parse(pair.into_inner().flat_map(|p| {
                // `operand` groups a primary with its postfixes; the Pratt
                // parser wants them as a flat sequence.
                if p.as_rule() == Rule::operand {
                    p.into_inner().collect::<Vec<_>>()
                } else {
                    vec![p]
                }
            }))
    }

    fn primary(&self, pair: Pair<Rule>) -> Result<Expr> {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::integer => match pair.as_str().parse::<i64>() {
                Ok(n) => ExprKind::Int(n),
                Err(_) => {
                    return Err(
                        Diagnostic::error(codes::BAD_NUMBER, "integer literal is too large", span)
                            .label("does not fit in 64 bits"),
                    )
                }
            },
            Rule::float => match pair.as_str().parse::<f64>() {
                Ok(x) if x.is_finite() => ExprKind::Float(x),
                _ => {
                    return Err(
                        Diagnostic::error(codes::BAD_NUMBER, "number literal is out of range", span)
                            .label("not a finite 64-bit float"),
                    )
                }
            },
            Rule::string => ExprKind::Str(unescape(pair.as_str())),
            Rule::boolean => ExprKind::Bool(pair.as_str() == "true"),
            Rule::training => ExprKind::Training,
            Rule::ident => ExprKind::Name(pair.as_str().to_string()),
            Rule::paren => return self.expr(pair.into_inner().next().expect("inner expr")),
            Rule::list => {
                let mut elements = Vec::new();
                for p in pair.into_inner() {
                    elements.push(self.expr(p)?);
                }
                ExprKind::List(elements)
            }
            Rule::if_expr => self.if_expr(pair)?,
            Rule::repeat_expr => {
                let mut parts = self.children(pair);
                let count_pair = parts.next().expect("count");
                let count = match count_pair.as_rule() {
                    Rule::paren => self.expr(count_pair.into_inner().next().expect("expr"))?,
                    _ => self.primary(count_pair)?,
                };
                let block = self.ident(parts.next().expect("block"));
                let args = self.args(parts.next().expect("args"))?;
                ExprKind::Repeat {
                    count: Box::new(count),
                    block,
                    args,
                }
            }
            other => unreachable!("not a primary: {other:?}"),
        };
        Ok(Expr { kind, span })
    }

    fn if_expr(&self, pair: Pair<Rule>) -> Result<ExprKind> {
        let mut parts = self.children(pair);
        let cond = self.expr(parts.next().expect("condition"))?;
        let then_body = self.body(parts.next().expect("then"))?;
        let else_pair = parts.next().expect("else");
        let else_body = match else_pair.as_rule() {
            Rule::body => self.body(else_pair)?,
            _ => {
                // `else if`: wrap the nested conditional in a body of its own.
                let span = self.span(&else_pair);
                let nested = Expr {
                    kind: self.if_expr(else_pair)?,
                    span,
                };
                Body {
                    stmts: Vec::new(),
                    result: Box::new(nested),
                    span,
                }
            }
        };
        Ok(ExprKind::If {
            cond: Box::new(cond),
            then_body,
            else_body,
        })
    }

    fn args(&self, pair: Pair<Rule>) -> Result<Vec<Arg>> {
        let mut args = Vec::new();
        for arg in pair.into_inner() {
            let span = self.trimmed_span(&arg);
            let mut parts: Vec<_> = arg.into_inner().collect();
            let value = self.expr(parts.pop().expect("arg value"))?;
            let name = parts.pop().map(|p| self.ident(p));
            args.push(Arg { name, value, span });
        }
        Ok(args)
    }

    fn index_items(&self, pair: Pair<Rule>) -> Result<Vec<IndexItem>> {
        let mut items = Vec::new();
        for item in pair.into_inner() {
            let span = self.span(&item);
            items.push(match item.as_rule() {
                Rule::ellipsis => IndexItem::Ellipsis(span),
                Rule::slice => {
                    let mut bounds = Vec::new();
                    for bound in item.into_inner() {
                        bounds.push(
                            bound
                                .into_inner()
                                .next()
                                .map(|e| self.expr(e).map(Box::new))
                                .transpose()?,
                        );
                    }
                    let mut bounds = bounds.into_iter();
                    IndexItem::Slice {
                        start: bounds.next().flatten(),
                        end: bounds.next().flatten(),
                        step: bounds.next().flatten(),
                        span,
                    }
                }
                _ => IndexItem::Index(self.expr(item)?),
            });
        }
        Ok(items)
    }
}

fn unescape(quoted: &str) -> String {
    let inner = &quoted[1..quoted.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}
