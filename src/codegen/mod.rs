//! Code generation: a step graph (or an evaluation graph) in, one native
//! function out, with every buffer planned in one arena.
//!
//! The stages: [`expand::Bound`] binds the sizes, [`fuse`] decides which
//! nodes get buffers and groups them into kernels, [`memory`] places the
//! buffers, [`kernels`] and [`emit`] write each kernel as CLIF (loops over
//! its index space, vectorized with `f32x4`), [`compile`] compiles each
//! kernel function once, and `step.rs` links the kernels, the GEMM calls
//! and the copies into one `step` function. A loop node (`scan`) is one
//! kernel whose body went through the same stages once
//! ([`fuse::Fused::bodies`], [`memory::LoopPlan`]); the step runs it as a
//! loop over its steps.
//! [`Compiled`] owns the code and the arena and is what the runtime calls.
//!
//! Numbers: everything is computed in `f32`. Tensors of every dtype are
//! stored as `f32` — `i32` values as integral floats, bools as 0.0 / 1.0 —
//! so the layout is the same for every dtype and ids round-trip exactly up
//! to 2^24. Host values are converted from and to `f64` only in
//! [`Compiled::set_tensor`], [`Compiled::tensor`], the inputs of
//! [`Compiled::run`] and [`Compiled::output`].

pub mod accumulate;
mod arena;
pub mod bench;
mod caches;
pub mod calls;
pub mod compile;
mod descriptors;
pub mod emit;
pub mod expand;
pub mod expr;
pub mod fuse;
pub mod gemm;
pub mod index;
pub mod kernels;
pub mod math;
pub mod memory;
pub mod share;
mod step;
pub mod subnormal;
pub mod team;
pub mod tune;
pub mod window;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use ndarray::{ArrayD, IxDyn};

use crate::ir::Graph;
use crate::prim::Prim;
use arena::{allocate_arena, arena_lines, Arena, Line};
pub use caches::{stream_stacks_above, STREAM_STACKS_ABOVE};

/// How to compile.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// Check every generated load and store against its buffer; a failed
    /// check makes [`Compiled::run`] return an error naming the kernel.
    pub check_bounds: bool,
    /// Threads for matrix products and large kernels (1 = the caller's);
    /// the default is `NNC_THREADS` or the machine's cores.
    pub threads: usize,
    /// Let each step run on the calling thread alone while that is faster
    /// than the team (see `tune.rs`); the default is on unless
    /// `NNC_ADAPTIVE=0`.
    pub adaptive: bool,
    /// Run the step with subnormal floats flushed to zero (see
    /// `subnormal.rs`); the default is on unless `NNC_FLUSH_SUBNORMALS=0`.
    pub flush_subnormals: bool,
    /// Ask for huge pages for an arena of 32 MB or more (see `arena.rs`);
    /// the default is on unless `NNC_HUGE_PAGES=0`.
    pub huge_pages: bool,
    /// The processes a data-parallel step's `all_reduce` sums over
    /// (`crate::collective`); `None` for one process.
    pub collective: Option<crate::collective::Handle>,
    /// A loop whose stacked results take more bytes than this stores them
    /// around the caches (`step/loops.rs`); the default is half the last-level
    /// cache ([`stream_stacks_above`]), or `NNC_STREAM_STACKS_MB` MiB.
    pub stream_stacks_above: usize,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            check_bounds: false,
            threads: std::env::var("NNC_THREADS")
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .max(1),
            adaptive: std::env::var("NNC_ADAPTIVE").map_or(true, |v| v != "0"),
            flush_subnormals: std::env::var("NNC_FLUSH_SUBNORMALS").map_or(true, |v| v != "0"),
            huge_pages: std::env::var("NNC_HUGE_PAGES").map_or(true, |v| v != "0"),
            collective: None,
            stream_stacks_above: std::env::var("NNC_STREAM_STACKS_MB")
                .ok()
                .and_then(|mb| mb.parse::<usize>().ok())
                .map_or_else(stream_stacks_above, |mb| mb << 20),
        }
    }
}

/// A tensor in the arena: offset (elements) and shape.
#[derive(Clone, Debug)]
struct Slot {
    offset: usize,
    shape: Vec<usize>,
}

