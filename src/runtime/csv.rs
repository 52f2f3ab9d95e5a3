//! CSV files: text in, a header and rows of cells out, each cell with the
//! byte offset where it starts, so a bad cell is a diagnostic pointing into
//! the file. Cells are separated by commas; a cell in double quotes may hold
//! commas, newlines and doubled quotes (`""` for `"`), as RFC 4180 writes
//! them. Typed readers give a cell as a number or a weekday.

use crate::check::data::Dataset;
use crate::diagnostics::{codes, Diagnostic, SourceMap, Span};

/// A parsed CSV file: header, rows of cells with their byte offsets.
pub struct Csv {
    /// The file's id in the source map.
    pub file: u32,
    pub header: Vec<String>,
    pub rows: Vec<Vec<(String, usize)>>,
}

/// Parses `text` (the file `name`, added to `sources`). Blank lines are
/// skipped; the first record is the header. An unterminated quote is an
/// error at the quote.
pub fn parse(name: &str, text: String, sources: &mut SourceMap) -> Result<Csv, Diagnostic> {
    let records = records(&text);
    let file = sources.add(name, text);
    let mut records = records.map_err(|at| {
        Diagnostic::error(
            codes::DATA_VALUE,
            "a quoted cell is not closed",
            Span::new(file, at, at + 1),
        )
        .label("this quote has no closing quote")
        .with_help("a quote inside a quoted cell is written twice: \"\"")
    })?;
    let header = if records.is_empty() {
        Vec::new()
    } else {
        records.remove(0).into_iter().map(|(c, _)| c).collect()
    };
    Ok(Csv {
        file,
        header,
        rows: records,
    })
}

/// The records of a CSV text, each a list of (cell, byte offset); an
/// unterminated quote gives its offset.
fn records(text: &str) -> Result<Vec<Vec<(String, usize)>>, usize> {
    let bytes = text.as_bytes();
    let mut records = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        // A blank line is no record.
        let line_end = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
        if text[i..line_end].trim().is_empty() {
            i = line_end + 1;
            continue;
        }
        let mut cells = Vec::new();
        loop {
            while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
                i += 1;
            }
            let start = i;
            let cell = if bytes.get(i) == Some(&b'"') {
                let mut value = String::new();
                let mut j = i + 1;
                loop {
                    let Some(k) = text[j..].find('"') else {
                        return Err(start);
                    };
                    value.push_str(&text[j..j + k]);
                    j += k + 1;
                    if bytes.get(j) == Some(&b'"') {
                        value.push('"');
                        j += 1;
                    } else {
                        break;
                    }
                }
                // Anything between the closing quote and the separator is
                // dropped, as spreadsheets do.
                while j < bytes.len() && !matches!(bytes[j], b',' | b'\n') {
                    j += 1;
                }
                i = j;
                value
            } else {
                let end = text[i..].find([',', '\n']).map_or(bytes.len(), |n| i + n);
                let value = text[i..end].trim_end_matches('\r').trim().to_string();
                i = end;
                value
            };
            cells.push((cell, start));
            if bytes.get(i) == Some(&b',') {
                i += 1;
            } else {
                i += 1; // past the newline (or the end)
                break;
            }
        }
        records.push(cells);
    }
    Ok(records)
}

impl Csv {
    pub fn column(&self, name: &str, dataset: &Dataset) -> Result<usize, Diagnostic> {
        self.header.iter().position(|h| h == name).ok_or_else(|| {
            Diagnostic::error(
                codes::DATA_COLUMN,
                format!("column `{name}` is not in the header"),
                Span::new(self.file, 0, 0),
            )
            .label("the header row")
            .with_secondary(dataset.source.span, "declared here")
        })
    }

    /// The weekday named in a cell (`Mon` or `Monday`, any case) as 0 for
    /// Monday to 6 for Sunday, or a diagnostic pointing at the cell.
    pub fn weekday(&self, row: usize, column: usize, name: &str) -> Result<f64, Diagnostic> {
        const DAYS: [&str; 7] = [
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ];
        let Some((text, at)) = self.rows[row].get(column) else {
            // The missing cell's diagnostic.
            return self.number(row, column, name);
        };
        let lower = text.to_ascii_lowercase();
        let day = DAYS
            .iter()
            .position(|d| lower.len() >= 3 && d.starts_with(&lower) && (lower.len() == 3 || lower == *d));
        day.map(|d| d as f64).ok_or_else(|| {
            Diagnostic::error(
                codes::DATA_VALUE,
                format!("cell `{text}` in column `{name}` is not a weekday"),
                Span::new(self.file, *at, at + text.len().max(1)),
            )
            .label("expected a name such as `Mon` or `Monday`")
        })
    }

    /// The text in a cell of a `text` column, or a diagnostic pointing at
    /// an empty or missing cell.
    pub fn text(&self, row: usize, column: usize, name: &str) -> Result<&str, Diagnostic> {
        let Some((text, at)) = self.rows[row].get(column) else {
            // The missing cell's diagnostic.
            return self.number(row, column, name).map(|_| "");
        };
        if text.trim().is_empty() {
            return Err(Diagnostic::error(
                codes::DATA_VALUE,
                format!("cell in text column `{name}` is empty"),
                Span::new(self.file, *at, *at),
            )
            .label("no text"));
        }
        Ok(text)
    }

    /// The number in a cell, or a diagnostic pointing at the cell.
    pub fn number(&self, row: usize, column: usize, name: &str) -> Result<f64, Diagnostic> {
        let cells = &self.rows[row];
        let Some((text, at)) = cells.get(column) else {
            let end = cells.last().map_or(0, |(t, a)| a + t.len());
            return Err(Diagnostic::error(
                codes::DATA_VALUE,
                format!(
                    "row has {} cells, but column `{name}` is number {}",
                    cells.len(),
                    column + 1
                ),
                Span::new(self.file, end as u32 as usize, end),
            )
            .label("missing cell"));
        };
        text.parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(|| {
            Diagnostic::error(
                codes::DATA_VALUE,
                format!("cell `{text}` in column `{name}` is not a number"),
                Span::new(self.file, *at, at + text.len().max(1)),
            )
            .label("not a number")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_cells_hold_commas_quotes_and_newlines() {
        let text = "a,b\n1,\"x, \"\"y\"\"\"\n\n2,\"two\nlines\"\r\n 3 , z\n";
        let rows = records(text).unwrap();
        let cells = |r: usize| rows[r].iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>();
        assert_eq!(cells(0), ["a", "b"]);
        assert_eq!(cells(1), ["1", "x, \"y\""]);
        assert_eq!(cells(2), ["2", "two\nlines"]);
        assert_eq!(cells(3), ["3", "z"]);
        // Offsets point at the cells (a quoted cell at its quote).
        assert_eq!(&text[rows[1][1].1..rows[1][1].1 + 3], "\"x,");
        assert_eq!(&text[rows[3][0].1..rows[3][0].1 + 1], "3");
    }

    #[test]
    fn an_open_quote_is_an_error_at_the_quote() {
        let text = "a,b\n1,\"open\n2,3\n";
        assert_eq!(records(text), Err(6));
        let mut sources = SourceMap::default();
        let error = parse("t.csv", text.to_string(), &mut sources).err().unwrap();
        assert!(error.message.contains("not closed"), "{}", error.message);
    }
}
