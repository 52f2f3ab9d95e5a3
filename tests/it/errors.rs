//! Bad programs in `tests/data/err/`, one mistake each. Each file states the
//! code and position of its first error on its second line
//! (`# expect: E0302 @ 9:7`); the rendered diagnostics are snapshots.

use std::path::Path;

#[test]
fn bad_programs_report_the_right_error_at_the_right_place() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    insta::glob!("../data/err", "*.nn", |path| {
        count += 1;
        let relative = path.strip_prefix(root).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        let expect = text
            .lines()
            .nth(1)
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| {
                panic!(
                    "{}: second line must be `# expect: CODE @ LINE:COL`",
                    relative.display()
                )
            });
        let options = nnc::check::Options {
            base_dir: Some(path.parent().unwrap().to_path_buf()),
            overrides: Vec::new(),
            ..Default::default()
        };
        let program = nnc::check::check_source(&relative.display().to_string(), &text, &options);
        let first = program
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .unwrap_or_else(|| panic!("{}: no error reported", relative.display()));
        let (line, col) = program
            .sources
            .line_col(first.primary.span.file, first.primary.span.start);
        let found = format!("{} @ {line}:{col}", first.code);
        assert_eq!(
            found,
            expect,
            "{}: first error differs from the expectation",
            relative.display()
        );
        assert_eq!(
            first.primary.span.file,
            0,
            "{}: the error must point into the user's file",
            relative.display()
        );
        insta::assert_snapshot!(program.sources.render(&program.diagnostics, false));
    });
    assert!(count >= 30, "expected at least 30 bad programs, found {count}");
}

/// Blocks nothing calls get their names and their calls' arguments checked
/// (`check/resolve.rs`) without false alarms: the whole standard library,
/// pasted uncalled into a user's file, checks clean, and a misspelling in a
/// copy is reported.
#[test]
fn uncalled_blocks_have_their_names_checked() {
    let program = |library: &str| {
        let text = format!(
            "data digits = csv(\"examples/data/digits.csv\", x: \"p0\"..\"p63\", y: \"label\", classes: 10)\n\
             model tiny(x: f32[B, 64]) -> f32[B, 10] {{\n    linear(x, 10)\n}}\n\
             loss cross_entropy(tiny(digits.x), digits.y)\n\
             optimizer sgd(lr: 0.1)\n\
             train {{ steps: 1, batch: 8 }}\n{library}"
        );
        let options = nnc::check::Options {
            base_dir: Some(crate::common::root().to_path_buf()),
            overrides: Vec::new(),
            ..Default::default()
        };
        nnc::check::check_source("uncalled.nn", &text, &options)
    };
    let library: String = nnc::stdlib::FILES
        .iter()
        .map(|(_, text)| *text)
        .collect::<Vec<_>>()
        .join("\n");
    let clean = program(&library);
    let errors: Vec<_> = clean.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{}", clean.sources.render(&clean.diagnostics, false));
    // One mistake in a copy of the library: exactly one diagnostic, saying
    // each of `expected`.
    let one_error = |from: &str, to: &str, expected: &[&str]| {
        let checked = program(&library.replacen(from, to, 1));
        let rendered = checked.sources.render(&checked.diagnostics, false);
        assert_eq!(checked.diagnostics.len(), 1, "{rendered}");
        for text in expected {
            assert!(rendered.contains(text), "`{text}` missing from: {rendered}");
        }
    };
    one_error(
        "exp(x - stop_grad",
        "expp(x - stop_grad",
        &["unknown name `expp`", "did you mean `exp`?"],
    );
    one_error(
        "keepdims: true",
        "keep_dims: true",
        &["has no parameter named `keep_dims`", "did you mean `keepdims`?"],
    );
}
