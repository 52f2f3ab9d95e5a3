//! Diagnostics shared by every stage: one type (code, message, labelled spans,
//! help) and one renderer, with colour for terminals and plain text for tests.

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label as CsLabel};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term::{self, termcolor};

/// A byte range in one source file of a [`SourceMap`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub file: u32,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: u32, start: usize, end: usize) -> Span {
        Span {
            file,
            start: start as u32,
            end: end as u32,
        }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        if self.file != other.file {
            return self;
        }
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// One problem found in a program.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable code, e.g. `E0301`; the families are listed in `codes`.
    pub code: &'static str,
    pub message: String,
    pub primary: Label,
    pub secondary: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            primary: Label {
                span,
                message: String::new(),
            },
            secondary: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message, span)
        }
    }

    /// Sets the text under the primary caret.
    pub fn label(mut self, message: impl Into<String>) -> Diagnostic {
        self.primary.message = message.into();
        self
    }

    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Diagnostic codes, by family. A code never changes meaning once released.
pub mod codes {
    /// Syntax: the text does not follow `grammar/nn.pest`.
    pub const SYNTAX: &str = "E0001";
    pub const BAD_NUMBER: &str = "E0002";
    pub const BAD_STRING: &str = "E0003";

    /// Names.
    pub const UNKNOWN_NAME: &str = "E0101";
    pub const DUPLICATE_NAME: &str = "E0102";
    pub const UNKNOWN_FIELD: &str = "E0103";
    pub const NOT_CALLABLE: &str = "E0104";
    pub const RECURSION: &str = "E0105";
    pub const RESERVED_NAME: &str = "E0106";

    /// Call arguments.
    pub const UNKNOWN_ARGUMENT: &str = "E0201";
    pub const MISSING_ARGUMENT: &str = "E0202";
    pub const TOO_MANY_ARGUMENTS: &str = "E0203";
    pub const DUPLICATE_ARGUMENT: &str = "E0204";
    pub const WRONG_KIND: &str = "E0205";
    pub const POSITIONAL_AFTER_NAMED: &str = "E0206";

    /// Shapes and dtypes.
    pub const SHAPE_MISMATCH: &str = "E0301";
    pub const MATMUL_MISMATCH: &str = "E0302";
    pub const RANK_MISMATCH: &str = "E0303";
    pub const DTYPE_MISMATCH: &str = "E0304";
    pub const BROADCAST_MISMATCH: &str = "E0305";
    pub const BAD_AXIS: &str = "E0306";
    pub const BAD_DIMENSION: &str = "E0307";
    pub const RETURN_MISMATCH: &str = "E0308";
    pub const RESHAPE_MISMATCH: &str = "E0309";
    pub const INDEX_OUT_OF_RANGE: &str = "E0310";
    /// A tensor with a size of zero (`linear(x, 0)`): nothing to compute.
    pub const ZERO_SIZE: &str = "E0311";
    /// A tensor with more elements than can be addressed (`const H =
    /// 9223372036854775807` used as a width), parameters that together
    /// have more, or a size whose arithmetic overflows an `i64` (`H * 16`).
    pub const TOO_LARGE: &str = "E0312";

    /// Program structure.
    pub const MISSING_LOSS: &str = "E0401";
    pub const MISSING_OPTIMIZER: &str = "E0402";
    pub const DUPLICATE_ITEM: &str = "E0403";
    pub const LOSS_NOT_SCALAR: &str = "E0404";
    pub const MISSING_MODEL: &str = "E0405";
    pub const UNKNOWN_SETTING: &str = "E0406";
    pub const MISSING_SETTING: &str = "E0407";
    pub const BAD_STATEMENT: &str = "E0408";
    /// A `generate` section the model's inputs or output cannot serve.
    pub const CANNOT_GENERATE: &str = "E0409";

    /// Values of hyper-parameters and settings.
    pub const BAD_VALUE: &str = "E0501";
    pub const NOT_CONSTANT: &str = "E0502";
    pub const DIVISION: &str = "E0503";

    /// Data files.
    pub const DATA_FILE: &str = "E0601";
    pub const DATA_COLUMN: &str = "E0602";
    pub const DATA_VALUE: &str = "E0603";

    /// Warnings.
    pub const UNUSED: &str = "W0001";
}

/// The files diagnostics point into: the user's files and the standard library.
#[derive(Default)]
pub struct SourceMap {
    files: Vec<(String, String)>,
}

impl SourceMap {
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    /// Adds a file and returns its id for [`Span::file`].
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> u32 {
        self.files.push((name.into(), text.into()));
        (self.files.len() - 1) as u32
    }

    pub fn name(&self, file: u32) -> &str {
        &self.files[file as usize].0
    }

    pub fn text(&self, file: u32) -> &str {
        &self.files[file as usize].1
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, file: u32, offset: u32) -> (usize, usize) {
        let text = self.text(file);
        let mut offset = (offset as usize).min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map_or(offset, |n| offset - n - 1) + 1;
        (line, col)
    }

    /// Renders diagnostics as rustc-style text: source line, caret, labels.
    pub fn render(&self, diagnostics: &[Diagnostic], color: bool) -> String {
        let mut files = SimpleFiles::new();
        for (name, text) in &self.files {
            files.add(name.as_str(), text.as_str());
        }
        let config = term::Config::default();
        let mut buffer = if color {
            termcolor::Buffer::ansi()
        } else {
            termcolor::Buffer::no_color()
        };
        for diagnostic in diagnostics {
            let converted = self.convert(diagnostic);
            // Rendering only fails on spans outside their file, which the
            // parser never produces; fall back to a plain line if it does.
            if term::emit_to_write_style(&mut buffer, &config, &files, &converted).is_err() {
                use std::io::Write;
                let span = diagnostic.primary.span;
                let (line, col) = self.line_col(span.file, span.start);
                let name = self.files.get(span.file as usize).map_or("?", |f| f.0.as_str());
                let _ = writeln!(
                    buffer,
                    "error[{}]: {} ({name}:{line}:{col})",
                    diagnostic.code, diagnostic.message
                );
            }
        }
        String::from_utf8_lossy(buffer.as_slice()).into_owned()
    }

    fn convert(&self, diagnostic: &Diagnostic) -> CsDiagnostic<usize> {
        let clamp = |span: Span| {
            let len = self.files.get(span.file as usize).map_or(0, |f| f.1.len());
            let start = (span.start as usize).min(len);
            let end = (span.end as usize).clamp(start, len);
            (span.file as usize, start..end)
        };
        let (file, range) = clamp(diagnostic.primary.span);
        let mut labels = vec![CsLabel::primary(file, range).with_message(&diagnostic.primary.message)];
        for label in &diagnostic.secondary {
            let (file, range) = clamp(label.span);
            labels.push(CsLabel::secondary(file, range).with_message(&label.message));
        }
        let base = match diagnostic.severity {
            Severity::Error => CsDiagnostic::error(),
            Severity::Warning => CsDiagnostic::warning(),
        };
        let mut out = base
            .with_code(diagnostic.code)
            .with_message(&diagnostic.message)
            .with_labels(labels);
        if let Some(help) = &diagnostic.help {
            out = out.with_notes(vec![format!("help: {help}")]);
        }
        out
    }
}
