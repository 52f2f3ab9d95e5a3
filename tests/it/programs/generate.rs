//! A seeded generator of well-formed `.nn` programs. In: a seed and the
//! directory of the example data. Out: one program per call, composing a
//! data source (every CSV shape, series, text, synthetic and speech task), a model
//! built from standard-library layers, user blocks and primitives with
//! random sizes, a loss, an optimizer with a schedule, and the sections
//! (`train`, `eval`, `generate` with each method, `sweep`, `analyze`).
//!
//! Layers, sources, optimizers, schedules, methods and sections are drawn
//! from decks (`Deck`), so a run of a few dozen programs uses each of them
//! whatever the seed; sizes and options are random. Programs are written to
//! check: a layer is only used where its shape rules hold (heads divide the
//! width, pooling needs an even side), so most programs reach the runtime.
//! The layers and their decks are in `generate/layers.rs`.

mod layers;

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::{Deck, Rng};
use layers::{ACTIVATIONS, IMAGE, SEQUENCE, VECTOR};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Source {
    /// Digits as a vector with 10 classes.
    CsvClasses,
    /// Digits as an image `[C, H, W]`, maybe augmented.
    CsvImage,
    /// The digit's label as a number to regress.
    CsvRegression,
    /// Digit above 4 or not, with binary cross entropy.
    CsvBinary,
    /// Windows of the views series, a vector model.
    Series,
    /// Windows of the views series read as a sequence.
    SeriesSequence,
    /// Characters of Shakespeare, a language model.
    Text,
    /// A synthetic task with an encoder-decoder.
    Task(&'static str),
    /// A synthetic task with a one-input per-token model of the source.
    Tagger(&'static str),
    /// The speech-like task with a per-frame model and CTC.
    Speech,
}

const SOURCES: &[Source] = &[
    Source::CsvClasses,
    Source::CsvImage,
    Source::CsvImage,
    Source::CsvRegression,
    Source::CsvBinary,
    Source::Series,
    Source::SeriesSequence,
    Source::Text,
    Source::Text,
    Source::Task("copy"),
    Source::Task("reverse"),
    Source::Task("sort"),
    Source::Task("add"),
    Source::Tagger("copy"),
    Source::Tagger("reverse"),
    Source::Tagger("sort"),
    Source::Speech,
];

const OPTIMIZERS: &[&str] = &["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"];

const SCHEDULES: &[&str] = &[
    "",
    " schedule warmup(2)",
    " schedule warmup(1) then cosine(min: 0.1)",
    " schedule step(every: 1, gamma: 0.5)",
    " schedule exponential(0.9)",
    " schedule linear()",
    " schedule constant()",
    " schedule cosine()",
    " schedule warmup(1) then linear(min: 0.5)",
];

const METHODS: &[&str] = &[
    "greedy",
    "beam(width: 2)",
    "beam(width: 3, length_penalty: 0.5)",
    "sample(temperature: 0.8, top_k: 3)",
    "sample()",
];

/// Extra sections, one drawn per program (or none).
const EXTRAS: &[&str] = &["none", "sweep", "analyze", "none", "generate"];

pub struct Generator {
    rng: Rng,
    data: PathBuf,
    sources: Deck<Source>,
    vector: Deck<&'static str>,
    image: Deck<&'static str>,
    sequence: Deck<&'static str>,
    optimizers: Deck<&'static str>,
    schedules: Deck<&'static str>,
    methods: Deck<&'static str>,
    activations: Deck<&'static str>,
    extras: Deck<&'static str>,
}

/// A program being written: user blocks, the model's lines, constants.
#[derive(Default)]
struct Writer {
    blocks: Vec<String>,
    lines: Vec<String>,
}

impl Writer {
    fn line(&mut self, text: impl Into<String>) {
        self.lines.push(text.into());
    }

    fn block(&mut self, text: &str) {
        if !self.blocks.iter().any(|b| b == text) {
            self.blocks.push(text.to_string());
        }
    }
}

impl Generator {
    /// A generator for `seed`; data paths point into `data` (the examples'
    /// data directory).
    pub fn new(seed: u64, data: &Path) -> Generator {
        Generator {
            rng: Rng::new(seed),
            data: data.to_path_buf(),
            sources: Deck::new(SOURCES),
            vector: Deck::new(VECTOR),
            image: Deck::new(IMAGE),
            sequence: Deck::new(SEQUENCE),
            optimizers: Deck::new(OPTIMIZERS),
            schedules: Deck::new(SCHEDULES),
            methods: Deck::new(METHODS),
            activations: Deck::new(ACTIVATIONS),
            extras: Deck::new(EXTRAS),
        }
    }

    fn path(&self, file: &str) -> String {
        self.data.join(file).display().to_string()
    }

    /// The next program.
    pub fn program(&mut self) -> String {
        let source = self.sources.draw(&mut self.rng);
        let mut head = String::new();
        let mut w = Writer::default();
        let name = self.rng.pick(&["d", "digits", "views", "plays", "pairs", "set_1"]);
        let seed = self.rng.below(3);
        // The loss, the metrics that fit it, and whether it can generate.
        let (loss, metrics, can_generate) = match source {
            Source::CsvClasses | Source::CsvRegression | Source::CsvBinary | Source::CsvImage => {
                let (columns, features) = match self.rng.below(4) {
                    0 => ("\"p5\"".to_string(), 1),
                    1 => ("[\"p3\", \"p10\", \"p20\"]".to_string(), 3),
                    2 => ("\"p0\"..\"p15\"".to_string(), 16),
                    _ => ("\"p0\"..\"p63\"".to_string(), 64),
                };
                let image = source == Source::CsvImage;
                let (features, columns) = if image && features < 16 {
                    (64, "\"p0\"..\"p63\"".to_string())
                } else {
                    (features, columns)
                };
                let mut settings = format!("x: {columns}, y: \"label\"");
                if source != Source::CsvRegression {
                    settings.push_str(", classes: 10");
                }
                let shape = match features {
                    16 => [1, 4, 4],
                    _ if self.rng.one_in(3) => [4, 4, 4],
                    _ => [1, 8, 8],
                };
                if image {
                    let _ = write!(settings, ", shape: [{}, {}, {}]", shape[0], shape[1], shape[2]);
                    match self.rng.below(4) {
                        0 => settings.push_str(", augment: [flip]"),
                        1 => settings.push_str(", augment: [shift(1)]"),
                        2 => settings.push_str(", augment: [flip, shift(2)]"),
                        _ => {}
                    }
                }
                if self.rng.one_in(2) {
                    settings.push_str(", normalize: true");
                } else {
                    settings.push_str(", scale: 1 / 16");
                }
                if self.rng.one_in(6) {
                    settings.push_str(", folds: 2");
                } else {
                    let _ = write!(settings, ", val: {}", self.rng.pick(&["0.2", "0.1", "0.5"]));
                }
                let _ = writeln!(
                    head,
                    "data {name} = csv(\"{}\", {settings}, seed: {seed})",
                    self.path("digits.csv")
                );
                let (input, mut width) = if image {
                    w.line("    h = image");
                    (format!("image: f32[B, {}, {}, {}]", shape[0], shape[1], shape[2]), 0)
                } else {
                    w.line("    h = x");
                    (format!("x: f32[B, {features}]"), features)
                };
                if image {
                    width = self.image_layers(&mut w, shape);
                }
                self.vector_layers(&mut w, width, &mut head);
                let (out, last, loss, metrics) = match source {
                    Source::CsvRegression => (
                        "f32[B]",
                        "linear(h, 1)[:, 0]",
                        format!("{}(net({name}.x), {name}.y)", self.rng.pick(&["mse", "mae"])),
                        vec!["loss", "mae", "mse"],
                    ),
                    Source::CsvBinary => (
                        "f32[B]",
                        "linear(h, 1)[:, 0]",
                        format!("binary_cross_entropy(net({name}.x), f32({name}.y > 4))"),
                        vec!["loss"],
                    ),
                    _ => {
                        let loss = match self.rng.below(3) {
                            0 => format!("cross_entropy(net({name}.x), {name}.y, smoothing: 0.1)"),
                            1 => format!(
                                "cross_entropy(net({name}.x), {name}.y) + 0.1 * mean(1.0 - cosine_similarity(net({name}.x), one_hot({name}.y, 10)))"
                            ),
                            _ => format!("cross_entropy(net({name}.x), {name}.y)"),
                        };
                        ("f32[B, 10]", "linear(h, 10)", loss, vec!["loss", "accuracy"])
                    }
                };
                w.line(format!("    {last}"));
                let model = format!("model net({input}) -> {out} {{\n{}\n}}\n", w.lines.join("\n"));
                w.lines.clear();
                w.line(model);
                (loss, metrics, false)
            }
            Source::Series | Source::SeriesSequence => {
                let window = self.rng.range(1, 8);
                let mut settings = format!(
                    "column: \"views\", window: {window}, val_last: {}",
                    self.rng.pick(&[8, 20, 56])
                );
                if self.rng.one_in(3) {
                    let _ = write!(settings, ", horizon: {}", self.rng.range(1, 3));
                }
                if self.rng.one_in(3) {
                    settings.push_str(", normalize: false");
                }
                let _ = writeln!(head, "data {name} = series(\"{}\", {settings})", self.path("views.csv"));
                w.line("    h = x");
                if source == Source::SeriesSequence {
                    w.line(format!("    h = reshape(h, [B, {window}, 1])"));
                    self.sequence_layers(&mut w, 1, &window.to_string());
                    if self.rng.one_in(2) {
                        w.line(format!("    h = h[:, {}, :]", window - 1));
                    } else {
                        w.line("    h = mean(h, axis: 1)");
                    }
                } else {
                    self.vector_layers(&mut w, window, &mut head);
                }
                let model = format!(
                    "model net(x: f32[B, {window}]) -> f32[B] {{\n{}\n    linear(h, 1)[:, 0]\n}}\n",
                    w.lines.join("\n")
                );
                w.lines.clear();
                w.line(model);
                let loss = format!("{}(net({name}.x), {name}.y)", self.rng.pick(&["mse", "mae"]));
                (loss, vec!["loss", "mae", "mse"], false)
            }
            Source::Text => {
                let t = self.rng.range(2, 6);
                let v = self.rng.range(2, 16);
                let _ = writeln!(head, "const T = {t}\nconst V = {v}");
                let _ = writeln!(
                    head,
                    "data {name} = text(\"{}\", context: T, vocab: V, val: {})",
                    self.path("shakespeare.txt"),
                    self.rng.pick(&["0.1", "0.01", "0.5"])
                );
                let width = self.embedding(&mut w, "x", "V");
                self.sequence_layers(&mut w, width, "T");
                let model = format!(
                    "model lm(x: i32[B, T]) -> f32[B, T, V] {{\n{}\n    linear(h, V)\n}}\n",
                    w.lines.join("\n")
                );
                w.lines.clear();
                w.line(model);
                let loss = if self.rng.one_in(3) {
                    w.block(
                        "# Drops half the characters and predicts them.\n\
                         block masked(x: i32[B, T]) -> f32[] {\n    keep = rand(shape(x)) < 0.5\n    cross_entropy(lm(where(keep, x, 0)), where(keep, -1, x), ignore: -1)\n}\n",
                    );
                    format!("masked({name}.x)")
                } else {
                    format!("cross_entropy(lm({name}.x), {name}.y)")
                };
                (loss, vec!["loss", "perplexity", "token_accuracy"], true)
            }
            Source::Speech => {
                let (vocab, len, duration) = (self.rng.range(1, 5), self.rng.range(1, 3), self.rng.range(1, 3));
                let features = self.rng.range(1, 6);
                let _ = writeln!(
                    head,
                    "data {name} = speech(vocab: {vocab}, len: 1..{len}, duration: 1..{duration}, silence: {}, noise: {}, features: {features}, train: {}, val: {}, seed: {seed})",
                    self.rng.pick(&["0.0", "0.3", "1.0"]),
                    self.rng.pick(&["0.0", "0.5"]),
                    self.rng.pick(&[16, 40]),
                    self.rng.pick(&[3, 8])
                );
                let _ = writeln!(head, "const T = {name}.frames");
                let _ = writeln!(head, "const C = {name}.classes");
                w.line("    h = x");
                self.sequence_layers(&mut w, features, "T");
                let model = format!(
                    "model frames(x: f32[B, T, {features}]) -> f32[B, T, C] {{\n{}\n    log_softmax(linear(h, C))\n}}\n",
                    w.lines.join("\n")
                );
                w.lines.clear();
                w.line(model);
                // The recursion from the library's pieces: the best state
                // after the last frame (the all-blank state is always
                // reachable, so it is finite).
                w.block(
                    "block last_alpha(lp: f32[N, S, K], labels: i32[N, L]) -> f32[] {\n    ext = ctc_extend(labels, 0)\n    emit = lp @ transpose(one_hot(ext, K), 1, 2)\n    skip = (ext != 0) and (ext != ctc_shift(ext, 2, 0))\n    alphas = scan(ctc_step, emit, pad(zeros([N, 1]), 0, 2 * L, axis: 1, value: -1e30), skip: skip)\n    0.0 - mean(max(alphas[:, S - 1], axis: 1))\n}\n",
                );
                let args = format!("{name}.input_lengths, {name}.labels, {name}.label_lengths");
                let loss = format!(
                    "ctc_loss(frames({name}.x), {args}, blank: {name}.blank) - {} * mean(where(ctc_feasible({args}, T), ctc_log_likelihood(frames({name}.x), {args}), 0.0)) + 0.1 * last_alpha(frames({name}.x), {name}.labels)",
                    self.rng.pick(&["0.5", "1.0"])
                );
                (loss, vec!["loss", "label_error_rate"], false)
            }
            Source::Task(task) | Source::Tagger(task) => {
                let lo = self.rng.range(1, 3);
                let hi = lo + self.rng.below(4);
                let d = 2 * self.rng.range(1, 4);
                let _ = writeln!(head, "const D = {d}");
                let _ = writeln!(
                    head,
                    "data {name} = {task}(vocab: {}, len: {lo}..{hi}, train: {}, val: {}, seed: {seed})",
                    self.rng.range(2, 12),
                    self.rng.pick(&[16, 40]),
                    self.rng.pick(&[3, 8])
                );
                let _ = writeln!(head, "const V = {name}.tokens");
                if let Source::Tagger(_) = source {
                    let width = self.embedding(&mut w, "src", "V");
                    self.sequence_layers(&mut w, width, "S");
                    let model = format!(
                        "model tagger(src: i32[B, S]) -> f32[B, S, V] {{\n{}\n    linear(h, V)\n}}\n",
                        w.lines.join("\n")
                    );
                    w.lines.clear();
                    w.line(model);
                    let loss =
                        format!("cross_entropy(tagger({name}.src), {name}.tgt_out[:, 0:{hi}], ignore: {name}.pad)");
                    (loss, vec!["loss", "token_accuracy"], false)
                } else {
                    // The encoder keeps the width D.
                    let position = if self.rng.one_in(2) { "sinusoids" } else { "positions" };
                    w.line(format!("    h = embed(src, V, D) + {position}(S, D)"));
                    let width = self.sequence_layers(&mut w, d, "S");
                    if width != d {
                        w.line("    h = linear(h, D)");
                    }
                    let encoder = format!(
                        "block encoder(src: i32[B, S]) -> f32[B, S, D] {{\n{}\n    h\n}}\n",
                        w.lines.join("\n")
                    );
                    w.lines.clear();
                    w.block(&encoder);
                    w.line("    memory = encoder(src)");
                    w.line("    h = embed(tgt, V, D) + positions(L, D)");
                    let heads = self.rng.pick(&[1, 2]);
                    match self.rng.below(3) {
                        0 => w.line(format!("    h = decoder_layer(h, memory, heads: {heads})")),
                        1 => w.line(format!(
                            "    h = h + cross_attention(layer_norm(h), memory, heads: {heads})"
                        )),
                        _ => w.line(format!(
                            "    h = repeat 2 decoder_layer(h, memory, heads: {heads}, hidden: {})",
                            d + 1
                        )),
                    }
                    self.sequence_layers(&mut w, d, "L");
                    let model = format!(
                        "model seq(src: i32[B, S], tgt: i32[B, L]) -> f32[B, L, V] {{\n{}\n    linear(h, V)\n}}\n",
                        w.lines.join("\n")
                    );
                    w.lines.clear();
                    w.line(model);
                    let smoothing = if self.rng.one_in(2) { ", smoothing: 0.1" } else { "" };
                    let loss = format!(
                        "cross_entropy(seq({name}.src, {name}.tgt_in), {name}.tgt_out, ignore: {name}.pad{smoothing})"
                    );
                    (loss, vec!["loss", "token_accuracy", "exact_match"], true)
                }
            }
        };
        let mut out = String::from("# generated\n");
        out.push_str(&head);
        out.push('\n');
        for block in &w.blocks {
            out.push_str(block);
            out.push('\n');
        }
        for line in &w.lines {
            out.push_str(line);
            out.push('\n');
        }
        let _ = writeln!(out, "loss {loss}");
        let _ = writeln!(out, "optimizer {}", self.optimizer());
        let _ = writeln!(
            out,
            "train {{ steps: {}, batch: {}, seed: {}{} }}",
            self.rng.range(2, 3),
            self.rng.range(1, 4),
            self.rng.below(5),
            match self.rng.below(4) {
                0 => ", checkpoint_every: 1",
                1 => ", log_every: 1",
                _ => "",
            }
        );
        if !self.rng.one_in(3) {
            let mut chosen: Vec<&str> = metrics.iter().copied().filter(|_| !self.rng.one_in(3)).collect();
            if self.rng.one_in(5) {
                // Any metric: those that do not fit the task must be
                // rejected or reported, never crash.
                chosen.push(self.rng.pick(&[
                    "accuracy",
                    "token_accuracy",
                    "exact_match",
                    "mae",
                    "mse",
                    "perplexity",
                    "label_error_rate",
                ]));
            }
            chosen.dedup();
            if chosen.is_empty() {
                chosen.push("loss");
            }
            let decode = match self.rng.below(3) {
                0 => ", decode: beam(width: 3)",
                1 => ", decode: greedy",
                _ => "",
            };
            let _ = writeln!(
                out,
                "eval {{ every: {}, metrics: [{}], batch: {}{decode} }}",
                self.rng.range(1, 2),
                chosen.join(", "),
                self.rng.pick(&[4, 64])
            );
        }
        let extra = self.extras.draw(&mut self.rng);
        if can_generate && (extra == "generate" || self.rng.one_in(2)) {
            let first = self.methods.draw(&mut self.rng);
            // Now and then a list of two methods to compare.
            let method = match self.rng.one_in(4) {
                true => match self.methods.draw(&mut self.rng) {
                    second if second != first => format!("[{first}, {second}]"),
                    _ => first.to_string(),
                },
                false => first.to_string(),
            };
            let split = self.rng.pick(&["val", "val", "train"]);
            match source {
                Source::Text => {
                    let _ = writeln!(
                        out,
                        "generate {{ method: {method}, prompt: \"{}\", length: {}, samples: {} }}",
                        self.rng.pick(&["", "a", "KING:", "é?"]),
                        self.rng.range(1, 4),
                        self.rng.range(1, 3)
                    );
                }
                _ => {
                    let _ = writeln!(
                        out,
                        "generate {{ method: {method}, from: {name}.{split}, samples: {} }}",
                        self.rng.range(1, 3)
                    );
                }
            }
        }
        match extra {
            "sweep" => {
                let setting = match self.rng.below(5) {
                    0 => "lr: [1e-3, 1e-2]",
                    1 => "seed: [0, 1]",
                    2 => "batch: [2, 3]",
                    3 if out.contains("const H =") => "H: [2, 3]",
                    _ => "steps: [1, 2]",
                };
                let _ = writeln!(out, "sweep {{ {setting} }}");
            }
            "analyze" => {
                let mut words = vec!["params", "shapes", "flops", "memory"];
                self.rng.shuffle(&mut words);
                words.truncate(self.rng.range(1, 4));
                let _ = writeln!(out, "analyze {{ report: [{}] }}", words.join(", "));
            }
            _ => {}
        }
        out
    }

    fn optimizer(&mut self) -> String {
        let name = self.optimizers.draw(&mut self.rng);
        let mut args = vec![format!("lr: {}", self.rng.pick(&["1e-3", "0.01", "0.1", "1e-4"]))];
        let extra = match name {
            "sgd" => self.rng.pick(&["momentum: 0.9", "momentum: 0.5, nesterov: true", ""]),
            "momentum" => self.rng.pick(&["momentum: 0.5", "nesterov: true", ""]),
            "adagrad" => self.rng.pick(&["eps: 1e-8", ""]),
            "rmsprop" => self.rng.pick(&["decay: 0.9", "decay: 0.5, eps: 1e-6", ""]),
            _ => self.rng.pick(&["beta1: 0.8, beta2: 0.99", "eps: 1e-6", ""]),
        };
        if !extra.is_empty() {
            args.push(extra.to_string());
        }
        let common = self
            .rng
            .pick(&["weight_decay: 1e-4", "clip_norm: 1.0", "clip_value: 0.5", "", ""]);
        if !common.is_empty() {
            args.push(common.to_string());
        }
        let schedule = self.schedules.draw(&mut self.rng);
        format!("{name}({}){schedule}", args.join(", "))
    }
}
