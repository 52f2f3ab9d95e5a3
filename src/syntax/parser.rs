//! Text to AST: pest parses each top-level item; this file cuts the source
//! into items and turns their pairs into `ast` nodes (declarations,
//! signatures, types, bodies; expressions in `expressions.rs`), and pest
//! errors into diagnostics (`errors.rs`).

mod errors;
mod expressions;

use pest::iterators::Pair;
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
                if let Some((at, to)) = too_long(&item_only) {
                    diagnostics.push(
                        Diagnostic::error(
                            codes::SYNTAX,
                            format!("the expression has more than {MAX_OPERATORS} operators"),
                            Span::new(file, start + at, start + to),
                        )
                        .label("too long")
                        .with_help("split it with intermediate names"),
                    );
                    broken.push(broken_item(chunk));
                    continue;
                }
                for pair in item_only.into_inner() {
                    if pair.as_rule() == Rule::EOI {
                        continue;
                    }
                    match builder.item(pair) {
                        Ok(item) => items.push(item),
                        // An item that failed while being built (a literal
                        // too large) is broken like one that failed to
                        // parse: its name is known, so its uses are not
                        // also "unknown name".
                        Err(diagnostic) => {
                            diagnostics.push(diagnostic);
                            broken.push(broken_item(chunk));
                        }
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

/// Most operators one expression may have, those inside its brackets
/// included. Its syntax tree is about as deep as it has operators (`1 + 1 +
/// ...` nests to the left, `- - ... 1` to the right), and building,
/// comparing and dropping the tree recurse that deep, so a longer one is
/// refused before its tree is built, as deeper brackets are. No written
/// program comes near. Measured on the thread with
/// [`crate::syntax::DEEP_STACK`] (256 MiB) without this bound, the first
/// expression to overflow it had about 254,000 operators (a prefix chain
/// built in a release build: 1 KiB of stack per operator; 400,000 for
/// `1 + 1 + ...` formatted), so the bound uses a twelfth of the stack.
pub const MAX_OPERATORS: usize = 20_000;

/// Where the first operator beyond [`MAX_OPERATORS`] in one expression of
/// the item is (a call's or an index's opening bracket): the pairs in
/// order, each outermost `expr` starting a new count.
fn too_long(item: &Pair<Rule>) -> Option<(usize, usize)> {
    let (mut end, mut count) = (0, 0);
    for pair in item.clone().into_inner().flatten() {
        match pair.as_rule() {
            Rule::expr if pair.as_span().start() >= end => {
                end = pair.as_span().end();
                count = 0;
            }
            Rule::range
            | Rule::or
            | Rule::and
            | Rule::eq
            | Rule::ne
            | Rule::le
            | Rule::ge
            | Rule::lt
            | Rule::gt
            | Rule::add
            | Rule::sub
            | Rule::mul
            | Rule::div
            | Rule::matmul
            | Rule::neg
            | Rule::not
            | Rule::call_args
            | Rule::index
            | Rule::field => {
                count += 1;
                if count > MAX_OPERATORS {
                    let span = pair.as_span();
                    let bracket = matches!(pair.as_rule(), Rule::call_args | Rule::index);
                    return Some((span.start(), if bracket { span.start() + 1 } else { span.end() }));
                }
            }
            _ => {}
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
