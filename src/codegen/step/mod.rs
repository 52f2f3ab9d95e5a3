//! The step function `(arena, random table, thread, threads, team) ->
//! status`: the kernels of a graph called in order, with the GEMM and
//! window calls and the copies between them, and each loop (`scan`) as a
//! loop over its steps calling its body's kernels.
//!
//! Every thread of the team runs it with its own number, taking its share
//! of each split kernel; kernels that are not split run on thread 0. A
//! barrier follows every kernel that the next one may depend on across
//! threads (everything except a run of kernels on thread 0 alone). With
//! `threads` 1 (and no team) one thread runs it all, with the same
//! results: rows are computed alike whichever thread takes them, and
//! products are cut into the same parts.
//!
//! Each loop (`scan`) is a loop over its steps in the step function
//! (`loops.rs`).

mod loops;

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I32, I64};
use cranelift_codegen::ir::{FuncRef, InstBuilder, UserFuncName, Value};
use cranelift_frontend::{FunctionBuilder, Variable};
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Linkage, Module};

use super::compile::{signature, Builder, Functions};
use super::descriptors::{matmul_descriptor, window_descriptor};
use super::fuse::{Fused, Kernel, View};
use super::gemm::{self, MatMulDesc};
use super::memory::Plan;
use super::window::WindowDesc;
use crate::ir::NodeId;
use crate::prim::Prim;

/// The descriptors of the step's products and window kernels, and the
/// collective its `all_reduce` kernels sum over, boxed: the code holds their
/// addresses, which must not move.
#[allow(clippy::vec_box)]
pub(super) struct Descriptors {
    pub matmuls: Vec<Box<MatMulDesc>>,
    pub windows: Vec<Box<WindowDesc>>,
    pub collective: Option<Box<crate::collective::Handle>>,
}

/// What the step function's code refers to while it is built.
struct Step<'m> {
    module: &'m mut JITModule,
    tables: &'m [Box<[i64]>],
    arena: Value,
    rng: Value,
    thread: Value,
    thread_count: Value,
    team: Value,
    copy: FuncRef,
    copy_rows: FuncRef,
    stream_rows: FuncRef,
    zero_rows: FuncRef,
    all_reduce: FuncRef,
    matmul: FuncRef,
    unfold2d: FuncRef,
    fold2d: FuncRef,
    barrier_fn: FuncRef,
    tick: FuncRef,
    threads: usize,
    check_bounds: bool,
    /// Stacked results of a loop larger than this (in bytes together) are
    /// stored around the caches (`CompileOptions::stream_stacks_above`).
    stream_stacks_above: usize,
    profile: bool,
    status: Variable,
    kernel_refs: HashMap<FuncId, FuncRef>,
    descriptors: Descriptors,
}

