//! Every program that checks runs. Generated programs (`programs/generate.rs`)
//! and meaning-level mutations of the examples (`programs/mutate.rs`) go
//! through the whole pipeline: a program the checker accepts must, run by
//! the `nnc` binary for its few training steps (mutated examples: 2 steps at
//! batch 2), either reach its summary (exit 0, every reported loss finite)
//! or stop with a diagnostic and exit code 1 — never a panic, a signal or a
//! hang (each run is killed after `NNC_PIPELINE_TIMEOUT` seconds, default
//! 120) — and the JIT (bounds-checked) and the interpreter agree on its first
//! training step's loss within 1e-3 relative + 1e-4 absolute (widened for
//! ill-conditioned losses, below).
//!
//! The default run is bounded (30 generated programs, then each example
//! shrunk as it is and once mutated: about 60 s on two cores) and prints a
//! coverage table: every standard-library block, data source, optimizer,
//! schedule, generation method (and a list of them) and section reaches a
//! summary at least once.
//! More cases: `NNC_PIPELINE_CASES=10000 cargo test --test it pipeline
//! -- --nocapture` (a quarter of them mutations); `NNC_PIPELINE_SEED` changes
//! the programs; `NNC_PIPELINE_ONLY=N` runs case N alone. A failing program
//! is saved and its path printed. The backends agree within the fixed
//! tolerance plus 8 times what nudging every f32 input by 2^-22 (relative)
//! moves the interpreter's loss: the spread f32 rounding can cause.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{examples, root};
use crate::programs::generate::Generator;
use crate::programs::{mutate, Rng};

/// Generated programs in the default run (then one mutation of each example).
const DEFAULT_GENERATED: usize = 30;

const RTOL: f64 = 1e-3;
const ATOL: f64 = 1e-4;
/// How many times the loss's move under f32-sized nudges of its inputs the
/// JIT may differ by, beyond the fixed tolerance.
const SENSITIVITY_MARGIN: f64 = 8.0;

