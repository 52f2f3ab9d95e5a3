//! Data parallelism: processes that share out each batch and sum their
//! gradients train the model one process trains on the whole batch. The
//! processes are simulated by threads (`collective::Threads`); under the
//! `mpi` feature the same run goes through `mpirun` too.

use std::collections::BTreeMap;
use std::sync::Arc;

use ndarray::ArrayD;
use nnc::collective::{Handle, Threads};
use nnc::runtime::{Backend, Overrides, Session};

#[cfg(feature = "mpi")]
use crate::common::nnc;
#[cfg(not(feature = "mpi"))]
use crate::common::nnc_with_env;
use crate::common::{root, scratch};

/// The digits MLP trained by `optimizer` (with dropout: each process draws
/// the masks of its rows as one process draws them).
fn program_text(optimizer: &str) -> String {
    model_text("linear(dropout(relu(linear(x, 32)), p: 0.3), 10)", optimizer)
}

/// A digits classifier `x -> body` trained by `optimizer`, 6 steps of 24.
fn model_text(body: &str, optimizer: &str) -> String {
    let data = root().join("examples/data/digits.csv");
    format!(
        r#"
data digits = csv("{}", x: "p0".."p63", y: "label", classes: 10, scale: 1 / 16, val: 0.2, seed: 0)

model mlp(x: f32[B, 64]) -> f32[B, 10] {{
    {body}
}}

loss cross_entropy(mlp(digits.x), digits.y)
optimizer {optimizer}
train {{ steps: 6, batch: 24, seed: 3 }}
eval {{ metrics: [loss, accuracy] }}
"#,
        data.display()
    )
}

fn session(dir: &std::path::Path, backend: Backend, collective: Option<Handle>) -> Session {
    let program = nnc::check::check_file(&dir.join("mlp.nn")).unwrap();
    assert!(
        !program.has_errors(),
        "{}",
        program.sources.render(&program.diagnostics, false)
    );
    let overrides = Overrides {
        backend,
        collective,
        ..Default::default()
    };
    Session::new(program, dir, &overrides).unwrap_or_else(|d| panic!("{}", d.0.message))
}

/// The tensors after `steps` steps, and every step's loss.
fn train(mut session: Session, steps: usize) -> (BTreeMap<String, ArrayD<f64>>, Vec<f64>) {
    let losses = (0..steps).map(|_| session.train_step().unwrap()).collect();
    session.sync();
    (session.tensors, losses)
}

