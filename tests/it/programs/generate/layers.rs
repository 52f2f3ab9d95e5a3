//! Layers for the generator's models: the decks' names in (a vector, image
//! or sequence layer, an activation), `h = ...` lines out, written to the
//! model being built with the width they leave. A layer is only drawn where
//! its shape rules hold (heads divide the width, pooling needs an even side).

use std::fmt::Write;

use super::{Generator, Writer};

pub(super) const VECTOR: &[&str] = &[
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

pub(super) const IMAGE: &[&str] = &[
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

pub(super) const SEQUENCE: &[&str] = &[
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

pub(super) const ACTIVATIONS: &[&str] = &[
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

const INITS: &[&str] = &[
    "xavier",
    "kaiming",
    "zeros",
    "ones",
    "normal(std: 0.1)",
    "uniform(-0.1, 0.1)",
    "0.05",
];

impl Generator {
    fn activation(&mut self, x: &str) -> String {
        match self.activations.draw(&mut self.rng) {
            "leaky_relu" => format!("leaky_relu({x}, slope: 0.2)"),
            act => format!("{act}({x})"),
        }
    }

    /// `h = ...` lines over a vector `h: f32[B, width]`; returns the width.
    /// With `width` 0 the input is an image, flattened first.
    pub(super) fn vector_layers(&mut self, w: &mut Writer, width: usize, head: &mut String) -> usize {
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
    pub(super) fn image_layers(&mut self, w: &mut Writer, shape: [usize; 3]) -> usize {
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
    pub(super) fn embedding(&mut self, w: &mut Writer, ids: &str, vocab: &str) -> usize {
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
    pub(super) fn sequence_layers(&mut self, w: &mut Writer, width: usize, t: &str) -> usize {
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