/// One compiled graph with its arena.
pub struct Compiled {
    artifacts: Option<compile::Artifacts>,
    arena: Arena,
    inputs: Vec<(String, Slot)>,
    homes: BTreeMap<String, Slot>,
    outputs: Vec<(String, Slot)>,
    /// Runs the step's parts on other threads.
    team: team::Team,
    /// Whether the team or this thread alone runs the next step.
    tuner: tune::Tuner,
    /// Kernel kinds, for error messages.
    kernel_names: Vec<String>,
    /// The random table, refilled each run (so a run allocates nothing).
    table: Vec<u64>,
    /// Whether steps run with subnormals flushed to zero.
    flush_subnormals: bool,
    /// The sizes of the memory plan the step was compiled with.
    memory: MemorySizes,
}

/// The step: `(arena, random table, thread, threads, team) -> status`, run
/// by every thread of the team at once (or by one thread, with no team).
type StepFn = unsafe extern "C" fn(*mut f32, *const u64, usize, usize, *const team::Team) -> i32;

fn prepare<'g>(graph: &'g Graph, dims: &HashMap<String, i64>) -> Result<(fuse::Fused<'g>, memory::Plan), String> {
    let start = std::time::Instant::now();
    let bound = expand::Bound::new(graph, dims)?;
    let bound_time = start.elapsed();
    let fused = fuse::Fused::new(bound);
    let fused_time = start.elapsed();
    let plan = memory::Plan::new(&fused)?;
    if crate::timing::enabled() {
        eprintln!(
            "codegen: bind {bound_time:.1?}, fuse {:.1?}, plan {:.1?}",
            fused_time - bound_time,
            start.elapsed() - fused_time
        );
    }
    Ok((fused, plan))
}

/// A graph's kernels and memory plan for given sizes, before any code or
/// arena exists: what [`Compiled::compile`] would allocate, so a caller can
/// check it against the memory it has first.
pub struct Planned<'g> {
    pub fused: fuse::Fused<'g>,
    pub plan: memory::Plan,
}

impl<'g> Planned<'g> {
    pub fn new(graph: &'g Graph, dims: &HashMap<String, i64>) -> Result<Planned<'g>, String> {
        let (fused, plan) = prepare(graph, dims)?;
        Ok(Planned { fused, plan })
    }

    /// Bytes of the arena [`Compiled::compile`] allocates for this plan.
    pub fn arena_bytes(&self) -> usize {
        arena_lines(&self.plan) * std::mem::size_of::<Line>()
    }
}

impl Compiled {
    /// The sizes of the memory plan this step was compiled with.
    pub fn memory_sizes(&self) -> MemorySizes {
        self.memory
    }
}

impl Compiled {
    pub fn compile(graph: &Graph, dims: &HashMap<String, i64>, options: &CompileOptions) -> Result<Compiled, String> {
        let start = std::time::Instant::now();
        let planned = Planned::new(graph, dims)?;
        Compiled::from_planned(planned, options, start)
    }

