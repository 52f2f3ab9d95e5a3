//! `data` declarations: the source is validated against its schema, files
//! are looked at (existence, CSV header; rows, classes and lengths in
//! `data_file.rs`), and the dataset's fields get their tensor types, with
//! the batch as the symbolic dimension `B`.

use std::path::Path;

use super::config::{as_call, find_schema, validate, Config};
use super::dims::Dim;
use super::eval::Checker;
use super::schemas::DATA_SOURCES;
use super::scope::{suggest, Scope};
use super::types::{SplitKind, TensorType, Value};
use crate::diagnostics::{codes, Diagnostic, Span};
use crate::prim::Prim;
use crate::syntax::ast::{self, DType};

/// The symbolic batch dimension of every dataset field.
pub const BATCH: &str = "B";

/// A dataset declared with `data name = source(...)`.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub name: String,
    pub span: Span,
    /// The validated source call, e.g. `csv(path: ..., x: [...], ...)`.
    pub source: Config,
    /// Tensors of one batch, e.g. `x: f32[B, 64]`, `y: i32[B]`.
    pub fields: Vec<(String, TensorType)>,
    /// Constants the dataset defines, e.g. `pad`, `tokens`, `classes`.
    pub attrs: Vec<(String, i64)>,
}

impl Dataset {
    pub fn field(&self, name: &str) -> Option<&TensorType> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    pub fn attr(&self, name: &str) -> Option<i64> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// Sequence lengths of a synthetic task with sequences up to `max_len`:
/// (source length, target length including BOS/EOS).
pub fn synthetic_lengths(task: &str, max_len: i64) -> (i64, i64) {
    match task {
        // "a + b": two numbers and the plus sign; the sum may carry a digit.
        "add" => (2 * max_len + 1, max_len + 2),
        _ => (max_len, max_len + 1),
    }
}

/// Frames of a `speech` example with up to `max_len` symbols of up to
/// `max_duration` frames each: a symbol and a silence gap before each, and
/// one gap at the end.
pub fn speech_frames(max_len: i64, max_duration: i64) -> i64 {
    (2 * max_len + 1) * max_duration
}

/// Words of the longest request of the `slots` generator (every example
/// is padded to it; `runtime/slots.rs` tests that its generator agrees).
pub const SLOT_WORDS: i64 = 22;

/// Words of the longest source and target (with EOS) of the `replies`
/// generator (`runtime/replies.rs` tests that its generator agrees).
pub const REPLY_SOURCE: i64 = 16;
pub const REPLY_TARGET: i64 = 12;

/// Tags of the `slots` task: other, destination, departure, time (the pad
/// tag after a request's end is this number).
pub const SLOT_TAGS: i64 = 4;

/// Validates a `data` declaration and returns its dataset.
pub fn declare(
    checker: &mut Checker,
    decl: &ast::DataDecl,
    base_dir: Option<&Path>,
    scope: &mut Scope,
) -> Option<Dataset> {
    let Some((name, callee_span, args)) = as_call(&decl.source) else {
        checker.report(
            Diagnostic::error(
                codes::WRONG_KIND,
                "a data source is a call such as `csv(\"file.csv\", ...)`",
                decl.source.span,
            )
            .label("not a data source"),
        );
        return None;
    };
    let schema = find_schema(checker, DATA_SOURCES, name, callee_span, "data source")?;
    let source = validate(checker, schema, &args, decl.source.span, scope)?;
    // Where a setting is written, if it is.
    let written = |key: &str| {
        args.iter()
            .enumerate()
            .find(|(i, a)| {
                a.name.map(|(n, _)| n) == Some(key)
                    || (a.name.is_none() && schema.params.get(*i).is_some_and(|p| p.name == key))
            })
            .map(|(_, a)| a.value.span)
    };
    let arg_span = |key: &str| written(key).unwrap_or(decl.source.span);
    let batch = Dim::symbol(BATCH);
    let mut fields = Vec::new();
    let mut attrs = Vec::new();
    match name {
        "csv" => {
            let header = read_header(checker, base_dir, source.str("path")?, arg_span("path"))?;
            let text = source.str("text").map(str::to_string);
            csv_text_settings(checker, text.is_some(), &written, decl.source.span)?;
            let mut columns = source.words("x").to_vec();
            columns.extend(text.clone());
            let target = source.str("y")?.to_string();
            for column in columns.iter().chain(std::iter::once(&target)) {
                if let Some(header) = &header {
                    if !header.iter().any(|h| h == column) {
                        let key = if *column == target {
                            "y"
                        } else if Some(column) == text.as_ref() {
                            "text"
                        } else {
                            "x"
                        };
                        let mut diagnostic = Diagnostic::error(
                            codes::DATA_COLUMN,
                            format!(
                                "column `{column}` is not in {}",
                                source.str("path").unwrap_or("the file")
                            ),
                            arg_span(key),
                        )
                        .label("no such column");
                        if let Some(close) = suggest(column, header.iter().map(String::as_str)) {
                            diagnostic = diagnostic.with_help(format!("did you mean `{close}`?"));
                        }
                        checker.report(diagnostic);
                        return None;
                    }
                }
            }
            if text.is_some() {
                let length = source.int("length")?;
                fields.push((
                    "x".to_string(),
                    TensorType::new(DType::I32, vec![batch.clone(), Dim::constant(length)]),
                ));
                attrs.push(("length".to_string(), length));
                attrs.push(("vocab".to_string(), source.int("vocab")?));
            }
            let features = columns.len() as i64;
            let mut x_shape = vec![batch.clone()];
            match source.shape("shape") {
                Some(shape) => {
                    let count: i64 = shape.iter().product();
                    if count != features {
                        checker.report(
                            Diagnostic::error(
                                codes::SHAPE_MISMATCH,
                                format!("`shape` {shape:?} holds {count} values, but `x` names {features} columns"),
                                arg_span("shape"),
                            )
                            .label("sizes do not match the columns")
                            .with_secondary(arg_span("x"), format!("{features} columns")),
                        );
                        return None;
                    }
                    x_shape.extend(shape.iter().map(|&n| Dim::constant(n)));
                }
                None => x_shape.push(Dim::constant(features)),
            }
            if !source.calls("augment").is_empty() && source.shape("shape").is_none_or(|s| s.len() != 3) {
                checker.report(
                    Diagnostic::error(
                        codes::BAD_VALUE,
                        "image augmentation needs `shape: [channels, height, width]`",
                        arg_span("augment"),
                    )
                    .label("features are not images"),
                );
                return None;
            }
            if text.is_none() {
                fields.push(("x".to_string(), TensorType::new(DType::F32, x_shape)));
            }
            match source.int("classes") {
                Some(classes) => {
                    fields.push(("y".to_string(), TensorType::new(DType::I32, vec![batch])));
                    attrs.push(("classes".to_string(), classes));
                }
                None => fields.push(("y".to_string(), TensorType::new(DType::F32, vec![batch]))),
            }
            if text.is_none() {
                attrs.push(("features".to_string(), features));
            }
        }
        "series" => {
            let header = read_header(checker, base_dir, source.str("path")?, arg_span("path"))?;
            let weekday = source.str("weekday");
            let columns = [("column", source.str("column")), ("weekday", weekday)];
            for (key, column) in columns {
                let (Some(header), Some(column)) = (&header, column) else {
                    continue;
                };
                if !header.iter().any(|h| h == column) {
                    checker.report(
                        Diagnostic::error(
                            codes::DATA_COLUMN,
                            format!("column `{column}` is not in {}", source.str("path").unwrap_or("")),
                            arg_span(key),
                        )
                        .label("no such column")
                        .with_help(format!("the columns are: {}", header.join(", "))),
                    );
                    return None;
                }
            }
            let (horizon, season) = (source.int("horizon").unwrap_or(1), source.int("season"));
            if let Some(season) = season.filter(|&s| s < horizon) {
                checker.report(
                    Diagnostic::error(
                        codes::BAD_VALUE,
                        format!("a season of {season} is shorter than the horizon of {horizon}"),
                        arg_span("season"),
                    )
                    .label("the baseline would use values the model has not seen")
                    .with_help("the seasonal baseline predicts the value one season before the target"),
                );
                return None;
            }
            let window = source.int("window")?;
            fields.push((
                "x".to_string(),
                TensorType::new(DType::F32, vec![batch.clone(), Dim::constant(window)]),
            ));
            if weekday.is_some() {
                fields.push(("day".to_string(), TensorType::new(DType::I32, vec![batch.clone()])));
            }
            fields.push(("y".to_string(), TensorType::new(DType::F32, vec![batch])));
        }
        "text" => {
            read_file_check(checker, base_dir, source.str("path")?, arg_span("path"))?;
            let context = Dim::constant(source.int("context")?);
            fields.push((
                "x".to_string(),
                TensorType::new(DType::I32, vec![batch.clone(), context.clone()]),
            ));
            fields.push(("y".to_string(), TensorType::new(DType::I32, vec![batch, context])));
            attrs.push(("vocab".to_string(), source.int("vocab")?));
        }
        "passages" => {
            let path = source.str("path")?;
            read_file_check(checker, base_dir, path, arg_span("path"))?;
            let context = source.int("context")?;
            let vocab = source.int("vocab")?;
            let task = source.call("task")?;
            let tokens = TensorType::new(DType::I32, vec![batch.clone(), Dim::constant(context)]);
            fields.push(("x".to_string(), tokens.clone()));
            if matches!(task.name.as_str(), "pair" | "qa") {
                fields.push(("segments".to_string(), tokens.clone()));
            }
            let (y, classes) = match task.name.as_str() {
                "classify" => {
                    let marker = task.str("marker").unwrap_or_default();
                    // Without a location the file is not read: one class.
                    let mut documents = 1;
                    if let Some(dir) = base_dir {
                        let text = std::fs::read(resolve(Some(dir), path)).unwrap_or_default();
                        documents = document_starts(&String::from_utf8_lossy(&text), marker).len();
                        if documents < 2 {
                            checker.report(
                                Diagnostic::error(
                                    codes::DATA_VALUE,
                                    format!("`{path}` has {documents} document(s) by the marker `{marker}`: a classifier needs two"),
                                    task.span,
                                )
                                .label("no line of the file holds this text, or only one")
                                .with_help("each document starts at the line (or the title line before it) holding the marker"),
                            );
                            return None;
                        }
                    }
                    (TensorType::new(DType::I32, vec![batch]), documents as i64)
                }
                "tag" => (tokens, 2),
                "pair" => (TensorType::new(DType::I32, vec![batch]), 2),
                _ => {
                    let least = crate::runtime::passages::QA_MIN_CONTEXT as i64;
                    if context < least {
                        checker.report(
                            Diagnostic::error(
                                codes::BAD_VALUE,
                                format!("a context of {context} is too short for questions: qa needs at least {least}"),
                                arg_span("context"),
                            )
                            .label("too short"),
                        );
                        return None;
                    }
                    (TensorType::new(DType::I32, vec![batch, Dim::constant(2)]), context)
                }
            };
            fields.push(("y".to_string(), y));
            attrs.push(("classes".to_string(), classes));
            attrs.push(("mask".to_string(), vocab));
            attrs.push(("cls".to_string(), vocab + 1));
            attrs.push(("sep".to_string(), vocab + 2));
            attrs.push(("tokens".to_string(), vocab + 3));
            attrs.push(("ignore".to_string(), -1));
        }
        "speech" => {
            let vocab = source.int("vocab")?;
            let (_, max_len) = source.range("len")?;
            let (_, max_duration) = source.range("duration")?;
            let frames = speech_frames(max_len, max_duration);
            let features = source.int("features")?;
            fields.push((
                "x".to_string(),
                TensorType::new(
                    DType::F32,
                    vec![batch.clone(), Dim::constant(frames), Dim::constant(features)],
                ),
            ));
            fields.push((
                "input_lengths".to_string(),
                TensorType::new(DType::I32, vec![batch.clone()]),
            ));
            fields.push((
                "labels".to_string(),
                TensorType::new(DType::I32, vec![batch.clone(), Dim::constant(max_len)]),
            ));
            fields.push(("label_lengths".to_string(), TensorType::new(DType::I32, vec![batch])));
            attrs.push(("blank".to_string(), 0));
            attrs.push(("classes".to_string(), vocab + 1));
            attrs.push(("frames".to_string(), frames));
            attrs.push(("features".to_string(), features));
        }
        "slots" => {
            let words = Dim::constant(SLOT_WORDS);
            fields.push((
                "x".to_string(),
                TensorType::new(DType::I32, vec![batch.clone(), words.clone()]),
            ));
            fields.push(("y".to_string(), TensorType::new(DType::I32, vec![batch, words])));
            attrs.push(("vocab".to_string(), source.int("vocab")?));
            attrs.push(("tags".to_string(), SLOT_TAGS));
            attrs.push(("pad".to_string(), SLOT_TAGS));
            attrs.push(("length".to_string(), SLOT_WORDS));
        }
        "graphs" => {
            let nodes = Dim::constant(source.int("nodes")?);
            let values = source.int("values")?;
            fields.push((
                "x".to_string(),
                TensorType::new(DType::I32, vec![batch.clone(), nodes.clone()]),
            ));
            fields.push((
                "edges".to_string(),
                TensorType::new(DType::Bool, vec![batch.clone(), nodes.clone(), nodes.clone()]),
            ));
            fields.push(("y".to_string(), TensorType::new(DType::I32, vec![batch, nodes])));
            attrs.push(("nodes".to_string(), source.int("nodes")?));
            attrs.push(("values".to_string(), values));
            attrs.push(("classes".to_string(), values));
        }
        task => {
            let (vocab, (src_len, tgt_len)) = if task == "replies" {
                let vocab = crate::runtime::replies::WORDS.len() as i64 + source.int("names")?;
                attrs.push(("vocab".to_string(), vocab));
                (vocab, (REPLY_SOURCE, REPLY_TARGET))
            } else {
                let (_, max_len) = source.range("len")?;
                (source.int("vocab")?, synthetic_lengths(task, max_len))
            };
            fields.push((
                "src".to_string(),
                TensorType::new(DType::I32, vec![batch.clone(), Dim::constant(src_len)]),
            ));
            fields.push((
                "tgt_in".to_string(),
                TensorType::new(DType::I32, vec![batch.clone(), Dim::constant(tgt_len)]),
            ));
            fields.push((
                "tgt_out".to_string(),
                TensorType::new(DType::I32, vec![batch, Dim::constant(tgt_len)]),
            ));
            attrs.push(("pad".to_string(), vocab));
            attrs.push(("bos".to_string(), vocab + 1));
            attrs.push(("eos".to_string(), vocab + 2));
            if task == "add" {
                attrs.push(("plus".to_string(), vocab + 3));
                attrs.push(("tokens".to_string(), vocab + 4));
            } else {
                attrs.push(("tokens".to_string(), vocab + 3));
            }
        }
    }
    // The file's rows, classes and length against the settings; a problem
    // there leaves the dataset's types as they are.
    super::data_file::check(checker, &source, base_dir, &written, decl.source.span);
    Some(Dataset {
        name: decl.name.name.clone(),
        span: decl.span,
        source,
        fields,
        attrs,
    })
}

/// The settings of a CSV source that depend on whether it reads a `text`
/// column: `x` or `text` (not both), `length` and `vocab` with `text`, the
/// feature settings without it. `written` gives where a setting is written.
fn csv_text_settings(
    checker: &mut Checker,
    text: bool,
    written: &dyn Fn(&str) -> Option<Span>,
    call: Span,
) -> Option<()> {
    let mut diagnostics = Vec::new();
    match (written("text"), written("x")) {
        (None, None) => diagnostics.push(
            Diagnostic::error(
                codes::MISSING_SETTING,
                "`csv` needs feature columns `x` or a `text` column",
                call,
            )
            .label("neither `x` nor `text`")
            .with_help("e.g. `x: \"p0\"..\"p63\"`, or `text: \"passage\", length: 128, vocab: 64`"),
        ),
        (Some(text), Some(x)) => diagnostics.push(
            Diagnostic::error(codes::BAD_VALUE, "`x` and `text` both name the features", text)
                .label("a text column's tokens are the features")
                .with_secondary(x, "feature columns here")
                .with_help("give one of them"),
        ),
        _ => {}
    }
    if let (true, Some(text)) = (text, written("text")) {
        for (key, what) in [("length", "tokens per example"), ("vocab", "how many token ids")] {
            if written(key).is_none() {
                diagnostics.push(
                    Diagnostic::error(codes::MISSING_SETTING, format!("a `text` column needs `{key}`"), text)
                        .label(format!("`{key}`: {what}"))
                        .with_help("e.g. `text: \"passage\", length: 128, vocab: 64`"),
                );
            }
        }
        for key in ["shape", "scale", "normalize", "augment"] {
            if let Some(span) = written(key) {
                diagnostics.push(
                    Diagnostic::error(
                        codes::BAD_VALUE,
                        format!("`{key}` applies to feature columns, not to a `text` column"),
                        span,
                    )
                    .label("not for text")
                    .with_secondary(text, "the features are this column's tokens"),
                );
            }
        }
    } else {
        for key in ["tokens", "length", "vocab"] {
            if let Some(span) = written(key) {
                diagnostics.push(
                    Diagnostic::error(codes::BAD_VALUE, format!("`{key}` applies to a `text` column"), span)
                        .label("no `text` column here")
                        .with_help("name the column of text with `text: \"column\"`, or drop this setting"),
                );
            }
        }
    }
    let ok = diagnostics.is_empty();
    for diagnostic in diagnostics {
        checker.report(diagnostic);
    }
    ok.then_some(())
}

/// Where the documents of a text start (byte offsets): the text is cut
/// before each line holding `marker`, or before the title line just above
/// it (the nearest non-blank line before it, with blank lines between).
/// The first document starts at 0; no occurrence gives one document.
pub fn document_starts(text: &str, marker: &str) -> Vec<usize> {
    let mut starts = vec![0];
    if marker.is_empty() {
        return starts;
    }
    for (at, _) in text.match_indices(marker) {
        let line = text[..at].rfind('\n').map_or(0, |i| i + 1);
        // Blank lines above, then the title line.
        let above = text[..line].trim_end_matches(['\n', '\r', ' ']);
        let start = if above.len() < line && !above.is_empty() {
            above.rfind('\n').map_or(0, |i| i + 1)
        } else {
            line
        };
        if start > *starts.last().expect("one start") {
            starts.push(start);
        }
    }
    starts
}

fn resolve(base_dir: Option<&Path>, path: &str) -> std::path::PathBuf {
    match base_dir {
        Some(dir) => dir.join(path),
        None => Path::new(path).to_path_buf(),
    }
}

/// Checks that the file exists (when the program has a location on disk).
fn read_file_check(checker: &mut Checker, base_dir: Option<&Path>, path: &str, span: Span) -> Option<()> {
    let Some(dir) = base_dir else { return Some(()) };
    let full = resolve(Some(dir), path);
    if full.is_file() {
        return Some(());
    }
    checker.report(
        Diagnostic::error(codes::DATA_FILE, format!("cannot find data file `{path}`"), span)
            .label("no such file")
            .with_help("paths are relative to the .nn file"),
    );
    None
}

/// The header row of a CSV file, or `None` when the program has no location.
fn read_header(checker: &mut Checker, base_dir: Option<&Path>, path: &str, span: Span) -> Option<Option<Vec<String>>> {
    let Some(dir) = base_dir else {
        return Some(None);
    };
    read_file_check(checker, Some(dir), path, span)?;
    let full = resolve(Some(dir), path);
    let text = match std::fs::read(&full) {
        Ok(bytes) => bytes,
        Err(error) => {
            checker.report(
                Diagnostic::error(codes::DATA_FILE, format!("cannot read `{path}`: {error}"), span).label("unreadable"),
            );
            return None;
        }
    };
    let first_line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(first_line);
    let header: Vec<String> = line
        .trim_end_matches('\r')
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_string())
        .collect();
    if header.iter().all(|h| h.is_empty()) {
        checker.report(
            Diagnostic::error(codes::DATA_FILE, format!("`{path}` has no header row"), span).label("empty file"),
        );
        return None;
    }
    Some(Some(header))
}

