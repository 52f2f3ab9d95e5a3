//! Data: a checked `data` declaration in, train and validation splits out,
//! and batches of them keyed by input name (`digits.x`). CSV tables, sliding
//! windows over a series, text as characters, and synthetic sequence tasks
//! (the speech-like CTC task is in `speech.rs`, the travel requests to tag
//! in `slots.rs`, the random graphs of node values in `graphs.rs`, the
//! requests and replies to copy names between in `replies.rs`, fine-tuning
//! tasks cut from a text in `passages.rs`).
//! A bad file is a diagnostic that points into the file itself.

use std::collections::HashMap;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};

use crate::check::data::{synthetic_lengths, Dataset};
use crate::diagnostics::{codes, Diagnostic, SourceMap, Span};
use crate::interp::random;

/// One split: a table of examples (first axis) per field, or a character
/// stream cut into windows when batched.
#[derive(Clone, Debug)]
pub enum Split {
    Table {
        fields: Vec<(String, ArrayD<f64>)>,
        len: usize,
    },
    Stream {
        ids: Vec<u32>,
        context: usize,
    },
}

impl Split {
    /// A table of `len` examples from each field's name, shape (examples
    /// first) and values in row-major order.
    pub fn table<'a>(len: usize, fields: impl IntoIterator<Item = (&'a str, Vec<usize>, Vec<f64>)>) -> Split {
        let fields = fields
            .into_iter()
            .map(|(name, shape, values)| {
                let array = ArrayD::from_shape_vec(IxDyn(&shape), values).expect("a field's values fill its shape");
                (name.to_string(), array)
            })
            .collect();
        Split::Table { fields, len }
    }

    /// Examples in one pass over the split (an epoch).
    pub fn len(&self) -> usize {
        match self {
            Split::Table { len, .. } => *len,
            Split::Stream { ids, context } => ids.len().saturating_sub(1) / (*context).max(1),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A loaded dataset.
#[derive(Clone, Debug)]
pub struct Data {
    pub name: String,
    pub train: Split,
    pub val: Split,
    /// For text: the character of each id (the last id is "other").
    pub vocab: Vec<char>,
    /// For word data (`slots`, CSV text as words): the word of each id.
    pub words: Vec<String>,
    /// For series: mean and standard deviation used to normalize.
    pub scale: Option<(f64, f64)>,
    /// For series with a `season`: the seasonal naive baseline.
    pub baseline: Option<Baseline>,
    /// Image augmentations for training batches.
    pub augment: Vec<crate::check::config::Config>,
    /// `[C, H, W]` of one image, when the features are images.
    pub image: Option<[usize; 3]>,
}

/// The naive forecasts of a series' validation targets, in the series' own
/// units: the seasonal one (each target predicted by the value one season
/// before it) and the last value seen (the value `horizon` steps before).
#[derive(Clone, Debug, PartialEq)]
pub struct Baseline {
    /// The column the values come from, which names their unit.
    pub column: String,
    pub season: usize,
    /// Mean absolute error of the seasonal forecast over the validation targets.
    pub mae: f64,
    pub horizon: usize,
    /// Mean absolute error of the last value seen over the validation targets.
    pub last_mae: f64,
}

impl Data {
    /// The unit of the targets the model sees, in the data's own units:
    /// the standard deviation of a normalized series (its targets are
    /// normalized with the inputs), else none (targets as in the file).
    pub fn target_unit(&self) -> Option<f64> {
        self.scale.map(|(_, std)| std)
    }
}

/// Loads a dataset. Data files are added to `sources` so a diagnostic can
/// point into them.
///
/// With `fold: Some(i)` and a CSV source with `folds: k`, the validation
/// split is the i-th of k equal parts of the shuffled rows.
pub fn load(
    dataset: &Dataset,
    base_dir: &Path,
    sources: &mut SourceMap,
    fold: Option<usize>,
) -> Result<Data, Diagnostic> {
    let source = &dataset.source;
    let mut data = Data {
        name: dataset.name.clone(),
        train: Split::Table {
            fields: Vec::new(),
            len: 0,
        },
        val: Split::Table {
            fields: Vec::new(),
            len: 0,
        },
        vocab: Vec::new(),
        words: Vec::new(),
        scale: None,
        baseline: None,
        augment: source.calls("augment").to_vec(),
        image: source
            .shape("shape")
            .filter(|s| s.len() == 3)
            .map(|s| [s[0] as usize, s[1] as usize, s[2] as usize]),
    };
    match source.name.as_str() {
        "csv" => load_csv(dataset, base_dir, sources, &mut data, fold)?,
        "series" => load_series(dataset, base_dir, sources, &mut data)?,
        "text" => load_text(dataset, base_dir, &mut data)?,
        "speech" => super::speech::synthesize(dataset, &mut data),
        "slots" => super::slots::synthesize(dataset, &mut data),
        "graphs" => super::graphs::synthesize(dataset, &mut data),
        "replies" => super::replies::synthesize(dataset, &mut data),
        "passages" => {
            let (path, text) = read(dataset, base_dir)?;
            super::passages::build(dataset, &text, &mut data).map_err(|message| {
                Diagnostic::error(codes::DATA_VALUE, format!("`{path}`: {message}"), source.span)
                    .label("cannot build the task from this text")
            })?;
        }
        task => synthesize(dataset, task, &mut data),
    }
    Ok(data)
}

fn read(dataset: &Dataset, base_dir: &Path) -> Result<(String, String), Diagnostic> {
    let path = dataset.source.str("path").unwrap_or_default();
    let full = base_dir.join(path);
    match std::fs::read(&full) {
        Ok(bytes) => Ok((full.display().to_string(), String::from_utf8_lossy(&bytes).into_owned())),
        Err(error) => Err(Diagnostic::error(
            codes::DATA_FILE,
            format!("cannot read data file `{}`: {error}", full.display()),
            dataset.source.span,
        )
        .label("declared here")),
    }
}

fn load_csv(
    dataset: &Dataset,
    base_dir: &Path,
    sources: &mut SourceMap,
    data: &mut Data,
    fold: Option<usize>,
) -> Result<(), Diagnostic> {
    let source = &dataset.source;
    let (path, text) = read(dataset, base_dir)?;
    let csv = super::csv::parse(&path, text, sources)?;
    let x_names = source.words("x");
    let y_name = source.str("y").unwrap_or_default();
    let x_columns: Vec<usize> = x_names
        .iter()
        .map(|n| csv.column(n, dataset))
        .collect::<Result<_, _>>()?;
    let text_column = match source.str("text") {
        Some(name) => Some((name, csv.column(name, dataset)?)),
        None => None,
    };
    let y_column = csv.column(y_name, dataset)?;
    let scale = source.float("scale").unwrap_or(1.0);
    let classes = source.int("classes");
    let n = csv.rows.len();
    let mut features = x_columns.len();
    let mut x = Vec::with_capacity(n * features);
    let mut y = Vec::with_capacity(n);
    let mut texts = Vec::new();
    for row in 0..n {
        for (k, &c) in x_columns.iter().enumerate() {
            x.push(csv.number(row, c, &x_names[k])? * scale);
        }
        if let Some((name, column)) = text_column {
            texts.push(csv.text(row, column, name)?);
        }
        let target = csv.number(row, y_column, y_name)?;
        if let Some(classes) = classes {
            if target.fract() != 0.0 || target < 0.0 || target >= classes as f64 {
                let (text, at) = &csv.rows[row][y_column];
                return Err(Diagnostic::error(
                    codes::DATA_VALUE,
                    format!("class `{text}` is not an integer in 0..{classes}"),
                    Span::new(csv.file, *at, at + text.len().max(1)),
                )
                .label("bad class"));
            }
        }
        y.push(target);
    }
    // Random split by seed.
    let seed = source.int("seed").unwrap_or(0) as u64;
    let order = permutation(n, seed, 0);
    let folds = source.int("folds").zip(fold).map(|(k, i)| (k as usize, i));
    let held_out = csv_validation_rows(n, source.float("val").unwrap_or(0.2), folds);
    let val_rows = order[held_out.clone()].to_vec();
    let train_rows: Vec<usize> = order[..held_out.start]
        .iter()
        .chain(&order[held_out.end..])
        .copied()
        .collect();
    let (val_rows, train_rows) = (&val_rows[..], &train_rows[..]);
    if train_rows.is_empty() || val_rows.is_empty() {
        let split = if train_rows.is_empty() {
            "training"
        } else {
            "validation"
        };
        return Err(Diagnostic::error(
            codes::DATA_VALUE,
            format!("`{path}` has {n} rows: the {split} split gets none of them"),
            source.span,
        )
        .label("not enough rows")
        .with_help("each split needs at least one row: change `val` (or `folds`), or add rows"));
    }
    if text_column.is_some() {
        let words = source.call("tokens").is_some_and(|t| t.name == "words");
        features = source.int("length").unwrap_or(1) as usize;
        let vocab = source.int("vocab").unwrap_or(3) as usize;
        let encoded = super::text_column::encode(&texts, train_rows, words, features, vocab);
        x = encoded.ids;
        data.words = encoded.tokens;
    }
    let mut example_shape: Vec<usize> = match source.shape("shape") {
        Some(shape) => shape.iter().map(|&d| d as usize).collect(),
        None => vec![features],
    };
    if source.bool("normalize") == Some(true) {
        normalize_columns(&mut x, features, train_rows);
    }
    let take = |rows: &[usize], shape: &mut Vec<usize>| {
        let mut xs = Vec::with_capacity(rows.len() * features);
        let mut ys = Vec::with_capacity(rows.len());
        for &r in rows {
            xs.extend_from_slice(&x[r * features..(r + 1) * features]);
            ys.push(y[r]);
        }
        let mut x_shape = vec![rows.len()];
        x_shape.extend_from_slice(shape);
        Split::table(rows.len(), [("x", x_shape, xs), ("y", vec![rows.len()], ys)])
    };
    data.train = take(train_rows, &mut example_shape);
    data.val = take(val_rows, &mut example_shape);
    Ok(())
}

/// Which of `n` shuffled rows a CSV source holds out for validation: with
/// `folds: Some((k, i))`, fold i of k (rows `n·i/k..n·(i+1)/k`), else the
/// first `val` share of them (rounded). The checker asks the same of the
/// file (`check/data_file.rs`), so a split without rows is found there.
pub fn csv_validation_rows(n: usize, val: f64, folds: Option<(usize, usize)>) -> std::ops::Range<usize> {
    match folds {
        Some((k, i)) => {
            let k = k.max(2);
            n * (i % k) / k..n * (i % k + 1) / k
        }
        None => 0..(((n as f64) * val).round() as usize).min(n),
    }
}

/// Where a text of `chars` characters splits: its first `split_at` are
/// for training, the rest (the last `val` share) for validation.
pub fn text_split_at(chars: usize, val: f64) -> usize {
    ((chars as f64) * (1.0 - val)) as usize
}

/// Examples of a series of `values` values with windows of `window` and
/// targets `horizon` steps after them.
pub fn series_examples(values: usize, window: usize, horizon: usize) -> usize {
    values.saturating_sub(window + horizon - 1)
}

/// Standardizes each feature column with statistics of the training rows.
fn normalize_columns(x: &mut [f64], features: usize, train_rows: &[usize]) {
    for column in 0..features {
        let values: Vec<f64> = train_rows.iter().map(|&r| x[r * features + column]).collect();
        let (mean, std) = mean_std(&values);
        for row in x.chunks_mut(features) {
            row[column] = (row[column] - mean) / std;
        }
    }
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt().max(1e-12))
}

fn load_series(dataset: &Dataset, base_dir: &Path, sources: &mut SourceMap, data: &mut Data) -> Result<(), Diagnostic> {
    let source = &dataset.source;
    let (path, text) = read(dataset, base_dir)?;
    let csv = super::csv::parse(&path, text, sources)?;
    let name = source.str("column").unwrap_or_default();
    let column = csv.column(name, dataset)?;
    let mut values = Vec::with_capacity(csv.rows.len());
    for row in 0..csv.rows.len() {
        values.push(csv.number(row, column, name)?);
    }
    let window = source.int("window").unwrap_or(1) as usize;
    let horizon = source.int("horizon").unwrap_or(1) as usize;
    let val_last = source.int("val_last").unwrap_or(1) as usize;
    let examples = series_examples(values.len(), window, horizon);
    if examples <= val_last {
        return Err(Diagnostic::error(
            codes::DATA_VALUE,
            format!(
                "`{path}` has {} values: too few for windows of {window} and {val_last} validation targets",
                values.len()
            ),
            source.span,
        )
        .label("not enough data"));
    }
    let train_count = examples - val_last;
    let days = match source.str("weekday") {
        Some(name) => {
            let column = csv.column(name, dataset)?;
            let mut days = Vec::with_capacity(csv.rows.len());
            for row in 0..csv.rows.len() {
                days.push(csv.weekday(row, column, name)?);
            }
            Some(days)
        }
        None => None,
    };
    if let Some(season) = source.int("season") {
        let season = season as usize;
        let targets = train_count + window + horizon - 1..values.len();
        if season > targets.start {
            return Err(Diagnostic::error(
                codes::DATA_VALUE,
                format!(
                    "`{path}` has {} values before the first validation target: too few for a season of {season}",
                    targets.start
                ),
                source.span,
            )
            .label("not enough data"));
        }
        let naive = |lag: usize| {
            let total: f64 = targets.clone().map(|t| (values[t] - values[t - lag]).abs()).sum();
            total / targets.len() as f64
        };
        data.baseline = Some(Baseline {
            column: name.to_string(),
            season,
            mae: naive(season),
            horizon,
            last_mae: naive(horizon),
        });
    }
    if source.bool("normalize") != Some(false) {
        // Statistics of the values the training examples can see.
        let (mean, std) = mean_std(&values[..train_count + window + horizon - 1]);
        for v in &mut values {
            *v = (*v - mean) / std;
        }
        data.scale = Some((mean, std));
    }
    let make = |range: std::ops::Range<usize>| {
        let mut xs = Vec::with_capacity(range.len() * window);
        let mut ys = Vec::with_capacity(range.len());
        for start in range.clone() {
            xs.extend_from_slice(&values[start..start + window]);
            ys.push(values[start + window + horizon - 1]);
        }
        let n = range.len();
        let days = days.as_ref().map(|days| {
            let targets = range.clone().map(|start| days[start + window + horizon - 1]);
            ("day", vec![n], targets.collect())
        });
        let fields = [Some(("x", vec![n, window], xs)), days, Some(("y", vec![n], ys))];
        Split::table(n, fields.into_iter().flatten())
    };
    data.train = make(0..train_count);
    data.val = make(train_count..examples);
    Ok(())
}

fn load_text(dataset: &Dataset, base_dir: &Path, data: &mut Data) -> Result<(), Diagnostic> {
    let source = &dataset.source;
    let (path, text) = read(dataset, base_dir)?;
    let chars: Vec<char> = text.chars().collect();
    let context = source.int("context").unwrap_or(1) as usize;
    let vocab = source.int("vocab").unwrap_or(2) as usize;
    let val_share = source.float("val").unwrap_or(0.1);
    let split_at = text_split_at(chars.len(), val_share);
    let val_chars = chars.len() - split_at;
    if split_at <= context + 1 || val_chars <= context + 1 {
        // Say which split is short: a `val` of 0 leaves no validation text
        // however long the file.
        let (split, have) = if val_chars <= context + 1 {
            ("validation", val_chars)
        } else {
            ("training", split_at)
        };
        return Err(Diagnostic::error(
            codes::DATA_VALUE,
            format!(
                "`{path}` has {} characters, {have} of them for {split} (val: {val_share}): too few for a context of {context}",
                chars.len()
            ),
            source.span,
        )
        .label("not enough text"));
    }
    // The vocabulary: the vocab-1 most frequent training characters, most
    // frequent first (ties by character); the last id stands for the rest.
    data.vocab = super::passages::text_vocab(&chars, split_at, vocab);
    let index: HashMap<char, u32> = data.vocab[..data.vocab.len() - 1]
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, i as u32))
        .collect();
    let other = (vocab - 1) as u32;
    let ids: Vec<u32> = chars.iter().map(|c| *index.get(c).unwrap_or(&other)).collect();
    data.train = Split::Stream {
        ids: ids[..split_at].to_vec(),
        context,
    };
    data.val = Split::Stream {
        ids: ids[split_at..].to_vec(),
        context,
    };
    Ok(())
}

