//! Data files read at check time, so that data that cannot feed the program
//! is an error before anything runs: a `csv` source's rows (each split, and
//! each fold, gets at least one) and its class ids (whole numbers below
//! `classes`), a `series`' values (enough for the windows, the validation
//! targets and the season), a `text`'s characters (a context's worth on
//! each side of the split); and, after the loss is traced, that the
//! model scores every class id its `csv` labels hold.
//!
//! In: a validated source, the program's directory and where each setting
//! is written. Out: diagnostics at the setting that does not fit, naming
//! the line of the file. The split arithmetic is the loader's own
//! (`runtime/data.rs`). What this module cannot judge (a cell that is not
//! a number, an unclosed quote, a row without a cell) is left to the
//! loader, which points into the file; it runs before any training.
//!
//! A file is read and parsed once per version (path, size, modification
//! time): an editor, and a sweep's variants, check the same file again and
//! again.

use std::any::Any;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use super::config::Config;
use super::data::Dataset;
use super::eval::Checker;
use super::trace::Trace;
use crate::diagnostics::{codes, Diagnostic, SourceMap, Span};
use crate::prim::Prim;
use crate::runtime::csv::{self, Csv};
use crate::runtime::data::{csv_validation_rows, series_examples, text_split_at};

/// Files kept parsed at most (the cache is emptied when full).
const CACHED_FILES: usize = 16;

/// Where a source's settings are written, if they are.
pub type Written<'a> = &'a dyn Fn(&str) -> Option<Span>;

/// Checks the data a source reads against its settings; `call` is the
/// source's span, for settings left at their defaults.
pub fn check(checker: &mut Checker, source: &Config, base_dir: Option<&Path>, written: Written, call: Span) {
    let (Some(dir), Some(path)) = (base_dir, source.str("path")) else {
        return;
    };
    let at = |key: &str| written(key).unwrap_or(call);
    let full = dir.join(path);
    let diagnostic = match source.name.as_str() {
        "csv" => table(&full).and_then(|t| {
            let csv = t.csv.as_ref()?;
            csv_splits(csv, source, path, &at).or_else(|| csv_classes(&t, csv, source, path, &at))
        }),
        "series" => table(&full).and_then(|t| series(t.csv.as_ref()?, source, path, &at)),
        "text" => {
            cached(&full, "chars", |text| text.chars().count()).and_then(|chars| text_splits(*chars, source, path, &at))
        }
        _ => None,
    };
    if let Some(diagnostic) = diagnostic {
        checker.report(diagnostic);
    }
}

/// A CSV file as the loader parses it; `csv` is `None` when a quote is
/// not closed (the loader reports that at the quote).
struct Table {
    sources: SourceMap,
    csv: Option<Csv>,
}

impl Table {
    /// The line of the file where a row's cell starts.
    fn line(&self, csv: &Csv, row: usize, column: usize) -> usize {
        let at = csv.rows[row].get(column).map_or(0, |(_, at)| *at);
        self.sources.line_col(csv.file, at as u32).0
    }
}

fn table(path: &Path) -> Option<Arc<Table>> {
    cached(path, "csv", |text| {
        let mut sources = SourceMap::new();
        let csv = csv::parse(&path.display().to_string(), text, &mut sources).ok();
        Table { sources, csv }
    })
}

/// Each split gets a row: the validation share, or every fold.
fn csv_splits(csv: &Csv, source: &Config, path: &str, at: &dyn Fn(&str) -> Span) -> Option<Diagnostic> {
    let n = csv.rows.len();
    if n == 0 {
        return Some(
            Diagnostic::error(codes::DATA_VALUE, format!("`{path}` has no rows"), at("path"))
                .label("only a header, or nothing")
                .with_help("each split needs at least one row"),
        );
    }
    if let Some(k) = source.int("folds") {
        let k = k.max(2) as usize;
        let empty = (0..k).find(|&i| csv_validation_rows(n, 0.0, Some((k, i))).is_empty())?;
        return Some(
            Diagnostic::error(
                codes::DATA_VALUE,
                format!("`{path}` has {n} rows: with {k} folds, fold {empty} holds out none of them"),
                at("folds"),
            )
            .label("more folds than rows")
            .with_help(format!("at most {n} folds, or add rows")),
        );
    }
    let val = source.float("val").unwrap_or(0.2);
    let held_out = csv_validation_rows(n, val, None).len();
    let (split, label, help) = match held_out {
        0 => ("validation", "holds out no rows", "raise `val`"),
        h if h == n => ("training", "holds out every row", "lower `val`"),
        _ => return None,
    };
    Some(
        Diagnostic::error(
            codes::DATA_VALUE,
            format!("`{path}` has {n} rows: the {split} split gets none of them (val: {val})"),
            at("val"),
        )
        .label(label)
        .with_help(format!("each split needs at least one row: {help}, or add rows")),
    )
}

