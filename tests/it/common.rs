//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `examples/*.nn`, sorted.
pub fn examples() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "nn"))
        .collect();
    paths.sort();
    paths
}

/// Runs the `nnc` binary in the repository root without colour: exit code,
/// stdout, stderr.
pub fn nnc(args: &[&str]) -> (i32, String, String) {
    nnc_with_env(args, &[])
}

/// [`nnc`] with environment variables set (`Some`) or removed (`None`).
pub fn nnc_with_env(args: &[&str], env: &[(&str, Option<&str>)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nnc"));
    command.args(args).current_dir(root()).env("NO_COLOR", "1");
    for &(key, value) in env {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    let output = command.output().expect("nnc runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A fresh scratch directory `nnc-{group}-{pid}-{name}` under the system
/// temporary directory (removed if a former run left it).
pub fn scratch(group: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnc-{group}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The JSON events among the lines of a `--json` run's output.
pub fn events(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

/// `dir/file` checked with `constants` overridden; fails the test with the
/// rendered diagnostics if it does not check.
pub fn checked_program(dir: &Path, file: &str, constants: &[(&str, f64)]) -> nnc::check::Program {
    let overrides = constants.iter().map(|(n, v)| (n.to_string(), *v)).collect();
    let program = nnc::check::check_file_with(&dir.join(file), overrides).unwrap();
    assert!(
        !program.has_errors(),
        "{}",
        program.sources.render(&program.diagnostics, false)
    );
    program
}

/// The summary line of `examples/NAME` (its model's interface and
/// parameter count); fails the test if the example does not check.
pub fn example_summary(name: &str) -> String {
    checked_program(&root().join("examples"), name, &[]).summary()
}
