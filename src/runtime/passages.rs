//! The `passages` source: fine-tuning tasks cut from a text by a seeded
//! generator. A checked `passages(path, task: ..., context, vocab)` source
//! in, train and validation splits of token ids out. The vocabulary is the
//! one `text(path, vocab, val)` gives the same file (so a model pre-trained
//! on the text reads the same ids), and three ids follow it: `[MASK]`
//! (`vocab`, used by pre-training), `[CLS]` (`vocab + 1`) and `[SEP]`
//! (`vocab + 2`). Training examples come from the text `text` trains on,
//! validation examples from its held-out end — except for `classify`,
//! which holds out the end of every document instead.
//!
//! - `classify(marker)`: `x` = `[CLS]` and a passage; `y` = which document
//!   (the text cut before each line holding `marker`) it comes from.
//! - `tag`: `x` = a lower-cased passage; `y` per character: 1 where the
//!   original was upper case, 0 for lower case, -1 (ignored) for anything
//!   not a letter.
//! - `pair`: `x` = `[CLS]` a `[SEP]` b `[SEP]` with `segments` 0 then 1; `y` = 1
//!   when b is the text right after a, 0 when b comes from elsewhere (half
//!   of the pairs each).
//! - `qa`: `x` = `[CLS]` a word `[SEP]` a passage holding the word once `[SEP]`,
//!   `segments` 0 then 1; `y` = `[start, end]`, the positions in `x` of the
//!   first and last letter of the word that follows it in the passage.

use std::collections::HashMap;

use super::data::{Data, Split};
use crate::check::data::{document_starts, Dataset};
use crate::interp::random;

const STREAM: u64 = 40;
/// The longest question word of `qa`.
pub const QUESTION_MAX: usize = 10;
/// The shortest context of `qa`: the passage must leave room for words
/// (at least 19 characters besides the longest question).
pub const QA_MIN_CONTEXT: usize = 32;

/// One example under construction.
struct Example {
    x: Vec<f64>,
    segments: Vec<f64>,
    y: Vec<f64>,
}

/// Which task, with what it needs.
enum Task {
    Classify(Vec<(usize, usize)>),
    Tag,
    Pair,
    Qa,
}

/// The vocabulary `text` builds from `chars[..split_at]`: the `vocab - 1`
/// most frequent characters (ties by character), the last id for the rest.
pub fn text_vocab(chars: &[char], split_at: usize, vocab: usize) -> Vec<char> {
    let mut counts: HashMap<char, usize> = HashMap::new();
    for &c in &chars[..split_at] {
        *counts.entry(c).or_insert(0) += 1;
    }
    let mut ranked: Vec<(char, usize)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut out: Vec<char> = ranked.iter().take(vocab - 1).map(|(c, _)| *c).collect();
    out.push('\u{fffd}');
    out
}

/// Character → id under `vocab` (the last id for anything else).
pub fn encoder(vocab: &[char]) -> impl Fn(char) -> f64 + '_ {
    let index: HashMap<char, usize> = vocab[..vocab.len() - 1]
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, i))
        .collect();
    let other = vocab.len() - 1;
    move |c| *index.get(&c).unwrap_or(&other) as f64
}

/// Builds the splits of a `passages` dataset from the file's text.
pub fn build(dataset: &Dataset, text: &str, data: &mut Data) -> Result<(), String> {
    let source = &dataset.source;
    let chars: Vec<char> = text.chars().collect();
    let context = source.int("context").unwrap_or(2) as usize;
    let vocab = source.int("vocab").unwrap_or(2) as usize;
    let held_out = source.float("held_out").unwrap_or(0.1);
    let seed = source.int("seed").unwrap_or(0) as u64;
    let split_at = ((chars.len() as f64) * (1.0 - held_out)) as usize;
    data.vocab = text_vocab(&chars, split_at, vocab);
    let task_config = source.call("task");
    let task = match task_config.map(|t| t.name.as_str()) {
        Some("classify") => {
            let marker = task_config.and_then(|t| t.str("marker")).unwrap_or_default();
            let starts = document_starts(text, marker);
            // Byte offsets to character offsets.
            let mut documents = Vec::new();
            for (k, &start) in starts.iter().enumerate() {
                let end = starts.get(k + 1).copied().unwrap_or(text.len());
                documents.push((text[..start].chars().count(), text[..end].chars().count()));
            }
            Task::Classify(documents)
        }
        Some("pair") => Task::Pair,
        Some("qa") => Task::Qa,
        _ => Task::Tag,
    };
    let need = context + 1;
    let regions = |validation: bool| -> Vec<(usize, usize)> {
        match &task {
            Task::Classify(documents) => documents
                .iter()
                .map(|&(s, e)| {
                    let cut = s + (((e - s) as f64) * (1.0 - held_out)) as usize;
                    if validation {
                        (cut, e)
                    } else {
                        (s, cut)
                    }
                })
                .collect(),
            _ if validation => vec![(split_at, chars.len())],
            _ => vec![(0, split_at)],
        }
    };
    for validation in [false, true] {
        let regions = regions(validation);
        if let Some(&(s, e)) = regions.iter().find(|(s, e)| e - s < need) {
            return Err(format!(
                "a {} region of {} characters (from character {s}) is too short for a context of {context}",
                if validation { "validation" } else { "training" },
                e - s
            ));
        }
    }
    let id = encoder(&data.vocab);
    let (cls, sep) = ((vocab + 1) as f64, (vocab + 2) as f64);
    let make = |count: usize, validation: bool| -> Result<Split, String> {
        let regions = regions(validation);
        let stream = STREAM + u64::from(validation);
        let mut examples = Vec::with_capacity(count);
        for e in 0..count {
            let draw = |k: u64| random::bits(seed, e as u64, stream, k);
            let offset =
                |k: u64, (s, end): (usize, usize), len: usize| s + (draw(k) % (end - s - len + 1) as u64) as usize;
            let example = match &task {
                Task::Classify(_) => {
                    let label = (draw(0) % regions.len() as u64) as usize;
                    let p = offset(1, regions[label], context - 1);
                    let mut x = vec![cls];
                    x.extend(chars[p..p + context - 1].iter().map(|&c| id(c)));
                    Example {
                        x,
                        segments: Vec::new(),
                        y: vec![label as f64],
                    }
                }
                Task::Tag => {
                    let p = offset(1, regions[0], context);
                    let window = &chars[p..p + context];
                    Example {
                        x: window.iter().map(|&c| id(lower(c))).collect(),
                        segments: Vec::new(),
                        y: window
                            .iter()
                            .map(|&c| match c {
                                c if c.is_uppercase() => 1.0,
                                c if c.is_lowercase() => 0.0,
                                _ => -1.0,
                            })
                            .collect(),
                    }
                }
                Task::Pair => pair(&chars, regions[0], context, &draw, &id, cls, sep),
                Task::Qa => qa(&chars, regions[0], context, &draw, &id, cls, sep)
                    .ok_or_else(|| "no passage holds a question word once and a word after it".to_string())?,
            };
            examples.push(example);
        }
        Ok(table(examples, context))
    };
    data.train = make(source.int("train").unwrap_or(8000) as usize, false)?;
    data.val = make(source.int("val").unwrap_or(1000) as usize, true)?;
    Ok(())
}

