//! Text to AST: pest parses each top-level item; this file turns pairs into
//! `ast` nodes and pest errors into diagnostics.

use std::sync::LazyLock;

use pest::error::InputLocation;
use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser as _;

use super::ast::*;
use crate::diagnostics::{codes, Diagnostic, Span};

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/nn.pest"]
struct NnParser;

/// Words that start a top-level item when they begin a line.
const ITEM_KEYWORDS: &[&str] = &[
    "const",
    "dim",
    "data",
    "block",
    "model",
    "loss",
    "optimizer",
    "train",
    "eval",
    "generate",
    "sweep",
    "analyze",
];

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

/// Parses a whole file. Never fails: returns what it could build and the
/// syntax errors it met. Each top-level item is parsed on its own, so an error
/// in one item does not hide errors in the next.
pub fn parse(file: u32, source: &str) -> (File, Vec<Diagnostic>) {
    let mut items = Vec::new();
    let mut broken = Vec::new();
    let mut diagnostics = Vec::new();
    for (start, end) in item_chunks(source) {
        let chunk = &source[start..end];
        if is_trivia(chunk) {
            continue;
        }
        let builder = Builder { file, offset: start };
        if let Some(at) = too_deep(chunk) {
            let span = Span::new(file, start + at, start + at + 1);
            diagnostics.push(
                Diagnostic::error(
                    codes::SYNTAX,
                    format!("brackets are nested more than {MAX_NESTING} deep"),
                    span,
                )
                .label("too deep")
                .with_help("split the expression with intermediate names"),
            );
            broken.push(broken_item(chunk));
            continue;
        }
        match NnParser::parse(Rule::item_only, chunk) {
            Ok(mut pairs) => {
                let item_only = pairs.next().expect("item_only matched");
                for pair in item_only.into_inner() {
                    if pair.as_rule() == Rule::EOI {
                        continue;
                    }
                    match builder.item(pair) {
                        Ok(item) => items.push(item),
                        Err(diagnostic) => diagnostics.push(diagnostic),
                    }
                }
            }
            Err(error) => {
                diagnostics.push(builder.syntax_error(chunk, &error));
                broken.push(broken_item(chunk));
            }
        }
    }
    (File { items, broken }, diagnostics)
}

/// Deepest bracket nesting the parser accepts; deeper input is refused up
/// front rather than risking the stack.
const MAX_NESTING: usize = 128;

/// The offset of the first bracket nested deeper than [`MAX_NESTING`].
fn too_deep(chunk: &str) -> Option<usize> {
    let mut depth = 0usize;
    let (mut in_string, mut in_comment) = (false, false);
    for (i, c) in chunk.char_indices() {
        if in_comment {
            in_comment = c != '\n';
        } else if in_string {
            in_string = c != '"' && c != '\n';
        } else {
            match c {
                '#' => in_comment = true,
                '"' => in_string = true,
                '(' | '[' | '{' => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Some(i);
                    }
                }
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    None
}

/// The keyword and name of an item that failed to parse: `model gpt(...`.
fn broken_item(chunk: &str) -> BrokenItem {
    let text = chunk.trim_start();
    let word = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let keyword = word(text);
    let rest = text[keyword.len()..].trim_start_matches([' ', '\t']);
    let name = word(rest);
    let named = matches!(keyword.as_str(), "const" | "data" | "block" | "model") && !name.is_empty();
    BrokenItem {
        keyword,
        name: named.then_some(name),
    }
}

/// Splits the source at lines that begin (in column 1) with an item keyword:
/// the byte ranges the parser reads one item from (the formatter keeps them).
pub fn item_chunks(source: &str) -> Vec<(usize, usize)> {
    let mut starts = vec![0];
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        if offset > 0 && starts_item(line) {
            starts.push(offset);
        }
        offset += line.len();
    }
    let mut chunks = Vec::new();
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(source.len());
        chunks.push((start, end));
    }
    chunks
}

fn starts_item(line: &str) -> bool {
    ITEM_KEYWORDS.iter().any(|keyword| {
        line.strip_prefix(keyword)
            .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
    })
}

