//! Formatting: `.nn` source in, the same program in the canonical layout out
//! (`nnc fmt`, and the language server's formatting).
//!
//! The layout keeps the author's line breaks (a call's `(` must stay on the
//! line of what it calls, so line breaks carry meaning) and fixes the rest:
//! four spaces per open bracket, one space around binary operators and
//! after `,` and `:`, none inside brackets or in slices (`x[:, 0:H]`) and
//! ranges (`4..12`), at most one blank line in a row, one blank line around
//! every item that spans lines, and trailing comments of consecutive lines
//! aligned two spaces past the longest code. Every comment is kept.
//!
//! The file is cut into items exactly as the parser cuts it
//! ([`crate::syntax::item_chunks`]). An item with a syntax error is left as
//! written, byte for byte. Every item that is reformatted is parsed again
//! and compared with the original (spans aside); if they differed, the item
//! would be left as written and counted in [`Formatted::unchanged`] — a
//! formatter defect, which the tests require never to happen.

pub mod command;
pub mod lex;

use lex::{Kind, Token};

use crate::syntax::{self, ast};

/// The formatted text and what was left as written.
#[derive(Clone, Debug, PartialEq)]
pub struct Formatted {
    pub text: String,
    /// Items left as written because they do not parse.
    pub broken: usize,
    /// Items left as written because their new layout would not have parsed
    /// to the same program (a formatter defect).
    pub unchanged: usize,
}

/// Formats a whole file. Runs on a thread with a deep stack, as checking
/// does: an item's syntax tree is as deep as its longest expression, and
/// comparing and dropping trees recurses.
pub fn format(source: &str) -> Formatted {
    syntax::on_deep_stack("nnc-fmt", || format_here(source))
}

fn format_here(source: &str) -> Formatted {
    let mut lines = Vec::new();
    let (mut broken, mut unchanged) = (0, 0);
    for (start, end) in syntax::item_chunks(source) {
        let chunk = &source[start..end];
        if chunk.is_empty() {
            continue;
        }
        let all_trivia = chunk.lines().all(|l| {
            let l = l.trim();
            l.is_empty() || l.starts_with('#')
        });
        if all_trivia {
            lines.extend(layout_chunk(chunk));
            continue;
        }
        let (file, diagnostics) = syntax::parse(0, chunk);
        if !diagnostics.is_empty() || file.items.len() != 1 {
            broken += 1;
            lines.push(Line::verbatim(chunk));
            continue;
        }
        let laid = layout_chunk(chunk);
        let text = render(&laid);
        let (again, again_diagnostics) = syntax::parse(0, &text);
        if again_diagnostics.is_empty() && ast_fingerprint(&again) == ast_fingerprint(&file) {
            lines.extend(laid);
        } else {
            unchanged += 1;
            lines.push(Line::verbatim(chunk));
        }
    }
    let lines = separate_items(tidy_blank_lines(lines));
    Formatted {
        text: render(&lines),
        broken,
        unchanged,
    }
}

/// The parsed program of `source` without its spans, and its syntax
/// diagnostics without their positions: equal for two texts that mean the
/// same program (what the formatter must preserve).
pub fn fingerprint(source: &str) -> String {
    syntax::on_deep_stack("nnc-fmt", || fingerprint_here(source))
}

fn fingerprint_here(source: &str) -> String {
    let (file, diagnostics) = syntax::parse(0, source);
    let mut out = ast_fingerprint(&file);
    for d in &diagnostics {
        out.push_str(&format!("\n{} {}", d.code, d.message));
    }
    out
}

