//! Tokens of one line of `.nn` text, for layout: words, numbers, strings,
//! punctuation and the trailing comment, each with its byte range in the
//! line. Whitespace is dropped; nothing is ever refused (a character the
//! grammar does not know is an [`Kind::Other`] token).

/// What a token is, as far as spacing is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A name or a keyword: `linear`, `if`, `f32`.
    Word,
    /// `3`, `1e-3`, `0.5`.
    Number,
    /// `"text"` (or an unterminated string up to the end of the line).
    Str,
    /// An operator or bracket: `(`, `->`, `...`.
    Punct,
    /// `# ...` up to the end of the line.
    Comment,
    /// A character the grammar does not know.
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: Kind,
    pub text: &'a str,
    /// Byte offset in the line.
    pub start: usize,
}

/// Punctuation, longest first so that `...` is not read as `..` and `.`.
const PUNCT: &[&str] = &[
    "...", "..", "->", "==", "!=", "<=", ">=", "(", ")", "[", "]", "{", "}", ",", ":", ";", "=", "<", ">", "+", "-",
    "*", "/", "@", ".",
];

fn is_word_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The tokens of one line (without its `\n`).
pub fn line(text: &str) -> Vec<Token<'_>> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let kind = if c == b' ' || c == b'\t' || c == b'\r' {
            i += 1;
            continue;
        } else if c == b'#' {
            i = bytes.len();
            Kind::Comment
        } else if c == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' && i + 1 < bytes.len() { 2 } else { 1 };
            }
            i = (i + 1).min(bytes.len());
            Kind::Str
        } else if is_word_start(c) {
            while i < bytes.len() && is_word_char(bytes[i]) {
                i += 1;
            }
            Kind::Word
        } else if c.is_ascii_digit() {
            i = number_end(bytes, i);
            Kind::Number
        } else if let Some(p) = PUNCT.iter().find(|p| text[i..].starts_with(**p)) {
            i += p.len();
            Kind::Punct
        } else {
            i += text[i..].chars().next().map_or(1, char::len_utf8);
            Kind::Other
        };
        // A multi-byte character never splits: every branch above stops at
        // an ASCII byte or the end, except `Other`, which takes a whole char,
        // and strings, which end at `"` or the end of the line.
        let end = if kind == Kind::Comment {
            text.trim_end().len().max(start)
        } else {
            i
        };
        tokens.push(Token {
            kind,
            text: &text[start..end],
            start,
        });
    }
    tokens
}

/// The end of the number starting at `i`, as the grammar reads one:
/// digits, then `.digits` and an exponent, or an exponent alone.
fn number_end(bytes: &[u8], mut i: usize) -> usize {
    let digits = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    i = digits(i);
    if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i = digits(i + 1);
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if bytes.get(j).is_some_and(u8::is_ascii_digit) {
            i = digits(j);
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line_text: &str) -> Vec<&str> {
        line(line_text).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn splits_operators_numbers_and_comments() {
        assert_eq!(
            texts("x[..., 1:3] = -1e-3 .. 2.5e+2 # note  "),
            ["x", "[", "...", ",", "1", ":", "3", "]", "=", "-", "1e-3", "..", "2.5e+2", "# note"]
        );
        assert_eq!(
            texts("\"a # b\\\"\" -> f32[B]"),
            ["\"a # b\\\"\"", "->", "f32", "[", "B", "]"]
        );
        assert_eq!(texts("1.x é \"open"), ["1", ".", "x", "é", "\"open"]);
    }
}