/// What became of a program.
#[derive(Debug)]
enum Outcome {
    /// The checker rejected it, with this code.
    Rejected(String),
    /// It ran to its summary.
    Ran,
    /// It stopped with a diagnostic (exit 1): the first line of stderr.
    Stopped(String),
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Runs the `nnc` binary with a time limit; stdout and stderr go to files so
/// a chatty run cannot block on a full pipe. Returns (exit code or `None`
/// after a signal, stdout, stderr), or `Err` after the time limit.
fn run_bounded(args: &[&str], dir: &Path, limit: Duration) -> Result<(Option<i32>, String, String), String> {
    let stdout_path = dir.join("stdout");
    let stderr_path = dir.join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("nnc starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no answer after {} s (a hang?)", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    Ok((status.code(), read(&stdout_path), read(&stderr_path)))
}

/// The first training step's loss on the interpreter and on the JIT (with
/// bounds checks), compared. `Ok(None)` when the session cannot be built
/// (the run reports that as a diagnostic).
/// The first step's loss by the JIT and by the interpreter, and how far the
/// interpreter's loss moves when every f32 input, parameter and state is
/// nudged by about two units in the last place of f32: the spread f32
/// rounding alone can cause. A loss that cancels (the mean of a centred
/// vector fed to a softmax) can move by more than the fixed tolerance in
/// every f32 computation; the comparison allows for what this measures.
#[derive(Clone, Copy)]
struct Losses {
    jit: f64,
    interp: f64,
    sensitivity: f64,
    /// Whether a value of the interpreter's step is finite but too large
    /// for f32.
    beyond_f32: bool,
}

impl Losses {
    /// Whether the two backends' first-step losses agree: within the fixed
    /// tolerance widened by what f32 rounding of the inputs alone moves the
    /// loss (times a margin for the rounding inside); both NaN, or the same
    /// infinity (a loss whose exact value is infinite, `exp` of a raw
    /// series); or the JIT's not finite where the exact step leaves f32's
    /// range (the run stops with that diagnostic instead).
    fn agree(&self) -> Result<(), String> {
        let Losses {
            jit,
            interp,
            sensitivity,
            beyond_f32,
        } = *self;
        let tolerance = ATOL + RTOL * interp.abs() + SENSITIVITY_MARGIN * sensitivity;
        let overflowed = !jit.is_finite() && beyond_f32;
        let close = if interp.is_finite() {
            (jit - interp).abs() <= tolerance
        } else {
            // An infinite tolerance would take anything.
            jit == interp || (jit.is_nan() && interp.is_nan())
        };
        if close || overflowed {
            return Ok(());
        }
        Err(format!(
            "first-step loss: JIT {jit:.9}, interpreter {interp:.9} (tolerance {tolerance:.3e}: \
             {RTOL} relative + {ATOL} + {SENSITIVITY_MARGIN} x {sensitivity:.3e}, the loss's move under \
             f32-sized nudges of the inputs)"
        ))
    }
}

/// Seed 777's case 588 (`exp` of an unnormalized series): both backends'
/// loss is +inf, which agrees; opposite infinities, or a finite loss
/// against an infinite one (either way round), do not.
#[test]
fn equal_infinite_losses_agree() {
    let losses = |jit: f64, interp: f64| Losses {
        jit,
        interp,
        sensitivity: 0.0,
        beyond_f32: false,
    };
    assert!(losses(f64::INFINITY, f64::INFINITY).agree().is_ok());
    assert!(losses(f64::NAN, f64::NAN).agree().is_ok());
    assert!(losses(1.0, 1.0 + 1e-6).agree().is_ok());
    assert!(losses(f64::INFINITY, f64::NEG_INFINITY).agree().is_err());
    assert!(losses(f64::INFINITY, 3.0).agree().is_err());
    assert!(losses(3.0, f64::INFINITY).agree().is_err());
    assert!(losses(1.0, 1.1).agree().is_err());
}

/// `env` with every f32 leaf of `graph` scaled element by element by
/// `1 ± 2^-22` (signs from a fixed hash of the name and index).
fn nudged(graph: &nnc::ir::Graph, env: &nnc::interp::Env) -> nnc::interp::Env {
    use nnc::prim::{DType, Prim};
    let mut env = env.clone();
    for id in graph.graph.node_indices() {
        let node = graph.node(id);
        let name = match &node.op {
            Prim::Input(name) | Prim::Param(name) | Prim::State(name) if node.dtype == DType::F32 => name,
            _ => continue,
        };
        let salt = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        if let Some(values) = env.feeds.get_mut(name) {
            for (i, x) in values.iter_mut().enumerate() {
                let bit = (salt ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).count_ones() & 1;
                let sign = if bit == 0 { 1.0 } else { -1.0 };
                *x *= 1.0 + sign * 2f64.powi(-22);
            }
        }
    }
    env
}

fn first_losses(path: &Path, batch: Option<usize>) -> Result<Option<Losses>, String> {
    let program = nnc::check::check_file(path).map_err(|e| e.to_string())?;
    let dir = path.parent().unwrap();
    let overrides = nnc::runtime::Overrides {
        batch,
        backend: nnc::runtime::Backend::Interp,
        ..Default::default()
    };
    let Ok(session) = nnc::runtime::Session::new(program, dir, &overrides) else {
        return Ok(None);
    };
    let env = session.step_env(0);
    let values = nnc::interp::run(&session.step_graph, &env).map_err(|e| format!("interpreter: {e}"))?;
    let interp = values
        .output("loss")
        .and_then(|l| l.first().copied())
        .ok_or("no loss")?;
    let beyond_f32 = nnc::runtime::beyond_f32(&session.step_graph, &values).is_some();
    let nudged_outputs = nnc::interp::run_outputs(&session.step_graph, &nudged(&session.step_graph, &env))
        .map_err(|e| format!("interpreter: {e}"))?;
    let sensitivity = (nudged_outputs["loss"].first().copied().ok_or("no loss")? - interp).abs();
    let options = nnc::codegen::CompileOptions {
        check_bounds: true,
        threads: 2,
        adaptive: false,
        flush_subnormals: true,
        huge_pages: true,
        collective: None,
        stream_stacks_above: nnc::codegen::STREAM_STACKS_ABOVE,
    };
    let (mut compiled, inputs) =
        nnc::codegen::bench::compile_step(&session, &options).map_err(|e| format!("JIT compile: {e}"))?;
    let mut feeds = env.feeds;
    feeds.retain(|name, _| inputs.contains(name));
    compiled
        .run(&feeds, session.seed, 0)
        .map_err(|e| format!("JIT step: {e}"))?;
    let jit = compiled
        .output("loss")
        .and_then(|l| l.first().copied())
        .ok_or("the JIT gave no loss")?;
    Ok(Some(Losses {
        jit,
        interp,
        sensitivity,
        beyond_f32,
    }))
}

/// Checks, runs and compares one program; `Err` is a failure of the
/// property, with what happened.
fn exercise(
    path: &Path,
    work: &Path,
    run_args: &[&str],
    batch: Option<usize>,
    limit: Duration,
) -> Result<Outcome, String> {
    let checked = std::panic::catch_unwind(|| nnc::check::check_file(path))
        .map_err(|_| "the checker panicked".to_string())?
        .map_err(|e| e.to_string())?;
    if let Some(first) = checked.diagnostics.iter().find(|d| d.is_error()) {
        return Ok(Outcome::Rejected(first.code.to_string()));
    }
    let file = path.display().to_string();
    let out = work.join("run").display().to_string();
    let mut args = vec!["run", file.as_str(), "--json", "--out", out.as_str()];
    args.extend_from_slice(run_args);
    let (code, stdout, stderr) = run_bounded(&args, work, limit)?;
    let outcome = match code {
        Some(0) => {
            let events: Vec<Value> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
            events
                .last()
                .filter(|e| e["event"] == "summary")
                .ok_or_else(|| format!("exit 0 without a summary; stdout:\n{stdout}\nstderr:\n{stderr}"))?;
            for event in &events {
                let loss = match event["event"].as_str() {
                    Some("step") => &event["loss"],
                    Some("summary") => &event["train_loss"],
                    _ => continue,
                };
                if let Some(x) = loss.as_f64().filter(|x| !x.is_finite()) {
                    return Err(format!("a loss of {x} reported as success: {event}"));
                }
                // JSON has no NaN: a non-finite loss is written as null.
                let given = event
                    .as_object()
                    .is_some_and(|o| o.contains_key("loss") || o.contains_key("train_loss"));
                if given && loss.is_null() {
                    return Err(format!("a non-finite loss reported as success: {event}"));
                }
            }
            Outcome::Ran
        }
        Some(1) if stderr.contains("error") => Outcome::Stopped(
            stderr
                .lines()
                .find(|l| l.contains("error"))
                .unwrap_or_default()
                .to_string(),
        ),
        Some(code) => return Err(format!("exit code {code}; stderr:\n{stderr}")),
        None => return Err(format!("killed by a signal; stderr:\n{stderr}")),
    };
    if !matches!(outcome, Outcome::Rejected(_)) {
        let compared = std::panic::catch_unwind(|| first_losses(path, batch))
            .map_err(|_| "panic while comparing the backends".to_string())??;
        if let Some(losses) = compared {
            losses.agree()?;
        }
    }
    Ok(outcome)
}

/// Features a program exercises, for the coverage table: standard-library
/// blocks it calls, its data source, optimizer, schedules, sections and
/// generation method.
fn features(text: &str, blocks: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let model_part = text.split("\noptimizer ").next().unwrap_or(text);
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    for block in blocks {
        let bytes = model_part.as_bytes();
        let used = model_part.match_indices(block.as_str()).any(|(i, _)| {
            let before = i.checked_sub(1).map(|j| bytes[j]);
            let after = bytes.get(i + block.len()).copied();
            !before.is_some_and(is_word) && !after.is_some_and(is_word)
        });
        if used {
            found.push(format!("layer {block}"));
        }
    }
    for line in text.lines() {
        let mut words = line
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty());
        match words.next() {
            Some("data") => {
                if let Some(source) = words.nth(1) {
                    found.push(format!("data {source}"));
                }
            }
            Some("optimizer") => {
                let rest: Vec<&str> = words.collect();
                if let Some(name) = rest.first() {
                    found.push(format!("optimizer {name}"));
                }
                for pair in rest.windows(2) {
                    if pair[0] == "schedule" || pair[0] == "then" {
                        found.push(format!("schedule {}", pair[1]));
                    }
                }
            }
            Some(section @ ("eval" | "sweep" | "analyze" | "train")) => found.push(format!("section {section}")),
            Some("generate") => {
                found.push("section generate".to_string());
                // One method, or a list of them (`method: [greedy, sample()]`).
                let methods = line.split("method: ").nth(1).map(|m| match m.strip_prefix('[') {
                    Some(list) => list.split(']').next().unwrap_or(""),
                    None => m.split([',', ' ']).next().unwrap_or(m),
                });
                // Each method's name: the words outside parentheses.
                let mut depth = 0;
                let mut names = vec![String::new()];
                for c in methods.unwrap_or("").chars() {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        ',' if depth == 0 => names.push(String::new()),
                        c if depth == 0 && c.is_alphanumeric() => names.last_mut().unwrap().push(c),
                        _ => {}
                    }
                }
                for name in names.iter().filter(|n| !n.is_empty()) {
                    found.push(format!("generate {name}"));
                }
                if line.contains("method: [") {
                    found.push("generate list".to_string());
                }
            }
            _ => {}
        }
    }
    found
}

