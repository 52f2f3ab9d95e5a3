//! The attention examples (`self_attention.nn`, `graph_attention.nn`):
//! their interfaces, and bounded runs of their sweeps (the file's schedule
//! over fewer steps, some lists fixed with `--set`) that hold reduced
//! targets the files' settings reach with room (measured in brackets). The
//! full runs and the course's targets are in examples/README.md.

use serde_json::Value;

use crate::common::example_summary;
use crate::sweep::{check_plot, sweep_run, table_rows};

/// A variant's validation metric from a sweep's summary event.
fn metric(summary: &Value, label: &str, name: &str) -> f64 {
    summary["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["settings"] == label)
        .unwrap_or_else(|| panic!("no variant {label}: {summary}"))["metrics"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("{label} has no {name}: {summary}"))
}

#[test]
fn the_attention_examples_check_with_their_interfaces() {
    // embed 13*64; Q, K, V, O 4*64*64; three layer norms 3*128; mlp
    // 64*256 + 256 + 256*64 + 64; head 64*13 + 13 (sinusoids: no parameters)
    assert_eq!(
        example_summary("self_attention.nn"),
        "model sorter(src: i32[B, 8]) -> f32[B, 9, 13], 51,533 parameters in 17 tensors"
    );
    // embed 8*64; three layer norms 3*128; graph_attention 4*(64*64 + 64);
    // mlp 64*128 + 128 + 128*64 + 64; head 64*8 + 8
    assert_eq!(
        example_summary("graph_attention.nn"),
        "model labeller(values: i32[B, 12], edges: bool[B, 12, 12]) -> f32[B, 12, 8], 34,632 parameters in 21 tensors"
    );
}

/// Softmax scores and sinusoids fixed with `--set`, so the sweep runs the
/// window's two values only, 300 steps each: attention over the whole
/// sequence sorts it, a window of +-2 positions cannot.
#[test]
fn one_attention_layer_sorts_and_a_window_does_not() {
    let (summary, out) = sweep_run(
        "self_attention.nn",
        "self_attention",
        &["--steps", "300", "--set", "RELU=0", "--set", "LEARNED=0"],
    );
    let rows = table_rows(&out);
    let labels: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(labels, ["WINDOW=0", "WINDOW=2"], "{rows:?}");
    assert_eq!(summary["best"]["settings"], "WINDOW=0");
    assert_eq!(summary["rank_by"], "token_accuracy");
    let full = metric(&summary, "WINDOW=0", "token_accuracy");
    let window = metric(&summary, "WINDOW=2", "token_accuracy");
    // (99.5 %; windowed 65.8 %)
    assert!(full >= 0.9, "{full}");
    assert!(window < full - 0.2, "windowed {window}, full {full}");
    check_plot(&out, 2);
    std::fs::remove_dir_all(out).unwrap();
}

/// Graph attention along the edges against each node alone, 300 steps
/// each: the label (the largest value among the neighbours) is read off
/// with the edges and guessed without.
#[test]
fn graph_attention_beats_the_no_edges_baseline() {
    let (summary, out) = sweep_run("graph_attention.nn", "graph_attention", &["--steps", "300"]);
    let rows = table_rows(&out);
    let labels: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(labels, ["EDGES=true", "EDGES=false"], "{rows:?}");
    let with = metric(&summary, "EDGES=true", "token_accuracy");
    let without = metric(&summary, "EDGES=false", "token_accuracy");
    // (100 %; without 31.5 %)
    assert!(with >= 0.95, "with edges {with}");
    assert!(without <= 0.45, "without edges {without}");
    check_plot(&out, 2);
    std::fs::remove_dir_all(out).unwrap();
}
