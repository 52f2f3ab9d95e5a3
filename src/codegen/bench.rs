//! Benchmarks: the GEMM crates on the examples' matrix shapes, and whole
//! training steps of an example on the interpreter and the JIT.

use std::collections::HashMap;
use std::time::Instant;

use Layout::{ATransposed, BTransposed, MergedHeads, Plain};

/// Median seconds per call of `f`, over `rounds` rounds of enough calls to
/// take ~20 ms each.
fn median_seconds(rounds: usize, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut calls = 0usize;
    while start.elapsed().as_secs_f64() < 0.02 {
        f();
        calls += 1;
    }
    let per_round = calls.max(1);
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_round {
                f();
            }
            start.elapsed().as_secs_f64() / per_round as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// `(m, k, n, batch, layout, where)`: the products of the examples'
/// training steps (B = the file's batch).
const SHAPES: &[(usize, usize, usize, usize, Layout, &str)] = &[
    (64, 64, 128, 1, Plain, "mlp fwd x@w1"),
    (64, 128, 10, 1, Plain, "mlp fwd h@w2"),
    (64, 64, 128, 1, ATransposed, "mlp bwd x^T@dh"),
    (4096, 9, 16, 1, Plain, "cnn conv1"),
    (1024, 144, 32, 1, Plain, "cnn conv2"),
    (144, 1024, 32, 1, ATransposed, "cnn conv2 dW"),
    (12544, 144, 32, 1, Plain, "cnn28 conv2"),
    (144, 12544, 32, 1, ATransposed, "cnn28 conv2 dW"),
    (12544, 32, 144, 1, Plain, "cnn28 conv2 dpatches"),
    (9, 50176, 16, 1, ATransposed, "cnn28 conv1 dW"),
    (32, 128, 512, 1, Plain, "lstm h@Wh"),
    (16, 128, 512, 1, Plain, "lstm h@Wh half"),
    (16, 512, 128, 1, Plain, "lstm dg@Whᵀ half"),
    (1024, 64, 512, 1, Plain, "lstm T32 x@Wx"),
    (16384, 64, 512, 1, Plain, "lstm T512 x@Wx"),
    (64, 1024, 512, 1, ATransposed, "lstm T32 dWx"),
    (64, 16384, 512, 1, ATransposed, "lstm T512 dWx"),
    (2048, 128, 128, 1, Plain, "gpt q/k/v/o"),
    (2048, 128, 512, 1, Plain, "gpt mlp up"),
    (2048, 512, 128, 1, Plain, "gpt mlp down"),
    (128, 2048, 512, 1, ATransposed, "gpt mlp up dW"),
    (64, 32, 64, 128, Plain, "gpt attention q@k^T"),
    (2048, 384, 1536, 1, Plain, "gpt-small mlp up"),
    (2048, 1536, 384, 1, Plain, "gpt-small mlp down"),
    (1536, 2048, 384, 1, ATransposed, "gpt-small mlp dW"),
    (384, 2048, 1536, 1, ATransposed, "gpt-small mlp up dW"),
    (384, 2048, 384, 1, ATransposed, "gpt-small q/k/v/o dW"),
    (2048, 384, 384, 1, Plain, "gpt-small q/k/v/o"),
    (128, 64, 128, 96, Plain, "gpt-small attention q@k^T"),
    (128, 128, 64, 96, Plain, "gpt-small attention p@v"),
    (128, 128, 64, 96, ATransposed, "gpt-small attention p^T@do"),
    (128, 128, 64, 96, MergedHeads, "gpt-small attention p@v, C merged"),
    (128, 784, 1024, 1, Plain, "mlp-wide fwd x@w1"),
    (128, 1024, 1024, 1, Plain, "mlp-wide fwd h@w2"),
    (1024, 128, 1024, 1, ATransposed, "mlp-wide bwd h^T@dy"),
    (128, 1024, 1024, 1, BTransposed, "mlp-wide bwd dy@w2ᵀ"),
    (1024, 1024, 1024, 1, Plain, "square 1024"),
];

/// How a benchmarked product's operands lie in memory.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// Row-major `A`, `B` and `C`, batch entries one after another.
    Plain,
    /// `A` stored `[k, m]` (a weight gradient's `xᵀ @ dy`).
    ATransposed,
    /// `B` stored `[n, k]` (an input gradient's `dy @ Wᵀ`).
    BTransposed,
    /// Entries `[B, 6]` (batch, head) with `C` written into the merged
    /// heads' layout `[B, m, 6, n]`, as the attention's `P @ V` writes it.
    MergedHeads,
}