/// The AST's debug text with every span removed.
fn ast_fingerprint(file: &ast::File) -> String {
    let text = format!("{file:?}");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("Span { file: ") {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let close = rest.find('}').map_or(rest.len(), |c| c + 1);
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

/// The comments of a text in order, trailing whitespace dropped (what the
/// formatter must keep).
pub fn comments(source: &str) -> Vec<String> {
    source
        .lines()
        .flat_map(lex::line)
        .filter(|t| t.kind == Kind::Comment)
        .map(|t| t.text.to_string())
        .collect()
}

#[derive(Clone, Debug, PartialEq)]
enum Role {
    Blank,
    /// A comment line outside any item.
    Trivia,
    /// A line of an item (code, or a comment between its lines).
    Item,
    /// An item left exactly as written (possibly several lines).
    Verbatim(String),
}

#[derive(Clone, Debug)]
struct Line {
    role: Role,
    indent: usize,
    code: String,
    comment: Option<String>,
    /// The first line of an item, and whether that item spans lines.
    item_start: bool,
    item_end: bool,
    multi: bool,
    /// Ends with an opening bracket / starts with a closing one.
    opens: bool,
    closes: bool,
}

impl Line {
    fn new(role: Role) -> Line {
        Line {
            role,
            indent: 0,
            code: String::new(),
            comment: None,
            item_start: false,
            item_end: false,
            multi: false,
            opens: false,
            closes: false,
        }
    }

    fn verbatim(text: &str) -> Line {
        Line::new(Role::Verbatim(text.to_string()))
    }

    fn width(&self) -> usize {
        self.indent * INDENT.len() + self.code.chars().count()
    }
}

const INDENT: &str = "    ";

/// Words after which `(` or `[` starts a new operand rather than a call or
/// an index: the reserved words that are not values.
fn is_operator_word(word: &str) -> bool {
    syntax::KEYWORDS.contains(&word) && !matches!(word, "true" | "false" | "training")
}

/// Can this token end an operand (so `(` after it calls, `-` after it subtracts)?
fn ends_operand(token: &Token, first_of_item: bool) -> bool {
    match token.kind {
        Kind::Word => !first_of_item && !is_operator_word(token.text),
        Kind::Number | Kind::Str => true,
        Kind::Punct => matches!(token.text, ")" | "]" | "}" | "..."),
        Kind::Comment | Kind::Other => false,
    }
}

/// An open bracket: its character, whether `[` indexes (slices use tight
/// `:`), and the indentation of the line that opened it.
struct Open {
    bracket: char,
    index: bool,
    indent: usize,
}

/// Lays out the lines of one item (with the comments and blank lines that
/// follow it), or of a run of comments.
fn layout_chunk(chunk: &str) -> Vec<Line> {
    let raw: Vec<&str> = chunk.split('\n').collect();
    let raw = match raw.split_last() {
        Some((last, rest)) if last.trim().is_empty() => rest,
        _ => &raw[..],
    };
    let tokens: Vec<Vec<Token>> = raw.iter().map(|l| lex::line(l)).collect();
    let is_code = |ts: &Vec<Token>| ts.iter().any(|t| t.kind != Kind::Comment);
    let first = tokens.iter().position(is_code);
    let last = tokens.iter().rposition(is_code);
    let mut stack: Vec<Open> = Vec::new();
    // The previous significant token: did it end an operand?
    let mut prev_ends_operand = false;
    let mut seen_first = false;
    let mut out = Vec::new();
    for (n, line_tokens) in tokens.iter().enumerate() {
        let in_item = first.is_some_and(|f| n >= f) && last.is_some_and(|l| n <= l);
        if line_tokens.is_empty() {
            out.push(Line::new(Role::Blank));
            continue;
        }
        let mut line = Line::new(if in_item { Role::Item } else { Role::Trivia });
        let leading = line_tokens[0];
        line.closes = leading.kind == Kind::Punct && matches!(leading.text, ")" | "]" | "}");
        line.indent = if line.closes {
            stack.last().map_or(0, |o| o.indent)
        } else if let Some(open) = stack.last() {
            open.indent + 1
        } else {
            usize::from(in_item && first.is_some_and(|f| n > f))
        };
        line.item_start = first == Some(n);
        line.item_end = last == Some(n);
        line.multi = first != last;
        let mut prev: Option<(Token, bool)> = None; // token on this line, and "is unary minus"
        for token in line_tokens {
            if token.kind == Kind::Comment {
                line.comment = Some(token.text.to_string());
                continue;
            }
            let unary = token.text == "-" && token.kind == Kind::Punct && !prev_ends_operand;
            if let Some((p, p_unary)) = prev {
                let in_index = stack.last().is_some_and(|o| o.bracket == '[' && o.index);
                if space_between(&p, p_unary, token, prev_ends_operand, in_index) {
                    line.code.push(' ');
                }
            }
            line.code.push_str(token.text);
            if token.kind == Kind::Punct {
                match token.text {
                    "(" | "[" | "{" => stack.push(Open {
                        bracket: token.text.chars().next().unwrap_or('('),
                        index: token.text == "[" && prev_ends_operand,
                        indent: line.indent,
                    }),
                    ")" | "]" | "}" => {
                        stack.pop();
                    }
                    _ => {}
                }
            }
            prev_ends_operand = ends_operand(token, !seen_first);
            seen_first = true;
            prev = Some((*token, unary));
        }
        line.opens = prev.is_some_and(|(p, _)| p.kind == Kind::Punct && matches!(p.text, "(" | "[" | "{"));
        out.push(line);
    }
    out
}

/// Whether one space goes between two tokens of a line. `operand_before`
/// says whether `prev` ends an operand; `in_index` whether the innermost
/// open bracket (after `prev`) is an index's `[`.
fn space_between(prev: &Token, prev_unary: bool, next: &Token, operand_before: bool, in_index: bool) -> bool {
    let (p, n) = (prev.text, next.text);
    let punct = |t: &Token, s: &str| t.kind == Kind::Punct && t.text == s;
    if punct(prev, ",") && punct(next, ":") {
        return true; // `x[:, :, 0]`
    }
    if next.kind == Kind::Punct && matches!(n, "," | ";" | ")" | "]" | ":" | "." | "..") {
        return false;
    }
    if prev.kind == Kind::Punct && matches!(p, "(" | "[" | "." | "..") {
        return false;
    }
    if punct(prev, "{") || punct(next, "}") {
        return !(punct(prev, "{") && punct(next, "}"));
    }
    if prev_unary {
        return false;
    }
    if punct(next, "(") || punct(next, "[") {
        return !operand_before;
    }
    if punct(prev, ":") {
        return !in_index;
    }
    true
}

/// At most one blank line in a row; none at the start or end of the file,
/// after an opening bracket or before a closing one.
fn tidy_blank_lines(lines: Vec<Line>) -> Vec<Line> {
    let mut out: Vec<Line> = Vec::with_capacity(lines.len());
    for line in lines {
        if line.role == Role::Blank && out.last().is_none_or(|l| l.role == Role::Blank || l.opens) {
            continue;
        }
        if line.closes && out.last().is_some_and(|l| l.role == Role::Blank) {
            out.pop();
        }
        out.push(line);
    }
    while out.last().is_some_and(|l| l.role == Role::Blank) {
        out.pop();
    }
    out
}

/// One blank line before and after every item that spans lines; the
/// comments right above an item stay with it.
fn separate_items(lines: Vec<Line>) -> Vec<Line> {
    let mut before = vec![false; lines.len() + 1];
    for (i, line) in lines.iter().enumerate() {
        if !line.multi {
            continue;
        }
        if line.item_start {
            let mut j = i;
            while j > 0 && lines[j - 1].role == Role::Trivia {
                j -= 1;
            }
            // Not after an item left as written: the blank line would
            // become part of its text, and the next run would add another.
            if j > 0 && !matches!(lines[j - 1].role, Role::Blank | Role::Verbatim(_)) {
                before[j] = true;
            }
        }
        if line.item_end && lines.get(i + 1).is_some_and(|l| l.role != Role::Blank) {
            before[i + 1] = true;
        }
    }
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.into_iter().enumerate() {
        if before[i] {
            out.push(Line::new(Role::Blank));
        }
        out.push(line);
    }
    out
}

/// The text of laid-out lines; trailing comments of consecutive code lines
/// are aligned two spaces past the longest.
fn render(lines: &[Line]) -> String {
    let has_trailing =
        |l: &Line| matches!(l.role, Role::Item | Role::Trivia) && !l.code.is_empty() && l.comment.is_some();
    let mut column = vec![0; lines.len()];
    let mut i = 0;
    while i < lines.len() {
        if !has_trailing(&lines[i]) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < lines.len() && has_trailing(&lines[j]) {
            j += 1;
        }
        let width = lines[i..j].iter().map(Line::width).max().unwrap_or(0) + 2;
        column[i..j].fill(width);
        i = j;
    }
    let mut out = String::new();
    for (line, column) in lines.iter().zip(column) {
        match &line.role {
            Role::Verbatim(text) => {
                out.push_str(text);
                continue;
            }
            Role::Blank => {}
            Role::Item | Role::Trivia => {
                let start = out.len();
                for _ in 0..line.indent {
                    out.push_str(INDENT);
                }
                out.push_str(&line.code);
                if let Some(comment) = &line.comment {
                    if !line.code.is_empty() {
                        let width = out[start..].chars().count();
                        out.extend(std::iter::repeat_n(' ', column.saturating_sub(width).max(1)));
                    }
                    out.push_str(comment);
                }
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(text: &str) -> String {
        let formatted = format(text);
        assert_eq!(formatted.unchanged, 0, "{text}");
        formatted.text
    }

    #[test]
    fn spaces_operators_and_brackets() {
        assert_eq!(fmt("const  D=2*3+-1   # width\n"), "const D = 2 * 3 + -1  # width\n");
        assert_eq!(
            fmt("block f( x :f32[B,...] ,n:int=2 )->f32[B,...]{\ny=x[ :, 0 : n ]*-x\n y .. 3\n}\n"),
            "block f(x: f32[B, ...], n: int = 2) -> f32[B, ...] {\n    y = x[:, 0:n] * -x\n    y..3\n}\n"
        );
        assert_eq!(
            fmt("block g(x: f32[N, T, H]) {\nx[ : ,: ,::2 , ...]\n}"),
            "block g(x: f32[N, T, H]) {\n    x[:, :, ::2, ...]\n}\n"
        );
        assert_eq!(
            fmt("train {steps:3,batch : 2}\neval{}\nloss f (x) [0]-g(- x)-(x)+ - [1]"),
            "train { steps: 3, batch: 2 }\neval {}\nloss f(x)[0] - g(-x) - (x) + -[1]\n"
        );
    }

    #[test]
    fn keeps_line_breaks_and_comments_and_separates_items() {
        let source = "# head\n\n\nconst A = 1 # a\nconst LONG = 22   # b\n# about f\nblock f(x: f32[B]) {\n\n  # inside\n\n  x\n\n}\nloss f(\nx)\n  # trailing\n";
        let expected = "# head\n\nconst A = 1      # a\nconst LONG = 22  # b\n\n# about f\nblock f(x: f32[B]) {\n    # inside\n\n    x\n}\n\nloss f(\n    x)\n\n# trailing\n";
        assert_eq!(fmt(source), expected);
        assert_eq!(fmt(expected), expected);
    }

    #[test]
    fn broken_items_stay_as_written() {
        let source = "const A=1\nblock f(x: f32[B] {\n  x   +\n}\nconst  B=2\n";
        let formatted = format(source);
        assert_eq!(formatted.broken, 1);
        assert_eq!(
            formatted.text,
            "const A = 1\nblock f(x: f32[B] {\n  x   +\n}\nconst B = 2\n"
        );
    }
}