/// Builds and defines the step function of `fused`; returns it with the
/// descriptors its code points to.
pub(super) fn define(
    builder: &mut Builder,
    fused: &Fused,
    plan: &Plan,
    functions: &Functions,
) -> Result<(FuncId, Descriptors), String> {
    let step_sig = signature(&builder.module, &[I64, I64, I64, I64, I64], &[I32]);
    let step_id = builder
        .module
        .declare_function("step", Linkage::Local, &step_sig)
        .map_err(|e| e.to_string())?;
    builder.ctx.func.signature = step_sig;
    builder.ctx.func.name = UserFuncName::user(0, step_id.as_u32());
    let threads = builder.options.threads.max(1);
    let check_bounds = builder.options.check_bounds;
    let descriptors = {
        let mut b = FunctionBuilder::new(&mut builder.ctx.func, &mut builder.builder_ctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let params = b.block_params(entry).to_vec();
        let module = &mut builder.module;
        let imports = &builder.imports;
        let mut declare = |id: FuncId, b: &mut FunctionBuilder| module.declare_func_in_func(id, b.func);
        let copy = declare(imports.copy, &mut b);
        let copy_rows = declare(imports.copy_rows, &mut b);
        let stream_rows = declare(imports.stream_rows, &mut b);
        let zero_rows = declare(imports.zero_rows, &mut b);
        let all_reduce = declare(imports.all_reduce, &mut b);
        let matmul = declare(imports.matmul, &mut b);
        let unfold2d = declare(imports.unfold2d, &mut b);
        let fold2d = declare(imports.fold2d, &mut b);
        let barrier_fn = declare(imports.barrier, &mut b);
        let tick = declare(imports.tick, &mut b);
        let status = b.declare_var(I32);
        let zero = b.ins().iconst(I32, 0);
        b.def_var(status, zero);
        let mut step = Step {
            module: &mut builder.module,
            tables: &builder.tables,
            arena: params[0],
            rng: params[1],
            thread: params[2],
            thread_count: params[3],
            team: params[4],
            copy,
            copy_rows,
            stream_rows,
            zero_rows,
            all_reduce,
            matmul,
            unfold2d,
            fold2d,
            barrier_fn,
            tick,
            threads,
            check_bounds,
            stream_stacks_above: builder.options.stream_stacks_above,
            profile: std::env::var_os("NNC_PROFILE").is_some(),
            status,
            kernel_refs: HashMap::new(),
            descriptors: Descriptors {
                matmuls: Vec::new(),
                windows: Vec::new(),
                collective: builder.options.collective.clone().map(Box::new),
            },
        };
        if step.profile {
            step.on_thread_0(&mut b, &mut |s, b| s.tick_at(b, -1));
        }
        if !plan.stage.is_empty() {
            step.on_thread_0(&mut b, &mut |s, b| {
                for c in &plan.stage {
                    s.copy(b, c.from, c.to, c.len);
                }
            });
            step.barrier(&mut b);
        }
        step.kernels(&mut b, fused, plan, functions, false)?;
        step.on_thread_0(&mut b, &mut |s, b| {
            for c in &plan.copies {
                s.copy(b, c.from, c.to, c.len);
            }
        });
        let result = b.use_var(status);
        b.ins().return_(&[result]);
        b.finalize(step.module.target_config());
        step.descriptors
    };
    builder.define_step(step_id)?;
    Ok((step_id, descriptors))
}

impl Step<'_> {
    /// Emits `body` so that only thread 0 runs it.
    fn on_thread_0(&mut self, b: &mut FunctionBuilder, body: &mut dyn FnMut(&mut Self, &mut FunctionBuilder)) {
        if self.threads == 1 {
            body(self, b);
            return;
        }
        let (run, after) = (b.create_block(), b.create_block());
        b.ins().brif(self.thread, after, &[], run, &[]);
        b.seal_block(run);
        b.switch_to_block(run);
        body(self, b);
        b.ins().jump(after, &[]);
        b.seal_block(after);
        b.switch_to_block(after);
    }

    fn barrier(&mut self, b: &mut FunctionBuilder) {
        if self.threads > 1 {
            b.ins().call(self.barrier_fn, &[self.team, self.thread]);
        }
    }

    fn tick_at(&mut self, b: &mut FunctionBuilder, number: i64) {
        let number = b.ins().iconst(I64, number);
        b.ins().call(self.tick, &[number]);
    }

    /// Copies `len` elements of the arena from `from` to `to`.
    fn copy(&mut self, b: &mut FunctionBuilder, from: usize, to: usize, len: usize) {
        if from == to || len == 0 {
            return;
        }
        let args = [
            self.arena,
            b.ins().iconst(I64, from as i64),
            b.ins().iconst(I64, to as i64),
            b.ins().iconst(I64, len as i64),
        ];
        b.ins().call(self.copy, &args);
    }

    /// This thread's share `[start, end)` of `count` items: the same cut
    /// `call_kernel` makes, all of them on one thread.
    fn share(&mut self, b: &mut FunctionBuilder, count: usize) -> (Value, Value) {
        let start = b.ins().imul_imm_s(self.thread, count as i64);
        let start = b.ins().udiv(start, self.thread_count);
        let next = b.ins().iadd_imm_s(self.thread, 1);
        let end = b.ins().imul_imm_s(next, count as i64);
        let end = b.ins().udiv(end, self.thread_count);
        (start, end)
    }

    /// Copies this thread's share of `len` elements of the arena from
    /// `from` to `to`.
    fn copy_shared(&mut self, b: &mut FunctionBuilder, from: usize, to: usize, len: usize) {
        if from == to || len == 0 {
            return;
        }
        let (start, end) = self.share(b, len);
        let source = b.ins().iadd_imm_s(start, from as i64);
        let target = b.ins().iadd_imm_s(start, to as i64);
        let count = b.ins().isub(end, start);
        b.ins().call(self.copy, &[self.arena, source, target, count]);
    }

    /// Calls every kernel of `fused` in order.
    ///
    /// In a loop's body (`body`), the last kernel is followed by a barrier
    /// only if the threads share it: what thread 0 does after the body
    /// (the copies, the next step's gathers, the kernels up to the next
    /// shared one) needs no other thread, which waits at the barrier
    /// before the next shared kernel.
    fn kernels(
        &mut self,
        b: &mut FunctionBuilder,
        fused: &Fused,
        plan: &Plan,
        functions: &Functions,
        body: bool,
    ) -> Result<(), String> {
        let threads = self.threads;
        let shared = shared(fused, plan, functions, threads, body)?;
        for (k, kernel) in fused.kernels.iter().enumerate() {
            let number = functions.numbers[k];
            match kernel {
                Kernel::MatMul { root, a, b: bv, into } => {
                    let mut desc = body_matmul(fused, plan, *root, a, bv, threads, body);
                    desc.accumulate = usize::from(into.is_some_and(|i| i.add));
                    let boxed = Box::new(desc);
                    let address = b.ins().iconst(I64, &*boxed as *const MatMulDesc as i64);
                    self.descriptors.matmuls.push(boxed);
                    b.ins()
                        .call(self.matmul, &[address, self.arena, self.thread, self.thread_count]);
                }
                Kernel::Window { root, operand } => {
                    let boxed = Box::new(window_descriptor(fused, plan, *root, operand, threads)?);
                    let address = b.ins().iconst(I64, &*boxed as *const WindowDesc as i64);
                    self.descriptors.windows.push(boxed);
                    let f = match fused.bound.op(*root) {
                        Prim::Unfold2d(_) => self.unfold2d,
                        _ => self.fold2d,
                    };
                    b.ins().call(f, &[address, self.arena, self.thread, self.thread_count]);
                }
                Kernel::AllReduce(root) => {
                    let operand = fused.bound.inputs(*root)[0];
                    let (from, to) = (plan.buffer(operand).offset, plan.buffer(*root).offset);
                    let len = fused.bound.count(*root);
                    let collective = self
                        .descriptors
                        .collective
                        .as_deref()
                        .map_or(0, |c| c as *const crate::collective::Handle as i64);
                    self.on_thread_0(b, &mut |s, b| {
                        s.copy(b, from, to, len);
                        let args = [
                            b.ins().iconst(I64, collective),
                            s.arena,
                            b.ins().iconst(I64, to as i64),
                            b.ins().iconst(I64, len as i64),
                        ];
                        b.ins().call(s.all_reduce, &args);
                    });
                }
                Kernel::Scan(root) => {
                    let body = functions
                        .bodies
                        .get(root)
                        .ok_or_else(|| format!("{}: a loop without its body's code", fused.bound.name(*root)))?;
                    self.scan(b, fused, plan, *root, body, number)?;
                }
                _ => {
                    let id = functions.ids[k].expect("a kernel function");
                    let table = self.tables[functions.tables[k]].as_ptr() as i64;
                    self.call_kernel(b, id, table, number, functions.splits[k].0, shared[k]);
                }
            }
            let last = k + 1 == fused.kernels.len();
            if shared[k] || (last && !body) || (!last && shared[k + 1]) {
                self.barrier(b);
            }
            if self.profile {
                self.on_thread_0(b, &mut |s, b| s.tick_at(b, number as i64));
            }
        }
        Ok(())
    }

    /// Calls kernel function `id` (kernel `number` of the step) with its
    /// buffer table: split between the threads when `shared`, else on
    /// thread 0 over its whole range.
    fn call_kernel(
        &mut self,
        b: &mut FunctionBuilder,
        id: FuncId,
        table: i64,
        number: usize,
        split: i64,
        shared: bool,
    ) {
        let module = &mut *self.module;
        let f = *self
            .kernel_refs
            .entry(id)
            .or_insert_with(|| module.declare_func_in_func(id, b.func));
        let check_bounds = self.check_bounds;
        let (arena, rng, status) = (self.arena, self.rng, self.status);
        let call = move |b: &mut FunctionBuilder, start: Value, end: Value| {
            let table = b.ins().iconst(I64, table);
            let call = b.ins().call(f, &[arena, rng, start, end, table]);
            if !check_bounds {
                return;
            }
            let result = b.inst_results(call)[0];
            // Keep the first failure; every thread goes on to the end so
            // that none waits at a barrier forever.
            let current = b.use_var(status);
            let first = b.ins().icmp_imm_s(IntCC::Equal, current, 0);
            let failed = b.ins().icmp_imm_s(IntCC::NotEqual, result, 0);
            let record = b.ins().band(first, failed);
            let code = b.ins().iconst(I32, number as i64 + 1);
            let next = b.ins().select(record, code, current);
            b.def_var(status, next);
        };
        if shared {
            let (thread, thread_count) = (self.thread, self.thread_count);
            let start = b.ins().imul_imm_s(thread, split);
            let start = b.ins().udiv(start, thread_count);
            let next = b.ins().iadd_imm_s(thread, 1);
            let end = b.ins().imul_imm_s(next, split);
            let end = b.ins().udiv(end, thread_count);
            call(b, start, end);
        } else {
            self.on_thread_0(b, &mut |_, b| {
                let start = b.ins().iconst(I64, 0);
                let end = b.ins().iconst(I64, split);
                call(b, start, end);
            });
        }
    }
}

