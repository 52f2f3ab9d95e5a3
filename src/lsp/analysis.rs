//! One checked version of a document: its text, a line index for LSP
//! positions (UTF-16 columns), the checker's program (ASTs, diagnostics,
//! datasets) and the values the checker saw at each span.

use std::path::Path;

use lsp_types::{Position, Range};

use crate::check::{self, observe::Observations, Program};
use crate::diagnostics::Span;
use crate::syntax::ast;

/// Byte offsets of line starts, to convert between byte offsets and LSP
/// positions (line, UTF-16 column).
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    pub fn position(&self, text: &str, offset: usize) -> Position {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let column: usize = text[self.starts[line]..offset].chars().map(char::len_utf16).sum();
        Position::new(line as u32, column as u32)
    }

    /// The byte offset of a position, clamped to the line and the text.
    pub fn offset(&self, text: &str, position: Position) -> usize {
        let Some(&start) = self.starts.get(position.line as usize) else {
            return text.len();
        };
        let end = self
            .starts
            .get(position.line as usize + 1)
            .map_or(text.len(), |&e| e - 1);
        let mut units = 0;
        for (i, c) in text[start..end].char_indices() {
            if units >= position.character as usize {
                return start + i;
            }
            units += c.len_utf16();
        }
        end
    }

    pub fn range(&self, text: &str, start: usize, end: usize) -> Range {
        Range::new(self.position(text, start), self.position(text, end))
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// A checked document.
pub struct Analysis {
    pub text: String,
    pub index: LineIndex,
    pub program: Program,
    pub observed: Observations,
}

impl Analysis {
    /// Checks `text`; data files are looked up next to `path` when given.
    pub fn new(text: String, path: Option<&Path>) -> Analysis {
        let options = check::Options {
            base_dir: path.and_then(Path::parent).map(Path::to_path_buf),
            ..Default::default()
        };
        let name = path.map_or("untitled.nn".to_string(), |p| p.display().to_string());
        let (program, observed) = check::check_source_observed(&name, &text, &options);
        Analysis {
            index: LineIndex::new(&text),
            text,
            program,
            observed,
        }
    }

    pub fn user_file(&self) -> &ast::File {
        self.program.user_file()
    }

    pub fn range(&self, span: Span) -> Range {
        self.index.range(&self.text, span.start as usize, span.end as usize)
    }

    pub fn offset(&self, position: Position) -> usize {
        self.index.offset(&self.text, position)
    }

    /// The name (identifier) at a byte offset, with its byte range.
    pub fn word_at(&self, offset: usize) -> Option<(&str, usize, usize)> {
        word_at(&self.text, offset)
    }
}

/// The identifier touching `offset` (before or after it), with its range.
pub fn word_at(text: &str, offset: usize) -> Option<(&str, usize, usize)> {
    let bytes = text.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let offset = offset.min(bytes.len());
    let mut start = offset;
    while start > 0 && is_word(bytes[start - 1]) {
        start -= 1;
    }
    let mut end = offset;
    while end < bytes.len() && is_word(bytes[end]) {
        end += 1;
    }
    let word = &text[start..end];
    (start < end && !word.as_bytes()[0].is_ascii_digit()).then_some((word, start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_utf16_units() {
        let text = "a = 1\n# é𝄞x\nb";
        let index = LineIndex::new(text);
        let x = text.find('x').unwrap();
        assert_eq!(index.position(text, x), Position::new(1, 5));
        assert_eq!(index.offset(text, Position::new(1, 5)), x);
        assert_eq!(index.offset(text, Position::new(1, 99)), text.find("\nb").unwrap());
        assert_eq!(index.offset(text, Position::new(9, 0)), text.len());
        assert_eq!(index.position(text, text.len()), Position::new(2, 1));
        assert_eq!(word_at("x = linear(h, 3)", 7), Some(("linear", 4, 10)));
        assert_eq!(word_at("f(12)", 3), None);
    }
}
