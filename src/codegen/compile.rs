//! The JIT module: one function per kernel (a loop's body's kernels
//! included, once) plus the step function that calls them in order (built
//! in `step.rs`, with the GEMM calls and the copies between them), compiled
//! by Cranelift for this machine.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use cranelift_codegen::ir::function::FunctionStencil;
use cranelift_codegen::ir::types::{F32, I32, I64};
use cranelift_codegen::ir::{AbiParam, InstBuilder, Signature, UserFuncName};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module};

use super::accumulate;
use super::calls;
use super::emit::{Calls, Emitter, Streams};
use super::fuse::{Fused, Kernel};
use super::gemm::{self, MatMulDesc};
use super::kernels::{self, LoopCode};
use super::memory::Plan;
use super::share;
use super::window::{self, WindowDesc};
use super::CompileOptions;
use crate::ir::NodeId;

/// A compiled step: the module that owns the code, the entry point, and
/// what the code points into.
pub struct Artifacts {
    pub module: JITModule,
    pub step: *const u8,
    /// Matrix product descriptors (the code holds their addresses).
    pub descriptors: Vec<Box<MatMulDesc>>,
    /// Window kernel descriptors, likewise.
    pub windows: Vec<Box<WindowDesc>>,
    /// The collective of the `all_reduce` kernels, likewise.
    pub collective: Option<Box<crate::collective::Handle>>,
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

pub(super) struct Imports {
    pub copy_rows: FuncId,
    pub stream_rows: FuncId,
    pub all_reduce: FuncId,
    pub zero_rows: FuncId,
    pub column_sums: FuncId,
    pub scatter_rows: FuncId,
    pub normal: FuncId,
    pub sin: FuncId,
    pub cos: FuncId,
    pub pow: FuncId,
    pub matmul: FuncId,
    pub unfold2d: FuncId,
    pub fold2d: FuncId,
    pub barrier: FuncId,
    pub copy: FuncId,
    pub tick: FuncId,
}

pub(super) fn signature(
    module: &JITModule,
    params: &[cranelift_codegen::ir::Type],
    returns: &[cranelift_codegen::ir::Type],
) -> Signature {
    let mut sig = module.make_signature();
    sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
    sig.returns.extend(returns.iter().map(|&t| AbiParam::new(t)));
    sig
}

/// This machine's instruction set as Cranelift sees it; with `cap_avx512`
/// (`NNC_ISA=avx2`) the JIT's instructions are capped like the kernels':
/// every AVX-512 flag this Cranelift knows, found by name, so a later
/// version's new ones are capped too.
fn native_isa(cap_avx512: bool) -> Result<cranelift_codegen::isa::Builder, String> {
    let mut isa = cranelift_native::builder().map_err(|e| format!("this machine is not supported: {e}"))?;
    if cfg!(target_arch = "x86_64") && cap_avx512 {
        let avx512: Vec<_> = isa
            .iter()
            .filter(|s| s.kind == settings::SettingKind::Bool && s.name.starts_with("has_avx512"))
            .collect();
        for flag in avx512 {
            isa.set(flag.name, "false").map_err(|e| e.to_string())?;
        }
    }
    Ok(isa)
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
    let isa = native_isa(!nnc_gemm::kernel::avx512())?
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
    builder.symbol("nnc_copy_rows", calls::nnc_copy_rows as *const u8);
    builder.symbol("nnc_stream_rows", calls::nnc_stream_rows as *const u8);
    builder.symbol("nnc_all_reduce", calls::nnc_all_reduce as *const u8);
    builder.symbol("nnc_column_sums", calls::nnc_column_sums as *const u8);
    builder.symbol("nnc_scatter_rows", calls::nnc_scatter_rows as *const u8);
    builder.symbol("nnc_zero_rows", calls::nnc_zero_rows as *const u8);
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
        copy_rows: import("nnc_copy_rows", &[I64; 9], &[])?,
        stream_rows: import("nnc_stream_rows", &[I64; 7], &[])?,
        all_reduce: import("nnc_all_reduce", &[I64; 4], &[])?,
        zero_rows: import("nnc_zero_rows", &[I64; 5], &[])?,
        column_sums: import("nnc_column_sums", &[I64; 5], &[])?,
        scatter_rows: import("nnc_scatter_rows", &[I64; 6], &[])?,
        tick: import("nnc_tick", &[I64], &[])?,
    })
}

