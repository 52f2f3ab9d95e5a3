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
    // as gpt.nn, with three more embedding rows ([MASK], [CLS], [SEP]) and
    // a segment table of two rows: + 5 * 128
    assert_eq!(
        check("bert_mlm.nn").summary(),
        "model bert(tokens: i32[B, 64]) -> f32[B, 64, 80], 426,192 parameters in 39 tensors"
    );
    // the encoder of bert_mlm.nn (426,192 - 128*80 - 80) and a head on
    // [CLS] for the eight plays (128*8 + 8)
    assert_eq!(
        check("bert_classify.nn").summary(),
        "model bert(tokens: i32[B, 64]) -> f32[B, 8], 416,904 parameters in 39 tensors"
    );
    assert_eq!(
        check("bert_qa.nn").summary(),
        "model bert(tokens: i32[B, 64], segments: i32[B, 64]) -> f32[B, 2, 64], 416,130 parameters in 39 tensors"
    );
    // window 14 + one-hot weekday 7, and the bias
    assert_eq!(
        check("views_linear.nn").summary(),
        "model linear_model(x: f32[B, 14], day: i32[B]) -> f32[B], 22 parameters in 2 tensors"
    );
    // the same 21 features into 48 ReLUs (21*48 + 48), then 48 + 1
    assert_eq!(
        check("views_relu.nn").summary(),
        "model net(x: f32[B, 14], day: i32[B]) -> f32[B], 1,105 parameters in 4 tensors"
    );
    let cnn = check("digits_cnn.nn");
    // conv 9*32 + 32, bn 64, conv 288*64 + 64, bn 128, linear 256*10 + 10
    assert_eq!(cnn.param_count(), 320 + 64 + 18_496 + 128 + 2_570);
    assert_eq!(cnn.states.len(), 4);
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

/// The six workloads of `benches/compare` check, with the parameter counts
/// the PyTorch and JAX models there must match (worked out by hand). The two
/// on 28x28 digits read a CSV that `make_data.py` generates; they are
/// checked as copies beside a ten-row stand-in for it.
#[test]
fn comparison_workloads_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches").join("compare");
    let scratch = std::env::temp_dir().join(format!("nnc-compare-{}", std::process::id()));
    std::fs::create_dir_all(scratch.join("data")).unwrap();
    let header: Vec<String> = (0..784).map(|i| format!("p{i}")).chain(["label".into()]).collect();
    // Ten blank images, one of each class: the checker reads the rows.
    let mut stand_in = header.join(",") + "\n";
    for class in 0..10 {
        stand_in += &format!("{}{class}\n", "0,".repeat(784));
    }
    std::fs::write(scratch.join("data").join("digits28.csv"), stand_in).unwrap();
    let count = |file: &str, settings: &[(&str, f64)]| -> i64 {
        let mut path = dir.join(file);
        if std::fs::read_to_string(&path).unwrap().contains("data/digits28.csv") {
            std::fs::copy(&path, scratch.join(file)).unwrap();
            path = scratch.join(file);
        }
        let settings = settings.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let program = nnc::check::check_file_with(&path, settings).expect("readable");
        assert!(
            !program.has_errors(),
            "{file} has errors:\n{}",
            program.sources.render(&program.diagnostics, false)
        );
        program.param_count()
    };
    // 64*128 + 128 + 128*10 + 10
    assert_eq!(count("mlp.nn", &[]), 9_610);
    // 784*1024 + 1024 + 1024*1024 + 1024 + 1024*10 + 10
    assert_eq!(count("mlp_wide.nn", &[]), 1_863_690);
    // conv 9*16 + 16, conv 144*32 + 32, linear 32*7*7*10 + 10
    assert_eq!(count("cnn.nn", &[]), 160 + 4_640 + 15_690);
    // embed 65*64; lstm 64*512 + 512 + 128*512; head 128*65 + 65
    assert_eq!(count("lstm.nn", &[]), 4_160 + 98_816 + 8_385);
    // embed 65*128, positions 64*128, 2 layers of (2 norms 512, q/k/v/o
    // 4*(128*128 + 128), up 128*512 + 512, down 512*128 + 128), norm 256, head 128*65 + 65
    assert_eq!(count("gpt.nn", &[]), 8_320 + 8_192 + 2 * 198_272 + 256 + 8_385);
    // gpt-small: embed 65*384, positions 128*384, 6 layers of (1536 + 4*147,840
    // + 591,360 + 590,208), norm 768, head 384*65 + 65
    let small = [("D", 384.0), ("HEADS", 6.0), ("LAYERS", 6.0), ("T", 128.0)];
    assert_eq!(count("gpt.nn", &small), 24_960 + 49_152 + 6 * 1_774_464 + 768 + 25_025);
    std::fs::remove_dir_all(&scratch).unwrap();
}