/// Every class id in the target column is a whole number below `classes`.
fn csv_classes(table: &Table, csv: &Csv, source: &Config, path: &str, at: &dyn Fn(&str) -> Span) -> Option<Diagnostic> {
    let classes = source.int("classes")?;
    let name = source.str("y")?;
    let column = csv.header.iter().position(|h| h == name)?;
    let mut first_bad = None;
    let mut largest = 0.0f64;
    for row in 0..csv.rows.len() {
        // A cell that is not a number is the loader's to report.
        let Ok(value) = csv.number(row, column, name) else {
            continue;
        };
        let whole = value.fract() == 0.0 && value >= 0.0;
        if whole {
            largest = largest.max(value);
        }
        if first_bad.is_none() && !(whole && value < classes as f64) {
            first_bad = Some((row, whole));
        }
    }
    let (row, whole) = first_bad?;
    let text = &csv.rows[row][column].0;
    let line = table.line(csv, row, column);
    let message = format!("class `{text}` (line {line} of `{path}`) is not an integer in 0..{classes}");
    Some(if whole {
        Diagnostic::error(codes::DATA_VALUE, message, at("classes"))
            .label(format!("class ids 0 to {}", classes - 1))
            .with_secondary(at("y"), format!("column `{name}` goes up to {largest}"))
            .with_help(format!(
                "`classes: {}` covers every label in the file",
                largest as i64 + 1
            ))
    } else {
        Diagnostic::error(codes::DATA_VALUE, message, at("y"))
            .label(format!("column `{name}` holds the class ids"))
            .with_help("a class id is a whole number from 0")
    })
}

/// The largest class id in a `csv` source's target column and the line
/// where it first appears, when the file can be read.
fn largest_class(source: &Config, base_dir: &Path) -> Option<(i64, usize)> {
    let table = table(&base_dir.join(source.str("path")?))?;
    let csv = table.csv.as_ref()?;
    let name = source.str("y")?;
    let column = csv.header.iter().position(|h| h == name)?;
    let mut largest: Option<(f64, usize)> = None;
    for row in 0..csv.rows.len() {
        let Ok(value) = csv.number(row, column, name) else {
            continue;
        };
        if value.fract() == 0.0 && largest.is_none_or(|(l, _)| value > l) {
            largest = Some((value, row));
        }
    }
    let (value, row) = largest?;
    Some((value as i64, table.line(csv, row, column)))
}

/// Class ids picked from fewer scores than the labels need: a `pick` (as
/// `cross_entropy` does) of a `csv` source's class ids out of a last axis
/// shorter than the file's largest id would score those examples as 0.
/// Reported at the user's expression that picks (`origins` of the trace).
pub fn check_picks(checker: &mut Checker, trace: &Trace, datasets: &[Dataset], base_dir: Option<&Path>, loss: Span) {
    let Some(dir) = base_dir else { return };
    let mut reported: Vec<&str> = Vec::new();
    for (index, node) in trace.nodes.iter().enumerate() {
        let (Prim::Pick, [scores, ids]) = (&node.op, node.inputs.as_slice()) else {
            continue;
        };
        let Prim::Input(input) = &trace.nodes[*ids].op else {
            continue;
        };
        let Some(dataset) = datasets
            .iter()
            .find(|d| d.source.name == "csv" && input.strip_suffix(".y") == Some(d.name.as_str()))
        else {
            continue;
        };
        let Some(width) = trace.nodes[*scores].shape.last().and_then(|d| d.as_const()) else {
            continue;
        };
        let Some((largest, line)) = largest_class(&dataset.source, dir) else {
            continue;
        };
        // Labels beyond `classes` are reported with the data.
        let beyond_classes = dataset.source.int("classes").is_some_and(|c| largest >= c);
        if largest < width || beyond_classes || reported.contains(&dataset.name.as_str()) {
            continue;
        }
        reported.push(&dataset.name);
        let path = dataset.source.str("path").unwrap_or_default();
        let span = trace.origins.get(&index).copied().unwrap_or(loss);
        checker.report(
            Diagnostic::error(
                codes::DATA_VALUE,
                format!(
                    "class `{largest}` (line {line} of `{path}`) has no score: `{}.y` is picked from {width} scores",
                    dataset.name
                ),
                span,
            )
            .label(format!("scores of classes 0 to {}", width - 1))
            .with_secondary(dataset.source.span, format!("class ids up to {largest}"))
            .with_help(format!(
                "give the model's output {} classes (e.g. `{}.classes`)",
                largest + 1,
                dataset.name
            )),
        );
    }
}