/// `digits.x`, `pairs.pad`, `views.val`.
pub fn field(checker: &mut Checker, index: usize, name: &ast::Ident) -> Value {
    let Some(dataset) = checker.datasets.get(index) else {
        return Value::Error;
    };
    match name.name.as_str() {
        "train" => return Value::Split(index, SplitKind::Train),
        "val" => return Value::Split(index, SplitKind::Val),
        _ => {}
    }
    if let Some(ty) = dataset.field(&name.name) {
        let ty = ty.clone();
        let input = Prim::Input(format!("{}.{}", dataset.name, name.name));
        let span = dataset.span;
        return checker.tensor_value(input, ty, &[], span);
    }
    if let Some(value) = dataset.attr(&name.name) {
        return Value::Int(Dim::constant(value));
    }
    let mut known: Vec<&str> = dataset.fields.iter().map(|(n, _)| n.as_str()).collect();
    known.extend(dataset.attrs.iter().map(|(n, _)| n.as_str()));
    known.extend(["train", "val"]);
    let mut diagnostic = Diagnostic::error(
        codes::UNKNOWN_FIELD,
        format!("dataset `{}` has no field `{}`", dataset.name, name.name),
        name.span,
    )
    .label("no such field");
    diagnostic = match suggest(&name.name, known.iter().copied()) {
        Some(close) => diagnostic.with_help(format!("did you mean `{close}`?")),
        None => diagnostic.with_help(format!("its fields are: {}", known.join(", "))),
    };
    checker.error(diagnostic)
}
