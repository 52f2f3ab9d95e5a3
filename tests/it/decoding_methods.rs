//! Decoding with several methods (`generate { method: [...] }`): a small
//! encoder–decoder trained briefly on reversal, decoded with each method,
//! a table and per-method metrics in the summary, `metrics.jsonl` and
//! `report.html`; a tiny character model continued once per method, its
//! samples repeated by the seed.

use serde_json::Value;

use crate::common::{events, nnc, root, scratch};

/// A one-layer Transformer reversing 3..6 digits of 6 (`transformer.nn`
/// at a quarter of its width).
const REVERSER: &str = "\
const D = 32
data pairs = reverse(vocab: 6, len: 3..6, train: 4000, val: 200, seed: 1)
const V = pairs.tokens

model reverser(src: i32[B, S], tgt: i32[B, T]) -> f32[B, T, V] {
    memory = layer_norm(encoder_layer(embed(src, V, D) + sinusoids(S, D), heads: 2))
    y = decoder_layer(embed(tgt, V, D) + sinusoids(T, D), memory, heads: 2)
    linear(layer_norm(y), V)
}

loss cross_entropy(reverser(pairs.src, pairs.tgt_in), pairs.tgt_out, ignore: pairs.pad)
optimizer adam(lr: 3e-3, clip_norm: 1.0)
train { steps: STEPS, batch: 32, seed: 0 }
eval { metrics: [loss, token_accuracy, exact_match] }
generate { method: [greedy, beam(width: 4), beam(width: 1, length_penalty: 0.5), sample(temperature: 1.0)],
           from: pairs.val, samples: 2 }
";

/// Writes `text` as `name` in a scratch directory, runs it (human output)
/// and returns the stderr and the events of its `metrics.jsonl`, and the
/// run's `report.html`.
fn run(name: &str, text: &str, args: &[&str]) -> (String, Vec<Value>, String) {
    let dir = scratch("methods", &format!("{name}-{}", args.join("_").replace('-', "")));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    let out = dir.join("run");
    let mut all = vec!["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let (code, _, stderr) = nnc(&all);
    assert_eq!(code, 0, "{stderr}");
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    (stderr, events(&log), html)
}

#[test]
fn each_listed_method_decodes_the_split_and_is_scored() {
    let (stderr, events, html) = run("reverser.nn", &REVERSER.replace("STEPS", "120"), &[]);
    let decodes: Vec<&Value> = events.iter().filter(|e| e["event"] == "decode").collect();
    let labels: Vec<&str> = decodes.iter().map(|d| d["method"].as_str().unwrap()).collect();
    assert_eq!(
        labels,
        [
            "greedy",
            "beam(width=4)",
            "beam(width=1,length_penalty=0.5)",
            "sample(temperature=1)"
        ]
    );
    let score = |label: &str, key: &str| -> f64 {
        let decode = decodes.iter().find(|d| d["method"] == label).unwrap();
        assert_eq!(decode["examples"], 200, "{decode}");
        let value = decode[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&value), "{decode}");
        value
    };
    let greedy = score("greedy", "exact_match");
    let beam = score("beam(width=4)", "exact_match");
    let sample = score("sample(temperature=1)", "exact_match");
    // Width 1 keeps the one best continuation, as greedy decoding does,
    // whatever the length penalty: the same sequences.
    let narrow = "beam(width=1,length_penalty=0.5)";
    assert_eq!(score(narrow, "exact_match"), greedy);
    assert_eq!(score(narrow, "token_accuracy"), score("greedy", "token_accuracy"));
    // Half-trained after 120 steps: about half the reversals right
    // (greedy 0.530, teacher-forced 0.530; 0.075 after 90 steps, 1.0
    // after 150).
    assert!((0.3..0.8).contains(&greedy), "greedy {greedy}");
    // A wider beam keeps likelier sequences, which are right more often
    // here, though not always (0.545 here; 0.070 against 0.075 after 90
    // steps): no worse than greedy by more than a few examples of 200.
    assert!(beam >= greedy - 0.03, "beam {beam}, greedy {greedy}");
    // Sampling at temperature 1 picks a less likely token now and then,
    // and one such token ruins the sequence (0.310).
    assert!(sample < greedy - 0.1, "sample {sample}, greedy {greedy}");
    // Two samples per method, labelled.
    let samples: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "sample")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(samples.len(), 8, "{samples:?}");
    assert!(samples[2].starts_with("beam(width=4): "), "{samples:?}");
    // The table: a row per method with its three numbers.
    assert!(
        stderr.contains("decoded 200 validation examples with each method"),
        "{stderr}"
    );
    let row = stderr
        .lines()
        .find(|l| l.starts_with("beam(width=4) "))
        .unwrap_or_else(|| panic!("no beam row in {stderr}"));
    let cells: Vec<f64> = row.split_whitespace().skip(1).map(|c| c.parse().unwrap()).collect();
    assert_eq!(cells.len(), 3, "{row}");
    assert!((cells[0] - beam).abs() < 5e-4, "{row}: {beam}");
    // The summary's metrics: the first method's under the plain names,
    // each method's under its label, shown in the report's results.
    let summary = events.iter().find(|e| e["event"] == "summary").unwrap();
    let metrics = &summary["metrics"];
    assert_eq!(metrics["decoded_exact_match"].as_f64(), Some(greedy));
    assert_eq!(metrics["decoded_exact_match[beam(width=4)]"].as_f64(), Some(beam));
    assert_eq!(
        metrics["decoded_exact_match[sample(temperature=1)]"].as_f64(),
        Some(sample)
    );
    assert!(
        metrics["decode_ms_per_sequence[greedy]"].as_f64().unwrap() > 0.0,
        "{metrics}"
    );
    assert!(
        html.contains("decoded_token_accuracy[beam(width=4)]"),
        "no per-method row in the report"
    );
}