/// Synthetic sequence tasks, generated from the seed.
fn synthesize(dataset: &Dataset, task: &str, data: &mut Data) {
    let source = &dataset.source;
    let vocab = source.int("vocab").unwrap_or(10) as u64;
    let (low, high) = source.range("len").unwrap_or((1, 1));
    let seed = source.int("seed").unwrap_or(0) as u64;
    let (src_len, tgt_len) = synthetic_lengths(task, high);
    let (pad, bos, eos) = (vocab as f64, (vocab + 1) as f64, (vocab + 2) as f64);
    let plus = (vocab + 3) as f64;
    let make = |count: usize, stream: u64| {
        let mut src = vec![pad; count * src_len as usize];
        let mut tgt_in = vec![pad; count * tgt_len as usize];
        let mut tgt_out = vec![pad; count * tgt_len as usize];
        for e in 0..count {
            let draw = |k: u64| random::bits(seed, e as u64, stream, k);
            let len = low + (draw(0) % (high - low + 1) as u64) as i64;
            let symbols: Vec<u64> = (0..len as u64).map(|k| draw(1 + k) % vocab).collect();
            let (input, output): (Vec<f64>, Vec<f64>) = match task {
                "reverse" => (
                    symbols.iter().map(|&s| s as f64).collect(),
                    symbols.iter().rev().map(|&s| s as f64).collect(),
                ),
                "sort" => {
                    let mut sorted = symbols.clone();
                    sorted.sort_unstable();
                    (
                        symbols.iter().map(|&s| s as f64).collect(),
                        sorted.iter().map(|&s| s as f64).collect(),
                    )
                }
                "add" => {
                    let other: Vec<u64> = (0..len as u64).map(|k| draw(100 + k) % vocab).collect();
                    let mut input: Vec<f64> = symbols.iter().map(|&s| s as f64).collect();
                    input.push(plus);
                    input.extend(other.iter().map(|&s| s as f64));
                    (input, add_digits(&symbols, &other, vocab))
                }
                _ => (
                    symbols.iter().map(|&s| s as f64).collect(),
                    symbols.iter().map(|&s| s as f64).collect(),
                ),
            };
            let s0 = e * src_len as usize;
            src[s0..s0 + input.len()].copy_from_slice(&input);
            let t0 = e * tgt_len as usize;
            tgt_in[t0] = bos;
            tgt_in[t0 + 1..t0 + 1 + output.len()].copy_from_slice(&output);
            tgt_out[t0..t0 + output.len()].copy_from_slice(&output);
            tgt_out[t0 + output.len()] = eos;
        }
        let (src_len, tgt_len) = (src_len as usize, tgt_len as usize);
        Split::table(
            count,
            [
                ("src", vec![count, src_len], src),
                ("tgt_in", vec![count, tgt_len], tgt_in),
                ("tgt_out", vec![count, tgt_len], tgt_out),
            ],
        )
    };
    data.train = make(source.int("train").unwrap_or(1000) as usize, 0);
    data.val = make(source.int("val").unwrap_or(100) as usize, 1);
}