    /// Compiles a step already planned (its memory checked by the caller
    /// first, say); `start` is when the planning began, for `NNC_TIMING`.
    pub fn from_planned(
        planned: Planned,
        options: &CompileOptions,
        start: std::time::Instant,
    ) -> Result<Compiled, String> {
        let timing = crate::timing::enabled();
        let Planned { fused, plan } = planned;
        let graph = fused.bound.graph;
        let planned = start.elapsed();
        let team = team::Team::new(options.threads);
        let tuner = tune::Tuner::new(team.threads(), options.adaptive);
        let artifacts = compile::compile(&fused, &plan, options, false)?;
        if timing {
            eprintln!(
                "codegen: {} nodes, {} kernels in {} functions; fusion and plan {:.1?}, code {:.1?}",
                graph.len(),
                fused.kernels.len(),
                artifacts.functions,
                planned,
                start.elapsed() - planned
            );
        }
        let bound = &fused.bound;
        let mut inputs = Vec::new();
        for &id in &bound.order {
            if let Prim::Input(name) = bound.op(id) {
                let slot = Slot {
                    offset: plan.buffer(id).offset,
                    shape: bound.shape(id).to_vec(),
                };
                inputs.push((name.clone(), slot));
            }
        }
        let homes = plan
            .homes
            .iter()
            .map(|(name, (offset, shape))| {
                (
                    name.clone(),
                    Slot {
                        offset: *offset,
                        shape: shape.clone(),
                    },
                )
            })
            .collect();
        let outputs = graph
            .outputs
            .iter()
            .map(|(name, id)| {
                let slot = Slot {
                    offset: plan.buffer(*id).offset,
                    shape: bound.shape(*id).to_vec(),
                };
                (name.clone(), slot)
            })
            .collect();
        let kernel_names = fused
            .all_kernels()
            .into_iter()
            .map(|(fused, k)| (&fused.bound, &fused.kernels[k]))
            .map(|(bound, k)| match k {
                fuse::Kernel::Loop(l) => {
                    let roots: Vec<String> = l.phases.iter().flat_map(|p| p.roots()).map(|r| bound.name(r)).collect();
                    format!("loop computing {}", roots.join(", "))
                }
                fuse::Kernel::Accumulate(r) => format!("accumulate {}", bound.name(*r)),
                fuse::Kernel::MatMul { root, .. } => format!("matmul {}", bound.name(*root)),
                fuse::Kernel::Scatter(r) => format!("scatter {}", bound.name(*r)),
                fuse::Kernel::Concat(r) => format!("concat {}", bound.name(*r)),
                fuse::Kernel::Window { root, .. } => format!("{} {}", bound.op(*root), bound.name(*root)),
                fuse::Kernel::Scan(r) => format!("loop {}", bound.name(*r)),
                fuse::Kernel::AllReduce(r) => format!("all_reduce {}", bound.name(*r)),
            })
            .collect();
        let table = vec![0; artifacts.streams.len() + 2];
        Ok(Compiled {
            artifacts: Some(artifacts),
            arena: allocate_arena(&plan, options.huge_pages)?,
            inputs,
            homes,
            outputs,
            table,
            team,
            tuner,
            kernel_names,
            flush_subnormals: options.flush_subnormals,
            memory: MemorySizes::of(&plan),
        })
    }

    fn data(&self) -> &[f32] {
        let len = self.arena.len() * 16;
        // Safety: `Line` is 16 f32 with no padding.
        unsafe { std::slice::from_raw_parts(self.arena.as_ptr() as *const f32, len) }
    }

    fn data_mut(&mut self) -> &mut [f32] {
        let len = self.arena.len() * 16;
        // Safety: as in `data`.
        unsafe { std::slice::from_raw_parts_mut(self.arena.as_mut_ptr() as *mut f32, len) }
    }

    fn write(&mut self, slot: &Slot, name: &str, value: &ArrayD<f64>) -> Result<(), String> {
        if value.shape() != slot.shape.as_slice() {
            return Err(format!(
                "`{name}` is {:?}, but the compiled graph expects {:?}",
                value.shape(),
                slot.shape
            ));
        }
        let (offset, count) = (slot.offset, value.len());
        let data = &mut self.data_mut()[offset..offset + count];
        match value.as_slice() {
            Some(values) => {
                for (target, x) in data.iter_mut().zip(values) {
                    *target = *x as f32;
                }
            }
            None => {
                for (target, x) in data.iter_mut().zip(value.iter()) {
                    *target = *x as f32;
                }
            }
        }
        Ok(())
    }

    fn read(&self, slot: &Slot) -> ArrayD<f64> {
        let count: usize = slot.shape.iter().product();
        let values: Vec<f64> = self.data()[slot.offset..slot.offset + count]
            .iter()
            .map(|&x| f64::from(x))
            .collect();
        ArrayD::from_shape_vec(IxDyn(&slot.shape), values).expect("the slot's size")
    }

    /// Sets a persistent leaf (Param or State, by name) from host data.
    pub fn set_tensor(&mut self, name: &str, value: &ArrayD<f64>) -> Result<(), String> {
        let slot = self
            .homes
            .get(name)
            .cloned()
            .ok_or_else(|| format!("the compiled graph has no parameter or state `{name}`"))?;
        self.write(&slot, name, value)
    }

    /// Whether the step has a persistent leaf `name`.
    pub fn has_tensor(&self, name: &str) -> bool {
        self.homes.contains_key(name)
    }

    /// Reads a persistent leaf.
    pub fn tensor(&self, name: &str) -> Option<ArrayD<f64>> {
        self.homes.get(name).map(|slot| self.read(slot))
    }

    /// Names of the persistent leaves (parameters, states, optimizer slots).
    pub fn tensor_names(&self) -> Vec<String> {
        self.homes.keys().cloned().collect()
    }

