//! Text generation with the recurrent state carried from token to token
//! (issue 17, item 4): which models get a decoder, and that a decoder's
//! logits are the whole-window model's at every position, on the JIT and on
//! the interpreter.

use std::collections::HashMap;

use ndarray::{ArrayD, IxDyn};
use nnc::runtime::carry::Carried;
use nnc::runtime::generate::{self, Method};
use nnc::runtime::Backend;

use crate::common::{checked_program, root};
use crate::jit::{small_session_on, ATOL, RTOL};

/// The decoder's inputs and outputs, sorted, or `None` without one.
fn decoder_of(example: &str, constants: &[(&str, f64)]) -> Option<(Vec<String>, Vec<String>)> {
    let mut program = checked_program(&root().join("examples"), example, constants);
    let trace = program.decode_trace.take()?;
    let mut inputs: Vec<String> = trace
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            nnc::prim::Prim::Input(name) => Some(name.clone()),
            _ => None,
        })
        .collect();
    inputs.sort();
    let mut outputs: Vec<String> = trace.outputs.iter().map(|(name, _)| name.clone()).collect();
    outputs.sort();
    Some((inputs, outputs))
}

#[test]
fn recurrent_text_models_get_a_decoder_and_attention_models_none() {
    let carried = |inputs: &[&str], outputs: &[&str]| {
        Some((
            inputs.iter().map(|s| s.to_string()).collect(),
            outputs.iter().map(|s| s.to_string()).collect(),
        ))
    };
    for example in ["char_lstm.nn", "char_gru.nn", "char_rnn.nn"] {
        assert_eq!(
            decoder_of(example, &[]),
            carried(&["decode.carry.0", "decode.chars"], &["carry.0", "model_output"]),
            "{example}"
        );
    }
    // The context set on the command line changes nothing.
    assert!(decoder_of("char_lstm.nn", &[("T", 700.0)]).is_some());
    // Attention reads the whole window: no scan, no decoder.
    assert_eq!(decoder_of("gpt.nn", &[]), None);
}

/// The char LSTM with a reverse LSTM after the forward one: its positions
/// meet backwards in time, so it cannot decode a token at a time.
#[test]
fn a_reverse_scan_has_no_decoder() {
    let dir = root().join("examples");
    let text = std::fs::read_to_string(dir.join("char_lstm.nn")).unwrap().replace(
        "h = lstm(embed(chars, V, E), hidden: H)",
        "h = lstm(lstm(embed(chars, V, E), hidden: H), hidden: H, reverse: true)",
    );
    assert!(text.contains("reverse: true"));
    let options = nnc::check::Options {
        base_dir: Some(dir.clone()),
        decoder: true,
        ..Default::default()
    };
    let program = nnc::check::check_source("reverse.nn", &text, &options);
    assert!(!program.has_errors(), "{:?}", program.diagnostics);
    assert!(program.decode_trace.is_none());
    // The same options make a decoder for the forward model.
    let forward = std::fs::read_to_string(dir.join("char_lstm.nn")).unwrap();
    assert!(nnc::check::check_source("forward.nn", &forward, &options)
        .decode_trace
        .is_some());
}

/// The decoder is checked only when asked for (a run's check does): an
/// editor checking every edit does not pay for a second pass.
#[test]
fn only_a_run_checks_the_decoder() {
    let dir = root().join("examples");
    let text = std::fs::read_to_string(dir.join("char_lstm.nn")).unwrap();
    let editor = nnc::check::Options {
        base_dir: Some(dir.clone()),
        ..Default::default()
    };
    let program = nnc::check::check_source("char_lstm.nn", &text, &editor);
    assert!(!program.has_errors(), "{:?}", program.diagnostics);
    assert!(program.decode_trace.is_none());
    let run = nnc::check::check_file_with(&dir.join("char_lstm.nn"), Vec::new()).unwrap();
    assert!(run.decode_trace.is_some());
}

/// Logits of the whole-window model at every position of one window.
fn window_logits(session: &mut nnc::runtime::Session, window: &[u32]) -> Vec<Vec<f64>> {
    let row: Vec<f64> = window.iter().map(|&t| f64::from(t)).collect();
    let array = ArrayD::from_shape_vec(IxDyn(&[1, window.len()]), row).unwrap();
    let output = session
        .forward(HashMap::from([("plays.x".to_string(), array)]), 1, 1)
        .unwrap();
    let vocab = output.shape()[2];
    let flat: Vec<f64> = output.iter().copied().collect();
    flat.chunks(vocab).map(<[f64]>::to_vec).collect()
}

fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= ATOL + RTOL * w.abs(),
            "{what}, logit {k}: {g} against {w}"
        );
    }
}