/// The descriptor of an `m×k×n` product of `batch` entries laid out as
/// `layout` (`A`, then `B`, then `C` in one arena), cut into `parts`.
fn bench_desc(m: usize, k: usize, n: usize, batch: usize, layout: Layout, parts: usize) -> super::gemm::MatMulDesc {
    use super::gemm::{MatMulDesc, Operand};
    let (sa, sb) = (m * k * batch, k * n * batch);
    let heads = if layout == MergedHeads { 6 } else { 1 };
    let entries = |size: usize| [0, 0, (heads * size) as isize, size as isize];
    let (a_row, a_col) = if layout == ATransposed {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    let (b_row, b_col) = if layout == BTransposed {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    let c_batch = if layout == MergedHeads {
        [0, 0, (m * n * heads) as isize, n as isize]
    } else {
        entries(m * n)
    };
    MatMulDesc {
        m,
        k,
        n,
        batch: [1, 1, batch / heads, heads],
        a: Operand {
            offset: 0,
            batch: entries(m * k),
            row: a_row,
            col: a_col,
        },
        b: Operand {
            offset: sa as isize,
            batch: entries(k * n),
            row: b_row,
            col: b_col,
        },
        c: Operand {
            offset: (sa + sb) as isize,
            batch: c_batch,
            row: (n * heads) as isize,
            col: 1,
        },
        parts,
        ..Default::default()
    }
}

/// GFLOP/s of `gemm` and of nnc's own product (`gemm::packed`), each on
/// one thread and on `threads` threads through the JIT's own split over a
/// [`Team`] (nnc's own cut by rows only, and cut as `nnc_matmul` cuts it:
/// by columns when the rows are few), and `matrixmultiply` (its own threading, set
/// by `MATMUL_NUM_THREADS`) on the examples' shapes, as a Markdown table;
/// with `only`, just the shapes whose "where" contains it (`"square 1024"`:
/// the matmul peak benches/compare measures).
///
/// [`Team`]: super::team::Team
pub fn gemm_crates(threads: usize, only: Option<&str>) -> String {
    use super::gemm::{crate_matmul, packed, run_parts, MatMul};
    let team = super::team::Team::new(threads);
    let mut out = format!(
        "| shape m×k×n (×batch) | where | gemm 1 thread | gemm {threads} threads (split) | own 1 thread | own {threads} threads (rows) | own {threads} threads (split) | matrixmultiply |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n"
    );
    for &(m, k, n, batch, layout, place) in SHAPES {
        if only.is_some_and(|only| !place.contains(only)) {
            continue;
        }
        let (sa, sb, sc) = (m * k * batch, k * n * batch, m * n * batch);
        let mut arena: Vec<f32> = (0..sa + sb + sc).map(|i| (i % 7) as f32 * 0.1).collect();
        let flops = 2.0 * (m * k * n * batch) as f64;
        let mut row = format!(
            "| {m}×{k}×{n}{} | {place} |",
            if batch > 1 {
                format!(" ×{batch}")
            } else {
                String::new()
            }
        );
        let (own, theirs): (MatMul, MatMul) = (packed::gemm, crate_matmul);
        let runs = [
            (theirs, 1, false),
            (theirs, threads, false),
            (own, 1, false),
            (own, threads, false),
            (own, threads, true),
        ];
        for (product, t, columns) in runs {
            let desc = bench_desc(m, k, n, batch, layout, t);
            let pointer = arena.as_mut_ptr() as usize;
            let seconds = median_seconds(7, || {
                team.run(t, &|p| unsafe {
                    run_parts(&desc, pointer as *mut f32, p, t, product, columns)
                });
            });
            row += &format!(" {:.0} |", flops / seconds / 1e9);
        }
        let desc = bench_desc(m, k, n, batch, layout, 1);
        let pointer = arena.as_mut_ptr();
        let seconds = median_seconds(7, || {
            for entry in 0..batch {
                let at = |o: &super::gemm::Operand| o.at(&desc.batch, entry);
                let (a, b, c) = (&desc.a, &desc.b, &desc.c);
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        pointer.offset(at(a)),
                        a.row,
                        a.col,
                        pointer.offset(at(b)),
                        b.row,
                        b.col,
                        0.0,
                        pointer.offset(at(c)),
                        c.row,
                        c.col,
                    )
                }
            }
        });
        row += &format!(" {:.0} |\n", flops / seconds / 1e9);
        out += &row;
    }
    out
}

