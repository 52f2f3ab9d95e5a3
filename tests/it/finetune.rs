//! Fine-tuning from a pre-trained checkpoint: the `passages` tasks hold
//! what they say (checked against the text itself), a small pre-training
//! makes fine-tuning beat training from scratch at equal steps, loading a
//! checkpoint that does not fit says what matched and refuses to train a
//! model that loaded nothing, and `nnc embeddings` gives the cosine
//! similarity of hidden vectors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use crate::common::{events, nnc, root};

fn scratch(name: &str) -> PathBuf {
    crate::common::scratch("finetune", name)
}

/// The small size every test uses: one layer, width 64, 32 tokens.
const SMALL: [&str; 6] = ["--set", "D=64", "--set", "LAYERS=1", "--set", "T=32"];

/// Where pre-training `name` of this test process goes: under the build's
/// scratch directory (`CARGO_TARGET_TMPDIR`), not the system's, since no
/// test can remove it (every test of the process may read it, and statics
/// are not dropped); the directories of processes that have ended are
/// removed first, so runs do not pile them up.
fn pretraining_dir(name: &str) -> PathBuf {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let ours = std::process::id().to_string();
    for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file.strip_prefix("finetune-").and_then(|rest| rest.split('-').next()) else {
            continue;
        };
        if pid != ours && pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = base.join(format!("finetune-{ours}-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A small pre-training of `example` at the small size (1,500 steps) into
/// [`pretraining_dir`] `name`: its checkpoint.
fn pretrain(example: &str, name: &str) -> PathBuf {
    let out = pretraining_dir(name);
    let mut args = vec!["run", example];
    args.extend(SMALL);
    let out_text = out.display().to_string();
    args.extend(["--steps", "1500", "--lr", "2e-3", "--quiet", "--out", &out_text]);
    let (code, _, stderr) = nnc(&args);
    assert_eq!(code, 0, "{stderr}");
    out.join("checkpoint.safetensors")
}

/// A small pre-training of `bert_mlm.nn` (once for all tests; validation
/// loss 1.96 nats at the masked characters): its checkpoint.
fn pretrained() -> &'static PathBuf {
    static CHECKPOINT: OnceLock<PathBuf> = OnceLock::new();
    CHECKPOINT.get_or_init(|| pretrain("examples/bert_mlm.nn", "pretrain"))
}

/// A small pre-training of `bert_nsp.nn` (masked characters and
/// next-sentence prediction on pairs of segments; once for all tests):
/// its checkpoint.
fn pretrained_on_pairs() -> &'static PathBuf {
    static CHECKPOINT: OnceLock<PathBuf> = OnceLock::new();
    CHECKPOINT.get_or_init(|| pretrain("examples/bert_nsp.nn", "pretrain-pairs"))
}

/// Runs a fine-tuning example at the small size, `steps` steps, from
/// `checkpoint` (a small pre-training); returns the summary event.
fn fine_tune(example: &str, steps: &str, checkpoint: &Path) -> Value {
    let out = scratch(example);
    let checkpoint = checkpoint.display().to_string();
    let out_text = out.display().to_string();
    let file = format!("examples/{example}.nn");
    let mut args = vec!["run", &file];
    args.extend(SMALL);
    args.extend([
        "--steps",
        steps,
        "--lr",
        "1e-3",
        "--init-from",
        &checkpoint,
        "--json",
        "--out",
        &out_text,
    ]);
    let (code, stdout, stderr) = nnc(&args);
    assert_eq!(code, 0, "{example}: {stderr}");
    let events = events(&stdout);
    let init = events.iter().find(|e| e["event"] == "init").expect("an init event");
    assert_eq!(init["matched"].as_array().unwrap().len(), 21, "{init}");
    assert!(init["mismatched"].as_array().unwrap().is_empty(), "{init}");
    let missing: Vec<&str> = init["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(missing, ["bert.linear.w", "bert.linear.b"]);
    assert!(out.join("finetuned/checkpoint.safetensors").is_file());
    assert!(out.join("scratch/checkpoint.safetensors").is_file());
    assert!(out.join("report.html").is_file());
    let summary = events.last().unwrap().clone();
    assert_eq!(summary["event"], "summary");
    std::fs::remove_dir_all(out).unwrap();
    summary
}

fn metric(summary: &Value, run: &str, name: &str) -> f64 {
    summary[run][name]
        .as_f64()
        .unwrap_or_else(|| panic!("no {run} {name}: {summary}"))
}

/// Restoring case: after 200 steps from the small pre-training, the
/// tagger gets more letters right than the same model trained from
/// scratch for the same steps (measured: 0.933 against 0.920; writing
/// every letter in lower case gets 0.89), and more passages wholly right.
#[test]
fn fine_tuning_the_tagger_beats_training_from_scratch() {
    let summary = fine_tune("bert_tag", "200", pretrained());
    let tuned = metric(&summary, "finetuned", "token_accuracy");
    let baseline = metric(&summary, "scratch", "token_accuracy");
    assert!(
        tuned > baseline + 0.005,
        "fine-tuned {tuned:.4}, from scratch {baseline:.4}"
    );
    assert!(tuned > 0.925, "fine-tuned {tuned:.4}");
    assert!(metric(&summary, "finetuned", "exact_match") > metric(&summary, "scratch", "exact_match"));
    assert!(metric(&summary, "finetuned", "loss") < metric(&summary, "scratch", "loss"));
}

/// Extractive answers: after 200 steps from the small pre-training, the
/// reader finds the exact span far more often than the same model trained
/// from scratch (measured: 0.521 against 0.335).
#[test]
fn fine_tuning_the_reader_beats_training_from_scratch() {
    let summary = fine_tune("bert_qa", "200", pretrained());
    let tuned = metric(&summary, "finetuned", "exact_match");
    let baseline = metric(&summary, "scratch", "exact_match");
    assert!(
        tuned > baseline + 0.1,
        "fine-tuned {tuned:.4}, from scratch {baseline:.4}"
    );
    assert!(tuned > 0.4, "fine-tuned {tuned:.4}");
}

/// Pairs of segments: after 400 steps from the small pre-training on
/// pairs (`bert_nsp.nn`), the pair model tells a sequel from text further
/// on far more often than the same model trained from scratch, which stays
/// at chance (measured: 0.645 against 0.501 of 1,000 validation pairs; the
/// binomial standard deviation at chance is 0.016).
#[test]
fn fine_tuning_the_pair_model_beats_training_from_scratch() {
    let summary = fine_tune("bert_pair", "400", pretrained_on_pairs());
    let tuned = metric(&summary, "finetuned", "accuracy");
    let baseline = metric(&summary, "scratch", "accuracy");
    assert!(
        tuned > baseline + 0.06,
        "fine-tuned {tuned:.4}, from scratch {baseline:.4}"
    );
    assert!(tuned > 0.58, "fine-tuned {tuned:.4}");
    assert!(metric(&summary, "finetuned", "loss") < metric(&summary, "scratch", "loss"));
}

/// The sequence classifier runs at the small size, both ways, to a
/// validation accuracy. (At this size and length its fine-tuning does not
/// beat training from scratch: the full run of examples/README.md shows it
/// does at the example's size.)
#[test]
fn the_classifier_fine_tunes() {
    let summary = fine_tune("bert_classify", "50", pretrained());
    for run in ["finetuned", "scratch"] {
        let value = metric(&summary, run, "accuracy");
        assert!((0.0..=1.0).contains(&value), "{run}: {summary}");
        assert!(metric(&summary, run, "loss").is_finite(), "{run}: {summary}");
    }
}

/// A checkpoint whose tensors do not fit: every path is listed with both
/// shapes, and since nothing was loaded the run is an error.
#[test]
fn a_checkpoint_that_fits_nothing_is_an_error_that_says_why() {
    let checkpoint = pretrained().display().to_string();
    let out = scratch("mismatch");
    let (code, _, stderr) = nnc(&[
        "run",
        "examples/bert_tag.nn",
        "--set",
        "D=16",
        "--set",
        "LAYERS=1",
        "--set",
        "T=32",
        "--steps",
        "1",
        "--init-from",
        &checkpoint,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("0 of 23 parameters matched; shape differs: bert.bert_encoder.embed.table [83, 64], bert.bert_encoder.embed_1.table [2, 64], bert.bert_encoder.positions.table [32, 64]"), "{stderr}");
    assert!(
        stderr.contains("not in the file (kept initialized): bert.linear.w, bert.linear.b"),
        "{stderr}"
    );
    assert!(
        stderr.contains("in the file but not in the model: bert.lm_head.* (2)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no parameter of the model was loaded, so the run would train from scratch"),
        "{stderr}"
    );
    assert!(!out.join("finetuned/checkpoint.safetensors").exists());
    let _ = std::fs::remove_dir_all(out);
}

/// Another model's checkpoint: nothing shares a path; the error says the
/// roots differ.
#[test]
fn another_models_checkpoint_is_refused_with_the_reason() {
    let first = scratch("digits");
    let (code, _, stderr) = nnc(&[
        "run",
        "examples/digits_mlp.nn",
        "--steps",
        "2",
        "--quiet",
        "--out",
        first.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let checkpoint = first.join("checkpoint.safetensors");
    let out = scratch("digits-into-bert");
    let mut args = vec!["run", "examples/bert_pair.nn"];
    args.extend(SMALL);
    args.extend([
        "--steps",
        "1",
        "--init-from",
        checkpoint.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let (code, _, stderr) = nnc(&args);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("0 of 23 parameters matched"), "{stderr}");
    assert!(
        stderr.contains("the file's parameters start with `mlp_classifier.`, the model's with `bert.`"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(first);
    let _ = std::fs::remove_dir_all(out);
}

/// The hidden vectors of the pre-trained encoder: a text against itself
/// has similarity 1, the printed similarities are the cosines of the
/// printed vectors, and the same character in another context gets
/// another vector.
#[test]
fn embeddings_give_the_cosine_similarity_of_hidden_vectors() {
    let checkpoint = pretrained().display().to_string();
    let mut args = vec!["embeddings", "examples/bert_mlm.nn"];
    args.extend(SMALL);
    args.extend([
        "--block",
        "bert_encoder",
        "--checkpoint",
        &checkpoint,
        "--json",
        "the [k]ing is dead",
        "the [k]ing is dead",
        "thin[k]ing of it",
        "the queen",
    ]);
    let (code, stdout, stderr) = nnc(&args);
    assert_eq!(code, 0, "{stderr}");
    let event = &events(&stdout)[0];
    assert_eq!(event["event"], "embeddings");
    assert_eq!(event["positions"], serde_json::json!([4, 4, 4, null]));
    let vectors: Vec<Vec<f64>> = serde_json::from_value(event["vectors"].clone()).unwrap();
    let similarity: Vec<Vec<f64>> = serde_json::from_value(event["similarity"].clone()).unwrap();
    assert_eq!(vectors.len(), 4);
    assert!(vectors.iter().all(|v| v.len() == 64));
    for i in 0..4 {
        for j in 0..4 {
            let expected = nnc::runtime::embeddings::cosine(&vectors[i], &vectors[j]);
            assert!((similarity[i][j] - expected).abs() < 1e-12);
        }
    }
    assert!((similarity[0][1] - 1.0).abs() < 1e-9, "{similarity:?}");
    assert!(similarity[0][2] < 0.999, "{similarity:?}");
    // The text form prints the same matrix.
    let mut args = vec!["embeddings", "examples/bert_mlm.nn"];
    args.extend(SMALL);
    args.extend([
        "--block",
        "bert_encoder",
        "--checkpoint",
        &checkpoint,
        "the [k]ing",
        "thin[k]ing",
    ]);
    let (code, stdout, stderr) = nnc(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("hidden vectors of `bert_encoder` (64 values each)"),
        "{stdout}"
    );
    assert!(stdout.contains("   1   1.0000"), "{stdout}");
    // A block the model does not call is an error.
    let mut args = vec!["embeddings", "examples/bert_mlm.nn"];
    args.extend(SMALL);
    args.extend(["--block", "lstm", "--checkpoint", &checkpoint, "the [k]ing"]);
    let (code, _, stderr) = nnc(&args);
    assert_eq!(code, 1);
    assert!(stderr.contains("the model does not call the block `lstm`"), "{stderr}");
}

/// The examples of each task, decoded and checked against the text: the
/// data is what the docs say it is.
mod data {
    use super::*;
    use nnc::runtime::data::{Data, Split};

    fn load(task: &str, context: usize) -> Data {
        let text = format!(
            "data d = passages(\"data/shakespeare.txt\", task: {task}, context: {context}, vocab: 80, train: 50, val: 200)\n\
             model m(x: i32[B, {context}]) -> f32[B, {context}] {{ f32(x) }}\n\
             loss mean(m(d.x))\noptimizer sgd(lr: 0.1)\ntrain {{ steps: 1 }}\n"
        );
        let options = nnc::check::Options {
            base_dir: Some(root().join("examples")),
            ..Default::default()
        };
        let mut program = nnc::check::check_source("t.nn", &text, &options);
        assert!(
            !program.has_errors(),
            "{}",
            program.sources.render(&program.diagnostics, false)
        );
        let dataset = program.datasets[0].clone();
        nnc::runtime::data::load(&dataset, &root().join("examples"), &mut program.sources, None).unwrap()
    }

    fn fields(split: &Split) -> HashMap<String, Vec<Vec<f64>>> {
        let Split::Table { fields, len } = split else {
            panic!("a table")
        };
        fields
            .iter()
            .map(|(name, array)| {
                let width = array.len() / len;
                let rows = array.as_slice().unwrap().chunks(width).map(<[f64]>::to_vec).collect();
                (name.clone(), rows)
            })
            .collect()
    }

    fn decode(data: &Data, ids: &[f64]) -> String {
        ids.iter()
            .map(|&i| match i as usize {
                80 => '@',
                81 => '^',
                82 => '|',
                k => data.vocab[k],
            })
            .collect()
    }

    fn shakespeare() -> String {
        std::fs::read_to_string(root().join("examples/data/shakespeare.txt")).unwrap()
    }

    #[test]
    fn answers_are_the_word_after_the_question_word() {
        let data = load("qa", 64);
        let val = fields(&data.val);
        let text = shakespeare();
        for ((x, segments), y) in val["x"].iter().zip(&val["segments"]).zip(&val["y"]) {
            let example = decode(&data, x);
            let (question, rest) = example[1..].split_once('|').unwrap();
            let passage = rest.strip_suffix('|').unwrap();
            assert!(text[text.len() * 9 / 10 - 64..].contains(passage), "{example}");
            assert_eq!(segments.iter().filter(|&&s| s == 0.0).count(), question.len() + 2);
            let words: Vec<(usize, &str)> = passage
                .match_indices(|c: char| c.is_alphabetic())
                .map(|(i, _)| i)
                .filter(|&i| i == 0 || !passage[..i].ends_with(|c: char| c.is_alphabetic()))
                .map(|i| {
                    let end = passage[i..]
                        .find(|c: char| !c.is_alphabetic())
                        .map_or(passage.len(), |e| i + e);
                    (i, &passage[i..end])
                })
                .collect();
            let at: Vec<usize> = (0..words.len()).filter(|&k| words[k].1 == question).collect();
            assert_eq!(at.len(), 1, "`{question}` once in `{passage}`");
            let (start, answer) = words[at[0] + 1];
            let offset = question.len() + 2;
            assert_eq!(
                (y[0] as usize, y[1] as usize),
                (offset + start, offset + start + answer.len() - 1),
                "{example}"
            );
        }
    }

    #[test]
    fn pairs_follow_each_other_or_do_not() {
        let data = load("pair", 64);
        let val = fields(&data.val);
        let text: String = shakespeare()
            .chars()
            .map(|c| if data.vocab.contains(&c) { c } else { '\u{fffd}' })
            .collect();
        let mut follows = 0;
        for (x, y) in val["x"].iter().zip(&val["y"]) {
            let example = decode(&data, x);
            let (a, b) = example[1..example.len() - 1].split_once('|').unwrap();
            assert_eq!((a.chars().count(), b.chars().count()), (30, 31));
            let joined = format!("{a}{b}");
            assert_eq!(text.contains(&joined), y[0] == 1.0, "{example}");
            follows += y[0] as usize;
        }
        assert!((80..=120).contains(&follows), "{follows} of 200 follow");
    }

    #[test]
    fn tags_are_the_case_of_each_letter() {
        let data = load("tag", 32);
        let train = fields(&data.train);
        let text = shakespeare();
        for (x, y) in train["x"].iter().zip(&train["y"]) {
            let lower = decode(&data, x);
            assert_eq!(lower, lower.to_lowercase());
            let restored: String = lower
                .chars()
                .zip(y)
                .map(|(c, &t)| if t == 1.0 { c.to_ascii_uppercase() } else { c })
                .collect();
            assert!(text.contains(&restored), "{restored}");
            for (c, &t) in lower.chars().zip(y) {
                assert_eq!(t == -1.0, !c.is_alphabetic(), "{lower}");
            }
        }
    }

    #[test]
    fn passages_are_labelled_with_their_play() {
        let data = load("classify(marker: \"by William Shakespeare\")", 32);
        let text = shakespeare();
        let starts = nnc::check::data::document_starts(&text, "by William Shakespeare");
        assert_eq!(starts.len(), 8);
        // The title line (glued to the last stage direction of the play before).
        assert!(text[starts[1]..].lines().next().unwrap().ends_with("MACBETH"));
        for split in [&data.train, &data.val] {
            let rows = fields(split);
            let mut seen = [0; 8];
            for (x, y) in rows["x"].iter().zip(&rows["y"]) {
                let passage = decode(&data, &x[1..]);
                assert_eq!(x[0], 81.0);
                let play = y[0] as usize;
                let end = starts.get(play + 1).copied().unwrap_or(text.len());
                assert!(
                    text[starts[play]..end].contains(&passage),
                    "{passage} not in play {play}"
                );
                seen[play] += 1;
            }
            assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
        }
    }
}