/// After reading tokens one at a time, the decoder's logits are the
/// whole-window model's at that position (left-aligned window), on both
/// backends; the two backends' decoders agree; beyond the window the state
/// goes on.
#[test]
fn a_decoder_reads_tokens_as_the_window_model_does() {
    for backend in [Backend::Jit, Backend::Interp] {
        let mut session = small_session_on("char_lstm.nn", backend);
        let mut tuned = small_session_on("char_lstm.nn", backend);
        for _ in 0..3 {
            tuned.train_step().unwrap();
        }
        tuned.sync();
        session.tensors = tuned.tensors.clone();
        session.push();
        let window = [3u32, 7, 1, 12, 5];
        let whole = window_logits(&mut session, &window);
        let (mut carried, logits) = Carried::start(&mut session, &window[..1], "plays.x", 5, 0, 1)
            .unwrap()
            .expect("the char LSTM decodes with its state carried");
        assert_close(&format!("{backend:?}, position 0"), &logits, &whole[0]);
        for (t, &token) in window.iter().enumerate().skip(1) {
            let logits = carried.step(&mut session, &[token]).unwrap().remove(0);
            assert_close(&format!("{backend:?}, position {t}"), &logits, &whole[t]);
        }
        // A prompt longer than the window: checked on its head, read whole.
        let long: Vec<u32> = (0..12).map(|i| (i * 5 % 13) as u32).collect();
        let (_, after) = Carried::start(&mut session, &long, "plays.x", 5, 0, 1)
            .unwrap()
            .unwrap();
        let (mut one_by_one, _) = Carried::start(&mut session, &long[..1], "plays.x", 5, 0, 1)
            .unwrap()
            .unwrap();
        let mut last = Vec::new();
        for &token in &long[1..] {
            last = one_by_one.step(&mut session, &[token]).unwrap().remove(0);
        }
        assert_close("a long prompt", &after, &last);
        assert!(after != whole[4], "the state after 12 tokens is not the state after 5");
    }
}

/// Generated text with a carried state: the same on the JIT and on the
/// interpreter (greedy, and beam search, whose hypotheses pick their
/// parents' states), and a beam of width 1 is greedy decoding.
#[test]
fn carried_generation_on_the_jit_matches_the_interpreter() {
    let mut jit = small_session_on("char_lstm.nn", Backend::Jit);
    let mut interp = small_session_on("char_lstm.nn", Backend::Interp);
    let data = std::mem::take(&mut jit.data);
    let beam = |width| Method::Beam {
        width,
        length_penalty: 1.0,
    };
    for method in [Method::Greedy, beam(3)] {
        let text = generate::continue_text(&mut jit, &data[0], "KING", 20, &method).unwrap();
        let expected = generate::continue_text(&mut interp, &data[0], "KING", 20, &method).unwrap();
        assert_eq!(text.chars().count(), 20, "{method:?}");
        assert_eq!(text, expected, "{method:?}");
    }
    let greedy = generate::continue_text(&mut jit, &data[0], "KING", 20, &Method::Greedy).unwrap();
    let narrow = generate::continue_text(&mut jit, &data[0], "KING", 20, &beam(1)).unwrap();
    assert_eq!(greedy, narrow);
}

/// `continue_text` decodes with the carried state: greedy decoding and beam
/// search give the continuation a search over the whole-window model does,
/// computed here from scratch (every hypothesis left-aligned in a window:
/// the prompt and the continuation fit the window of 12).
#[test]
fn continue_text_searches_with_the_carried_state() {
    const LENGTH: usize = 9;
    const SEED: u64 = 0x9e37_79b9_7f4a_7c15;
    const SCALE: f64 = 1.5;
    let dir = root().join("examples");
    let constants = [("T", 12.0), ("E", 8.0), ("H", 12.0), ("V", 13.0)];
    let program = checked_program(&dir, "char_lstm.nn", &constants);
    let options = nnc::runtime::Overrides {
        batch: Some(5),
        ..Default::default()
    };
    let mut session = nnc::runtime::Session::new(program, &dir, &options).unwrap_or_else(|d| panic!("{}", d.0.message));
    // Large weights, so that the state decides the next token.
    let params: Vec<String> = session.program.params.iter().map(|p| p.path.clone()).collect();
    let mut seed = SEED;
    for name in &params {
        for x in session.tensors.get_mut(name).unwrap().iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *x = ((seed % 2001) as f64 / 1000.0 - 1.0) * SCALE;
        }
    }
    session.push();
    let data = std::mem::take(&mut session.data);
    let vocab = &data[0].vocab;
    let prompt: Vec<u32> = "KI"
        .chars()
        .map(|c| vocab.iter().position(|&v| v == c).unwrap_or(vocab.len() - 1) as u32)
        .collect();
    let text = |tokens: &[u32]| -> String { tokens.iter().map(|&t| vocab[t as usize]).collect() };
    let log_softmax = |logits: &[f64]| -> Vec<f64> {
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = logits.iter().map(|l| (l - max).exp()).sum();
        logits.iter().map(|l| l - max - sum.ln()).collect()
    };
    let mut found = Vec::new();
    for width in [1, 3] {
        // Hypotheses of equal length: ranked by log-probability alone.
        let mut beams: Vec<(Vec<u32>, f64)> = vec![(prompt.clone(), 0.0)];
        for _ in 0..LENGTH {
            let mut candidates = Vec::new();
            for (tokens, log_prob) in &beams {
                let mut window = tokens.clone();
                window.resize(12, 0);
                let logp = log_softmax(&window_logits(&mut session, &window)[tokens.len() - 1]);
                let mut order: Vec<usize> = (0..logp.len()).collect();
                order.sort_by(|&a, &b| logp[b].total_cmp(&logp[a]));
                for &token in order.iter().take(width) {
                    let mut next = tokens.clone();
                    next.push(token as u32);
                    candidates.push((next, log_prob + logp[token]));
                }
            }
            candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
            candidates.truncate(width);
            beams = candidates;
        }
        let want = text(&beams[0].0[2..]);
        let method = match width {
            1 => Method::Greedy,
            _ => Method::Beam {
                width,
                length_penalty: 1.0,
            },
        };
        let got = generate::continue_text(&mut session, &data[0], "KI", LENGTH, &method).unwrap();
        assert_eq!(got, want, "{method:?}");
        found.push(got);
    }
    // The beam's best continuation is not the greedy one: it went through
    // hypotheses that were not the best at every step.
    assert_ne!(found[0], found[1]);
}