/// Random streams of the graph, each with its slot in the random table
/// (after `seed` and `step`).
fn streams(fused: &Fused) -> Streams {
    let mut streams = Streams::default();
    let mut graphs = vec![fused];
    while let Some(fused) = graphs.pop() {
        for &id in &fused.bound.order {
            match fused.bound.op(id) {
                crate::prim::Prim::Random { stream, .. } => {
                    let next = streams.len() + 2;
                    streams.entry(*stream).or_insert(next);
                }
                crate::prim::Prim::Scan(_) => graphs.push(&fused.bodies[&id]),
                _ => {}
            }
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

/// What compiling the kernels of one graph (or loop body) leaves for the
/// step function, by kernel.
pub(super) struct Functions {
    /// The function of each kernel (none for products, windows and loops).
    pub ids: Vec<Option<FuncId>>,
    /// The size of each kernel's `start..end` range, and whether the
    /// threads split it.
    pub splits: Vec<(i64, bool)>,
    /// Each kernel's buffer table, as an index into `Builder::tables`.
    pub tables: Vec<usize>,
    /// Each kernel's number in the whole step (status codes, profiles):
    /// kernels of a loop's body are numbered right after the loop.
    pub numbers: Vec<usize>,
    /// The functions of every loop's body.
    pub bodies: HashMap<NodeId, Functions>,
}

/// A kernel's function (none for products and windows), its split (the
/// size of its `start..end` range, and whether the threads share it) and
/// its buffer table (an index into `Builder::tables`).
type KernelFunction = (Option<FuncId>, (i64, bool), usize);

/// The module and what every kernel function compiled so far left: shared
/// by a graph's kernels and its loops' bodies, so equal kernels anywhere
/// share one function.
pub(super) struct Builder<'o> {
    pub(super) module: JITModule,
    pub(super) imports: Imports,
    pub(super) streams: Streams,
    pub(super) ctx: cranelift_codegen::Context,
    pub(super) builder_ctx: FunctionBuilderContext,
    pub(super) clif: Vec<String>,
    pub(super) asm: Vec<String>,
    pub(super) kernel_sig: Signature,
    pub(super) sizes: Vec<(FuncId, usize, String)>,
    pub(super) share: bool,
    pub(super) compiled_code: HashMap<u64, Vec<(FunctionStencil, FuncId, usize)>>,
    pub(super) by_key: rustc_hash::FxHashMap<share::Key, share::Shared<FuncId>>,
    pub(super) by_structure: usize,
    /// Every kernel call's buffer table (the code holds their addresses).
    pub(super) tables: Vec<Box<[i64]>>,
    pub(super) planning_time: std::time::Duration,
    pub(super) options: &'o CompileOptions,
    pub(super) keep_text: bool,
    pub(super) next_number: usize,
}

pub fn compile(fused: &Fused, plan: &Plan, options: &CompileOptions, keep_text: bool) -> Result<Artifacts, String> {
    let started = std::time::Instant::now();
    let mut module = new_module()?;
    let imports = declare_imports(&mut module)?;
    let kernel_sig = signature(&module, &kernels::kernel_params(), &[I32]);
    let ctx = module.make_context();
    let mut builder = Builder {
        module,
        imports,
        streams: streams(fused),
        ctx,
        builder_ctx: FunctionBuilderContext::new(),
        clif: Vec::new(),
        asm: Vec::new(),
        kernel_sig,
        sizes: Vec::new(),
        // Kernels address their buffers through a table passed by the
        // caller, so kernels of the same structure (the steps of an
        // unrolled scan, the layers of a `repeat`) compile once and share
        // their code.
        share: std::env::var("NNC_SHARE_KERNELS").map_or(true, |v| v != "0"),
        compiled_code: HashMap::new(),
        by_key: Default::default(),
        by_structure: 0,
        tables: Vec::new(),
        planning_time: std::time::Duration::ZERO,
        options,
        keep_text,
        next_number: 0,
    };
    let functions = builder.compile_kernels(fused, plan)?;
    let kernels_done = std::time::Instant::now();
    let (
        step_id,
        super::step::Descriptors {
            matmuls: descriptors,
            windows,
            collective,
        },
    ) = super::step::define(&mut builder, fused, plan, &functions)?;
    if crate::timing::enabled() {
        eprintln!(
            "codegen: kernels {:.1?} (planning their loops {:.1?}; {} known by structure), step function {:.1?}",
            kernels_done - started,
            builder.planning_time,
            builder.by_structure,
            kernels_done.elapsed()
        );
    }
    let Builder {
        mut module,
        streams,
        clif,
        asm,
        sizes,
        tables,
        ..
    } = builder;
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
        collective,
        functions: sizes.len() - 1,
        tables,
        streams,
        clif,
        asm,
    })
}

