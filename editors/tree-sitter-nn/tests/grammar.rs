//! The grammar against the compiler: every example, test fixture and
//! standard-library file in which `nnc check` finds no syntax error parses
//! without ERROR or MISSING nodes; the corpus tests (`test/corpus/*.txt`,
//! tree-sitter's format) give the expected trees; the highlight query
//! compiles. `NNC` names the nnc binary (default: the workspace's
//! `target/debug/nnc`); `UPDATE=1` rewrites the corpus' expected trees.

use std::path::{Path, PathBuf};
use std::process::Command;

use tree_sitter::{Node, Parser, Query};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn parser() -> Parser {
    let mut parser = Parser::new();
    parser.set_language(&tree_sitter_nn::LANGUAGE.into()).unwrap();
    parser
}

/// The ERROR and MISSING nodes under `node`.
fn errors(node: Node, out: &mut Vec<String>) {
    if node.is_error() || node.is_missing() {
        let p = node.start_position();
        out.push(format!("{} at {}:{}", node.kind(), p.row + 1, p.column + 1));
        return;
    }
    if node.has_error() {
        let mut cursor = node.walk();
        for child in node.children(&mut cursor) {
            errors(child, out);
        }
    }
}

fn nn_files() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for dir in ["examples", "stdlib", "tests/data/ok", "tests/data/err", "tests/data/data_err"] {
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

#[test]
fn parses_what_the_compiler_parses() {
    let nnc = std::env::var_os("NNC").map_or_else(|| root().join("target/debug/nnc"), PathBuf::from);
    assert!(nnc.exists(), "{} missing: build nnc first (cargo build)", nnc.display());
    let mut parser = parser();
    let (mut clean, mut failures) = (0, Vec::new());
    for path in nn_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let output = Command::new(&nnc).arg("check").arg(&path).env("NO_COLOR", "1").output().unwrap();
        let report = String::from_utf8_lossy(&output.stderr);
        if ["E0001", "E0002", "E0003"].iter().any(|code| report.contains(code)) {
            continue; // a syntax error for the compiler too
        }
        clean += 1;
        let tree = parser.parse(&text, None).unwrap();
        let mut found = Vec::new();
        errors(tree.root_node(), &mut found);
        if !found.is_empty() {
            failures.push(format!("{}: {}", path.display(), found.join(", ")));
        }
    }
    assert!(clean > 60, "only {clean} files without syntax errors");
    assert!(failures.is_empty(), "{} of {clean} files:\n{}", failures.len(), failures.join("\n"));
}

/// Corpus cases: (name, input, expected tree) from tree-sitter's format.
fn corpus(text: &str) -> Vec<(String, String, String)> {
    let mut cases = Vec::new();
    let mut parts = text.split("\n==================\n");
    while let (Some(header), Some(rest)) = (parts.next(), parts.next()) {
        let name = header.trim_start_matches("==================\n").trim().to_string();
        let (input, expected) = rest.split_once("\n---\n").expect("a `---` line after the input");
        cases.push((name, input.trim_matches('\n').to_string() + "\n", expected.trim().to_string()));
    }
    cases
}

fn normalize(sexp: &str) -> String {
    sexp.split_whitespace().collect::<Vec<_>>().join(" ").replace(" )", ")")
}

/// The tree as an S-expression with one node per line, indented.
fn pretty(sexp: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut after_field = false;
    for (i, part) in normalize(sexp).split(' ').enumerate() {
        if i > 0 {
            if after_field || !(part.starts_with('(') || part.ends_with(':')) {
                out.push(' ');
            } else {
                out.push('\n');
                out.push_str(&"  ".repeat(depth));
            }
        }
        after_field = part.ends_with(':');
        depth += part.matches('(').count();
        depth -= part.matches(')').count();
        out.push_str(part);
    }
    out
}

#[test]
fn corpus_trees() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test/corpus");
    let mut parser = parser();
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut updated = String::new();
        for (name, input, expected) in corpus(&text) {
            let tree = parser.parse(&input, None).unwrap();
            let actual = tree.root_node().to_sexp();
            if std::env::var_os("UPDATE").is_some() {
                updated.push_str(&format!(
                    "==================\n{name}\n==================\n\n{}\n---\n\n{}\n\n",
                    input.trim_end(),
                    pretty(&actual)
                ));
            } else {
                assert_eq!(normalize(&expected), normalize(&actual), "{}: {name}", path.display());
            }
            count += 1;
        }
        if std::env::var_os("UPDATE").is_some() {
            std::fs::write(&path, updated.trim_end().to_string() + "\n").unwrap();
        }
    }
    assert!(count >= 8, "{count} corpus cases");
}

#[test]
fn highlight_query_compiles() {
    let language = tree_sitter_nn::LANGUAGE.into();
    let query = Query::new(&language, tree_sitter_nn::HIGHLIGHTS_QUERY).unwrap();
    assert!(query.capture_names().contains(&"keyword"));
}
