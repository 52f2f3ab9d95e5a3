//! The JIT module: one function per kernel plus the step function that
//! calls them in order (and the GEMM and copies between them), compiled by
//! Cranelift for this machine.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::function::FunctionStencil;
use cranelift_codegen::ir::types::{F32, I32, I64};
use cranelift_codegen::ir::{AbiParam, FuncRef, InstBuilder, Signature, UserFuncName};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module};

use super::calls;
use super::emit::{Calls, Emitter, Streams};
use super::fuse::{Fused, Kernel};
use super::gemm::{self, MatMulDesc, Operand};
use super::kernels::{self, LoopCode};
use super::memory::Plan;
use super::share;
use super::window::{self, WindowDesc};
use super::CompileOptions;

/// A compiled step: the module that owns the code, the entry point, and
/// what the code points into.
pub struct Artifacts {
    pub module: JITModule,
    pub step: *const u8,
    /// Matrix product descriptors (the code holds their addresses).
    pub descriptors: Vec<Box<MatMulDesc>>,
    /// Window kernel descriptors, likewise.
    pub windows: Vec<Box<WindowDesc>>,
    /// Each kernel call's buffer table (byte offsets in the arena; the
    /// code holds their addresses).
    pub tables: Vec<Box<[i64]>>,
    /// Random table slots of the streams.
    pub streams: Streams,
    /// Kernel functions compiled (kernels of the same code share one).
    pub functions: usize,
    /// CLIF text of every function, when asked for.
    pub clif: Vec<String>,
    /// The machine code of every function as Cranelift lists it, when
    /// asked for.
    pub asm: Vec<String>,
}

struct Imports {
    normal: FuncId,
    sin: FuncId,
    cos: FuncId,
    pow: FuncId,
    matmul: FuncId,
    unfold2d: FuncId,
    fold2d: FuncId,
    barrier: FuncId,
    copy: FuncId,
    tick: FuncId,
}

fn signature(
    module: &JITModule,
    params: &[cranelift_codegen::ir::Type],
    returns: &[cranelift_codegen::ir::Type],
) -> Signature {
    let mut sig = module.make_signature();
    sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
    sig.returns.extend(returns.iter().map(|&t| AbiParam::new(t)));
    sig
}

fn new_module() -> Result<JITModule, String> {
    let mut flags = settings::builder();
    flags.set("opt_level", "speed").map_err(|e| e.to_string())?;
    flags
        .set("use_colocated_libcalls", "false")
        .map_err(|e| e.to_string())?;
    flags.set("is_pic", "false").map_err(|e| e.to_string())?;
    // Cranelift's IR verifier checks every function before compiling it:
    // kept in debug builds (the tests), skipped in release ones, where it
    // is pure compile time.
    flags
        .set("enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" })
        .map_err(|e| e.to_string())?;
    let isa = cranelift_native::builder()
        .map_err(|e| format!("this machine is not supported: {e}"))?
        .finish(settings::Flags::new(flags))
        .map_err(|e| e.to_string())?;
    let mut builder = JITBuilder::with_isa(isa, cranelift_module::default_libcall_names());
    builder.symbol("nnc_normal", calls::nnc_normal as *const u8);
    builder.symbol("nnc_sin", calls::nnc_sin as *const u8);
    builder.symbol("nnc_cos", calls::nnc_cos as *const u8);
    builder.symbol("nnc_pow", calls::nnc_pow as *const u8);
    builder.symbol("nnc_matmul", gemm::nnc_matmul as *const u8);
    builder.symbol("nnc_unfold2d", window::nnc_unfold2d as *const u8);
    builder.symbol("nnc_fold2d", window::nnc_fold2d as *const u8);
    builder.symbol("nnc_barrier", super::team::nnc_barrier as *const u8);
    builder.symbol("nnc_copy", calls::nnc_copy as *const u8);
    builder.symbol("nnc_tick", calls::nnc_tick as *const u8);
    Ok(JITModule::new(builder))
}

