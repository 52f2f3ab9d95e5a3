//! Syntax errors: a pest error in an item's text in, a diagnostic out —
//! what was found and what was expected in the language's words, the
//! bracket or string left open, and hints for the common slips (`=` for
//! `:`, `&&` for `and`).

use pest::error::InputLocation;

use super::*;

impl Builder {
    pub(super) fn syntax_error(&self, chunk: &str, error: &pest::error::Error<Rule>) -> Diagnostic {
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