/// The names of the standard library's blocks.
fn library_blocks() -> Vec<String> {
    nnc::stdlib::FILES
        .iter()
        .flat_map(|(_, text)| text.lines())
        .filter_map(|l| l.strip_prefix("block "))
        .map(|l| l.split('(').next().unwrap().to_string())
        .collect()
}

#[derive(Default)]
struct Tally {
    checked: usize,
    ran: usize,
}

#[test]
fn every_program_that_checks_runs() {
    let default_run = env_number("NNC_PIPELINE_CASES").is_none() && env_number("NNC_PIPELINE_SEED").is_none();
    let seed = env_number("NNC_PIPELINE_SEED").unwrap_or(0x0919);
    // One case of a run (the programs before it are still generated, so
    // it is the same program): `NNC_PIPELINE_ONLY=775`.
    let only = env_number("NNC_PIPELINE_ONLY").map(|n| n as usize);
    let limit = Duration::from_secs(env_number("NNC_PIPELINE_TIMEOUT").unwrap_or(120));
    let started = Instant::now();
    let data_dir = root().join("examples/data");
    let scratch = std::env::temp_dir().join(format!("nnc-pipeline-{}", std::process::id()));
    let mut generator = Generator::new(seed, &data_dir);
    let mut rng = Rng::new(seed ^ 0x5eed);
    let sources: Vec<(String, String)> = examples()
        .iter()
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(p).unwrap(),
            )
        })
        .collect();
    let cases = env_number("NNC_PIPELINE_CASES").map_or(DEFAULT_GENERATED + sources.len(), |n| n as usize);
    // The default run takes every example twice: shrunk as it is (so each
    // data source and section of the examples reaches a summary), then
    // mutated.
    let mutated_count = if default_run { 2 * sources.len() } else { cases / 4 };
    let cases = if default_run { cases + sources.len() } else { cases };
    let blocks = library_blocks();
    let mut coverage: BTreeMap<String, Tally> = BTreeMap::new();
    for block in &blocks {
        coverage.entry(format!("layer {block}")).or_default();
    }
    let mut rejected: BTreeMap<String, usize> = BTreeMap::new();
    let mut stopped: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let (mut ran, mut generated_checked) = (0, 0);
    let mut times: Vec<(f64, String)> = Vec::new();
    for case in 0..cases {
        let mutation = case >= cases - mutated_count;
        let (label, text, args, batch): (String, String, &[&str], Option<usize>) = if mutation {
            let index = case - (cases - mutated_count);
            let (name, text) = &sources[index % sources.len()];
            let shrunk = mutate::shrink(text);
            let (label, text) = if default_run && index < sources.len() {
                let text = shrunk.replace("\"data/", &format!("\"{}/", data_dir.display()));
                (format!("shrunk {name}"), text)
            } else {
                (format!("mutated {name}"), mutate::mutate(&mut rng, &shrunk, &data_dir))
            };
            (label, text, &["--steps", "2", "--batch", "2"], Some(2))
        } else {
            ("generated".to_string(), generator.program(), &[], None)
        };
        if only.is_some_and(|only| only != case) {
            continue;
        }
        let dir = scratch.join(format!("case-{case}"));
        std::fs::create_dir_all(&dir).unwrap();
        let path: PathBuf = dir.join("program.nn");
        std::fs::write(&path, &text).unwrap();
        let case_started = Instant::now();
        let result = exercise(&path, &dir, args, batch, limit);
        times.push((case_started.elapsed().as_secs_f64(), format!("case {case} ({label})")));
        match result {
            Ok(outcome) => {
                if !matches!(outcome, Outcome::Rejected(_)) && !mutation {
                    generated_checked += 1;
                }
                for feature in features(&text, &blocks) {
                    let tally = coverage.entry(feature).or_default();
                    if !matches!(outcome, Outcome::Rejected(_)) {
                        tally.checked += 1;
                    }
                    if matches!(outcome, Outcome::Ran) {
                        tally.ran += 1;
                    }
                }
                let keep = matches!(outcome, Outcome::Stopped(_)) || std::env::var_os("NNC_PIPELINE_KEEP").is_some();
                match outcome {
                    Outcome::Rejected(code) => *rejected.entry(format!("{label}: {code}")).or_default() += 1,
                    Outcome::Ran => ran += 1,
                    Outcome::Stopped(line) => {
                        stopped.push(format!("case {case} ({label}, {}): {line}", path.display()))
                    }
                }
                if !keep {
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
            Err(why) => failures.push(format!("case {case} ({label}), kept at {}: {why}", path.display())),
        }
    }
    let generated = cases - mutated_count;
    println!("pipeline fuzz: seed {seed}, {cases} programs ({generated} generated, {mutated_count} from the examples, shrunk or mutated) in {:.1} s", started.elapsed().as_secs_f64());
    println!(
        "  ran to the summary: {ran}; stopped with a diagnostic: {}; rejected by the checker: {}",
        stopped.len(),
        rejected.values().sum::<usize>()
    );
    for (what, count) in &rejected {
        println!("  rejected {what}: {count}");
    }
    times.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (secs, case) in times.iter().take(5) {
        println!("  slow: {case} {secs:.1} s");
    }
    for line in stopped.iter().take(20) {
        println!("  stopped {line}");
    }
    println!("  {:<34} {:>8} {:>8}", "feature", "checked", "ran");
    for (feature, tally) in &coverage {
        println!("  {feature:<34} {:>8} {:>8}", tally.checked, tally.ran);
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} programs broke the property:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    // The generator writes programs that check (a generator that drifted
    // into errors would test nothing past the checker).
    assert!(
        only.is_some() || generated_checked * 10 >= generated * 9,
        "only {generated_checked} of {generated} generated programs checked"
    );
    if default_run {
        let mut required: Vec<String> = blocks.iter().map(|b| format!("layer {b}")).collect();
        for (kind, names) in REQUIRED {
            required.extend(names.iter().map(|n| format!("{kind} {n}")));
        }
        let missing: Vec<&String> = required
            .iter()
            .filter(|f| coverage.get(*f).is_none_or(|t| t.ran == 0))
            .collect();
        assert!(
            missing.is_empty(),
            "never ran to a summary in the default run: {missing:?}"
        );
    }
    if stopped.is_empty() && std::env::var_os("NNC_PIPELINE_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
}

/// What the default run must reach a summary with, besides every
/// standard-library block.
const REQUIRED: &[(&str, &[&str])] = &[
    (
        "data",
        &[
            "csv", "series", "text", "copy", "reverse", "sort", "add", "speech", "passages", "replies", "slots",
            "graphs",
        ],
    ),
    ("optimizer", &["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"]),
    (
        "schedule",
        &["constant", "warmup", "step", "exponential", "cosine", "linear"],
    ),
    ("section", &["train", "eval", "generate", "sweep", "analyze"]),
    ("generate", &["greedy", "beam", "sample", "list"]),
];

/// Programs the pipeline fuzzer found broken, minimized, in
/// `tests/data/fuzz/`: each now runs to its summary, and the JIT and the
/// interpreter agree on its first step.
#[test]
fn fuzz_regressions_run_to_their_summary() {
    let dir = root().join("tests/data/fuzz");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "nn"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    for path in paths {
        let scratch = std::env::temp_dir().join(format!(
            "nnc-fuzz-regression-{}-{}",
            std::process::id(),
            path.file_stem().unwrap().to_string_lossy()
        ));
        std::fs::create_dir_all(&scratch).unwrap();
        let outcome = exercise(&path, &scratch, &[], None, Duration::from_secs(120));
        assert!(matches!(outcome, Ok(Outcome::Ran)), "{}: {outcome:?}", path.display());
        let _ = std::fs::remove_dir_all(&scratch);
    }
}
