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

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::{Deck, Rng};

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

const VECTOR: &[&str] = &[
    "linear",
    "relu_linear",
    "mlp",
    "mlp_out",
    "sigmoid_sum",
    "dropout",
    "layer_norm",
    "batch_norm",
    "act",
    "residual",
    "concat",
    "slice",
    "reduce",
    "where",
    "gate",
    "unit",
    "repeat",
    "tracked",
    "no_bias",
    "log_softmax",
    "prims",
    "flatten",
];

const IMAGE: &[&str] = &[
    "conv_same",
    "conv_1x1",
    "conv_stride",
    "conv_valid",
    "max_pool",
    "avg_pool",
    "max_pool_overlap",
    "batch_norm2d",
    "act",
    "dropout",
];

const SEQUENCE: &[&str] = &[
    "lstm",
    "lstm_options",
    "gru",
    "rnn",
    "jordan_rnn",
    "bidirectional_lstm",
    "attention",
    "gpt_layer",
    "encoder_layer",
    "cross_attention",
    "graph_attention",
    "positions",
    "sinusoids",
    "layer_norm",
    "linear",
    "mlp",
    "dropout",
    "act",
    "scan_rnn_cell",
    "scan_lstm_cell",
    "scan_gru_cell",
    "scan_jordan_cell",
    "attend",
    "repeat_gpt",
    "softmax",
];

const ACTIVATIONS: &[&str] = &[
    "relu",
    "leaky_relu",
    "sigmoid",
    "hard_sigmoid",
    "gelu",
    "square",
    "tanh",
    "softmax",
    "log_softmax",
];

/// Activations that can be passed as a function (`act: gelu`).
const ACT_FNS: &[&str] = &["relu", "sigmoid", "gelu", "tanh", "hard_sigmoid", "square"];

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