/// One backend's numbers for one example.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    pub example: String,
    pub backend: String,
    /// From reading the file to a step that can run (check, lower,
    /// differentiate, optimize, load data, and for the JIT compile).
    pub compile_ms: f64,
    /// Median over all timed steps of one step's execution (inputs fed,
    /// forward, backward, update); building the batch is not included.
    pub ms_per_step_median: f64,
    /// The fastest step: on a host shared with other tenants, the least
    /// disturbed estimate of what the code costs.
    pub ms_per_step_min: f64,
    pub steps_per_s: f64,
    /// Floating-point operations of one step (see [`flops`]).
    pub flop_per_step: f64,
    pub gflop_per_s: f64,
    /// The process's peak resident memory after the run (`VmHWM`).
    pub peak_rss_bytes: u64,
    /// Threads of the JIT's team (1 for the interpreter), and the share of
    /// the steps the whole team ran (the rest ran on one thread, chosen by
    /// the step-time tuner).
    pub threads: usize,
    pub team_share: f64,
    /// Every timed step's time (ms), in order, repeats one after another:
    /// for the spread the median hides (a neighbour's load comes in
    /// stretches of steps).
    pub step_ms: Vec<f64>,
    /// The share of the timed steps' time that the threads that ran them
    /// were ready to run but waited for a CPU (other processes had them):
    /// their waits summed, over the steps' time × those threads. `None`
    /// where the kernel does not say (`/proc/self/task/*/schedstat`).
    pub cpu_wait_share: Option<f64>,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} [{}]: compile {:.0} ms, {:.3} ms/step (median), fastest {:.3} ms, {:.1} steps/s, {:.2} GFLOP/s, peak RSS {:.0} MiB",
            self.example,
            self.backend,
            self.compile_ms,
            self.ms_per_step_median,
            self.ms_per_step_min,
            self.steps_per_s,
            self.gflop_per_s,
            self.peak_rss_bytes as f64 / (1 << 20) as f64
        )?;
        if self.threads > 1 {
            write!(
                f,
                ", {:.0} % of steps on {} threads",
                100.0 * self.team_share,
                self.threads
            )?;
        }
        // Waits under 2 % are the scheduler's ordinary noise.
        if let Some(wait) = self.cpu_wait_share.filter(|w| *w >= 0.02) {
            write!(
                f,
                "; its threads waited for a CPU {:.0} % of the time (other processes ran)",
                100.0 * wait
            )?;
        }
        Ok(())
    }
}

impl BenchReport {
    /// One line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "example": self.example,
            "backend": self.backend,
            "compile_ms": self.compile_ms,
            "ms_per_step_median": self.ms_per_step_median,
            "ms_per_step_min": self.ms_per_step_min,
            "steps_per_s": self.steps_per_s,
            "flop_per_step": self.flop_per_step,
            "gflop_per_s": self.gflop_per_s,
            "peak_rss_bytes": self.peak_rss_bytes,
            "threads": self.threads,
            "team_share": self.team_share,
            "step_ms": self.step_ms,
            "cpu_wait_share": self.cpu_wait_share,
        })
        .to_string()
    }
}

/// Floating-point operations of one run of `graph`: `2·m·n·k` per matrix
/// product, one per element of element-wise ops and per reduced element.
pub fn flops(graph: &crate::ir::Graph, dims: &std::collections::HashMap<String, i64>) -> f64 {
    use crate::prim::Prim;
    let count = |shape: &[crate::check::dims::Dim]| -> f64 {
        crate::interp::eval_shape(shape, dims).map_or(0.0, |s| s.iter().product::<usize>() as f64)
    };
    let mut total = 0.0;
    for id in graph.topo_order() {
        let node = graph.node(id);
        total += match &node.op {
            Prim::MatMul => {
                let a = &graph.node(graph.inputs(id)[0]).shape;
                let k = a.last().map_or(0.0, |d| count(std::slice::from_ref(d)));
                2.0 * count(&node.shape) * k
            }
            Prim::Unary(_) | Prim::Binary(_) | Prim::Select => count(&node.shape),
            Prim::Reduce { .. } => count(&graph.node(graph.inputs(id)[0]).shape),
            Prim::Scan(looped) => looped.length as f64 * flops(&looped.body, dims),
            _ => 0.0,
        };
    }
    total
}

fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Sizes that differ from the file's: constants (`--set`) and the batch.
#[derive(Clone, Debug, Default)]
pub struct Sizes {
    pub settings: Vec<(String, f64)>,
    pub batch: Option<usize>,
}