fn declare_imports(module: &mut JITModule) -> Result<Imports, String> {
    let mut import = |name: &str, params: &[cranelift_codegen::ir::Type], returns: &[cranelift_codegen::ir::Type]| {
        let sig = signature(module, params, returns);
        module
            .declare_function(name, Linkage::Import, &sig)
            .map_err(|e| e.to_string())
    };
    Ok(Imports {
        normal: import("nnc_normal", &[I64, I64, I64], &[F32])?,
        sin: import("nnc_sin", &[F32], &[F32])?,
        cos: import("nnc_cos", &[F32], &[F32])?,
        pow: import("nnc_pow", &[F32, F32], &[F32])?,
        matmul: import("nnc_matmul", &[I64, I64, I64, I64], &[])?,
        unfold2d: import("nnc_unfold2d", &[I64, I64, I64, I64], &[])?,
        fold2d: import("nnc_fold2d", &[I64, I64, I64, I64], &[])?,
        barrier: import("nnc_barrier", &[I64, I64], &[])?,
        copy: import("nnc_copy", &[I64, I64, I64, I64], &[])?,
        tick: import("nnc_tick", &[I64], &[])?,
    })
}

/// Random streams of the graph, each with its slot in the random table
/// (after `seed` and `step`).
fn streams(fused: &Fused) -> Streams {
    let mut streams = Streams::default();
    for &id in &fused.bound.order {
        if let crate::prim::Prim::Random { stream, .. } = fused.bound.op(id) {
            let next = streams.len() + 2;
            streams.entry(*stream).or_insert(next);
        }
    }
    streams
}

/// Work of a loop kernel in element visits, to decide on threads.
fn work(code: &LoopCode) -> i64 {
    let outer: i64 = code.outer_loops.iter().map(|(_, n)| n).product();
    let inner: i64 = code
        .phases
        .iter()
        .map(|p| p.loops.iter().map(|(_, n)| n).product::<i64>())
        .sum();
    outer * inner.max(1)
}

/// Element visits from which a loop kernel is split between threads.
const PARALLEL_MIN_WORK: i64 = 1 << 10;