    /// Feeds Input leaves (data fields, `lr`, `step`), runs the step, then
    /// copies every `new X` output into X's home (so the next call sees
    /// updated params/states). Feeds that are not inputs of the graph are
    /// ignored.
    pub fn run(&mut self, inputs: &HashMap<String, ArrayD<f64>>, seed: u64, step: u64) -> Result<(), String> {
        let feeds = std::mem::take(&mut self.inputs);
        let written = feeds.iter().try_for_each(|(name, slot)| {
            let value = inputs.get(name).ok_or_else(|| format!("no input named `{name}`"))?;
            self.write(slot, name, value)
        });
        self.inputs = feeds;
        written?;
        let artifacts = self.artifacts.as_ref().expect("compiled code");
        calls::fill_random_table(&mut self.table, seed, step, &artifacts.streams);
        // Safety: the step function was compiled for this arena's plan.
        let step_fn: StepFn = unsafe { std::mem::transmute::<*const u8, StepFn>(artifacts.step) };
        let (arena, table) = (self.arena.as_mut_ptr() as usize, self.table.as_ptr() as usize);
        let threads = self.tuner.threads();
        let flush = self.flush_subnormals;
        let start = std::time::Instant::now();
        let status = if threads == 1 {
            let _flush = flush.then(subnormal::FlushSubnormals::new);
            // Safety: one thread runs the whole step; barriers do nothing.
            unsafe { step_fn(arena as *mut f32, table as *const u64, 0, 1, std::ptr::null()) }
        } else {
            let status = std::sync::atomic::AtomicI32::new(0);
            let team = &self.team as *const team::Team as usize;
            self.team.run(threads, &|thread| {
                let _flush = flush.then(subnormal::FlushSubnormals::new);
                // Safety: each thread runs its own part of the step, and the
                // parts meet at the barriers compiled into it.
                let s = unsafe {
                    step_fn(
                        arena as *mut f32,
                        table as *const u64,
                        thread,
                        threads,
                        team as *const _,
                    )
                };
                if s != 0 {
                    let _ = status.compare_exchange(0, s, Ordering::Relaxed, Ordering::Relaxed);
                }
            });
            status.into_inner()
        };
        self.tuner.record(start.elapsed().as_secs_f64());
        if status != 0 {
            let kernel = (status - 1) as usize;
            let name = self.kernel_names.get(kernel).cloned().unwrap_or_default();
            return Err(format!("kernel {kernel} ({name}) accessed memory out of bounds"));
        }
        Ok(())
    }

    /// A named output of the last run (`loss`, `model_output`, `grad X`, ...).
    pub fn output(&self, name: &str) -> Option<ArrayD<f64>> {
        let (_, slot) = self.outputs.iter().find(|(n, _)| n == name)?;
        Some(self.read(slot))
    }

    /// Names of the graph's outputs, in order.
    pub fn output_names(&self) -> Vec<String> {
        self.outputs.iter().map(|(n, _)| n.clone()).collect()
    }

    /// How many of the steps so far ran on the whole team (the rest ran on
    /// the calling thread alone, see [`CompileOptions::adaptive`]).
    pub fn team_steps(&self) -> u64 {
        self.tuner.team_steps()
    }

    /// Threads in the team.
    pub fn threads(&self) -> usize {
        self.team.threads()
    }

    /// Kernel functions compiled for the step (kernels of equal code,
    /// and every step of a loop, share one).
    pub fn functions(&self) -> usize {
        self.artifacts.as_ref().map_or(0, |a| a.functions)
    }

    /// Bytes of the arena.
    pub fn arena_bytes(&self) -> usize {
        self.arena.len() * 64
    }
}

impl Drop for Compiled {
    fn drop(&mut self) {
        if let Some(artifacts) = self.artifacts.take() {
            // Safety: nothing calls the code after this.
            unsafe { artifacts.module.free_memory() };
        }
    }
}

/// The kernels of the graph's fused form, as text; `Err` when the graph
/// cannot be fused and planned at these sizes.
pub fn dump_fused(graph: &Graph, dims: &HashMap<String, i64>) -> Result<String, String> {
    let (fused, _) = prepare(graph, dims)?;
    Ok(fuse::print(&fused))
}

/// The memory plan (every buffer's place and life, peak bytes), as text;
/// `Err` when the graph cannot be planned at these sizes.
pub fn dump_memory(graph: &Graph, dims: &HashMap<String, i64>) -> Result<String, String> {
    let (fused, plan) = prepare(graph, dims)?;
    Ok(memory::print(&fused, &plan))
}

/// The sizes of a step's memory plan, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemorySizes {
    /// Parameters, states and optimizer slots (fixed homes).
    pub persistent_bytes: usize,
    /// The whole arena: its peak, with buffers sharing memory.
    pub peak_bytes: usize,
    /// What every buffer would take if none shared memory.
    pub unshared_bytes: usize,
}

