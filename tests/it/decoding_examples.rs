//! The decoding examples (`nat.nn`: a non-autoregressive decoder;
//! `copy_mechanism.nn`: a pointer-generator): their interfaces, and bounded
//! runs (seed 0, the file's schedule over fewer steps) that hold reduced
//! targets the files' settings reach with room (measured in brackets). The
//! full runs and the course's targets are in examples/README.md. Also the
//! `replies` data the copying example needs.

use serde_json::Value;

use crate::common::{events, example_summary, nnc, scratch};

/// Runs an example with `--json` into a scratch directory and returns its
/// events (the summary last).
fn bounded_run(file: &str, args: &[&str]) -> Vec<Value> {
    let out = scratch(
        "decoding",
        &format!("{file}-{}", args.join("_").replace(['=', '-'], "")),
    );
    let path = format!("examples/{file}");
    let mut all = vec!["run", &path, "--json", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = nnc(&all);
    assert_eq!(code, 0, "{file}: {stderr}");
    std::fs::remove_dir_all(out).unwrap();
    events(&stdout)
}

#[test]
fn the_decoding_examples_check_with_their_interfaces() {
    // The non-autoregressive model reads the source only. Encoder: embed
    // 13*64 + 2 * (4 * 4160 + 33088 + 256) + 128 = 100,928; length
    // predictor 16,576 + 845; queries 169*64; decoder 2 * (2 * 16640 +
    // 33088 + 384) + 128; head 64*13 + 13.
    assert_eq!(
        example_summary("nat.nn"),
        "model nat(src: i32[B, 12]) -> f32[B, 13, 13], 263,642 parameters in 98 tensors"
    );
    // 1,046 tokens: encoder 1046*64 + 99,968 + 128; decoder embed 1046*64
    // + 133,504 + 128; pointer 64*64 + 64, gate 128 + 1, vocabulary head
    // 64*1046 + 1046.
    assert_eq!(
        example_summary("copy_mechanism.nn"),
        "model replier(src: i32[B, 16], tgt: i32[B, 12]) -> f32[B, 12, 1046], 439,895 parameters in 96 tensors"
    );
}

#[test]
fn nat_decodes_every_position_in_one_pass_and_learns_to_reverse() {
    let events = bounded_run("nat.nn", &["--steps", "800"]);
    let decode = events.iter().find(|e| e["event"] == "decode").expect("a decode event");
    assert_eq!(decode["one_pass"], true, "{decode}");
    assert!(decode["ms_per_sequence"].as_f64().unwrap() > 0.0, "{decode}");
    let summary = events.last().unwrap();
    // (1.0, as the full 3,000 steps; the schedule over 500 steps reaches
    // only 0.03: the model learns the reversal suddenly, near step 450)
    let exact = summary["metrics"]["exact_match"].as_f64().unwrap();
    assert!(exact >= 0.9, "{summary}");
    // One pass decodes what the evaluation scores: the same sequences.
    let decoded = decode["exact_match"].as_f64().unwrap();
    assert!(decoded >= 0.9, "{decode}");
}

#[test]
fn copying_writes_rare_names_the_plain_decoder_cannot() {
    let events = bounded_run("copy_mechanism.nn", &["--steps", "300"]);
    let decodes: Vec<&Value> = events.iter().filter(|e| e["event"] == "decode").collect();
    assert_eq!(decodes.len(), 2, "one decoding per variant");
    // Both variants decode token by token: they read the reply so far.
    assert!(decodes.iter().all(|d| d["one_pass"] == false), "{decodes:?}");
    let summary = events.last().unwrap();
    let variant = |label: &str| {
        summary["variants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["settings"] == label)
            .unwrap_or_else(|| panic!("variant {label} in {summary}"))["metrics"]["decoded_exact_match"]
            .as_f64()
            .unwrap()
    };
    let (with, without) = (variant("COPY=true"), variant("COPY=false"));
    // (0.945 against 0.04 after 300 steps; the full 1,500 steps reach 1.0
    // against 0.74)
    assert!(with >= 0.9, "with copying: {with}");
    assert!(with - without >= 0.5, "with {with}, without {without}");
}

#[test]
fn replies_data_has_sources_targets_and_a_word_list() {
    let dir = scratch("decoding", "replies-data");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("replies.nn");
    std::fs::write(
        &file,
        "data talk = replies(names: 20, train: 64, val: 16, seed: 2)\n\
         const V = talk.tokens\n\
         model next(tgt: i32[B, T]) -> f32[B, T, V] { linear(embed(tgt, V, 8), V) }\n\
         loss cross_entropy(next(talk.tgt_in), talk.tgt_out, ignore: talk.pad)\n\
         optimizer sgd(lr: 0.1)\n\
         train { steps: 1 }\n",
    )
    .unwrap();
    let program = nnc::check::check_file(&file).unwrap();
    assert!(
        !program.has_errors(),
        "{}",
        program.sources.render(&program.diagnostics, false)
    );
    let data = &program.datasets[0];
    // 43 template words and 20 names, then PAD, BOS, EOS.
    assert_eq!(data.attr("vocab"), Some(63));
    assert_eq!(
        (data.attr("pad"), data.attr("bos"), data.attr("eos")),
        (Some(63), Some(64), Some(65))
    );
    assert_eq!(data.attr("tokens"), Some(66));
    assert_eq!(data.field("src").unwrap().to_string(), "i32[B, 16]");
    assert_eq!(data.field("tgt_out").unwrap().to_string(), "i32[B, 12]");
    // A name count below two is a settings error at the call.
    let bad = std::fs::read_to_string(&file).unwrap().replace("names: 20", "names: 1");
    std::fs::write(&file, bad).unwrap();
    let (code, _, stderr) = nnc(&["check", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("names"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}
