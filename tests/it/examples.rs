//! Every shipped example checks, with the model interface it is meant to have.

use std::path::Path;

fn check(name: &str) -> nnc::check::Program {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name);
    let program = nnc::check::check_file(&path).expect("example is readable");
    assert!(
        !program.has_errors(),
        "{name} has errors:\n{}",
        program.sources.render(&program.diagnostics, false)
    );
    program
}

#[test]
fn every_example_checks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "nn") {
            check(path.file_name().unwrap().to_str().unwrap());
            count += 1;
        }
    }
    assert!(count >= 6, "expected at least 6 examples, found {count}");
}

/// The summary line pins each model's interface and parameter count; the
/// counts are worked out by hand in the comments.
#[test]
fn example_summaries() {
    // 64*128 + 128 + 128*10 + 10
    assert_eq!(
        check("digits_mlp.nn").summary(),
        "model mlp_classifier(x: f32[B, 64]) -> f32[B, 10], 9,610 parameters in 4 tensors"
    );
    // embed 80*64; lstm 64*512 + 512 + 128*512; head 128*80 + 80
    assert_eq!(
        check("char_lstm.nn").summary(),
        "model char_lm(chars: i32[B, 32]) -> f32[B, 32, 80], 114,256 parameters in 6 tensors"
    );
    // 10240 + 8192 + 2 * (512 + 4 * 16512 + 131712) + 256 + 10320
    assert_eq!(
        check("gpt.nn").summary(),
        "model gpt(tokens: i32[B, 64]) -> f32[B, 64, 80], 425,552 parameters in 38 tensors"
    );
    // as gpt.nn, with one more embedding row (the [MASK] token): + 128
    assert_eq!(
        check("bert_mlm.nn").summary(),
        "model bert(tokens: i32[B, 64]) -> f32[B, 64, 80], 425,680 parameters in 38 tensors"
    );
    assert_eq!(
        check("views_linear.nn").summary(),
        "model linear_model(x: f32[B, 7]) -> f32[B], 8 parameters in 2 tensors"
    );
    let cnn = check("digits_cnn.nn");
    // conv 9*16 + 16, bn 32, conv 144*32 + 32, linear 128*10 + 10
    assert_eq!(cnn.param_count(), 160 + 32 + 4640 + 1290);
    assert_eq!(cnn.states.len(), 2);
    let transformer = check("transformer.nn");
    let model = transformer.model.as_ref().unwrap();
    assert_eq!(model.output.to_string(), "f32[B, 13, 13]");
}

#[test]
fn parameters_have_instance_paths() {
    let gpt = check("gpt.nn");
    let paths: Vec<&str> = gpt.params.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths[0], "gpt.embed.table");
    assert!(paths.contains(&"gpt.gpt_layer_1.attention.linear_3.w"), "{paths:?}");
    let mut unique = paths.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), paths.len(), "parameter paths must be unique");
}