/// A series has values for its windows, its validation targets and the
/// season before the first of them.
fn series(csv: &Csv, source: &Config, path: &str, at: &dyn Fn(&str) -> Span) -> Option<Diagnostic> {
    let values = csv.rows.len();
    let window = source.int("window")? as usize;
    let horizon = source.int("horizon").unwrap_or(1) as usize;
    let val_last = source.int("val_last")? as usize;
    let examples = series_examples(values, window, horizon);
    if examples <= val_last {
        return Some(
            Diagnostic::error(
                codes::DATA_VALUE,
                format!(
                    "`{path}` has {values} values: too few for windows of {window} and {val_last} validation targets"
                ),
                at("val_last"),
            )
            .label(format!("{examples} windows in all, none left for training"))
            .with_secondary(at("window"), "values per window")
            .with_help("lower `val_last` or `window`, or add values"),
        );
    }
    let season = source.int("season")? as usize;
    let before = examples - val_last + window + horizon - 1;
    (season > before).then(|| {
        Diagnostic::error(
            codes::DATA_VALUE,
            format!(
                "`{path}` has {before} values before the first validation target: too few for a season of {season}"
            ),
            at("season"),
        )
        .label("longer than the history")
        .with_help("lower `season` or `val_last`, or add values")
    })
}

/// A text has more than a context's worth of characters on each side of
/// the split.
fn text_splits(chars: usize, source: &Config, path: &str, at: &dyn Fn(&str) -> Span) -> Option<Diagnostic> {
    let context = source.int("context")? as usize;
    let val = source.float("val").unwrap_or(0.1);
    let split_at = text_split_at(chars, val);
    let val_chars = chars - split_at;
    let (split, have) = if val_chars <= context + 1 {
        ("validation", val_chars)
    } else if split_at <= context + 1 {
        ("training", split_at)
    } else {
        return None;
    };
    Some(
        Diagnostic::error(
            codes::DATA_VALUE,
            format!(
                "`{path}` has {chars} characters, {have} of them for {split} (val: {val}): too few for a context of {context}"
            ),
            at("context"),
        )
        .label(format!("needs more than {} characters in each split", context + 1))
        .with_help("shorten the context, change `val`, or use a longer text"),
    )
}

type Entry = (u64, Option<SystemTime>, Arc<dyn Any + Send + Sync>);

fn cache() -> &'static Mutex<HashMap<(PathBuf, &'static str), Entry>> {
    static CACHE: OnceLock<Mutex<HashMap<(PathBuf, &'static str), Entry>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// `read` of the file's text, kept while the file's size and modification
/// time stay the same; `None` when the file cannot be read (the checker
/// has said so already).
fn cached<T: Any + Send + Sync>(path: &Path, kind: &'static str, read: impl FnOnce(String) -> T) -> Option<Arc<T>> {
    let meta = std::fs::metadata(path).ok()?;
    let (len, modified) = (meta.len(), meta.modified().ok());
    let key = (path.to_path_buf(), kind);
    if let Some((l, m, value)) = cache().lock().ok()?.get(&key) {
        if (*l, *m) == (len, modified) {
            if let Ok(value) = value.clone().downcast::<T>() {
                return Some(value);
            }
        }
    }
    let bytes = std::fs::read(path).ok()?;
    let value = Arc::new(read(String::from_utf8_lossy(&bytes).into_owned()));
    let mut cache = cache().lock().ok()?;
    if cache.len() >= CACHED_FILES {
        cache.clear();
    }
    cache.insert(key, (len, modified, value.clone()));
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_again_only_when_it_changes() {
        let dir = std::env::temp_dir().join(format!("nnc-data-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.txt");
        std::fs::write(&path, "abc").unwrap();
        let reads = std::cell::Cell::new(0);
        let count = |text: String| {
            reads.set(reads.get() + 1);
            text.len()
        };
        assert_eq!(cached(&path, "test", count).as_deref(), Some(&3));
        assert_eq!(cached(&path, "test", count).as_deref(), Some(&3));
        assert_eq!(reads.get(), 1);
        std::fs::write(&path, "abcdef").unwrap();
        assert_eq!(cached(&path, "test", count).as_deref(), Some(&6));
        assert_eq!(reads.get(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
