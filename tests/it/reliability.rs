//! Nothing lost, nothing wasted: memory checked against the plan before
//! anything is allocated, run directories never written over, one writer
//! per directory, and SIGTERM handled like Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{events, nnc, root};

fn scratch(name: &str) -> PathBuf {
    crate::common::scratch("test", name)
}

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nnc starts")
}

/// Waits until the run in `dir` has written a checkpoint at `step` or later.
fn wait_for_checkpoint(dir: &Path, step: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap_or_default();
        if events(&text)
            .iter()
            .any(|e| e["event"] == "checkpoint" && e["step"].as_u64().unwrap_or(0) >= step)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint at step {step} in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A batch of fifty million digits needs far more memory than any machine
/// here has. Under an address-space limit of 4 GiB, an attempt to allocate
/// it would abort; the run instead stops at once with the figures, exit
/// code 1, and leaves no run directory behind.
#[test]
fn a_batch_far_too_large_is_refused_before_anything_is_allocated() {
    let out = scratch("huge-batch");
    let started = Instant::now();
    let output = Command::new("prlimit")
        .arg("--as=4294967296")
        .arg(env!("CARGO_BIN_EXE_nnc"))
        .args(["run", "examples/digits_mlp.nn", "--batch", "50000000", "--out"])
        .arg(&out)
        .current_dir(root())
        .output()
        .expect("prlimit runs");
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: this run needs ") && stderr.contains("GiB of memory at batch 50,000,000"),
        "{stderr}"
    );
    assert!(stderr.contains("the training step"), "{stderr}");
    assert!(stderr.contains("the largest batch that fits is about"), "{stderr}");
    assert!(!stderr.contains("memory allocation"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(elapsed < Duration::from_millis(1000), "refused after {elapsed:?}");
    assert!(!out.exists(), "the refused run left {}", out.display());
}

/// `nnc bench` checks its plan the same way before compiling.
#[test]
fn bench_refuses_a_batch_that_does_not_fit() {
    let (code, stdout, stderr) = nnc(&[
        "bench",
        "examples/digits_mlp.nn",
        "--batch",
        "50000000",
        "--backend",
        "jit",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.starts_with("error: this run needs ") && stderr.contains("the largest batch that fits is about"),
        "{stderr}"
    );
}

/// `--memory-limit` is a budget of its own, and the figure it suggests is
/// a batch that does fit.
#[test]
fn memory_limit_refuses_a_plan_over_it_and_suggests_a_batch_that_fits() {
    let out = scratch("memory-limit");
    let (code, _, stderr) = nnc(&[
        "run",
        "examples/digits_mlp.nn",
        "--batch",
        "100000",
        "--memory-limit",
        "256M",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("left under --memory-limit 256 MiB"), "{stderr}");
    let suggested: String = stderr
        .split("try --batch ")
        .nth(1)
        .expect("a suggested batch")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let (code, stdout, stderr) = nnc(&[
        "run",
        "examples/digits_mlp.nn",
        "--batch",
        &suggested,
        "--steps",
        "1",
        "--memory-limit",
        "256M",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "batch {suggested}: {stderr}");
    let start = &events(&stdout)[0];
    assert!(start["planned_bytes"].as_u64().unwrap() < 256 << 20, "{start}");
    std::fs::remove_dir_all(out).unwrap();
}

/// A model whose parameters alone do not fit is refused before they are
/// allocated: at once, pointed at the largest parameter, with nothing of
/// its size in memory (the process stays small).
#[test]
fn a_model_too_large_for_the_machine_is_refused_before_its_parameters_exist() {
    let out = scratch("too-large");
    let started = std::time::Instant::now();
    let (code, _, stderr) = nnc(&[
        "run",
        "examples/digits_mlp.nn",
        "--set",
        "H=4000000",
        "--memory-limit",
        "1G",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "the model's parameters, states and optimizer slots (900,000,030 values) need 6.7 GiB on the host alone"
        ) && stderr.contains("left under --memory-limit 1.0 GiB")
            && stderr.contains("the largest, `mlp_classifier.linear.w`, is f32[64, 4000000]"),
        "{stderr}"
    );
    assert!(started.elapsed().as_secs_f64() < 10.0, "took {:?}", started.elapsed());
    assert!(!out.join("checkpoint.safetensors").exists());
    let _ = std::fs::remove_dir_all(out);
}

/// A batch larger than the training split runs, with a warning that says
/// so with the numbers (on stderr, and as a JSON event).
#[test]
fn a_batch_larger_than_the_data_warns() {
    let out = scratch("big-batch");
    let (code, _, stderr) = nnc(&[
        "run",
        "examples/digits_mlp.nn",
        "--batch",
        "5000",
        "--steps",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(
            "warning: the batch (5,000) is larger than the training split (1,438 examples): every batch repeats examples"
        ),
        "{stderr}"
    );
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(events(&log).iter().any(|e| e["event"] == "warning"), "{log}");
    std::fs::remove_dir_all(out).unwrap();
}

/// The plan is what the run takes: for two examples at batch sizes where
/// the step dominates, the planned total is within 20 % of how much the
/// process's peak resident memory grew during the run.
#[test]
fn the_planned_memory_is_what_a_run_takes() {
    let cases: &[(&str, &[&str])] = &[
        ("examples/digits_mlp.nn", &["--batch", "50000"]),
        ("examples/digits_cnn.nn", &["--batch", "4000"]),
    ];
    for (file, settings) in cases {
        let out = scratch("rss");
        let mut args = vec!["run", file, "--steps", "2", "--json", "--out", out.to_str().unwrap()];
        args.extend_from_slice(settings);
        let (code, stdout, stderr) = nnc(&args);
        assert_eq!(code, 0, "{file}: {stderr}");
        let events = events(&stdout);
        let start = &events[0];
        let summary = events.last().unwrap();
        let planned = start["planned_bytes"].as_u64().unwrap() as f64;
        assert_eq!(start["memory"]["total"], start["planned_bytes"]);
        assert_eq!(summary["planned_bytes"], start["planned_bytes"]);
        let grown = summary["rss_growth_bytes"].as_u64().unwrap() as f64;
        assert!(
            planned > 150e6,
            "{file}: the plan ({planned} B) is too small to measure"
        );
        let ratio = grown / planned;
        assert!(
            (0.8..=1.2).contains(&ratio),
            "{file}: planned {planned} B, resident memory grew {grown} B ({ratio:.3}); parts {}",
            start["memory"]
        );
        std::fs::remove_dir_all(out).unwrap();
    }
}

/// A second run into a directory that holds a run is refused, says what
/// is there and what to do, and changes nothing; `--overwrite` replaces it.
#[test]
fn a_second_run_into_a_run_directory_is_refused() {
    let out = scratch("second-run");
    let dir = out.to_str().unwrap();
    let first = [
        "run",
        "examples/digits_mlp.nn",
        "--steps",
        "20",
        "--quiet",
        "--out",
        dir,
    ];
    let (code, _, stderr) = nnc(&first);
    assert_eq!(code, 0, "{stderr}");
    let read = |name: &str| std::fs::read(out.join(name)).unwrap();
    let (checkpoint, metrics) = (read("checkpoint.safetensors"), read("metrics.jsonl"));
    let (code, stdout, stderr) = nnc(&["run", "examples/digits_mlp.nn", "--steps", "30", "--json", "--out", dir]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    for expected in [
        "already holds a run",
        "a run of `examples/digits_mlp.nn`",
        "checkpoint.safetensors at step 20 (written 20",
        "Nothing was changed",
        &format!("--resume {dir}"),
        "--overwrite",
    ] {
        assert!(stderr.contains(expected), "no `{expected}` in: {stderr}");
    }
    assert_eq!(read("checkpoint.safetensors"), checkpoint, "the checkpoint changed");
    assert_eq!(read("metrics.jsonl"), metrics, "the metrics changed");
    assert!(!out.join(".lock").exists());
    // Asked to, the second run replaces the first.
    let (code, _, stderr) = nnc(&[
        "run",
        "examples/digits_mlp.nn",
        "--steps",
        "30",
        "--quiet",
        "--out",
        dir,
        "--overwrite",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let log = String::from_utf8(read("metrics.jsonl")).unwrap();
    let starts = events(&log).iter().filter(|e| e["event"] == "start").count();
    assert_eq!(starts, 1, "{log}");
    let checkpoint = nnc::runtime::checkpoint::load(&out.join("checkpoint.safetensors")).unwrap();
    assert_eq!(checkpoint.step, 30);
    std::fs::remove_dir_all(out).unwrap();
}

/// Two runs on one directory: the first proceeds, the second is refused
/// (even with `--overwrite`) naming the first's process. Killed, the first
/// leaves its lock file behind; `--resume` reports it and goes on.
#[test]
fn one_directory_has_one_writer_and_a_killed_writer_does_not_block_it() {
    let out = scratch("two-writers");
    let dir = out.to_str().unwrap();
    let file = "tests/data/ok/kill.nn";
    let mut first = spawn(&["run", file, "--quiet", "--out", dir]);
    wait_for_checkpoint(&out, 25);
    for extra in [&[][..], &["--overwrite"][..]] {
        let mut args = vec!["run", file, "--quiet", "--out", dir];
        args.extend_from_slice(extra);
        let (code, _, stderr) = nnc(&args);
        assert_eq!(code, 2, "{extra:?}: {stderr}");
        assert!(
            stderr.contains(&format!("is in use: process {}", first.id())),
            "{extra:?}: {stderr}"
        );
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let lock = std::fs::read_to_string(out.join(".lock")).unwrap();
    assert_eq!(lock.lines().next().unwrap(), first.id().to_string());
    let (code, _, stderr) = nnc(&["run", file, "--resume", dir, "--stop-after", "1"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("had a lock left by process {} (`", first.id()))
            && stderr.contains("which is no longer running; it was cleared"),
        "{stderr}"
    );
    assert!(!out.join(".lock").exists(), "the lock outlived the run");
    std::fs::remove_dir_all(out).unwrap();
}

/// SIGTERM, as a scheduler sends it: the run finishes its step, writes a
/// checkpoint at the step reached, and exits with 143; resumed, it ends
/// with exactly the parameters of a run never interrupted.
#[test]
fn sigterm_checkpoints_and_the_resumed_run_matches() {
    let file = "tests/data/ok/kill.nn";
    let stopped = scratch("sigterm");
    let mut child = spawn(&["run", file, "--quiet", "--out", stopped.to_str().unwrap()]);
    wait_for_checkpoint(&stopped, 50);
    // Safety: signalling the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(143), "{status:?}: {stderr}");
    let log = std::fs::read_to_string(stopped.join("metrics.jsonl")).unwrap();
    let last = events(&log).pop().unwrap();
    assert_eq!(last["event"], "interrupted", "{log}");
    let at = last["step"].as_u64().unwrap();
    let saved = nnc::runtime::checkpoint::load(&stopped.join("checkpoint.safetensors")).unwrap();
    assert_eq!(saved.step, at);
    assert!((50..3000).contains(&at), "stopped at step {at}");
    assert!(!stopped.join(".lock").exists());

    let (code, _, stderr) = nnc(&["run", file, "--quiet", "--resume", stopped.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let whole = scratch("never-stopped");
    let (code, _, stderr) = nnc(&["run", file, "--quiet", "--out", whole.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let a = nnc::runtime::checkpoint::load(&whole.join("checkpoint.safetensors")).unwrap();
    let b = nnc::runtime::checkpoint::load(&stopped.join("checkpoint.safetensors")).unwrap();
    assert_eq!((a.step, b.step), (3000, 3000));
    assert_eq!(a.tensors.len(), b.tensors.len());
    for (name, tensor) in &a.tensors {
        assert_eq!(tensor, &b.tensors[name], "{name} differs (stopped at step {at})");
    }
    std::fs::remove_dir_all(stopped).unwrap();
    std::fs::remove_dir_all(whole).unwrap();
}

/// `nnc check --memory` counts a loop's working memory (its carries, the
/// current step of its sequences and its body's buffers) while the loop
/// runs: for a scan whose step has a wide hidden layer, the peak it names
/// is the planned total, at the backward loop, and the loop's region is
/// among the largest buffers (without it, the peak was 786 of 822 MiB).
#[test]
fn the_memory_report_counts_a_loops_working_memory() {
    let dir = scratch("loop-memory");
    std::fs::create_dir_all(&dir).unwrap();
    let data = root().join("examples/data/shakespeare.txt");
    let file = dir.join("wide_step.nn");
    std::fs::write(
        &file,
        format!(
            r#"const T = 16
data plays = text("{}", context: T, vocab: 80, val: 0.1)

block wide_step(x: f32[N, I], h: f32[N, S]) -> f32[N, S] {{
    tanh(linear(relu(linear(concat([x, h], axis: 1), 8192)), S))
}}

model m(chars: i32[B, T]) -> f32[B, T, 80] {{
    linear(scan(wide_step, embed(chars, 80, 8), zeros([B, 8])), 80)
}}

loss cross_entropy(m(plays.x), plays.y)
optimizer sgd(lr: 0.1)
train {{ steps: 10, batch: 512, seed: 0 }}
"#,
            data.display()
        ),
    )
    .unwrap();
    let env = [("NNC_UNROLL_STEPS", Some("0"))];
    let (code, stdout, stderr) = crate::common::nnc_with_env(&["check", "--memory", file.to_str().unwrap()], &env);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let between = |start: &str, end: &str| -> String {
        let from = stdout
            .find(start)
            .unwrap_or_else(|| panic!("no `{start}` in\n{stdout}"))
            + start.len();
        stdout[from..].split(end).next().unwrap().trim().to_string()
    };
    let planned = between("(f32): ", " planned");
    let peak = between("peak ", " live");
    assert_eq!(peak, planned, "{stdout}");
    assert!(stdout.contains("the steps' working memory of the loop %"), "{stdout}");
    std::fs::remove_dir_all(dir).unwrap();
}