/// `work` run by `size` threads standing for processes (each given its
/// member of one team), and what each returned, by rank.
fn in_processes<T: Send>(size: usize, work: impl Fn(Handle) -> T + Sync) -> Vec<T> {
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = Threads::team(size)
            .into_iter()
            .map(|member| scope.spawn(move || work(Handle(Arc::new(member)))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn largest_difference(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn processes_sharing_each_batch_train_like_one_process() {
    let dir = scratch("distributed", "threads");
    std::fs::create_dir_all(&dir).unwrap();
    // Plain SGD's update is as large as the gradient (a sum that is not
    // averaged would double it); Adam's is not, but clipping by global norm
    // must see the averaged gradient, not each process's.
    for (optimizer, backend, tolerance) in [
        ("sgd(lr: 0.5)", Backend::Interp, 1e-9),
        ("adam(lr: 1e-2, clip_norm: 0.5)", Backend::Interp, 1e-9),
        ("sgd(lr: 0.5)", Backend::Jit, 2e-5),
        ("adam(lr: 1e-2, clip_norm: 0.5)", Backend::Jit, 2e-5),
    ] {
        std::fs::write(dir.join("mlp.nn"), program_text(optimizer)).unwrap();
        assert_trains_like_one_process(&dir, optimizer, backend, tolerance);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Batch normalization's statistics are the whole batch's in every
/// process (`sync_mean`), so its parameters, its running statistics and
/// the losses are one process's too (with each share's own statistics
/// `beta` ends 3e-2 away from one process's).
#[test]
fn batch_norm_under_data_parallelism_normalizes_by_the_whole_batch() {
    let dir = scratch("distributed", "batch_norm");
    std::fs::create_dir_all(&dir).unwrap();
    for (optimizer, backend, tolerance) in [
        ("sgd(lr: 0.5)", Backend::Interp, 1e-9),
        ("sgd(lr: 0.5)", Backend::Jit, 2e-5),
        ("adam(lr: 1e-2)", Backend::Interp, 1e-9),
        ("adam(lr: 1e-2)", Backend::Jit, 2e-5),
    ] {
        // No bias before the normalization: its gradient is zero up to
        // rounding, and Adam would step it by `lr` in the rounding's sign.
        let text = model_text("linear(relu(batch_norm(linear(x, 32, bias: false))), 10)", optimizer);
        std::fs::write(dir.join("mlp.nn"), text).unwrap();
        assert_trains_like_one_process(&dir, optimizer, backend, tolerance);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Evaluation is shared out too: each process evaluates every P-th batch
/// (of the whole batch) and the totals are summed, so every process
/// reports one process's metrics, up to the order of the sums (without the
/// sum each would report its own batches' metrics).
#[test]
fn processes_share_the_evaluation_and_report_one_processs_metrics() {
    let dir = scratch("distributed", "evaluate");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mlp.nn"), program_text("sgd(lr: 0.5)")).unwrap();
    let names: Vec<String> = ["loss", "accuracy"].map(String::from).to_vec();
    // The model as initialized (the same in every process): trained, the
    // JIT's processes would hold parameters 1e-6 apart (sums in f32 in
    // another order), which this comparison is not about.
    let evaluate = |mut session: Session| session.evaluate(&names, usize::MAX).unwrap();
    for backend in [Backend::Interp, Backend::Jit] {
        let alone = evaluate(session(&dir, backend, None));
        // 359 validation rows: 15 batches of 24, shared out unevenly by 2
        // and evenly by 3.
        for size in [2, 3] {
            let results = in_processes(size, |member| evaluate(session(&dir, backend, Some(member))));
            for (rank, metrics) in results.iter().enumerate() {
                for (name, value) in &alone {
                    let shared = metrics[name];
                    assert!(
                        (shared - value).abs() <= 1e-12 * value.abs().max(1.0),
                        "{backend:?}, process {rank} of {size}: {name} {shared}, one process {value}"
                    );
                }
            }
        }
        assert!(alone["loss"] > 1.0 && alone["accuracy"] > 0.0, "{alone:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Trains `dir/mlp.nn` 6 steps in one process and in teams of 2 and 3
/// simulated processes: every process ends with the same bits, and those
/// are one process's tensors and losses within `tolerance`.
fn assert_trains_like_one_process(dir: &std::path::Path, optimizer: &str, backend: Backend, tolerance: f64) {
    let (alone, alone_losses) = train(session(dir, backend, None), 6);
    for size in [2, 3] {
        let results = in_processes(size, |member| train(session(dir, backend, Some(member)), 6));
        for (rank, (tensors, losses)) in results.iter().enumerate() {
            // Every process applies the same update: the same bits.
            assert_eq!(
                tensors, &results[0].0,
                "{optimizer}, {backend:?}: process {rank} of {size} drifted"
            );
            assert_eq!(losses, &results[0].1);
            for (name, value) in &alone {
                let difference = largest_difference(value, &tensors[name]);
                assert!(
                    difference <= tolerance,
                    "{optimizer}, {backend:?}, {size} processes: {name} differs by {difference:e} from one process"
                );
            }
            for (step, (a, b)) in alone_losses.iter().zip(losses).enumerate() {
                assert!(
                    (a - b).abs() <= tolerance * a.abs().max(1.0),
                    "{optimizer}, {backend:?}, {size} processes: the loss of step {step} is {b}, one process {a}"
                );
            }
        }
    }
    // The parameters moved: the comparison is not of two untrained models.
    let (initial, _) = train(session(dir, backend, None), 0);
    let moved = alone
        .iter()
        .filter(|(name, _)| !name.starts_with("optimizer."))
        .map(|(name, value)| largest_difference(value, &initial[name]))
        .fold(0.0, f64::max);
    assert!(moved > 1e-3, "{backend:?}: training moved no parameter ({moved:e})");
}

#[test]
fn a_batch_that_does_not_divide_among_the_processes_is_an_error() {
    let dir = scratch("distributed", "divide");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("mlp.nn"),
        program_text("sgd(lr: 0.5)").replace("batch: 24", "batch: 25"),
    )
    .unwrap();
    let program = nnc::check::check_file(&dir.join("mlp.nn")).unwrap();
    let member = Threads::team(2).remove(0);
    let overrides = Overrides {
        backend: Backend::Interp,
        collective: Some(Handle(Arc::new(member))),
        ..Default::default()
    };
    let Err((diagnostic, _)) = Session::new(program, &dir, &overrides) else {
        panic!("a batch of 25 was shared among 2 processes");
    };
    assert_eq!(
        diagnostic.message,
        "the batch (25) must divide evenly among the 2 processes of this run"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A launch by `mpirun` (its environment) of a build without MPI says how
/// to build one, and trains nothing.
#[cfg(not(feature = "mpi"))]
#[test]
fn a_build_without_mpi_launched_by_mpirun_says_how_to_build_one() {
    let (code, _, stderr) = nnc_with_env(
        &["run", "examples/digits_mlp.nn", "--steps", "1"],
        &[("OMPI_COMM_WORLD_SIZE", Some("2"))],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("built without MPI") && stderr.contains("--features mpi"),
        "{stderr}"
    );
}

/// `mpirun -np 2 nnc run`: one run directory, written by process 0, whose
/// final metrics are those of one process on the whole batch.
#[cfg(feature = "mpi")]
#[test]
fn mpirun_with_two_processes_trains_like_one_process() {
    let dir = scratch("distributed", "mpirun");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mlp.nn");
    std::fs::write(&file, program_text("adam(lr: 1e-2, clip_norm: 0.5)")).unwrap();
    let file = file.to_str().unwrap();
    let (one, two) = (dir.join("one"), dir.join("two"));
    let (code, stdout, stderr) = nnc(&["run", file, "--json", "--out", one.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let alone = summary(&stdout);
    let stdout = mpirun(&["run", file, "--json", "--out", two.to_str().unwrap()]);
    // Process 0 alone prints: one start event, one summary.
    let events = crate::common::events(&stdout);
    let starts: Vec<_> = events.iter().filter(|e| e["event"] == "start").collect();
    assert_eq!(starts.len(), 1, "{stdout}");
    assert_eq!(starts[0]["processes"], 2);
    assert_eq!(starts[0]["batch"], 24);
    let shared = summary(&stdout);
    for key in ["train_loss", "val_loss"] {
        let (a, b) = (alone[key].as_f64().unwrap(), shared[key].as_f64().unwrap());
        assert!(
            (a - b).abs() <= 1e-4 * a.abs().max(1.0),
            "{key}: one process {a}, two {b}"
        );
    }
    assert!(two.join("checkpoint.safetensors").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `mpirun -np 2 nnc run ... --stop-after`, then `mpirun -np 2 nnc run
/// --resume DIR`: the parameters of the uninterrupted two-process run, bit
/// for bit (process 1 reads the checkpoint process 0 claimed).
#[cfg(feature = "mpi")]
#[test]
fn a_run_under_mpirun_resumes_under_mpirun() {
    let dir = scratch("distributed", "mpirun-resume");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mlp.nn");
    std::fs::write(&file, program_text("adam(lr: 1e-2, clip_norm: 0.5)")).unwrap();
    let file = file.to_str().unwrap();
    let (whole, parts) = (dir.join("whole"), dir.join("parts"));
    mpirun(&["run", file, "--quiet", "--out", whole.to_str().unwrap()]);
    mpirun(&[
        "run",
        file,
        "--quiet",
        "--stop-after",
        "2",
        "--out",
        parts.to_str().unwrap(),
    ]);
    assert_eq!(
        nnc::runtime::checkpoint::load(&parts.join("checkpoint.safetensors"))
            .unwrap()
            .step,
        2
    );
    mpirun(&["run", file, "--quiet", "--resume", parts.to_str().unwrap()]);
    let a = nnc::runtime::checkpoint::load(&whole.join("checkpoint.safetensors")).unwrap();
    let b = nnc::runtime::checkpoint::load(&parts.join("checkpoint.safetensors")).unwrap();
    assert_eq!((a.step, b.step), (6, 6));
    assert_eq!(a.tensors, b.tensors);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A signal that reaches one process only (here process 1, which prints
/// nothing) stops both after the same step: process 0 logs the
/// interruption and writes its checkpoint at that step. (Alone, process 1
/// left while process 0 waited in the step's sum, and `mpirun` then killed
/// process 0 with nothing saved.)
#[cfg(feature = "mpi")]
#[test]
fn a_signal_to_one_process_stops_every_process_after_the_same_step() {
    use std::io::Read;
    let dir = scratch("distributed", "mpirun-signal");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mlp.nn");
    let text = program_text("sgd(lr: 0.1)").replace("steps: 6,", "steps: 100000000,");
    std::fs::write(&file, text).unwrap();
    let out = dir.join("run");
    let mut child = std::process::Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np", "2"])
        .arg(env!("CARGO_BIN_EXE_nnc"))
        .args(["run", file.to_str().unwrap(), "--json", "--out", out.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("mpirun runs (the test command installs Open MPI)");
    // Process 1, found by the rank Open MPI gives it, once training runs.
    let start = std::time::Instant::now();
    let follower = loop {
        assert!(start.elapsed().as_secs() < 60, "process 1 never started");
        std::thread::sleep(std::time::Duration::from_millis(200));
        if !out.join("metrics.jsonl").exists() {
            continue;
        }
        let found = std::fs::read_dir("/proc").unwrap().flatten().find(|entry| {
            let read = |name: &str| std::fs::read(entry.path().join(name)).unwrap_or_default();
            let environ = String::from_utf8_lossy(&read("environ")).into_owned();
            let cmdline = String::from_utf8_lossy(&read("cmdline")).into_owned();
            // This run's process (its `--out` is this test's), not one of
            // another test's `mpirun` running beside it.
            cmdline.contains(env!("CARGO_BIN_EXE_nnc"))
                && cmdline.split('\0').any(|arg| std::path::Path::new(arg) == out)
                && environ.split('\0').any(|v| v == "OMPI_COMM_WORLD_RANK=1")
        });
        if let Some(entry) = found {
            break entry.file_name().to_string_lossy().into_owned();
        }
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &follower])
        .status()
        .unwrap();
    assert!(killed.success());
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed().as_secs() > 60 {
            let _ = child.kill();
            panic!("mpirun did not end after process 1 was signalled");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    let stopped = crate::common::events(&stdout)
        .into_iter()
        .find(|e| e["event"] == "interrupted")
        .unwrap_or_else(|| panic!("process 0 logged no interruption: {stdout}"));
    let step = stopped["step"].as_u64().unwrap();
    assert!(step > 0, "{stopped}");
    let saved = nnc::runtime::checkpoint::load(&out.join("checkpoint.safetensors")).unwrap();
    assert_eq!(saved.step, step);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `mpirun -np 2 nnc ARGS`, which must succeed: its standard output.
#[cfg(feature = "mpi")]
fn mpirun(args: &[&str]) -> String {
    let output = std::process::Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np", "2"])
        .arg(env!("CARGO_BIN_EXE_nnc"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("mpirun runs (the test command installs Open MPI)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?}: {stdout}\n{stderr}");
    stdout
}

#[cfg(feature = "mpi")]
fn summary(stdout: &str) -> serde_json::Value {
    crate::common::events(stdout)
        .into_iter()
        .find(|e| e["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary in {stdout}"))
}