fn session(path: &std::path::Path, sizes: &Sizes) -> Result<crate::runtime::Session, String> {
    let program = crate::check::check_file_with(path, sizes.settings.clone())?;
    if program.has_errors() {
        return Err(program.sources.render(&program.diagnostics, false));
    }
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    // The session only prepares data and tensors; each backend's step is
    // built below (a JIT session would compile a step of its own).
    let overrides = crate::runtime::Overrides {
        backend: crate::runtime::Backend::Interp,
        batch: sizes.batch,
        ..Default::default()
    };
    crate::runtime::Session::new(program, base, &overrides).map_err(|(d, _)| d.message)
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times.get(times.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The session's training step compiled with `options` at the session's
/// batch size and loaded with its tensors, and the names of the inputs the
/// step takes (the feeds to keep from `Session::step_env`).
pub fn compile_step(
    session: &crate::runtime::Session,
    options: &super::CompileOptions,
) -> Result<(super::Compiled, Vec<String>), String> {
    let dims = std::collections::HashMap::from([(crate::check::data::BATCH.to_string(), session.batch as i64)]);
    let mut compiled = super::Compiled::compile(&session.step_graph, &dims, options)?;
    for (name, value) in &session.tensors {
        if compiled.has_tensor(name) {
            compiled.set_tensor(name, value)?;
        }
    }
    let inputs = session
        .step_graph
        .leaves(crate::ir::input_name)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    Ok((compiled, inputs))
}

/// Trains `path` for `warmup` untimed steps and then `steps` timed ones,
/// `repeats` times over (each repeat starts from the same initial state
/// and compiles again), on `backend` (`interp`, `jit` or `both`), and
/// reports each backend.
pub fn bench(
    path: &std::path::Path,
    backend: &str,
    (warmup, steps): (usize, usize),
    repeats: usize,
    sizes: &Sizes,
) -> Result<Vec<BenchReport>, String> {
    let backends: Vec<&str> = match backend {
        "both" => vec!["interp", "jit"],
        "interp" | "jit" => vec![backend],
        other => return Err(format!("unknown backend `{other}` (interp, jit or both)")),
    };
    let example = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut reports = Vec::new();
    for backend in backends {
        let mut compile = Vec::new();
        let mut times = Vec::new();
        let mut work = 0.0;
        let (mut threads, mut team_steps) = (1, 0u64);
        // Time the process's threads waited for a CPU during timed steps,
        // and the threads that ran then (the most of any repeat): the
        // threads' counters when timing started, read again when it stops.
        let (mut wait, mut ran) = (0u64, 0usize);
        let mut wait_from = None;
        let mut note_wait = |timed: bool| {
            if timed && wait_from.is_none() {
                wait_from = thread_times();
            } else if !timed {
                if let (Some(start), Some(now)) = (wait_from.take(), thread_times()) {
                    let (w, r) = waited(&start, &now);
                    wait += w;
                    ran = ran.max(r);
                }
            }
        };
        // Each kernel's time over the timed steps (`NNC_PROFILE`).
        let mut profile = Vec::new();
        for _ in 0..repeats.max(1) {
            let start = Instant::now();
            let mut session = session(path, sizes)?;
            let dims = std::collections::HashMap::from([(crate::check::data::BATCH.to_string(), session.batch as i64)]);
            work = flops(&session.step_graph, &dims);
            if backend == "interp" {
                compile.push(start.elapsed().as_secs_f64());
                for i in 0..warmup + steps {
                    let env = session.step_env(i as u64);
                    note_wait(i >= warmup);
                    let t = Instant::now();
                    let values = crate::interp::run(&session.step_graph, &env).map_err(|e| e.to_string())?;
                    for (name, value) in values.outputs() {
                        if let Some(target) = name.strip_prefix("new ") {
                            session.tensors.insert(target.to_string(), value.clone());
                        }
                    }
                    if i >= warmup {
                        times.push(t.elapsed().as_secs_f64());
                    }
                    session.step += 1;
                }
                note_wait(false);
            } else {
                let (mut compiled, inputs) = compile_step(&session, &super::CompileOptions::default())?;
                compile.push(start.elapsed().as_secs_f64());
                // The tuner counts every step; the warm-up ones are not timed.
                let mut team_warmup = 0;
                for i in 0..warmup + steps {
                    // The step's batch and scalars, as `Session::train_step`
                    // feeds them (not `step_env`, which would copy every
                    // parameter and moment through the caches before each
                    // step: 45 MB for mlp-wide, 260 MB for gpt-small).
                    let mut feeds = session.step_inputs(i as u64);
                    feeds.retain(|k, _| inputs.contains(k));
                    note_wait(i >= warmup);
                    if i == warmup {
                        // The profile covers the timed steps only.
                        super::calls::take_profile();
                    }
                    let t = Instant::now();
                    compiled.run(&feeds, session.seed, i as u64)?;
                    if i >= warmup {
                        times.push(t.elapsed().as_secs_f64());
                    } else if i + 1 == warmup {
                        team_warmup = compiled.team_steps();
                    }
                    session.step += 1;
                }
                // Before the team's threads end with `compiled`.
                note_wait(false);
                for (k, t) in super::calls::take_profile().into_iter().enumerate() {
                    super::calls::add_kernel_time(&mut profile, k, t);
                }
                threads = compiled.threads();
                team_steps += compiled.team_steps() - team_warmup;
            }
        }
        let timed: f64 = times.iter().sum();
        // The kernel updates a running thread's counters at ticks and
        // switches: over a few short steps none may have moved (no wait).
        let measured = thread_times().is_some();
        let cpu_wait_share = (measured && timed > 0.0).then(|| wait as f64 / 1e9 / (timed * ran.max(1) as f64));
        let team_share = team_steps as f64 / times.len().max(1) as f64;
        let runs = times.len().max(1) as f64;
        let fastest = times.iter().copied().fold(f64::INFINITY, f64::min);
        let step_ms: Vec<f64> = times.iter().map(|t| 1e3 * t).collect();
        let per_step = median(times);
        if !profile.is_empty() {
            let total: f64 = profile.iter().map(|d| d.as_secs_f64()).sum();
            let mut ranked: Vec<(usize, f64)> = profile.iter().map(|d| d.as_secs_f64()).enumerate().collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
            for (k, t) in ranked.iter().take(if std::env::var_os("NNC_PROFILE_ALL").is_some() {
                usize::MAX
            } else {
                15
            }) {
                eprintln!("  kernel {k}: {:.1}%, {:.3} ms/step", 100.0 * t / total, 1e3 * t / runs);
            }
        }
        reports.push(BenchReport {
            example: example.clone(),
            backend: backend.to_string(),
            compile_ms: 1e3 * median(compile),
            ms_per_step_median: 1e3 * per_step,
            ms_per_step_min: 1e3 * fastest,
            steps_per_s: 1.0 / per_step,
            flop_per_step: work,
            gflop_per_s: work / per_step / 1e9,
            peak_rss_bytes: peak_rss(),
            threads,
            team_share,
            step_ms,
            cpu_wait_share,
        });
    }
    Ok(reports)
}

/// Each thread of the process (alive now) by id: nanoseconds on a CPU and
/// nanoseconds ready to run but waiting for one (the first two fields of
/// `/proc/self/task/TID/schedstat`). `None` where there is no such file
/// (not Linux, or a kernel without schedstats).
fn thread_times() -> Option<HashMap<String, (u64, u64)>> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let mut times = HashMap::new();
    for task in tasks.flatten() {
        // A thread that ended since the listing has no file any more.
        if let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) {
            times.insert(task.file_name().to_string_lossy().into_owned(), run_and_delay(&text)?);
        }
    }
    (!times.is_empty()).then_some(times)
}

