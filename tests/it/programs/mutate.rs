//! Meaning-level mutations of the examples: a number changed (to another
//! size, rate or count, zero included) or a library name swapped for an
//! interchangeable one (an activation, a recurrent layer, a pooling, an
//! optimizer, a schedule, a loss, a task, a metric). In: an example's text,
//! its data directory and a generator. Out: the mutated text, with data paths
//! made absolute. Comments and strings are left alone.

use std::path::Path;

use super::Rng;

/// Names that can stand for one another (the program may still not check:
/// an optimizer's own settings, a layer's width).
const GROUPS: &[&[&str]] = &[
    &[
        "relu",
        "gelu",
        "sigmoid",
        "tanh",
        "hard_sigmoid",
        "square",
        "leaky_relu",
    ],
    &["lstm", "gru", "rnn", "jordan_rnn"],
    &["max_pool", "avg_pool"],
    &["layer_norm", "batch_norm"],
    &["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"],
    &["cosine", "linear"],
    &["mse", "mae"],
    &["copy", "reverse", "sort", "add"],
    &["greedy", "beam", "sample"],
    &["gpt_layer", "encoder_layer"],
    &["sinusoids", "positions"],
    // Metrics, but not `loss` (also the keyword of the loss item) nor `mae`
    // and `mse` (also losses, swapped above).
    &["accuracy", "token_accuracy", "exact_match", "perplexity"],
    &["sum", "mean", "max"],
];

const INTS: &[&str] = &["0", "1", "2", "3", "4", "5", "7", "8", "16"];
const FLOATS: &[&str] = &["0.0", "0.5", "1e-4", "0.1", "0.9", "2.0", "1.0"];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Float,
    Name,
}

/// Byte ranges of numbers and names outside comments and strings.
fn tokens(text: &str) -> Vec<(usize, usize, Kind)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'#' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if c == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += 1;
            }
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            let mut kind = Kind::Int;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.' || bytes[i] == b'_') {
                // `4..12` is two numbers and a range.
                if bytes[i] == b'.' && bytes.get(i + 1) == Some(&b'.') {
                    break;
                }
                if bytes[i] == b'.' || bytes[i] == b'e' {
                    kind = Kind::Float;
                    if bytes[i] == b'e' && bytes.get(i + 1) == Some(&b'-') {
                        i += 1;
                    }
                }
                i += 1;
            }
            out.push((start, i, kind));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push((start, i, Kind::Name));
        } else {
            i += 1;
        }
    }
    out
}

/// Sizes that keep an example quick to compile, train for two steps,
/// evaluate and generate with (the same small sizes as the JIT tests).
const SMALL: &[(&str, &str)] = &[
    ("V", "13"),
    ("T", "7"),
    ("D", "16"),
    ("E", "8"),
    ("H", "12"),
    ("HEADS", "2"),
    ("LAYERS", "1"),
    ("W", "7"),
    ("UNITS", "4"),
];

/// `text` at small sizes: its size constants, the sequence task's example
/// counts and the generated length shrunk (the model is the same).
pub fn shrink(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let small = SMALL.iter().find_map(|(name, value)| {
            let rest = line.strip_prefix("const ")?.strip_prefix(name)?.strip_prefix(" = ")?;
            rest.starts_with(|c: char| c.is_ascii_digit())
                .then(|| format!("const {name} = {value}"))
        });
        out.push_str(small.as_deref().unwrap_or(line));
        out.push('\n');
    }
    // Fine-tuning examples train from scratch (no pre-trained checkpoint here).
    out.replace(
        ", init_from: \"../runs/bert_mlm/checkpoint.safetensors\", from_scratch: true",
        "",
    )
    .replace(
        ", init_from: \"../runs/bert_nsp/checkpoint.safetensors\", from_scratch: true",
        "",
    )
    // Pre-training on pairs halves an even context; 7 is odd.
    .replace("const A = T / 2 - 2", "const A = 2")
    .replace("train: 20000", "train: 200")
    .replace("val: 1000", "val: 8")
    .replace("length: 300", "length: 5")
    .replace("length: 200", "length: 5")
}

/// One to three meaning-level changes of `text`.
pub fn mutate(rng: &mut Rng, text: &str, data_dir: &Path) -> String {
    let mut text = text.to_string();
    for _ in 0..rng.range(1, 3) {
        let candidates: Vec<(usize, usize, &str)> = tokens(&text)
            .into_iter()
            .filter_map(|(start, end, kind)| {
                let word = &text[start..end];
                let replacement = match kind {
                    Kind::Int => rng.pick(INTS),
                    Kind::Float => rng.pick(FLOATS),
                    Kind::Name => {
                        let group = GROUPS.iter().find(|g| g.contains(&word))?;
                        rng.pick(group)
                    }
                };
                (replacement != word).then_some((start, end, replacement))
            })
            .collect();
        if candidates.is_empty() {
            break;
        }
        let (start, end, replacement) = candidates[rng.below(candidates.len())];
        text.replace_range(start..end, replacement);
    }
    text.replace("\"data/", &format!("\"{}/", data_dir.display()))
}

#[test]
fn tokens_skip_comments_and_strings() {
    let text = "# 12 relu\nx = relu(\"p0\"..\"p63\", 4..12, 1e-3, 0.5) # 7";
    let found: Vec<&str> = tokens(text).iter().map(|&(s, e, _)| &text[s..e]).collect();
    assert_eq!(found, ["x", "relu", "4", "12", "1e-3", "0.5"]);
}

#[test]
fn shrinking_keeps_the_model_and_makes_the_sizes_small() {
    let text = "const T = 64        # context\nconst TT = 5\nconst D = H / 2\nlen: 4..12, train: 20000, val: 1000\n";
    assert_eq!(
        shrink(text),
        "const T = 7\nconst TT = 5\nconst D = H / 2\nlen: 4..12, train: 200, val: 8\n"
    );
}