/// Whether each kernel of `fused` (a loop's body if `body`) runs on every
/// thread (or on thread 0 alone); a loop runs on all of them, and meets
/// them at barriers.
fn shared(fused: &Fused, plan: &Plan, functions: &Functions, threads: usize, body: bool) -> Result<Vec<bool>, String> {
    let mut shared = Vec::new();
    for (k, kernel) in fused.kernels.iter().enumerate() {
        shared.push(match kernel {
            Kernel::MatMul { root, a, b: bv, .. } => body_matmul(fused, plan, *root, a, bv, threads, body).parts > 1,
            Kernel::Window { root, operand } => window_descriptor(fused, plan, *root, operand, threads)?.parts > 1,
            Kernel::Scan(_) => true,
            _ => functions.splits[k].1,
        });
    }
    Ok(shared)
}

/// The descriptor of a product of `fused` (a loop's body if `body`). A
/// product in a loop's body is cut only where the cut keeps its bits
/// ([`gemm::cut_keeps_bits`]): the `gemm` crate may sum in another order
/// for fewer rows, and a step compiled for one thread or for the team must
/// give the same bits.
fn body_matmul(fused: &Fused, plan: &Plan, root: NodeId, a: &View, b: &View, threads: usize, body: bool) -> MatMulDesc {
    let desc = matmul_descriptor(fused, plan, root, a, b, threads);
    if body && desc.parts > 1 && !gemm::cut_keeps_bits(&desc) {
        return matmul_descriptor(fused, plan, root, a, b, 1);
    }
    desc
}

/// Where row `row` of rows starting at `base`, `stride` apart, begins.
fn row_at(b: &mut FunctionBuilder, (base, stride): (Value, i64), row: Value) -> Value {
    let skip = b.ins().imul_imm_s(row, stride);
    b.ins().iadd(base, skip)
}