const INITS: &[&str] = &[
    "xavier",
    "kaiming",
    "zeros",
    "ones",
    "normal(std: 0.1)",
    "uniform(-0.1, 0.1)",
    "0.05",
];

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

    fn activation(&mut self, x: &str) -> String {
        match self.activations.draw(&mut self.rng) {
            "leaky_relu" => format!("leaky_relu({x}, slope: 0.2)"),
            act => format!("{act}({x})"),
        }
    }

    /// `h = ...` lines over a vector `h: f32[B, width]`; returns the width.
    /// With `width` 0 the input is an image, flattened first.
    fn vector_layers(&mut self, w: &mut Writer, width: usize, head: &mut String) -> usize {
        let mut f = width;
        let count = self.rng.range(2, 4);
        for _ in 0..count {
            let n = self.rng.range(1, 6);
            let layer = self.vector.draw(&mut self.rng);
            let (expr, out) = match layer {
                "linear" => (format!("linear(h, {n})"), n),
                "relu_linear" => {
                    // The width is the constant `H` (which a sweep may vary).
                    let known = head.lines().find_map(|l| l.strip_prefix("const H = "));
                    let h = match known.and_then(|v| v.trim().parse().ok()) {
                        Some(h) => h,
                        None => {
                            let _ = writeln!(head, "const H = {n}");
                            n
                        }
                    };
                    ("relu(linear(h, H))".to_string(), h)
                }
                "mlp" => (format!("mlp(h, hidden: {n}, act: {})", self.rng.pick(ACT_FNS)), f),
                "mlp_out" => (format!("mlp(h, hidden: {n}, out: {})", n + 1), n + 1),
                "sigmoid_sum" => (
                    format!(
                        "sigmoid_sum(h, units: {n}{})",
                        if self.rng.one_in(2) { ", act: tanh" } else { "" }
                    ),
                    1,
                ),
                "dropout" => (format!("dropout(h, p: {})", self.rng.pick(&["0.1", "0.5", "0.0"])), f),
                "layer_norm" => ("layer_norm(h, eps: 1e-3)".to_string(), f),
                "batch_norm" => (
                    format!("batch_norm(h, momentum: {})", self.rng.pick(&["0.1", "0.9"])),
                    f,
                ),
                "act" => (self.activation("h"), f),
                "residual" => (format!("h + {}", self.activation(&format!("linear(h, {f})"))), f),
                "concat" => ("concat([h, square(h)], axis: -1)".to_string(), 2 * f),
                "slice" => {
                    let k = self.rng.range(1, f);
                    (format!("h[:, 0:{k}]"), k)
                }
                "reduce" => (
                    format!("{}(h, axis: 1, keepdims: true)", self.rng.pick(&["sum", "mean", "max"])),
                    1,
                ),
                "where" => ("where(h > 0.0, h, 0.1 * h)".to_string(), f),
                "gate" => (format!("h * sigmoid(linear(h, {f}))"), f),
                "unit" => {
                    let init = self.rng.pick(INITS);
                    w.block(&format!(
                        "# A dense layer written out, with its own initializer.\n\
                         block unit(x: f32[N, F], width: int, scale: float = 1.0) -> f32[N, width] {{\n    param w: f32[F, width] = {init}\n    param b: f32[width] = zeros\n    tanh(x @ w * scale + b)\n}}\n"
                    ));
                    (format!("unit(h, {n}, scale: 0.5)"), n)
                }
                "repeat" => {
                    w.block("block res(x: f32[N, F]) -> f32[N, F] {\n    x + relu(linear(x, F))\n}\n");
                    (format!("repeat {} res(h)", self.rng.range(1, 3)), f)
                }
                "tracked" => {
                    w.block(
                        "# Subtracts a running mean in evaluation.\n\
                         block tracked(x: f32[N, F]) -> f32[N, F] {\n    state seen: f32[F] = zeros\n    if training {\n        update seen = 0.9 * seen + 0.1 * mean(x, axis: 0)\n        x\n    } else {\n        x - seen\n    }\n}\n",
                    );
                    ("tracked(h)".to_string(), f)
                }
                "no_bias" => (format!("linear(h, {n}, bias: false)"), n),
                "log_softmax" => ("log_softmax(h)".to_string(), f),
                "prims" => (
                    self.rng
                        .pick(&[
                            "sqrt(abs(h) + 1.0)",
                            "log(1.0 + exp(h))",
                            "sin(h) + cos(h)",
                            "pow(abs(h) + 1.0, 0.5)",
                            "minimum(maximum(h, -1.0), 1.0)",
                            "h - mean(h, axis: -1, keepdims: true)",
                            "stop_grad(h) * 0.5 + 0.5 * h",
                            "h * f32(h > 0.0)",
                            "h / (1.0 + max(abs(h), axis: 1, keepdims: true))",
                        ])
                        .to_string(),
                    f,
                ),
                _ => ("flatten(h)".to_string(), f),
            };
            w.line(format!("    h = {expr}"));
            f = out;
        }
        f
    }

    /// `h = ...` lines over an image `h: f32[B, C, S, S]`, then a flatten;
    /// returns the flattened width.
    fn image_layers(&mut self, w: &mut Writer, shape: [usize; 3]) -> usize {
        let (mut c, mut s) = (shape[0], shape[1]);
        for _ in 0..self.rng.range(2, 4) {
            let channels = self.rng.range(1, 4);
            let layer = self.image.draw(&mut self.rng);
            let (expr, oc, os) = match layer {
                "conv_same" => (format!("conv2d(h, {channels}, kernel: 3, padding: 1)"), channels, s),
                "conv_1x1" => (format!("conv2d(h, {channels}, kernel: 1)"), channels, s),
                "conv_stride" if s % 2 == 0 => {
                    (format!("conv2d(h, {channels}, kernel: 2, stride: 2)"), channels, s / 2)
                }
                "conv_valid" if s >= 3 => (format!("conv2d(h, {channels})"), channels, s - 2),
                "max_pool" if s % 2 == 0 => ("max_pool(h, 2)".to_string(), c, s / 2),
                "avg_pool" if s % 2 == 0 => ("avg_pool(h, size: 2)".to_string(), c, s / 2),
                "max_pool_overlap" if s >= 2 => ("max_pool(h, size: 2, stride: 1)".to_string(), c, s - 1),
                "batch_norm2d" => ("batch_norm2d(h)".to_string(), c, s),
                "dropout" => ("dropout(h, p: 0.2)".to_string(), c, s),
                _ => (self.activation("h"), c, s),
            };
            w.line(format!("    h = {expr}"));
            (c, s) = (oc, os);
        }
        w.line("    h = flatten(h)");
        c * s * s
    }

    /// The embedding of token ids `ids` (vocabulary `vocab`) into `h`;
    /// returns its width.
    fn embedding(&mut self, w: &mut Writer, ids: &str, vocab: &str) -> usize {
        if self.rng.one_in(4) {
            w.line(format!("    h = one_hot_embed({ids}, {vocab})"));
            0
        } else {
            let d = 2 * self.rng.range(1, 4);
            w.line(format!("    h = embed({ids}, {vocab}, {d})"));
            d
        }
    }

    /// `h = ...` lines over a sequence `h: f32[B, t, width]`; returns the
    /// width. A width of 0 means "the vocabulary" (after a one-hot
    /// embedding): the first layer is then a linear one.
    fn sequence_layers(&mut self, w: &mut Writer, width: usize, t: &str) -> usize {
        let mut d = width;
        if d == 0 {
            d = 2 * self.rng.range(1, 3);
            w.line(format!("    h = linear(h, {d})"));
        }
        for _ in 0..self.rng.range(1, 3) {
            let n = self.rng.range(1, 4);
            let heads = if d.is_multiple_of(2) { self.rng.pick(&[1, 2]) } else { 1 };
            let layer = self.sequence.draw(&mut self.rng);
            let (expr, out) = match layer {
                "lstm" => (format!("lstm(h, hidden: {n})"), n),
                "lstm_options" => (format!("lstm(h, {n}, reverse: true, peephole: true)"), n),
                "gru" => (format!("gru(h, hidden: {n}, reverse: {})", self.rng.one_in(2)), n),
                "rnn" => (format!("rnn(h, hidden: {n}, act: {})", self.rng.pick(ACT_FNS)), n),
                "jordan_rnn" => (format!("jordan_rnn(h, hidden: {n})"), n),
                "bidirectional_lstm" => (format!("bidirectional_lstm(h, hidden: {n})"), 2 * n),
                "attention" => (
                    format!(
                        "attention(h, heads: {heads}, causal: {}, window: {}, relu_scores: {})",
                        self.rng.one_in(2),
                        self.rng.below(3),
                        self.rng.one_in(3)
                    ),
                    d,
                ),
                "gpt_layer" => (format!("gpt_layer(h, heads: {heads}, hidden: {})", n + 1), d),
                "encoder_layer" => (format!("encoder_layer(h, heads: {heads}, dropout_p: 0.1)"), d),
                "cross_attention" => (format!("h + cross_attention(h, layer_norm(h), heads: {heads})"), d),
                "graph_attention" => (
                    format!("graph_attention(h, attention_mask({t}, {t}, causal: true), heads: {heads})"),
                    d,
                ),
                "positions" => (format!("h + positions({t}, {d})"), d),
                "sinusoids" if d.is_multiple_of(2) => (format!("h + sinusoids({t}, {d})"), d),
                "layer_norm" => ("layer_norm(h)".to_string(), d),
                "linear" => (self.activation(&format!("linear(h, {n})")), n),
                "mlp" => (format!("h + mlp(h, hidden: {n}, act: {})", self.rng.pick(ACT_FNS)), d),
                "dropout" => ("dropout(h, p: 0.3)".to_string(), d),
                "scan_rnn_cell" => (
                    format!("scan(rnn_cell, h, zeros([B, {n}]), reverse: {})", self.rng.one_in(2)),
                    n,
                ),
                "scan_lstm_cell" => (format!("scan(lstm_cell, h, zeros([B, {}]))[:, :, 0:{n}]", 2 * n), n),
                "scan_gru_cell" => (format!("scan(gru_cell, h, zeros([B, {n}]))"), n),
                "scan_jordan_cell" => (format!("scan(jordan_cell, h, ones([B, {n}]))"), n),
                "attend" => (
                    format!(
                        "merge_heads(attend(split_heads(h, {heads}), split_heads(h, {heads}), split_heads(h, {heads}), attention_mask({t}, {t}, window: 1)))"
                    ),
                    d,
                ),
                "repeat_gpt" => (format!("repeat 2 gpt_layer(h, heads: {heads})"), d),
                "softmax" => ("softmax(h)".to_string(), d),
                _ => (self.activation("h"), d),
            };
            w.line(format!("    h = {expr}"));
            d = out;
        }
        d
    }
}