/// Between two [`thread_times`]: the waits summed over the threads, and
/// how many threads ran.
fn waited(before: &HashMap<String, (u64, u64)>, after: &HashMap<String, (u64, u64)>) -> (u64, usize) {
    let (mut wait, mut ran) = (0, 0);
    for (id, &(cpu, delay)) in after {
        let (cpu0, delay0) = before.get(id).copied().unwrap_or((0, 0));
        wait += delay.saturating_sub(delay0);
        ran += usize::from(cpu > cpu0);
    }
    (wait, ran)
}

/// The time on a CPU and the run delay (ns) of a `schedstat` line:
/// `on-CPU ns, waiting ns, time slices`.
fn run_and_delay(schedstat: &str) -> Option<(u64, u64)> {
    let mut fields = schedstat.split_whitespace().map(|f| f.parse().ok());
    Some((fields.next()??, fields.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_delay_is_the_second_field_of_schedstat() {
        assert_eq!(run_and_delay("975990 41250 2\n"), Some((975990, 41250)));
        assert_eq!(run_and_delay("975990"), None);
        assert_eq!(run_and_delay("975990 x 2"), None);
        let before = HashMap::from([("1".to_string(), (10, 5)), ("2".to_string(), (7, 0))]);
        let after = HashMap::from([
            ("1".to_string(), (20, 9)),
            ("2".to_string(), (7, 3)),
            ("3".to_string(), (4, 2)),
        ]);
        // Threads 1 and 3 ran; every thread's wait counts.
        assert_eq!(waited(&before, &after), (4 + 3 + 2, 2));
        if std::path::Path::new("/proc/self/task").exists() {
            let times = thread_times().expect("schedstat on Linux");
            assert!(!times.is_empty());
        }
    }
}