fn lower(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

fn pair(
    chars: &[char],
    (s, e): (usize, usize),
    context: usize,
    draw: &dyn Fn(u64) -> u64,
    id: &dyn Fn(char) -> f64,
    cls: f64,
    sep: f64,
) -> Example {
    let first = (context - 3) / 2;
    let second = context - 3 - first;
    let p = s + (draw(1) % (e - s - first - second + 1) as u64) as usize;
    let follows = draw(2) % 2 == 1;
    let mut q = p + first;
    if !follows {
        // Anywhere else in the region, not overlapping the true sequel.
        for k in 0..64 {
            q = s + (draw(3 + k) % (e - s - second + 1) as u64) as usize;
            if q.abs_diff(p + first) > first + second {
                break;
            }
        }
    }
    let mut x = vec![cls];
    x.extend(chars[p..p + first].iter().map(|&c| id(c)));
    x.push(sep);
    let mut segments = vec![0.0; x.len()];
    x.extend(chars[q..q + second].iter().map(|&c| id(c)));
    x.push(sep);
    segments.resize(x.len(), 1.0);
    Example {
        x,
        segments,
        y: vec![f64::from(u8::from(follows || q == p + first))],
    }
}

/// The words of `text` (maximal runs of letters) as `(start, end)`.
fn words(text: &[char]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.iter().enumerate() {
        match (c.is_alphabetic(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    // A word running into the end may be cut: not a whole word.
    out
}

fn qa(
    chars: &[char],
    (s, e): (usize, usize),
    context: usize,
    draw: &dyn Fn(u64) -> u64,
    id: &dyn Fn(char) -> f64,
    cls: f64,
    sep: f64,
) -> Option<Example> {
    let shortest = context - 3 - QUESTION_MAX;
    for attempt in 0..64u64 {
        let p = s + (draw(1 + 2 * attempt) % (e - s - context + 1) as u64) as usize;
        // Words wholly inside the shortest passage, the first one not cut
        // at its start, each with a word after it.
        let found = words(&chars[p..p + shortest]);
        let starts_cut = p > 0 && chars[p - 1].is_alphabetic();
        let candidates: Vec<usize> = (usize::from(starts_cut)..found.len().saturating_sub(1))
            .filter(|&k| (3..=QUESTION_MAX).contains(&(found[k].1 - found[k].0)))
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let k = candidates[(draw(2 + 2 * attempt) % candidates.len() as u64) as usize];
        let (ws, we) = found[k];
        let question = &chars[p + ws..p + we];
        let passage = &chars[p..p + context - 3 - question.len()];
        // The question word must occur once in the passage, as a word.
        let occurrences = words(passage)
            .iter()
            .filter(|(a, b)| &passage[*a..*b] == question)
            .count();
        if occurrences != 1 {
            continue;
        }
        let (as_, ae) = found[k + 1];
        let offset = 2 + question.len();
        let mut x = vec![cls];
        x.extend(question.iter().map(|&c| id(c)));
        x.push(sep);
        let mut segments = vec![0.0; x.len()];
        x.extend(passage.iter().map(|&c| id(c)));
        x.push(sep);
        segments.resize(x.len(), 1.0);
        return Some(Example {
            x,
            segments,
            y: vec![(offset + as_) as f64, (offset + ae - 1) as f64],
        });
    }
    None
}

/// Examples as a table: `x`, `segments` when the task has them, `y`.
fn table(examples: Vec<Example>, context: usize) -> Split {
    let n = examples.len();
    let width = examples.first().map_or(0, |e| e.y.len());
    let has_segments = examples.first().is_some_and(|e| !e.segments.is_empty());
    let mut x = Vec::with_capacity(n * context);
    let mut segments = Vec::new();
    let mut y = Vec::with_capacity(n * width);
    for example in examples {
        x.extend(example.x);
        segments.extend(example.segments);
        y.extend(example.y);
    }
    let y_shape: Vec<usize> = if width == 1 { vec![n] } else { vec![n, width] };
    let segments = has_segments.then_some(("segments", vec![n, context], segments));
    let fields = [Some(("x", vec![n, context], x)), segments, Some(("y", y_shape, y))];
    Split::table(n, fields.into_iter().flatten())
}