pub fn compile(fused: &Fused, plan: &Plan, options: &CompileOptions, keep_text: bool) -> Result<Artifacts, String> {
    let started = std::time::Instant::now();
    let mut module = new_module()?;
    let imports = declare_imports(&mut module)?;
    let streams = streams(fused);
    let mut ctx = module.make_context();
    let mut builder_ctx = FunctionBuilderContext::new();
    let mut clif = Vec::new();
    let mut asm = Vec::new();
    let kernel_sig = signature(&module, &kernels::kernel_params(), &[I32]);
    let mut kernel_ids: Vec<Option<FuncId>> = Vec::new();
    let mut splits: Vec<(i64, bool)> = Vec::new();
    let mut sizes: Vec<(FuncId, usize, String)> = Vec::new();
    // Kernels address their buffers through a table passed by the caller,
    // so kernels of the same structure (the steps of an unrolled scan, the
    // layers of a `repeat`) compile once and share their code.
    let share = std::env::var("NNC_SHARE_KERNELS").map_or(true, |v| v != "0");
    let mut compiled_code: HashMap<u64, Vec<(FunctionStencil, FuncId, usize)>> = HashMap::new();
    // Loop kernels by structure (`share.rs`): one whose key was compiled
    // before takes that function and derives its table, with no CLIF built.
    let mut by_key: rustc_hash::FxHashMap<share::Key, share::Shared<FuncId>> = Default::default();
    let mut by_structure = 0;
    let mut tables: Vec<Box<[i64]>> = Vec::new();
    let mut planning_time = std::time::Duration::ZERO;
    for (k, kernel) in fused.kernels.iter().enumerate() {
        if matches!(kernel, Kernel::MatMul { .. } | Kernel::Window { .. }) {
            kernel_ids.push(None);
            splits.push((1, false));
            tables.push(Box::new([]));
            continue;
        }
        ctx.func.signature = kernel_sig.clone();
        let planning = std::time::Instant::now();
        let code = match kernel {
            Kernel::Loop(l) => Some(kernels::plan_loops(fused, l)),
            _ => None,
        };
        let concat = match kernel {
            Kernel::Concat(root) => Some(kernels::plan_concat(fused, *root)),
            _ => None,
        };
        let accumulate = match kernel {
            Kernel::Accumulate(root) => Some(kernels::plan_accumulate(fused, *root)),
            _ => None,
        };
        planning_time += planning.elapsed();
        let structure = match (kernel, code.as_ref(), concat.as_ref()) {
            _ if !share => None,
            (Kernel::Loop(l), Some(code), _) => {
                Some(share::loop_key(fused, l, code, &streams, plan, options.check_bounds))
            }
            (Kernel::Concat(root), _, Some(concat)) => {
                Some(share::concat_key(*root, concat, &streams, plan, options.check_bounds))
            }
            (Kernel::Accumulate(root), ..) => accumulate
                .as_ref()
                .map(|accumulate| share::accumulate_key(*root, accumulate, &streams, plan, options.check_bounds)),
            _ => None,
        };
        let known = structure.as_ref().and_then(|(key, layout)| {
            by_key
                .get(key)
                .map(|shared| (shared.function, shared.first, shared.table(layout, plan)))
        });
        let split = kernels::split_size(fused, k, code.as_ref());
        let work = match (kernel, code.as_ref()) {
            (_, Some(code)) => work(code),
            (Kernel::Accumulate(root) | Kernel::Concat(root), None) => {
                fused.bound.count(fused.bound.inputs(*root)[0]) as i64
            }
            _ => 0,
        };
        let parallel = options.threads > 1 && split >= 2 && work >= PARALLEL_MIN_WORK;
        splits.push((split, parallel));
        // Debug builds build the code anyway, to check below that it is
        // the same function with the same table.
        by_structure += usize::from(known.is_some());
        if let (Some((id, first, table)), false) = (&known, cfg!(debug_assertions)) {
            if keep_text {
                note_shared(&mut clif, &mut asm, k, *first);
            }
            kernel_ids.push(Some(*id));
            tables.push(table.clone().into_boxed_slice());
            continue;
        }
        let uses;
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut builder_ctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            b.seal_block(entry);
            let params = b.block_params(entry).to_vec();
            let calls = Calls {
                normal: declare(&mut module, imports.normal, &mut b),
                sin: declare(&mut module, imports.sin, &mut b),
                cos: declare(&mut module, imports.cos, &mut b),
                pow: declare(&mut module, imports.pow, &mut b),
            };
            let exprs = match (&code, &concat, &accumulate) {
                (Some(code), ..) => code.exprs.clone(),
                (_, Some(concat), _) => concat.exprs.clone(),
                (.., Some(accumulate)) => accumulate.exprs.clone(),
                _ => Default::default(),
            };
            let mut em = Emitter::new(
                b,
                exprs,
                plan,
                params[0],
                params[1],
                calls,
                &streams,
                options.check_bounds,
                share.then_some(params[4]),
            );
            match kernel {
                Kernel::Loop(l) => kernels::emit_loop(
                    &mut em,
                    code.as_ref().expect("loop code"),
                    fused,
                    l,
                    params[2],
                    params[3],
                ),
                Kernel::Accumulate(root) => kernels::emit_accumulate(
                    &mut em,
                    accumulate.as_ref().expect("accumulate code"),
                    *root,
                    params[2],
                    params[3],
                ),
                Kernel::Scatter(root) => kernels::emit_scatter(&mut em, fused, *root),
                Kernel::Concat(root) => kernels::emit_concat(
                    &mut em,
                    concat.as_ref().expect("concat code"),
                    *root,
                    params[2],
                    params[3],
                ),
                Kernel::MatMul { .. } | Kernel::Window { .. } => unreachable!("no function"),
            }
            let zero = em.b.ins().iconst(I32, 0);
            em.b.ins().return_(&[zero]);
            em.finish_fail_block();
            uses = em.table_uses();
            em.b.finalize(module.target_config());
            tables.push(std::mem::take(&mut em.relocations).into_boxed_slice());
        }
        // Remembers the function `id` made for this kernel's structure (or
        // checks, in debug builds, the one the structure gave).
        let remember = |id: FuncId, first: usize| {
            let Some((key, layout)) = structure else {
                return;
            };
            if let Some((known_id, _, table)) = &known {
                assert!(
                    *known_id == id && table[..] == tables[k][..],
                    "kernel {k}: an equal structure gave other code or another table"
                );
                return;
            }
            if let Some(shared) = share::Shared::new(id, first, &layout, &uses) {
                by_key.insert(key, shared);
            }
        };
        let key = {
            let mut hasher = rustc_hash::FxHasher::default();
            ctx.func.stencil.hash(&mut hasher);
            hasher.finish()
        };
        let earlier = compiled_code
            .get(&key)
            .and_then(|same| same.iter().find(|(stencil, ..)| *stencil == ctx.func.stencil))
            .map(|&(_, id, first)| (id, first));
        if let Some((id, first)) = earlier {
            remember(id, first);
            if keep_text {
                note_shared(&mut clif, &mut asm, k, first);
            }
            module.clear_context(&mut ctx);
            kernel_ids.push(Some(id));
            continue;
        }
        let id = module
            .declare_function(&format!("kernel{k}"), Linkage::Local, &kernel_sig)
            .map_err(|e| e.to_string())?;
        ctx.func.name = UserFuncName::user(0, id.as_u32());
        if share {
            compiled_code
                .entry(key)
                .or_default()
                .push((ctx.func.stencil.clone(), id, k));
        }
        if keep_text {
            clif.push(format!("; kernel {k}\n{}", ctx.func.display()));
        }
        ctx.set_disasm(keep_text);
        module
            .define_function(id, &mut ctx)
            .map_err(|e| format!("kernel {k}: {e:?}"))?;
        if let Some(listing) = ctx.compiled_code().and_then(|c| c.vcode.clone()) {
            asm.push(format!("; kernel {k}\n{listing}"));
        }
        remember(id, k);
        sizes.push((id, code_size(&ctx), format!("nnc_kernel{k}")));
        module.clear_context(&mut ctx);
        kernel_ids.push(Some(id));
    }

    // The step function `(arena, random table, thread, threads, team)`:
    // every thread of the team runs it with its own number, taking its
    // share of each split kernel; kernels that are not split run on thread
    // 0. A barrier follows every kernel that the next one may depend on
    // across threads (everything except a run of kernels on thread 0
    // alone). With `threads` 1 (and no team) one thread runs it all, with
    // the same results: rows are computed alike whichever thread takes
    // them, and products are cut into the same parts.
    let kernels_done = std::time::Instant::now();
    let step_sig = signature(&module, &[I64, I64, I64, I64, I64], &[I32]);
    let step_id = module
        .declare_function("step", Linkage::Local, &step_sig)
        .map_err(|e| e.to_string())?;
    ctx.func.signature = step_sig;
    ctx.func.name = UserFuncName::user(0, step_id.as_u32());
    let mut descriptors = Vec::new();
    let mut windows = Vec::new();
    let threads = options.threads.max(1);
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut builder_ctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let params = b.block_params(entry).to_vec();
        let (arena, rng, thread, thread_count, team) = (params[0], params[1], params[2], params[3], params[4]);
        let copy = declare(&mut module, imports.copy, &mut b);
        let matmul = declare(&mut module, imports.matmul, &mut b);
        let unfold2d = declare(&mut module, imports.unfold2d, &mut b);
        let fold2d = declare(&mut module, imports.fold2d, &mut b);
        let barrier_fn = declare(&mut module, imports.barrier, &mut b);
        let tick = declare(&mut module, imports.tick, &mut b);
        let profile = std::env::var_os("NNC_PROFILE").is_some();
        let status = b.declare_var(I32);
        let zero = b.ins().iconst(I32, 0);
        b.def_var(status, zero);
        // Emits `body` so that only thread 0 runs it.
        let on_thread_0 = |b: &mut FunctionBuilder, body: &mut dyn FnMut(&mut FunctionBuilder)| {
            if threads == 1 {
                body(b);
                return;
            }
            let (run, after) = (b.create_block(), b.create_block());
            b.ins().brif(thread, after, &[], run, &[]);
            b.seal_block(run);
            b.switch_to_block(run);
            body(b);
            b.ins().jump(after, &[]);
            b.seal_block(after);
            b.switch_to_block(after);
        };
        let barrier = |b: &mut FunctionBuilder| {
            if threads > 1 {
                b.ins().call(barrier_fn, &[team, thread]);
            }
        };
        let copies = |b: &mut FunctionBuilder, copies: &[super::memory::Copy]| {
            for c in copies {
                let args = [
                    arena,
                    b.ins().iconst(I64, c.from as i64),
                    b.ins().iconst(I64, c.to as i64),
                    b.ins().iconst(I64, c.len as i64),
                ];
                b.ins().call(copy, &args);
            }
        };
        if profile {
            on_thread_0(&mut b, &mut |b| {
                let start = b.ins().iconst(I64, -1);
                b.ins().call(tick, &[start]);
            });
        }
        if !plan.stage.is_empty() {
            on_thread_0(&mut b, &mut |b| copies(b, &plan.stage));
            barrier(&mut b);
        }
        let mut kernel_refs: HashMap<usize, FuncRef> = HashMap::new();
        // Whether each kernel runs on every thread (or on thread 0 alone).
        let mut shared = Vec::new();
        for (k, kernel) in fused.kernels.iter().enumerate() {
            shared.push(match kernel {
                Kernel::MatMul { root, a, b: bv, .. } => {
                    matmul_descriptor(fused, plan, *root, a, bv, threads).parts > 1
                }
                Kernel::Window { root, operand } => window_descriptor(fused, plan, *root, operand, threads)?.parts > 1,
                _ => splits[k].1,
            });
        }
        for (k, kernel) in fused.kernels.iter().enumerate() {
            if let Kernel::MatMul { root, a, b: bv, into } = kernel {
                let mut desc = matmul_descriptor(fused, plan, *root, a, bv, threads);
                desc.accumulate = usize::from(into.is_some_and(|i| i.add));
                let boxed = Box::new(desc);
                let address = b.ins().iconst(I64, &*boxed as *const MatMulDesc as i64);
                descriptors.push(boxed);
                b.ins().call(matmul, &[address, arena, thread, thread_count]);
            } else if let Kernel::Window { root, operand } = kernel {
                let boxed = Box::new(window_descriptor(fused, plan, *root, operand, threads)?);
                let address = b.ins().iconst(I64, &*boxed as *const WindowDesc as i64);
                windows.push(boxed);
                let f = match fused.bound.op(*root) {
                    crate::prim::Prim::Unfold2d(_) => unfold2d,
                    _ => fold2d,
                };
                b.ins().call(f, &[address, arena, thread, thread_count]);
            } else {
                let id = kernel_ids[k].expect("a kernel function");
                let f = *kernel_refs
                    .entry(k)
                    .or_insert_with(|| module.declare_func_in_func(id, b.func));
                let (split, _) = splits[k];
                let table = b.ins().iconst(I64, tables[k].as_ptr() as i64);
                let call = |b: &mut FunctionBuilder, start: cranelift_codegen::ir::Value, end| {
                    let call = b.ins().call(f, &[arena, rng, start, end, table]);
                    if !options.check_bounds {
                        return;
                    }
                    let result = b.inst_results(call)[0];
                    // Keep the first failure; every thread goes on to the
                    // end so that none waits at a barrier forever.
                    let current = b.use_var(status);
                    let first = b.ins().icmp_imm_s(IntCC::Equal, current, 0);
                    let failed = b.ins().icmp_imm_s(IntCC::NotEqual, result, 0);
                    let record = b.ins().band(first, failed);
                    let code = b.ins().iconst(I32, k as i64 + 1);
                    let next = b.ins().select(record, code, current);
                    b.def_var(status, next);
                };
                if shared[k] {
                    let start = b.ins().imul_imm_s(thread, split);
                    let start = b.ins().udiv(start, thread_count);
                    let next = b.ins().iadd_imm_s(thread, 1);
                    let end = b.ins().imul_imm_s(next, split);
                    let end = b.ins().udiv(end, thread_count);
                    call(&mut b, start, end);
                } else {
                    on_thread_0(&mut b, &mut |b| {
                        let start = b.ins().iconst(I64, 0);
                        let end = b.ins().iconst(I64, split);
                        call(b, start, end);
                    });
                }
            }
            let last = k + 1 == fused.kernels.len();
            if shared[k] || last || shared[k + 1] {
                barrier(&mut b);
            }
            if profile {
                on_thread_0(&mut b, &mut |b| {
                    let number = b.ins().iconst(I64, k as i64);
                    b.ins().call(tick, &[number]);
                });
            }
        }
        on_thread_0(&mut b, &mut |b| copies(b, &plan.copies));
        let result = b.use_var(status);
        b.ins().return_(&[result]);
        b.finalize(module.target_config());
    }
    if keep_text {
        clif.push(format!("; step\n{}", ctx.func.display()));
    }
    ctx.set_disasm(keep_text);
    module
        .define_function(step_id, &mut ctx)
        .map_err(|e| format!("step: {e:?}"))?;
    if let Some(listing) = ctx.compiled_code().and_then(|c| c.vcode.clone()) {
        asm.push(format!("; step\n{listing}"));
    }
    sizes.push((step_id, code_size(&ctx), "nnc_step".to_string()));
    if crate::timing::enabled() {
        eprintln!(
            "codegen: kernels {:.1?} (planning their loops {planning_time:.1?}; {by_structure} known by structure), step function {:.1?}",
            kernels_done - started,
            kernels_done.elapsed()
        );
    }
    module.clear_context(&mut ctx);
    module.finalize_definitions().map_err(|e| e.to_string())?;
    let step = module.get_finalized_function(step_id);
    if std::env::var_os("NNC_PERF_MAP").is_some() {
        write_perf_map(&module, &sizes);
    }
    Ok(Artifacts {
        module,
        step,
        descriptors,
        windows,
        functions: sizes.len() - 1,
        tables,
        streams,
        clif,
        asm,
    })
}