/// The memory plan's sizes for the graph at the given sizes.
pub fn memory_plan(graph: &Graph, dims: &HashMap<String, i64>) -> Result<MemorySizes, String> {
    let (_, plan) = prepare(graph, dims)?;
    Ok(MemorySizes::of(&plan))
}

impl MemorySizes {
    fn of(plan: &memory::Plan) -> MemorySizes {
        MemorySizes {
            persistent_bytes: 4 * plan.persistent,
            peak_bytes: 4 * plan.total,
            unshared_bytes: 4 * plan.unshared,
        }
    }
}

/// The CLIF of every generated function, as text.
pub fn dump_clif(graph: &Graph, dims: &HashMap<String, i64>) -> Result<String, String> {
    dump_code(graph, dims, false)
}

/// The x86-64 code of every generated function, as Cranelift lists it
/// (registers allocated, before encoding).
pub fn dump_asm(graph: &Graph, dims: &HashMap<String, i64>) -> Result<String, String> {
    dump_code(graph, dims, true)
}

fn dump_code(graph: &Graph, dims: &HashMap<String, i64>, asm: bool) -> Result<String, String> {
    let (fused, plan) = prepare(graph, dims)?;
    let artifacts = compile::compile(&fused, &plan, &CompileOptions::default(), true)?;
    let text = if asm { &artifacts.asm } else { &artifacts.clif }.join("\n");
    // Safety: the code is never called.
    unsafe { artifacts.module.free_memory() };
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::dims::Dim;
    use crate::prim::{BinaryOp, DType, UnaryOp};

    /// `max` and `min` follow `f64::max` / `f64::min` (a NaN loses to a
    /// number) against another tensor and against a constant (`relu`'s
    /// 0), on vector lanes and the scalar tail alike.
    #[test]
    fn max_and_min_let_a_number_beat_nan() {
        let xs = [f64::NAN, 1.5, -2.0, 0.0, f64::NAN, -0.5, 3.0];
        let ys = [2.0, f64::NAN, -1.0, f64::NAN, f64::NAN, 0.25, -3.0];
        let mut graph = Graph::new();
        let shape = vec![Dim::constant(xs.len() as i64)];
        let x = graph.add(Prim::Param("x".into()), DType::F32, shape.clone(), &[]);
        let y = graph.add(Prim::Param("y".into()), DType::F32, shape, &[]);
        let zero = graph.fill_like(x, 0.0);
        let cases = [
            ("max_xy", BinaryOp::Max, y),
            ("min_xy", BinaryOp::Min, y),
            ("max_x0", BinaryOp::Max, zero),
            ("min_x0", BinaryOp::Min, zero),
        ];
        for (name, op, other) in cases {
            let out = graph.binary(op, x, other);
            graph.set_output(name, out);
        }
        let mut compiled = Compiled::compile(&graph, &HashMap::new(), &CompileOptions::default()).unwrap();
        compiled
            .set_tensor("x", &ArrayD::from_shape_vec(IxDyn(&[7]), xs.to_vec()).unwrap())
            .unwrap();
        compiled
            .set_tensor("y", &ArrayD::from_shape_vec(IxDyn(&[7]), ys.to_vec()).unwrap())
            .unwrap();
        compiled.run(&HashMap::new(), 0, 0).unwrap();
        for (name, op, other) in cases {
            let got = compiled.output(name).unwrap();
            for (i, &g) in got.iter().enumerate() {
                let b = if other == y { ys[i] } else { 0.0 };
                let want = if op == BinaryOp::Max {
                    xs[i].max(b)
                } else {
                    xs[i].min(b)
                };
                let same = (g.is_nan() && want.is_nan()) || g == want;
                assert!(
                    same,
                    "{name}[{i}]: {g} but f64 says {want} (x = {}, other = {b})",
                    xs[i]
                );
            }
        }
    }

    /// The generated `tanh` (vector lanes and scalar tail) against `f64`:
    /// within 5 ulp over [-12, 12], ±1 at the infinities, NaN for NaN.
    #[test]
    fn tanh_is_accurate_to_a_few_ulp() {
        let mut xs: Vec<f64> = (0..24_001).map(|i| -12.0 + 1e-3 * i as f64).collect();
        xs.extend([
            0.0,
            -0.0,
            1e-5,
            -3e-4,
            4e-4,
            1e-30,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ]);
        let n = xs.len();
        let mut graph = Graph::new();
        let x = graph.add(Prim::Param("x".into()), DType::F32, vec![Dim::constant(n as i64)], &[]);
        let y = graph.unary(UnaryOp::Tanh, x);
        graph.set_output("y", y);
        let mut compiled = Compiled::compile(&graph, &HashMap::new(), &CompileOptions::default()).unwrap();
        compiled
            .set_tensor("x", &ArrayD::from_shape_vec(IxDyn(&[n]), xs.clone()).unwrap())
            .unwrap();
        compiled.run(&HashMap::new(), 0, 0).unwrap();
        let got = compiled.output("y").unwrap();
        let mut worst = (0.0f64, 0.0f64);
        for (&x, &g) in xs.iter().zip(got.iter()) {
            let want = (x as f32 as f64).tanh();
            if x.is_nan() {
                assert!(g.is_nan(), "tanh(NaN) = {g}");
                continue;
            }
            let error = (g - want).abs() / want.abs().max(f64::MIN_POSITIVE);
            if error > worst.0 {
                worst = (error, x);
            }
        }
        assert!(
            worst.0 <= 5.0 * f32::EPSILON as f64,
            "relative error {:.3e} at x = {}",
            worst.0,
            worst.1
        );
    }

    /// 1e-20 squared is 1e-40, a subnormal `f32`: the step flushes it to
    /// zero unless told to keep it.
    #[test]
    fn steps_flush_subnormals_unless_told_not_to() {
        let mut graph = Graph::new();
        let x = graph.add(Prim::Param("x".into()), DType::F32, vec![Dim::constant(7)], &[]);
        let y = graph.binary(BinaryOp::Mul, x, x);
        graph.set_output("y", y);
        let square = |flush_subnormals: bool| {
            let options = CompileOptions {
                check_bounds: true,
                threads: 1,
                adaptive: false,
                flush_subnormals,
                huge_pages: true,
                collective: None,
                stream_stacks_above: STREAM_STACKS_ABOVE,
            };
            let mut compiled = Compiled::compile(&graph, &HashMap::new(), &options).unwrap();
            compiled
                .set_tensor("x", &ArrayD::from_elem(IxDyn(&[7]), 1e-20))
                .unwrap();
            compiled.run(&HashMap::new(), 0, 0).unwrap();
            compiled.output("y").unwrap()
        };
        assert!(square(true).iter().all(|&v| v == 0.0), "{:?}", square(true));
        assert!(
            square(false).iter().all(|&v| (v / 1e-40 - 1.0).abs() < 1e-3),
            "{:?}",
            square(false)
        );
    }

    /// A step whose plan is wrong (a buffer one element short) must stop
    /// with a status, not write past the buffer, when bounds are checked.
    #[test]
    fn bounds_checks_catch_a_short_buffer() {
        let mut graph = Graph::new();
        let x = graph.add(Prim::Param("x".into()), DType::F32, vec![Dim::constant(13)], &[]);
        let y = graph.unary(UnaryOp::Exp, x);
        graph.set_output("y", y);
        let dims = HashMap::new();
        let (fused, mut plan) = prepare(&graph, &dims).unwrap();
        plan.buffers.get_mut(&y).unwrap().len -= 1;
        let run = |check_bounds: bool| {
            let options = CompileOptions {
                check_bounds,
                threads: 1,
                adaptive: false,
                flush_subnormals: true,
                huge_pages: true,
                collective: None,
                stream_stacks_above: STREAM_STACKS_ABOVE,
            };
            let artifacts = compile::compile(&fused, &plan, &options, false).unwrap();
            let step: StepFn = unsafe { std::mem::transmute::<*const u8, StepFn>(artifacts.step) };
            let mut arena = vec![0f32; plan.total + 64];
            let table = calls::random_table(0, 0, &artifacts.streams);
            let status = unsafe { step(arena.as_mut_ptr(), table.as_ptr(), 0, 1, std::ptr::null()) };
            unsafe { artifacts.module.free_memory() };
            status
        };
        assert_eq!(run(true), 1, "kernel 0 reports the bad access");
        assert_eq!(run(false), 0, "without checks the step runs");
    }
}