/// The sum of two numbers given as most-significant-first digits in `base`.
fn add_digits(a: &[u64], b: &[u64], base: u64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut carry = 0;
    for i in (0..a.len().max(b.len())).rev() {
        let s = a.get(i).copied().unwrap_or(0) + b.get(i).copied().unwrap_or(0) + carry;
        out.push((s % base) as f64);
        carry = s / base;
    }
    if carry > 0 {
        out.push(carry as f64);
    }
    out.reverse();
    out
}

/// A permutation of `0..n` from the seed (Fisher–Yates).
pub fn permutation(n: usize, seed: u64, round: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (random::bits(seed, round, SHUFFLE_STREAM, i as u64) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// Random streams of the runtime, apart from the model's own.
const SHUFFLE_STREAM: u64 = 1 << 40;
const AUGMENT_STREAM: u64 = (1 << 40) + 1;
const WINDOW_STREAM: u64 = (1 << 40) + 2;

/// A batch of examples `rows` from a split: input name → array. With
/// `augment` (seed, step, and where `rows` start in the whole batch: a
/// data-parallel process's share is augmented as one process augments
/// those rows), images are augmented.
pub fn batch(
    data: &Data,
    split: &Split,
    rows: &[usize],
    augment: Option<(u64, u64, usize)>,
) -> HashMap<String, ArrayD<f64>> {
    let mut out = HashMap::new();
    match split {
        Split::Table { fields, .. } => {
            for (field, array) in fields {
                out.insert(format!("{}.{field}", data.name), take_rows(array, rows));
            }
        }
        Split::Stream { ids, context } => {
            let mut x = Vec::with_capacity(rows.len() * context);
            let mut y = Vec::with_capacity(rows.len() * context);
            for &start in rows {
                x.extend(ids[start..start + context].iter().map(|&i| i as f64));
                y.extend(ids[start + 1..start + context + 1].iter().map(|&i| i as f64));
            }
            let shape = IxDyn(&[rows.len(), *context]);
            out.insert(
                format!("{}.x", data.name),
                ArrayD::from_shape_vec(shape.clone(), x).expect("sizes match"),
            );
            out.insert(
                format!("{}.y", data.name),
                ArrayD::from_shape_vec(shape, y).expect("sizes match"),
            );
        }
    }
    if let (Some((seed, step, first)), Some(image)) = (augment, data.image) {
        if let Some(x) = out.get_mut(&format!("{}.x", data.name)) {
            augment_images(x, image, &data.augment, (seed, step), first);
        }
    }
    out
}

/// Rows `rows` of `array` (along its first axis), in that order: what
/// `select(Axis(0), rows)` gives, by copying each row whole (`select` built
/// a view per row and concatenated them, a few microseconds a batch).
fn take_rows(array: &ArrayD<f64>, rows: &[usize]) -> ArrayD<f64> {
    let mut shape = array.shape().to_vec();
    let Some(slice) = array.as_slice().filter(|_| !shape.is_empty()) else {
        return array.select(ndarray::Axis(0), rows);
    };
    let width: usize = shape[1..].iter().product();
    let mut values = Vec::with_capacity(rows.len() * width);
    for &row in rows {
        values.extend_from_slice(&slice[row * width..(row + 1) * width]);
    }
    shape[0] = rows.len();
    ArrayD::from_shape_vec(IxDyn(&shape), values).expect("rows of the array's width")
}

/// Row starts (tables: example indices; streams: window offsets) for step
/// `step` of training with `batch` examples: epochs of a seeded permutation
/// (kept in `shuffle` while its epoch lasts).
pub fn train_rows(split: &Split, batch: usize, step: u64, seed: u64, shuffle: &mut Shuffle) -> Vec<usize> {
    match split {
        Split::Table { len, .. } => {
            let len = (*len).max(1);
            let per_epoch = (len / batch).max(1) as u64;
            let epoch = step / per_epoch;
            let order = shuffle.order(len, seed, epoch);
            let start = ((step % per_epoch) as usize * batch) % len;
            (0..batch).map(|i| order[(start + i) % len]).collect()
        }
        Split::Stream { ids, context } => {
            let room = (ids.len() - context - 1) as u64;
            (0..batch as u64)
                .map(|i| (random::bits(seed, step, WINDOW_STREAM, i) % room) as usize)
                .collect()
        }
    }
}

/// One epoch's order of a table's examples, kept for the steps of that
/// epoch: drawing the permutation costs a hash per example, which once a
/// step made a step's cost grow with the size of the data set.
#[derive(Clone, Debug, Default)]
pub struct Shuffle {
    /// `(len, seed, epoch)` of `order`.
    drawn: Option<(usize, u64, u64)>,
    order: Vec<usize>,
}

impl Shuffle {
    /// [`permutation`]`(len, seed, epoch)`, drawn again only when one of
    /// them changed.
    pub fn order(&mut self, len: usize, seed: u64, epoch: u64) -> &[usize] {
        if self.drawn != Some((len, seed, epoch)) {
            self.order = permutation(len, seed, epoch);
            self.drawn = Some((len, seed, epoch));
        }
        &self.order
    }
}

/// Evaluation batches covering the split in order (streams: consecutive
/// windows, at most `limit` examples).
pub fn eval_rows(split: &Split, batch: usize, limit: usize) -> Vec<Vec<usize>> {
    let starts: Vec<usize> = match split {
        Split::Table { len, .. } => (0..*len).collect(),
        Split::Stream { ids, context } => (0..(ids.len() - 1) / context).map(|w| w * context).collect(),
    };
    starts
        .into_iter()
        .take(limit)
        .collect::<Vec<_>>()
        .chunks(batch.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

/// Random horizontal flips and shifts of images `[N, C, H, W]` (flattened
/// or not), zero-filled.
fn augment_images(
    x: &mut ArrayD<f64>,
    [c, h, w]: [usize; 3],
    augments: &[crate::check::config::Config],
    (seed, step): (u64, u64),
    first: usize,
) {
    let n = x.shape()[0];
    let Some(flat) = x.as_slice_mut() else { return };
    let size = c * h * w;
    for e in 0..n {
        let image = &mut flat[e * size..(e + 1) * size];
        for (k, augment) in augments.iter().enumerate() {
            let row = (first + e) as u64;
            let draw = |j: u64| random::uniform(seed, step, AUGMENT_STREAM, row * 64 + (k as u64) * 8 + j);
            let original = image.to_vec();
            match augment.name.as_str() {
                "flip" if draw(0) < 0.5 => {
                    for ch in 0..c {
                        for i in 0..h {
                            for j in 0..w {
                                image[ch * h * w + i * w + j] = original[ch * h * w + i * w + (w - 1 - j)];
                            }
                        }
                    }
                }
                "shift" => {
                    let p = augment.int("pixels").unwrap_or(1);
                    let span = (2 * p + 1) as f64;
                    let dy = (draw(1) * span) as i64 - p;
                    let dx = (draw(2) * span) as i64 - p;
                    for ch in 0..c {
                        for i in 0..h as i64 {
                            for j in 0..w as i64 {
                                let (si, sj) = (i - dy, j - dx);
                                let inside = (0..h as i64).contains(&si) && (0..w as i64).contains(&sj);
                                image[ch * h * w + (i as usize) * w + j as usize] = if inside {
                                    original[ch * h * w + (si as usize) * w + sj as usize]
                                } else {
                                    0.0
                                };
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_sums_carry() {
        assert_eq!(add_digits(&[9, 9], &[0, 1], 10), vec![1.0, 0.0, 0.0]);
        assert_eq!(add_digits(&[1, 2], &[3, 4], 10), vec![4.0, 6.0]);
    }

    #[test]
    fn rows_taken_whole_are_those_select_gives() {
        let rows = [3, 0, 3, 1];
        for shape in [vec![4], vec![4, 3], vec![4, 2, 5]] {
            let count: usize = shape.iter().product();
            let array = ArrayD::from_shape_vec(IxDyn(&shape), (0..count).map(|v| v as f64 * 0.5 - 1.0).collect())
                .expect("sizes match");
            let taken = take_rows(&array, &rows);
            assert_eq!(taken, array.select(ndarray::Axis(0), &rows), "shape {shape:?}");
            assert_eq!(taken.shape()[0], 4);
        }
        // Not in standard layout: through `select`.
        let transposed = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
            .expect("sizes match")
            .reversed_axes();
        assert_eq!(
            take_rows(&transposed, &[2, 0]),
            transposed.select(ndarray::Axis(0), &[2, 0])
        );
    }

    #[test]
    fn a_kept_shuffle_is_the_permutation_of_its_epoch() {
        let split = Split::Table {
            fields: vec![],
            len: 10,
        };
        let mut shuffle = Shuffle::default();
        // Batches of 4 from 10 examples: epochs of 2 steps.
        for step in [0, 1, 2, 3, 1, 0, 7] {
            let rows = train_rows(&split, 4, step, 5, &mut shuffle);
            let order = permutation(10, 5, step / 2);
            let start = (step % 2) as usize * 4;
            assert_eq!(rows, order[start..start + 4], "step {step}");
        }
        assert_eq!(shuffle.order(10, 6, 0), &permutation(10, 6, 0)[..]);
    }

    #[test]
    fn permutations_are_seeded() {
        let a = permutation(10, 1, 0);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_eq!(a, permutation(10, 1, 0));
        assert_ne!(a, permutation(10, 2, 0));
    }
}