/// The CLIF and assembly listings' line for kernel `k`, which runs the code
/// of kernel `first` with its own table.
fn note_shared(clif: &mut Vec<String>, asm: &mut Vec<String>, k: usize, first: usize) {
    let note = format!("; kernel {k}: the code of kernel {first}, with its own buffer table\n");
    clif.push(note.clone());
    asm.push(note);
}

fn declare(module: &mut JITModule, id: FuncId, b: &mut FunctionBuilder) -> FuncRef {
    module.declare_func_in_func(id, b.func)
}

/// The descriptor of a matrix product: its operands' views placed in the
/// arena.
fn matmul_descriptor(
    fused: &Fused,
    plan: &Plan,
    root: crate::ir::NodeId,
    a: &super::fuse::View,
    b: &super::fuse::View,
    threads: usize,
) -> MatMulDesc {
    let shape = fused.bound.shape(root);
    let rank = shape.len();
    let (m, n) = (shape[rank - 2], shape[rank - 1]);
    let a_shape = fused.bound.shape(fused.bound.inputs(root)[0]);
    let k = a_shape[a_shape.len() - 1];
    let mut batch = [1usize; gemm::MAX_BATCH];
    let mut c_batch = [0isize; gemm::MAX_BATCH];
    let first = gemm::MAX_BATCH - (rank - 2);
    let mut stride = (m * n) as isize;
    for axis in (0..rank - 2).rev() {
        batch[first + axis] = shape[axis];
        c_batch[first + axis] = stride;
        stride *= shape[axis] as isize;
    }
    let entries: usize = batch.iter().product();
    let placed = |v: &super::fuse::View| Operand {
        offset: v.strides.offset + plan.buffer(v.buffer).offset as isize,
        ..v.strides
    };
    MatMulDesc {
        m,
        k,
        n,
        batch,
        a: placed(a),
        b: placed(b),
        c: Operand {
            offset: plan.buffer(root).offset as isize,
            batch: c_batch,
            row: n as isize,
            col: 1,
        },
        parts: gemm::parts_for(m * entries, k, n, threads),
        accumulate: 0,
    }
}

