//! The `nnc` binary: exit codes, summaries, `--help` text.

use crate::common::nnc;

#[test]
fn check_succeeds_on_an_example() {
    let (code, stdout, _) = nnc(&["check", "examples/digits_mlp.nn"]);
    assert_eq!(code, 0);
    assert_eq!(
        stdout,
        "examples/digits_mlp.nn: ok: model mlp_classifier(x: f32[B, 64]) -> f32[B, 10], 9,610 parameters in 4 tensors\n"
    );
}

#[test]
fn check_fails_with_diagnostics() {
    let (code, stdout, stderr) = nnc(&["check", "tests/data/err/matmul_inner_mismatch.nn"]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("error[E0302]: inner dimensions of `@` differ: 64 and 128"),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("tests/data/err/matmul_inner_mismatch.nn: 1 error\n"),
        "{stderr}"
    );
}

#[test]
fn missing_file_is_a_usage_error() {
    let (code, _, stderr) = nnc(&["check", "no/such/file.nn"]);
    assert_eq!(code, 2);
    assert!(stderr.starts_with("error: cannot read `no/such/file.nn`"), "{stderr}");
}

#[test]
fn bad_flags_are_usage_errors() {
    assert_eq!(nnc(&["check"]).0, 2);
    assert_eq!(nnc(&["frobnicate"]).0, 2);
    assert_eq!(nnc(&["check", "--bogus", "x.nn"]).0, 2);
}

#[test]
fn help_texts() {
    for args in [
        &["--help"][..],
        &["check", "--help"],
        &["std", "--help"],
        &["run", "--help"],
        &["grad", "--help"],
        &["dump", "--help"],
        &["bench", "--help"],
        &["fmt", "--help"],
        &["lsp", "--help"],
        &["report", "--help"],
        &["analyze", "--help"],
    ] {
        let (code, stdout, _) = nnc(args);
        assert_eq!(code, 0, "{args:?}");
        insta::assert_snapshot!(format!("help_{}", args[0].trim_start_matches('-')), stdout);
    }
}