/// A character model that reads 8 characters.
const CHARS: &str = "\
const V = 40
data plays = text(\"PATH\", context: 8, vocab: V, val: 0.1)
model next(x: i32[B, 8]) -> f32[B, 8, V] { linear(embed(x, V, 16), V) }
loss cross_entropy(next(plays.x), plays.y)
optimizer adam(lr: 1e-2)
train { steps: 30, batch: 16, seed: 0 }
generate { method: [greedy, sample(temperature: 0.8, top_k: 5)], prompt: \"KING:\", length: 40 }
";

#[test]
fn text_is_continued_once_per_method_and_sampling_repeats_with_the_seed() {
    let path = root().join("examples/data/shakespeare.txt");
    let text = CHARS.replace("PATH", path.to_str().unwrap());
    let continuations = |args: &[&str]| -> Vec<(String, String)> {
        let (stderr, events, html) = run("chars.nn", &text, args);
        assert!(stderr.contains("sample (greedy):\nKING:"), "{stderr}");
        assert!(
            html.contains("sample (greedy):\nKING:"),
            "no headed sample in the report"
        );
        events
            .iter()
            .filter(|e| e["event"] == "sample")
            .map(|e| {
                let text = e["text"].as_str().unwrap();
                assert_eq!(text.chars().count(), 40, "{e}");
                (e["method"].as_str().unwrap().to_string(), text.to_string())
            })
            .collect()
    };
    let first = continuations(&[]);
    let methods: Vec<&str> = first.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(methods, ["greedy", "sample(temperature=0.8,top_k=5)"]);
    // Sampling draws from the train seed: the same run samples the same.
    assert_eq!(continuations(&[]), first);
    // Another seed trains another model and draws other numbers.
    let other = continuations(&["--seed", "1"]);
    assert_ne!(other[1].1, first[1].1);
}

/// `generate { from: pairs.train }` decodes training examples, the
/// validation split otherwise; a split of data the model does not read is
/// an error at check time.
#[test]
fn from_picks_the_split_to_decode() {
    let small = REVERSER.replace("STEPS", "5").replace("val: 200", "val: 50").replace(
        "method: [greedy, beam(width: 4), beam(width: 1, length_penalty: 0.5), sample(temperature: 1.0)],",
        "method: greedy,",
    );
    for (split, examples, words) in [("pairs.val", 50, "validation"), ("pairs.train", 200, "training")] {
        let text = small.replace("from: pairs.val", &format!("from: {split}"));
        let (stderr, events, _) = run("from.nn", &text, &[]);
        let decode = events.iter().find(|e| e["event"] == "decode").unwrap();
        assert_eq!(decode["examples"], examples, "{split}: {decode}");
        assert!(
            stderr.contains(&format!("decoded exact match on {examples} {words} examples")),
            "{split}: {stderr}"
        );
    }
    let other = small
        .replace(
            "const V = pairs.tokens",
            "const V = pairs.tokens\ndata other = reverse(vocab: 6, len: 3..6, train: 100, val: 20, seed: 2)",
        )
        .replace("from: pairs.val", "from: other.val");
    let dir = scratch("methods", "from-other");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("other.nn");
    std::fs::write(&file, other).unwrap();
    let (code, _, stderr) = nnc(&["check", file.to_str().unwrap()]);
    std::fs::remove_dir_all(dir).unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("E0409") && stderr.contains("`from:` names `other`, but the model reads `pairs`"),
        "{stderr}"
    );
}