/// The descriptor of an `unfold2d` or `fold2d`: the operand's view and the
/// root's own (contiguous) buffer placed in the arena, checked to lie
/// inside their buffers.
fn window_descriptor(
    fused: &Fused,
    plan: &Plan,
    root: crate::ir::NodeId,
    operand: &super::fuse::Strided,
    threads: usize,
) -> Result<WindowDesc, String> {
    use crate::prim::Prim;
    let bound = &fused.bound;
    // A fold written through a permutation (`fuse::folded_into`) has the
    // permutation's buffer.
    let window_node = super::fuse::folded_into(bound, root).unwrap_or(root);
    let (window, image_node, patch_node) = match bound.op(window_node) {
        Prim::Unfold2d(w) => (*w, bound.inputs(window_node)[0], window_node),
        Prim::Fold2d(w) => (*w, window_node, bound.inputs(window_node)[0]),
        op => return Err(format!("{}: {op} is not a window", bound.name(root))),
    };
    let image = bound.shape(image_node);
    let patches = bound.shape(patch_node);
    let own = plan.buffer(root);
    let contiguous = |sizes: &[usize]| {
        let mut out = [own.offset as isize, 0, 0, 0, 0];
        let mut stride = 1isize;
        for axis in (0..4).rev() {
            out[axis + 1] = stride;
            stride *= sizes[axis] as isize;
        }
        out
    };
    // The own buffer's strides for the window's axes: axis `perm[i]` of the
    // fold is axis `i` of the permuted buffer.
    let own_view = |sizes: &[usize]| match bound.op(root) {
        Prim::Permute(perm) => {
            let written = contiguous(bound.shape(root));
            let mut out = [written[0], 0, 0, 0, 0];
            for (i, &axis) in perm.iter().enumerate() {
                out[axis + 1] = written[i + 1];
            }
            out
        }
        _ => contiguous(sizes),
    };
    let view = {
        let s = &operand.strides;
        [
            plan.buffer(operand.buffer).offset as isize + operand.offset,
            s[0],
            s[1],
            s[2],
            s[3],
        ]
    };
    let unfold = window_node == patch_node;
    let mut desc = WindowDesc {
        n: image[0],
        c: image[1],
        h: image[2],
        w: image[3],
        oh: patches[1],
        ow: patches[2],
        kernel: window.kernel,
        stride: window.stride,
        padding: window.padding,
        image: if unfold { view } else { own_view(image) },
        patches: if unfold { own_view(patches) } else { view },
        parts: 1,
    };
    if desc.n * desc.work() >= window::PARALLEL_MIN_WORK && threads > 1 {
        desc.parts = threads.min(desc.n);
    }
    let extents = desc.extents();
    let buffers = [
        if unfold { operand.buffer } else { root },
        if unfold { root } else { operand.buffer },
    ];
    for (&(lo, hi), &buffer) in extents.iter().zip(&buffers) {
        let b = plan.buffer(buffer);
        if lo < b.offset as isize || hi >= (b.offset + b.len.max(1)) as isize {
            return Err(format!(
                "{}: a window view [{lo}, {hi}] leaves its buffer {} at {} of {} elements",
                bound.name(root),
                bound.name(buffer),
                b.offset,
                b.len
            ));
        }
    }
    Ok(desc)
}

fn code_size(ctx: &cranelift_codegen::Context) -> usize {
    ctx.compiled_code().map_or(0, |c| c.code_buffer().len())
}

/// Appends the functions to `/tmp/perf-<pid>.map` so `perf report` names
/// them (set `NNC_PERF_MAP`).
fn write_perf_map(module: &JITModule, sizes: &[(FuncId, usize, String)]) {
    use std::io::Write;
    let path = format!("/tmp/perf-{}.map", std::process::id());
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        for (id, size, name) in sizes {
            let address = module.get_finalized_function(*id) as usize;
            let _ = writeln!(file, "{address:x} {size:x} {name}");
        }
    }
}