#[test]
fn std_prints_the_library() {
    let (code, stdout, _) = nnc(&["std"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("block linear(x: f32[..., I], out: int, bias: bool = true)"));
    assert!(stdout.contains("block cross_entropy("));
}

#[test]
fn run_refuses_bad_overrides() {
    let (code, _, stderr) = nnc(&["run", "examples/digits_mlp.nn", "--set", "HH=3"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("has no constant `HH` (did you mean `H`?)"), "{stderr}");
    assert_eq!(nnc(&["run", "examples/digits_mlp.nn", "--batch", "0"]).0, 2);
    assert_eq!(nnc(&["run", "examples/digits_mlp.nn", "--lr=-1"]).0, 2);
    assert_eq!(nnc(&["run", "examples/digits_mlp.nn", "--set", "H=abc"]).0, 2);
}

/// A size too large for any tensor is a check error, so the commands that
/// run the program stop with it (exit code 1) instead of overflowing, and
/// a `--set` value outside the integers is refused, naming the constant.
#[test]
fn sizes_too_large_are_check_errors() {
    let file = "tests/data/err/too_large_width.nn";
    for args in [
        &["check", file][..],
        &["run", file, "--steps", "1"],
        &["bench", file, "--steps", "1", "--repeats", "1"],
        &["analyze", file],
        &["dump", file, "--stage", "memory"],
    ] {
        let (code, stdout, stderr) = nnc(args);
        assert_eq!(code, 1, "{args:?}: {stdout}{stderr}");
        assert!(
            stderr.contains("error[E0312]: a tensor would be too large"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("internal error"), "{args:?}: {stderr}");
    }
    let (code, _, stderr) = nnc(&["dump", "examples/digits_mlp.nn", "--set", "H=1e30"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("error[E0501]: `--set H=1e30` is out of range for the integer constant `H`"),
        "{stderr}"
    );
    // In range, but too large for a tensor.
    let (code, _, stderr) = nnc(&["dump", "examples/digits_mlp.nn", "--set", "H=9e18"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("error[E0312]"), "{stderr}");
}

/// The longest expression the parser builds (`syntax::MAX_OPERATORS`
/// operators, a tree as deep) is too deep to check: the error is reported
/// (exit code 1), and its syntax tree is dropped after the report.
#[test]
fn a_very_long_expression_is_an_error_not_a_crash() {
    let dir = crate::common::scratch("cli", "long");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("long.nn");
    let terms = vec!["1"; nnc::syntax::MAX_OPERATORS + 1];
    std::fs::write(&path, format!("const H = {}\n", terms.join(" + "))).unwrap();
    let (code, _, stderr) = nnc(&["check", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("error[E0001]: the expression is nested more than 5000 levels deep"),
        "{stderr}"
    );
    assert!(stderr.trim_end().ends_with("errors"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An expression of a million operators, whose syntax tree would overflow
/// even the deep stack, is a syntax error before the tree is built:
/// `nnc check` reports it (exit code 1) and `nnc fmt` leaves it as written,
/// for a left-nested chain (`1 + 1 + ...`) and a right-nested one (`- - ... 1`).
#[test]
fn an_expression_of_a_million_operators_is_a_syntax_error() {
    let dir = crate::common::scratch("cli", "million");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("long.nn");
    let file = path.to_str().unwrap();
    let message = format!(
        "error[E0001]: the expression has more than {} operators",
        nnc::syntax::MAX_OPERATORS
    );
    for text in [
        format!("const H = 1{}\n", " + 1".repeat(1_000_000)),
        format!("const H = {}1\n", "- ".repeat(1_000_000)),
    ] {
        std::fs::write(&path, &text).unwrap();
        let (code, _, stderr) = nnc(&["check", file]);
        assert_eq!(code, 1, "{}", &stderr[..stderr.len().min(2000)]);
        assert!(stderr.contains(&message), "{}", &stderr[..stderr.len().min(2000)]);
        let (code, _, stderr) = nnc(&["fmt", file]);
        assert_eq!(code, 0, "{}", &stderr[..stderr.len().min(2000)]);
        assert!(stderr.contains("1 item with syntax errors left as written"), "{stderr}");
        assert!(std::fs::read_to_string(&path).unwrap() == text, "the file changed");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `nnc grad` counts the forward pass as the step has it (loops kept, the
/// same passes): the whole step is larger than its forward pass, also for
/// a recurrent model whose loop the unrolled forward graph would repeat.
#[test]
fn grad_counts_comparable_graphs() {
    for example in ["examples/text_classify.nn", "examples/digits_mlp.nn"] {
        let (code, stdout, stderr) = nnc(&["grad", example]);
        assert_eq!(code, 0, "{stderr}");
        let first = stdout.lines().next().unwrap();
        let numbers: Vec<usize> = first
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect();
        let [step, forward] = numbers[..] else {
            panic!("two counts expected in {first}");
        };
        assert!(forward < step, "{first}");
    }
}

/// An `--init-from` checkpoint that cannot be read is a bad argument (exit
/// code 2, as the README says), found before the run starts.
#[test]
fn an_unreadable_init_from_is_a_usage_error() {
    for path in ["no/such/checkpoint.safetensors", "tests/data"] {
        let (code, _, stderr) = nnc(&["run", "examples/digits_mlp.nn", "--steps", "1", "--init-from", path]);
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.starts_with(&format!("error: cannot read checkpoint `{path}`")),
            "{stderr}"
        );
    }
}

/// A repeated `--set` takes the last value given for the name, as a
/// repeated flag does; an empty name is refused as one.
#[test]
fn the_last_set_of_a_name_wins() {
    let (code, ir, stderr) = nnc(&["dump", "examples/digits_mlp.nn", "--set", "H=3", "--set", "H=4"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(ir.contains("f32[64, 4] = param mlp_classifier.linear.w"), "{ir}");
    let (code, _, stderr) = nnc(&["run", "examples/digits_mlp.nn", "--set", "=3"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("the NAME of NAME=VALUE is empty in `=3`"), "{stderr}");
}

/// `nnc bench` fails as `run` does: 2 for a file it cannot read (a
/// directory), 1 for a program with errors, printed once as diagnostics
/// (coloured with `--color always`).
#[test]
fn bench_fails_as_run_does() {
    for command in ["run", "bench"] {
        let (code, _, stderr) = nnc(&[command, "tests/data"]);
        assert_eq!(code, 2, "{command}: {stderr}");
        assert!(
            stderr.starts_with("error: cannot read `tests/data`"),
            "{command}: {stderr}"
        );
        let (code, _, stderr) = nnc(&[command, "tests/data/err/missing_model.nn"]);
        assert_eq!(code, 1, "{command}: {stderr}");
        assert!(
            stderr.starts_with("error[E0405]: the program has no `model`"),
            "{command}: {stderr}"
        );
        let (_, _, coloured) = nnc(&[command, "--color", "always", "tests/data/err/missing_model.nn"]);
        assert!(coloured.contains('\u{1b}'), "{command}: {coloured}");
    }
}

/// `nnc bench` measures the file at other sizes (`--set`, `--batch`) and
/// refuses a constant the file does not have.
#[test]
fn bench_takes_other_sizes() {
    let flop = |extra: &[&str]| {
        let mut args = vec![
            "bench",
            "examples/digits_mlp.nn",
            "--backend",
            "jit",
            "--steps",
            "2",
            "--repeats",
            "1",
            "--json",
        ];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = nnc(&args);
        assert_eq!(code, 0, "{stderr}");
        let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(report["backend"], "jit");
        report["flop_per_step"].as_f64().unwrap()
    };
    let (full, small) = (flop(&[]), flop(&["--set", "H=24", "--batch", "8"]));
    // Products dominate: 64·(64·128 + 128·10) multiply-adds forward against
    // 8·(64·24 + 24·10), about 40 times fewer.
    assert!(full > 30.0 * small && full < 50.0 * small, "{full} against {small}");
    let (code, _, stderr) = nnc(&["bench", "examples/digits_mlp.nn", "--set", "HH=3"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("has no constant `HH` (did you mean `H`?)"), "{stderr}");
}

/// `nnc bench --warmup W` runs W untimed steps first, and the share of
/// steps on the team counts the timed ones only. The tuner's first steps
/// do not depend on timings: 8 on the team (3 settling, a block of 5),
/// then at least 3 on one thread (a switching step and the two timed
/// steps that can decide the block). So 5 timed steps after 3 all ran on
/// the team, and 3 after 8 all on one thread. The JSON lists each timed
/// step's time and the share of it the threads waited for a CPU.
#[test]
fn bench_warmup_steps_are_not_timed() {
    let share = |warmup: &str, steps: &str| {
        let args = ["bench", "examples/digits_mlp.nn", "--backend", "jit", "--json"];
        let args = [&args[..], &["--repeats", "1", "--warmup", warmup, "--steps", steps]].concat();
        let env = [("NNC_THREADS", Some("2")), ("NNC_ADAPTIVE", None)];
        let (code, stdout, stderr) = crate::common::nnc_with_env(&args, &env);
        assert_eq!(code, 0, "{stderr}");
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["threads"], 2);
        let times = report["step_ms"].as_array().unwrap();
        assert_eq!(times.len(), steps.parse::<usize>().unwrap(), "one time per timed step");
        assert!(times.iter().all(|t| t.as_f64().unwrap() > 0.0), "{times:?}");
        // Linux says how long the threads waited for a CPU: a share of
        // their time (a little over 1 at most: waits between timed steps
        // count too).
        let wait = report["cpu_wait_share"].as_f64().expect("a CPU wait share on Linux");
        assert!((0.0..1.5).contains(&wait), "{wait}");
        report["team_share"].as_f64().unwrap()
    };
    assert_eq!(share("3", "5"), 1.0);
    assert_eq!(share("8", "3"), 0.0);
    assert_eq!(share("0", "11"), 8.0 / 11.0, "the first 11 steps, timed");
}

/// `NNC_PROFILE=1` times each kernel over the timed steps alone: the
/// kernels' times add up to the steps' (they once counted the warm-up
/// steps too, here three times the timed ones).
#[test]
fn the_kernel_profile_covers_the_timed_steps() {
    let args = ["bench", "examples/digits_mlp.nn", "--backend", "jit", "--json"];
    let args = [&args[..], &["--repeats", "2", "--warmup", "30", "--steps", "15"]].concat();
    let env = [
        ("NNC_PROFILE", Some("1")),
        ("NNC_PROFILE_ALL", Some("1")),
        ("NNC_THREADS", Some("1")),
    ];
    let (code, stdout, stderr) = crate::common::nnc_with_env(&args, &env);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let times: Vec<f64> = report["step_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_f64().unwrap())
        .collect();
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let kernels: f64 = stderr
        .lines()
        .filter_map(|line| {
            line.trim()
                .strip_prefix("kernel ")?
                .split(", ")
                .nth(1)?
                .strip_suffix(" ms/step")
        })
        .map(|ms| ms.parse::<f64>().unwrap())
        .sum();
    assert!(
        kernels > 0.6 * mean && kernels < 1.2 * mean,
        "kernels {kernels} ms against steps of {mean} ms on average\n{stderr}"
    );
}

/// `nnc dump --set` prints the program with a constant changed, and names
/// the constants when one is unknown.
#[test]
fn dump_takes_constants_from_the_command_line() {
    let (code, ir, _) = nnc(&["dump", "benches/compare/lstm.nn", "--set", "T=4"]);
    assert_eq!(code, 0);
    assert!(ir.contains("%0: i32[B, 4] = input plays.x"), "{ir}");
    let (code, ir, _) = nnc(&["dump", "benches/compare/lstm.nn"]);
    assert_eq!(code, 0);
    assert!(ir.contains("%0: i32[B, 32] = input plays.x"), "{ir}");
    let (code, _, stderr) = nnc(&["dump", "benches/compare/lstm.nn", "--set", "TT=4"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("has no constant `TT` (did you mean `T`?)"), "{stderr}");
}

/// The code stages print every kernel and the step: CLIF functions, and
/// their machine code with the SIMD instructions the kernels use.
#[test]
fn dump_prints_the_generated_code() {
    let (code, clif, _) = nnc(&["dump", "--stage", "clif", "examples/digits_mlp.nn"]);
    assert_eq!(code, 0);
    let kernels = clif.matches("; kernel ").count();
    assert!(kernels >= 10, "{kernels} kernels in\n{clif}");
    assert!(clif.contains("; step\n") && clif.contains("f32x4"), "{clif}");
    let (code, asm, _) = nnc(&["dump", "--stage", "asm", "examples/digits_mlp.nn"]);
    assert_eq!(code, 0);
    assert_eq!(asm.matches("; kernel ").count(), kernels, "one listing per kernel");
    assert!(
        asm.contains("; step\n") && asm.contains("vmulps") && asm.contains("retq"),
        "{asm}"
    );
}

/// A program that checks but cannot be compiled at its batch size (a
/// product of 10²¹ elements): the code stages print the error on stderr
/// and exit with 1, as `run` does, rather than print it as the dump.
#[test]
fn dump_stages_that_cannot_compile_fail() {
    let dir = crate::common::scratch("cli", "dump-fails");
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(crate::common::root().join("examples/digits_mlp.nn")).unwrap();
    let data = crate::common::root().join("examples/data/digits.csv");
    let text = text
        .replace("\"data/digits.csv\"", &format!("{:?}", data.to_str().unwrap()))
        .replace("batch: 64", "batch: 100000");
    let path = dir.join("wide.nn");
    std::fs::write(&path, &text).unwrap();
    let path = path.to_str().unwrap();
    assert_eq!(nnc(&["check", path]).0, 0);
    for stage in ["fused", "memory", "clif", "asm"] {
        let (code, stdout, stderr) = nnc(&["dump", path, "--stage", stage, "--set", "H=10000000000000000"]);
        assert_eq!(code, 1, "{stage}: {stdout}{stderr}");
        assert!(stdout.is_empty(), "{stage}: {stdout}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains("is too large"),
            "{stage}: {stderr}"
        );
    }
    // Every tensor fits, but all of them together (parameters, optimizer
    // slots, gradients) would need more memory than can be addressed: the
    // plan says so (its offsets wrapped around before).
    let small_batch = dir.join("wide_small_batch.nn");
    std::fs::write(&small_batch, text.replace("batch: 100000", "batch: 4")).unwrap();
    let small_batch = small_batch.to_str().unwrap();
    let (code, stdout, stderr) = nnc(&["dump", small_batch, "--stage", "memory", "--set", "H=10000000000000000"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("bytes of memory"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A long recurrence is one loop: the LSTM's compiled step has the same
/// kernels at T = 128 and T = 512, its loops' bodies listed once; a short
/// one (the example's T = 32) runs unrolled.
#[test]
fn the_steps_of_a_recurrence_are_one_loop() {
    let kernels = |t: &str| {
        let (code, clif, _) = nnc(&["dump", "--stage", "clif", "examples/char_lstm.nn", "--set", t]);
        assert_eq!(code, 0);
        clif.matches("; kernel ").count()
    };
    let (short, long) = (kernels("T=128"), kernels("T=512"));
    assert_eq!(short, long, "kernels at T = 128 and T = 512");
    assert!(short < 60, "{short} kernels");
    let loops = |t: &str| {
        let (code, memory, _) = nnc(&["dump", "--stage", "memory", "examples/char_lstm.nn", "--set", t]);
        assert_eq!(code, 0);
        memory.matches("\nloop %").count()
    };
    assert_eq!(loops("T=128"), 2, "a forward and a backward loop");
    assert_eq!(loops("T=32"), 0, "unrolled");
}

/// A panic is an internal error: the message says so, names the file and
/// asks for a report, and the exit code is 3 (not Rust's 101).
#[test]
fn a_panic_is_an_internal_error_with_exit_code_3() {
    let env = [("NNC_TEST_PANIC", Some("1"))];
    let (code, _, stderr) = crate::common::nnc_with_env(&["check", "examples/digits_mlp.nn"], &env);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.starts_with("internal error: a panic asked for by NNC_TEST_PANIC at src/cli/mod.rs:"),
        "{stderr}"
    );
    assert!(stderr.contains("while processing examples/digits_mlp.nn"), "{stderr}");
    assert!(stderr.contains("This is a bug in nnc. Please report it"), "{stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
}

/// `NNC_ISA=avx2` caps nnc's own kernels and the JIT at AVX2 (to measure on
/// an AVX-512 host what an AVX2-only one runs), and changes no bit: every
/// microkernel gives the same bits, the column sums too. Twelve steps of
/// the char LSTM (its recurrent products are nnc's own, its bias gradients
/// column sums) end with the same losses either way. On an AVX2-only host
/// both runs take the same path, and the test still checks the knob
/// breaks nothing.
#[test]
fn an_avx2_cap_changes_no_bit() {
    let losses = |isa: Option<&str>| {
        let out = crate::common::scratch("isa", isa.unwrap_or("native"));
        let args = [
            "run",
            "examples/char_lstm.nn",
            "--steps",
            "12",
            "--json",
            "--out",
            out.to_str().unwrap(),
        ];
        let (code, stdout, stderr) =
            crate::common::nnc_with_env(&args, &[("NNC_ISA", isa), ("NNC_THREADS", Some("2"))]);
        assert_eq!(code, 0, "{stderr}");
        std::fs::remove_dir_all(out).unwrap();
        let summary = crate::common::events(&stdout).pop().expect("a summary");
        assert_eq!(summary["event"], "summary");
        (
            summary["train_loss"].as_f64().unwrap(),
            summary["val_loss"].as_f64().unwrap(),
        )
    };
    let (native, capped) = (losses(None), losses(Some("avx2")));
    assert!(native.0 > 0.5 && native.0 < 5.0, "{native:?}");
    assert_eq!(native.0.to_bits(), capped.0.to_bits(), "{native:?} against {capped:?}");
    assert_eq!(native.1.to_bits(), capped.1.to_bits(), "{native:?} against {capped:?}");
}

/// Output into a pipe its reader closed (`nnc dump ... | head -1`) ends
/// the process quietly, as any Unix filter: no "internal error".
#[cfg(unix)]
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(["dump", "--stage", "clif", "examples/gpt.nn"])
        .current_dir(crate::common::root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(!first.is_empty());
    // The reader is gone: the rest (hundreds of KB) meets a closed pipe.
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("internal error"), "{stderr}");
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        output.status
    );
}
