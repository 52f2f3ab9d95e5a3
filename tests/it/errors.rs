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
