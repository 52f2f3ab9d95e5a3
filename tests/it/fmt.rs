//! `nnc fmt`: on every example, fixture, library file and mutated input the
//! formatter keeps the parsed program (AST without spans, syntax errors),
//! every comment, and is idempotent; the examples and the library are
//! formatted; `--check` reports unformatted files with exit code 1.

use std::path::PathBuf;

use crate::common::{nnc, root};
use crate::fuzz::{corpus, mutate, Rng};

/// Every `.nn` file of the examples and test fixtures, sorted.
fn fixtures() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for dir in ["examples", "tests/data/ok", "tests/data/err", "tests/data/data_err"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "nn") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    paths
}

/// Formats `source` and checks what formatting must preserve; returns the
/// formatted text.
fn round_trip(name: &str, source: &str) -> String {
    let formatted = nnc::fmt::format(source);
    assert_eq!(
        formatted.unchanged, 0,
        "{name}: an item's new layout changed its meaning"
    );
    let text = &formatted.text;
    assert_eq!(
        nnc::fmt::fingerprint(source),
        nnc::fmt::fingerprint(text),
        "{name}: the program changed:\n{text}"
    );
    assert_eq!(
        nnc::fmt::comments(source),
        nnc::fmt::comments(text),
        "{name}: comments changed"
    );
    let again = nnc::fmt::format(text);
    assert_eq!(&again.text, text, "{name}: formatting is not idempotent");
    assert_eq!(again.broken, formatted.broken, "{name}");
    text.clone()
}

#[test]
fn examples_fixtures_and_library_round_trip() {
    let mut broken = 0;
    let files = fixtures();
    assert!(files.len() > 60, "{} files", files.len());
    for path in &files {
        let source = std::fs::read_to_string(path).unwrap();
        let name = path.display().to_string();
        round_trip(&name, &source);
        broken += nnc::fmt::format(&source).broken;
    }
    // Only the syntax-error fixtures have broken items.
    let syntax_fixtures = files
        .iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("syntax_"))
        .count();
    assert!(
        broken >= syntax_fixtures && broken <= syntax_fixtures + 2,
        "{broken} broken items"
    );
    for (name, text) in nnc::stdlib::FILES {
        round_trip(name, text);
    }
}

#[test]
fn examples_and_library_are_formatted() {
    let mut paths = crate::common::examples();
    paths.extend(["stdlib/layers.nn", "stdlib/losses.nn"].map(|p| root().join(p)));
    for path in paths {
        let source = std::fs::read_to_string(&path).unwrap();
        let formatted = nnc::fmt::format(&source).text;
        assert!(
            formatted == source,
            "{} is not formatted:\n{}",
            path.display(),
            similar::TextDiff::from_lines(&source, &formatted).unified_diff()
        );
    }
}

#[test]
fn mutated_programs_round_trip() {
    let cases: usize = std::env::var("NNC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let corpus = corpus();
    let mut rng = Rng(0xf0f0_1234 | 1);
    for case in 0..cases {
        let base = &corpus[rng.below(corpus.len())];
        let input = mutate(&mut rng, base, &corpus);
        // Big enough a stack for the deepest expressions the parser accepts.
        let name = format!("case {case}");
        let handle = std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(move || {
                round_trip(&name, &input);
            })
            .unwrap();
        if let Err(panic) = handle.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn check_flag_reports_unformatted_files() {
    let dir = std::env::temp_dir().join(format!("nnc-fmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let messy = dir.join("messy.nn");
    std::fs::write(&messy, "const  D=4 # width\n").unwrap();
    let path = messy.to_str().unwrap();
    let (code, stdout, _) = nnc(&["fmt", "--check", path]);
    assert_eq!(code, 1);
    assert!(stdout.contains("is not formatted"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&messy).unwrap(), "const  D=4 # width\n");
    let (code, _, _) = nnc(&["fmt", path]);
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(&messy).unwrap(), "const D = 4  # width\n");
    assert_eq!(nnc(&["fmt", "--check", path]).0, 0);
    assert_eq!(nnc(&["fmt", "--check", "examples/gpt.nn", "stdlib/layers.nn"]).0, 0);
    assert_eq!(nnc(&["fmt", "no/such/file.nn"]).0, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An expression of 20,000 terms is a syntax tree 20,000 deep: formatting
/// it (comparing and dropping trees) runs on a deep stack, as checking
/// does, instead of overflowing the main thread's.
#[test]
fn a_long_flat_expression_is_formatted() {
    let dir = crate::common::scratch("fmt", "long");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("long.nn");
    let terms = vec!["1"; 20_000];
    std::fs::write(&path, format!("const H = {}\n", terms.join("+"))).unwrap();
    let (code, _, stderr) = nnc(&["fmt", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let formatted = std::fs::read_to_string(&path).unwrap();
    assert_eq!(formatted, format!("const H = {}\n", terms.join(" + ")));
    std::fs::remove_dir_all(&dir).unwrap();
}