impl Builder<'_> {
    /// Compiles `fused`'s kernel functions (and its loops' bodies').
    fn compile_kernels(&mut self, fused: &Fused, plan: &Plan) -> Result<Functions, String> {
        let mut functions = Functions {
            ids: Vec::new(),
            splits: Vec::new(),
            tables: Vec::new(),
            numbers: Vec::new(),
            bodies: HashMap::new(),
        };
        for (k, kernel) in fused.kernels.iter().enumerate() {
            let number = self.next_number;
            self.next_number += 1;
            functions.numbers.push(number);
            if let Kernel::Scan(root) = kernel {
                functions.ids.push(None);
                functions.splits.push((1, false));
                functions.tables.push(usize::MAX);
                let looped = plan
                    .loops
                    .get(root)
                    .ok_or_else(|| format!("{}: a loop without a region", fused.bound.name(*root)))?;
                let body = self.compile_kernels(&fused.bodies[root], &looped.body)?;
                functions.bodies.insert(*root, body);
                continue;
            }
            let (id, split, table) = self.compile_kernel(fused, plan, k, number)?;
            functions.ids.push(id);
            functions.splits.push(split);
            functions.tables.push(table);
        }
        Ok(functions)
    }

    /// Compiles kernel `k` of `fused` (numbered `number` in the step), or
    /// finds the function of an equal kernel compiled before; returns the
    /// function, the split and the buffer table.
    fn compile_kernel(
        &mut self,
        fused: &Fused,
        plan: &Plan,
        k: usize,
        number: usize,
    ) -> Result<KernelFunction, String> {
        let kernel = &fused.kernels[k];
        let options = self.options;
        let table_index = self.tables.len();
        if matches!(
            kernel,
            Kernel::MatMul { .. } | Kernel::Window { .. } | Kernel::AllReduce(_)
        ) {
            self.tables.push(Box::new([]));
            return Ok((None, (1, false), table_index));
        }
        self.ctx.func.signature = self.kernel_sig.clone();
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
            Kernel::Accumulate(root) => Some(accumulate::plan_accumulate(fused, *root)),
            _ => None,
        };
        self.planning_time += planning.elapsed();
        let streams = &self.streams;
        let structure = match (kernel, code.as_ref(), concat.as_ref()) {
            _ if !self.share => None,
            (Kernel::Loop(l), Some(code), _) => {
                Some(share::loop_key(fused, l, code, streams, plan, options.check_bounds))
            }
            (Kernel::Concat(root), _, Some(concat)) => {
                Some(share::concat_key(*root, concat, streams, plan, options.check_bounds))
            }
            (Kernel::Accumulate(root), ..) => accumulate
                .as_ref()
                .map(|accumulate| share::accumulate_key(*root, accumulate, streams, plan, options.check_bounds)),
            _ => None,
        };
        let known = structure.as_ref().and_then(|(key, layout)| {
            self.by_key
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
        // Debug builds build the code anyway, to check below that it is
        // the same function with the same table.
        self.by_structure += usize::from(known.is_some());
        if let (Some((id, first, table)), false) = (&known, cfg!(debug_assertions)) {
            if self.keep_text {
                note_shared(&mut self.clif, &mut self.asm, number, *first);
            }
            self.tables.push(table.clone().into_boxed_slice());
            return Ok((Some(*id), (split, parallel), table_index));
        }
        let uses;
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.builder_ctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            b.seal_block(entry);
            let params = b.block_params(entry).to_vec();
            let module = &mut self.module;
            let imports = &self.imports;
            let calls = Calls {
                normal: module.declare_func_in_func(imports.normal, b.func),
                sin: module.declare_func_in_func(imports.sin, b.func),
                cos: module.declare_func_in_func(imports.cos, b.func),
                pow: module.declare_func_in_func(imports.pow, b.func),
                column_sums: module.declare_func_in_func(imports.column_sums, b.func),
                scatter_rows: module.declare_func_in_func(imports.scatter_rows, b.func),
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
                &self.streams,
                options.check_bounds,
                self.share.then_some(params[4]),
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
                Kernel::Accumulate(root) => accumulate::emit_accumulate(
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
                Kernel::MatMul { .. } | Kernel::Window { .. } | Kernel::Scan(_) | Kernel::AllReduce(_) => {
                    unreachable!("no function")
                }
            }
            let zero = em.b.ins().iconst(I32, 0);
            em.b.ins().return_(&[zero]);
            em.finish_fail_block();
            uses = em.table_uses();
            em.b.finalize(self.module.target_config());
            self.tables.push(std::mem::take(&mut em.relocations).into_boxed_slice());
        }
        // Remembers the function `id` made for this kernel's structure (or
        // checks, in debug builds, the one the structure gave).
        let by_key = &mut self.by_key;
        let own_table = &self.tables[table_index];
        let remember = |id: FuncId, first: usize| {
            let Some((key, layout)) = structure else {
                return;
            };
            if let Some((known_id, _, table)) = &known {
                assert!(
                    *known_id == id && table[..] == own_table[..],
                    "kernel {number}: an equal structure gave other code or another table"
                );
                return;
            }
            if let Some(shared) = share::Shared::new(id, first, &layout, &uses) {
                by_key.insert(key, shared);
            }
        };
        let key = {
            let mut hasher = rustc_hash::FxHasher::default();
            self.ctx.func.stencil.hash(&mut hasher);
            hasher.finish()
        };
        let earlier = self
            .compiled_code
            .get(&key)
            .and_then(|same| same.iter().find(|(stencil, ..)| *stencil == self.ctx.func.stencil))
            .map(|&(_, id, first)| (id, first));
        if let Some((id, first)) = earlier {
            remember(id, first);
            if self.keep_text {
                note_shared(&mut self.clif, &mut self.asm, number, first);
            }
            self.module.clear_context(&mut self.ctx);
            return Ok((Some(id), (split, parallel), table_index));
        }
        let id = self
            .module
            .declare_function(&format!("kernel{number}"), Linkage::Local, &self.kernel_sig)
            .map_err(|e| e.to_string())?;
        self.ctx.func.name = UserFuncName::user(0, id.as_u32());
        if self.share {
            self.compiled_code
                .entry(key)
                .or_default()
                .push((self.ctx.func.stencil.clone(), id, number));
        }
        if self.keep_text {
            self.clif
                .push(format!("; kernel {number}\n{}", self.ctx.func.display()));
        }
        self.ctx.set_disasm(self.keep_text);
        self.module
            .define_function(id, &mut self.ctx)
            .map_err(|e| format!("kernel {number}: {e:?}"))?;
        if let Some(listing) = self.ctx.compiled_code().and_then(|c| c.vcode.clone()) {
            self.asm.push(format!("; kernel {number}\n{listing}"));
        }
        remember(id, number);
        self.sizes
            .push((id, code_size(&self.ctx), format!("nnc_kernel{number}")));
        self.module.clear_context(&mut self.ctx);
        Ok((Some(id), (split, parallel), table_index))
    }

    /// Defines the step function built in `self.ctx` as `id`.
    pub fn define_step(&mut self, id: FuncId) -> Result<(), String> {
        if self.keep_text {
            self.clif.push(format!("; step\n{}", self.ctx.func.display()));
        }
        self.ctx.set_disasm(self.keep_text);
        self.module
            .define_function(id, &mut self.ctx)
            .map_err(|e| format!("step: {e:?}"))?;
        if let Some(listing) = self.ctx.compiled_code().and_then(|c| c.vcode.clone()) {
            self.asm.push(format!("; step\n{listing}"));
        }
        self.sizes.push((id, code_size(&self.ctx), "nnc_step".to_string()));
        self.module.clear_context(&mut self.ctx);
        Ok(())
    }
}

/// The CLIF and assembly listings' line for kernel `k`, which runs the code
/// of kernel `first` with its own table.
fn note_shared(clif: &mut Vec<String>, asm: &mut Vec<String>, k: usize, first: usize) {
    let note = format!("; kernel {k}: the code of kernel {first}, with its own buffer table\n");
    clif.push(note.clone());
    asm.push(note);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags of a finished ISA that name AVX-512 and are on.
    fn avx512_on(cap: bool) -> Vec<String> {
        let isa = native_isa(cap)
            .unwrap()
            .finish(settings::Flags::new(settings::builder()))
            .unwrap();
        isa.isa_flags()
            .into_iter()
            .filter(|f| f.name.starts_with("has_avx512") && f.as_bool() == Some(true))
            .map(|f| f.name.to_string())
            .collect()
    }

    #[test]
    fn the_avx2_cap_turns_every_avx512_flag_off() {
        assert_eq!(avx512_on(true), Vec::<String>::new());
        if cfg!(target_arch = "x86_64") && std::arch::is_x86_feature_detected!("avx512f") {
            // Uncapped, the host's AVX-512 reaches the JIT: the filter above
            // matches real flag names.
            assert!(avx512_on(false).contains(&"has_avx512f".to_string()));
        }
    }
}