/// True if the text holds only whitespace and comments.
fn is_trivia(text: &str) -> bool {
    text.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#')
    })
}

struct Builder {
    file: u32,
    offset: usize,
}

type Result<T> = std::result::Result<T, Diagnostic>;

impl Builder {
    fn span(&self, pair: &Pair<Rule>) -> Span {
        let span = pair.as_span();
        Span::new(self.file, self.offset + span.start(), self.offset + span.end())
    }

    /// The span of a pair without the whitespace and comments that pest lets
    /// a rule ending in a repetition swallow.
    fn trimmed_span(&self, pair: &Pair<Rule>) -> Span {
        let span = pair.as_span();
        let end = span.start() + significant_len(span.as_str());
        Span::new(self.file, self.offset + span.start(), self.offset + end)
    }

    fn ident(&self, pair: Pair<Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    /// Children of a pair without the keyword tokens, which carry no data.
    fn children<'i>(&self, pair: Pair<'i, Rule>) -> impl Iterator<Item = Pair<'i, Rule>> {
        pair.into_inner().filter(|p| !is_keyword_token(p.as_rule()))
    }

    fn item(&self, pair: Pair<Rule>) -> Result<Item> {
        let span = self.trimmed_span(&pair);
        let rule = pair.as_rule();
        let mut inner = self.children(pair);
        let mut next = || inner.next().expect("grammar guarantees the child");
        Ok(match rule {
            Rule::const_decl => Item::Const(ConstDecl {
                name: self.ident(next()),
                value: self.expr(next())?,
                span,
            }),
            Rule::dim_decl => {
                let mut names = Vec::new();
                for p in inner {
                    names.push(self.ident(p));
                }
                Item::Dim(DimDecl { names, span })
            }
            Rule::data_decl => Item::Data(DataDecl {
                name: self.ident(next()),
                source: self.expr(next())?,
                span,
            }),
            Rule::block_decl | Rule::model_decl => {
                let kind = if rule == Rule::model_decl {
                    BlockKind::Model
                } else {
                    BlockKind::Block
                };
                let name = self.ident(next());
                let (params, ret) = self.signature(next())?;
                let body = self.body(next())?;
                Item::Block(BlockDecl {
                    kind,
                    name,
                    params,
                    ret,
                    body,
                    span,
                })
            }
            Rule::loss_decl => Item::Loss(LossDecl {
                value: self.expr(next())?,
                span,
            }),
            Rule::optimizer_decl => {
                let value = self.expr(next())?;
                let mut schedule = Vec::new();
                if let Some(schedule_pair) = inner.next() {
                    for p in self.children(schedule_pair) {
                        schedule.push(self.expr(p)?);
                    }
                }
                Item::Optimizer(OptimizerDecl { value, schedule, span })
            }
            Rule::section => {
                let kind_pair = next();
                let kind_span = self.span(&kind_pair);
                let kind = match kind_pair.as_str() {
                    "train" => SectionKind::Train,
                    "eval" => SectionKind::Eval,
                    "generate" => SectionKind::Generate,
                    "sweep" => SectionKind::Sweep,
                    _ => SectionKind::Analyze,
                };
                let mut settings = Vec::new();
                for setting in inner {
                    let span = self.trimmed_span(&setting);
                    let mut parts = setting.into_inner();
                    let name = self.ident(parts.next().expect("setting name"));
                    let value = self.expr(parts.next().expect("setting value"))?;
                    settings.push(Setting { name, value, span });
                }
                Item::Section(Section {
                    kind,
                    kind_span,
                    settings,
                    span,
                })
            }
            other => unreachable!("not an item: {other:?}"),
        })
    }

    fn signature(&self, pair: Pair<Rule>) -> Result<(Vec<ParamDecl>, Option<TensorType>)> {
        let mut params = Vec::new();
        let mut ret = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::param_decl => {
                    let span = self.trimmed_span(&p);
                    let mut parts = p.into_inner();
                    let name = self.ident(parts.next().expect("param name"));
                    let ty = self.any_type(parts.next().expect("param type"))?;
                    let default = parts.next().map(|d| self.expr(d)).transpose()?;
                    params.push(ParamDecl {
                        name,
                        ty,
                        default,
                        span,
                    });
                }
                Rule::tensor_type => ret = Some(self.tensor_type(p)?),
                other => unreachable!("in signature: {other:?}"),
            }
        }
        Ok((params, ret))
    }

    fn any_type(&self, pair: Pair<Rule>) -> Result<TypeExpr> {
        match pair.as_rule() {
            Rule::tensor_type => Ok(TypeExpr::Tensor(self.tensor_type(pair)?)),
            Rule::hyper_type => {
                let ty = match pair.as_str() {
                    "int" => HyperType::Int,
                    "float" => HyperType::Float,
                    "bool" => HyperType::Bool,
                    "str" => HyperType::Str,
                    _ => HyperType::Fn,
                };
                Ok(TypeExpr::Hyper(ty, self.span(&pair)))
            }
            other => unreachable!("not a type: {other:?}"),
        }
    }

    fn tensor_type(&self, pair: Pair<Rule>) -> Result<TensorType> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let dtype = match inner.next().expect("dtype").as_str() {
            "f32" => DType::F32,
            "f64" => DType::F64,
            "i32" => DType::I32,
            _ => DType::Bool,
        };
        let mut dims = Vec::new();
        for d in inner {
            dims.push(match d.as_rule() {
                Rule::ellipsis => DimExpr::Ellipsis(self.span(&d)),
                _ => DimExpr::Expr(self.expr(d)?),
            });
        }
        Ok(TensorType { dtype, dims, span })
    }

    fn body(&self, pair: Pair<Rule>) -> Result<Body> {
        let span = self.span(&pair);
        let mut stmts = Vec::new();
        let mut result = None;
        for p in pair.into_inner() {
            let stmt_span = self.trimmed_span(&p);
            match p.as_rule() {
                Rule::param_stmt | Rule::state_stmt => {
                    let is_param = p.as_rule() == Rule::param_stmt;
                    let mut parts = self.children(p);
                    let name = self.ident(parts.next().expect("name"));
                    let ty = self.tensor_type(parts.next().expect("type"))?;
                    let init = parts.next().map(|e| self.expr(e)).transpose()?;
                    stmts.push(if is_param {
                        Stmt::Param {
                            name,
                            ty,
                            init,
                            span: stmt_span,
                        }
                    } else {
                        Stmt::State {
                            name,
                            ty,
                            init,
                            span: stmt_span,
                        }
                    });
                }
                Rule::update_stmt | Rule::let_stmt => {
                    let is_update = p.as_rule() == Rule::update_stmt;
                    let mut parts = self.children(p);
                    let name = self.ident(parts.next().expect("name"));
                    let value = self.expr(parts.next().expect("value"))?;
                    stmts.push(if is_update {
                        Stmt::Update {
                            name,
                            value,
                            span: stmt_span,
                        }
                    } else {
                        Stmt::Let {
                            name,
                            value,
                            span: stmt_span,
                        }
                    });
                }
                Rule::expr => result = Some(self.expr(p)?),
                other => unreachable!("in body: {other:?}"),
            }
        }
        Ok(Body {
            stmts,
            result: Box::new(result.expect("grammar requires a result")),
            span,
        })
    }

    fn expr(&self, pair: Pair<Rule>) -> Result<Expr> {
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

    fn syntax_error(&self, chunk: &str, error: &pest::error::Error<Rule>) -> Diagnostic {
        let position = match error.location {
            InputLocation::Pos(p) => p,
            InputLocation::Span((s, _)) => s,
        };
        let found = describe_found(&chunk[position..]);
        let expected = match &error.variant {
            pest::error::ErrorVariant::ParsingError { positives, .. } => describe_expected(positives),
            pest::error::ErrorVariant::CustomError { message } => message.clone(),
        };
        let end = position + chunk[position..].chars().next().map_or(0, char::len_utf8);
        let span = Span::new(self.file, self.offset + position, self.offset + end);
        let message = if expected.is_empty() {
            format!("unexpected {found}")
        } else {
            format!("expected {expected}, found {found}")
        };
        let mut diagnostic = Diagnostic::error(codes::SYNTAX, message, span).label(if expected.is_empty() {
            "not expected here".to_string()
        } else {
            format!("expected {expected}")
        });
        if let Some(help) = syntax_help(chunk, position) {
            diagnostic = diagnostic.with_help(help);
        }
        // Point at the bracket left open, when the error is past its line.
        if let Some((at, open)) = unclosed_bracket(&chunk[..position]) {
            let line_of = |offset: usize| chunk[..offset].matches('\n').count();
            // A bracket on an earlier line is blamed only if the item never
            // closes it (an error inside a block is not the block's `{`).
            let never_closed = open_brackets(chunk).contains(&(at, open));
            if (line_of(at) < line_of(position) && never_closed) || chunk[position..].trim().is_empty() {
                let span = Span::new(self.file, self.offset + at, self.offset + at + 1);
                diagnostic = diagnostic.with_secondary(span, format!("this `{open}` is not closed"));
            }
        }
        if chunk[position..].starts_with('"') {
            let line = chunk[position + 1..].lines().next().unwrap_or("");
            if !line.contains('"') {
                diagnostic = diagnostic.with_help("this string is not closed: add `\"` before the end of the line");
            }
        }
        diagnostic
    }
}

fn is_keyword_token(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::kw_const
            | Rule::kw_dim
            | Rule::kw_data
            | Rule::kw_block
            | Rule::kw_model
            | Rule::kw_param
            | Rule::kw_state
            | Rule::kw_update
            | Rule::kw_loss
            | Rule::kw_optimizer
            | Rule::kw_schedule
            | Rule::kw_then
            | Rule::kw_repeat
            | Rule::kw_if
            | Rule::kw_else
    )
}

/// Length of `text` up to its last character that is not whitespace or comment.
fn significant_len(text: &str) -> usize {
    let (mut in_string, mut in_comment, mut escaped) = (false, false, false);
    let mut end = 0;
    for (i, c) in text.char_indices() {
        if in_comment {
            in_comment = c != '\n';
            continue;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            end = i + c.len_utf8();
            continue;
        }
        match c {
            '#' => in_comment = true,
            '"' => {
                in_string = true;
                end = i + 1;
            }
            c if c.is_whitespace() => {}
            c => end = i + c.len_utf8(),
        }
    }
    end
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

/// What the parser found at the error position, for the message.
fn describe_found(rest: &str) -> String {
    let rest = rest.trim_start_matches([' ', '\t', '\r']);
    match rest.chars().next() {
        None => "end of input".to_string(),
        Some('\n') => "end of line".to_string(),
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {
            let word: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if KEYWORDS.contains(&word.as_str()) {
                format!("keyword `{word}`")
            } else {
                format!("`{word}`")
            }
        }
        Some(c) if c.is_ascii_digit() => {
            let number: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
                .collect();
            format!("`{number}`")
        }
        Some(c) => format!("`{c}`"),
    }
}

/// The reserved words of the language (the `keyword` rule of the grammar).
pub const KEYWORDS: &[&str] = &[
    "const",
    "data",
    "block",
    "model",
    "param",
    "update",
    "optimizer",
    "schedule",
    "then",
    "train",
    "eval",
    "generate",
    "sweep",
    "analyze",
    "repeat",
    "if",
    "else",
    "and",
    "or",
    "not",
    "true",
    "false",
    "training",
];

/// Words that start an item or statement but are names elsewhere (the
/// `contextual_keyword` rule of the grammar).
pub const CONTEXTUAL_KEYWORDS: &[&str] = &["dim", "loss", "state"];

fn describe_expected(rules: &[Rule]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for rule in rules {
        let name = match rule {
            Rule::ident => "a name",
            Rule::expr | Rule::integer | Rule::float | Rule::string | Rule::boolean | Rule::list | Rule::paren => {
                "an expression"
            }
            Rule::tensor_type | Rule::dtype => "a tensor type like `f32[B, 10]`",
            Rule::hyper_type => "a type",
            Rule::call_args => "`(`",
            Rule::index => "`[`",
            Rule::field => "`.`",
            Rule::range
            | Rule::or
            | Rule::and
            | Rule::eq
            | Rule::ne
            | Rule::lt
            | Rule::le
            | Rule::gt
            | Rule::ge
            | Rule::add
            | Rule::sub
            | Rule::mul
            | Rule::div
            | Rule::matmul => "an operator",
            Rule::body => "`{`",
            Rule::signature => "`(` and the inputs",
            Rule::setting => "a setting `name: value`",
            Rule::arg => "an argument",
            Rule::param_stmt | Rule::state_stmt | Rule::update_stmt | Rule::let_stmt => "a statement",
            Rule::schedule | Rule::kw_schedule => "`schedule`",
            Rule::kw_then => "`then`",
            Rule::kw_else => "`else`",
            Rule::EOI => "end of the item",
            Rule::const_decl
            | Rule::dim_decl
            | Rule::data_decl
            | Rule::block_decl
            | Rule::model_decl
            | Rule::loss_decl
            | Rule::optimizer_decl
            | Rule::section => "an item (`const`, `data`, `block`, `model`, `loss`, `optimizer`, `train`, ...)",
            Rule::section_kind => "a section name",
            Rule::ellipsis => "`...`",
            Rule::slice | Rule::slice_bound => "a slice",
            _ => continue,
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    match names.len() {
        0 => String::new(),
        1 => names[0].to_string(),
        _ => {
            let last = names.pop().expect("non-empty");
            format!("{} or {last}", names.join(", "))
        }
    }
}

/// The innermost bracket opened in `text` and not closed, skipping strings
/// and comments: its offset and character.
fn unclosed_bracket(text: &str) -> Option<(usize, char)> {
    open_brackets(text).pop()
}

/// The brackets opened in `text` and not closed, in the order opened. A
/// closing bracket closes the nearest open one of its kind; brackets of
/// other kinds it passes over are never closed.
fn open_brackets(text: &str) -> Vec<(usize, char)> {
    let mut stack: Vec<(usize, char)> = Vec::new();
    let mut abandoned = Vec::new();
    let (mut in_string, mut in_comment, mut escaped) = (false, false, false);
    for (i, c) in text.char_indices() {
        if in_comment {
            in_comment = c != '\n';
        } else if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' || c == '\n' {
                in_string = false;
            }
        } else {
            match c {
                '#' => in_comment = true,
                '"' => in_string = true,
                '(' | '[' | '{' => stack.push((i, c)),
                ')' | ']' | '}' => {
                    let open = match c {
                        ')' => '(',
                        ']' => '[',
                        _ => '{',
                    };
                    if let Some(k) = stack.iter().rposition(|&(_, b)| b == open) {
                        abandoned.extend(stack.drain(k + 1..));
                        stack.pop();
                    }
                }
                _ => {}
            }
        }
    }
    abandoned.extend(stack);
    abandoned.sort();
    abandoned
}

/// Hints for the most common slips.
fn syntax_help(chunk: &str, position: usize) -> Option<String> {
    let before = chunk[..position].trim_end();
    let rest = chunk[position..].trim_start();
    let opens = |open: char, close: char| {
        chunk[..position].matches(open).count() as i64 - chunk[..position].matches(close).count() as i64
    };
    if rest.starts_with('=') && !rest.starts_with("==") && before.ends_with(|c: char| c.is_alphanumeric()) {
        return Some("named arguments and settings use `:`, as in `lr: 1e-3`".to_string());
    }
    for (symbol, word) in [("&&", "and"), ("||", "or"), ("&", "and"), ("|", "or"), ("!", "not")] {
        if rest.starts_with(symbol) && !rest.starts_with("!=") {
            return Some(format!(
                "the logical operators are words: write `{word}` for `{symbol}`"
            ));
        }
    }
    if rest.is_empty() && opens('{', '}') > 0 {
        return Some("a `{` is not closed".to_string());
    }
    if rest.is_empty() && opens('(', ')') > 0 {
        return Some("a `(` is not closed".to_string());
    }
    if rest.is_empty() && opens('[', ']') > 0 {
        return Some("a `[` is not closed".to_string());
    }
    None
}
