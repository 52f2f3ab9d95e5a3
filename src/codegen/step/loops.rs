//! A loop (`scan`) in the step function: a loop over its steps calling its
//! body's kernels, with the copies in and out of its slots.
//!
//! Step `t` (from the last to the first when reversed): the threads copy
//! step `t` of every sequence into its slot (each its share of the rows), a
//! barrier, the body's kernels (called as the step's are), a barrier, then they copy
//! each stacked result into the loop's value at step `t` and each carry's
//! next value into its slot, and meet at a barrier again. When the
//! sequences' slots are apart from all that those copies touch (they are
//! unless a result or carry is a sequence's step itself), each thread
//! copies the next step's sequences in right after them instead, and the
//! barrier at the top of the next step is the only one between two bodies.
//! The carries start as copies of their initial values and end copied into
//! the loop's value.
//! A step's rows of a sequence or a stacked result lie a whole sequence
//! apart (`[N, T, ...]`), where the hardware's prefetchers do not follow
//! them: each copy also fetches the rows [`PREFETCH_STEPS`] steps on into
//! the cache of the thread that will copy them. Stacked results larger
//! than `CompileOptions::stream_stacks_above` together are stored around
//! the caches: they are read only after the loop, and streamed no line is
//! read from memory before it is overwritten.
//! Every thread runs the same steps, so they meet at the same barriers.
//! Under `NNC_PROFILE` the copies between two bodies are timed as the
//! loop's own kernel.
//! The body's products are cut only where the cut keeps their bits (whole
//! batch entries, or nnc's own product), so that a loop compiled for one
//! thread or for the team gives the same bits.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

use super::{row_at, shared, Step};
use crate::codegen::compile::Functions;
use crate::codegen::fuse::Fused;
use crate::codegen::memory::{LoopPlan, Plan};
use crate::ir::NodeId;
use crate::prim::Prim;

impl Step<'_> {
    /// Copies this thread's share of `rows` rows of `len` elements, strided,
    /// fetching the rows `ahead` into this thread's cache or storing around
    /// the caches (see [`RowCopy`]).
    fn copy_rows(
        &mut self,
        b: &mut FunctionBuilder,
        from: (Value, i64),
        to: (Value, i64),
        (rows, len): (usize, usize),
        how: RowCopy,
    ) {
        let (start, end) = self.share(b, rows);
        let (source, target) = (row_at(b, from, start), row_at(b, to, start));
        let count = b.ins().isub(end, start);
        let mut args = vec![
            self.arena,
            source,
            b.ins().iconst(I64, from.1),
            target,
            b.ins().iconst(I64, to.1),
            count,
            b.ins().iconst(I64, len as i64),
        ];
        let function = match how {
            RowCopy::Ahead(from_ahead, to_ahead) => {
                args.extend([from_ahead, to_ahead]);
                self.copy_rows
            }
            RowCopy::Stream => self.stream_rows,
        };
        b.ins().call(function, &args);
    }

    /// Zeroes this thread's share of `rows` rows of `len` elements,
    /// strided (see `nnc_zero_rows`): the same share `copy_rows` takes.
    fn zero_rows(&mut self, b: &mut FunctionBuilder, to: (Value, i64), rows: usize, len: usize) {
        let (start, end) = self.share(b, rows);
        let target = row_at(b, to, start);
        let count = b.ins().isub(end, start);
        let args = [
            self.arena,
            target,
            b.ins().iconst(I64, to.1),
            count,
            b.ins().iconst(I64, len as i64),
        ];
        b.ins().call(self.zero_rows, &args);
    }

    /// Copies this thread's share of step `t` of every sequence of the
    /// loop into its slot.
    fn copy_sequences_in(&mut self, b: &mut FunctionBuilder, shape: &LoopShape, looped: &LoopPlan, t: Value) {
        for (k, sequence) in shape.sequences.iter().enumerate() {
            let to = (
                b.ins().iconst(I64, looped.sequence_slots[k] as i64),
                sequence.row as i64,
            );
            // Step `t` lies in the buffer as its step `t − before`.
            let s = b.ins().iadd_imm_s(t, -(sequence.before as i64));
            let from = b.ins().imul_imm_s(s, sequence.step_stride as i64);
            let from = (
                b.ins().iadd_imm_s(from, sequence.offset as i64),
                sequence.row_stride as i64,
            );
            let stored = shape.length - sequence.before - sequence.after;
            let no = b.ins().iconst(I64, 0);
            let ahead = RowCopy::Ahead(shape.ahead(b, s, stored, sequence.step_stride), no);
            let size = (sequence.rows, sequence.row);
            if stored == shape.length {
                self.copy_rows(b, from, to, size, ahead);
                continue;
            }
            // The steps before and after those are zeros.
            let (copy, zero, next) = (b.create_block(), b.create_block(), b.create_block());
            let inside = b.ins().icmp_imm_s(IntCC::UnsignedLessThan, s, stored as i64);
            b.ins().brif(inside, copy, &[], zero, &[]);
            b.switch_to_block(copy);
            b.seal_block(copy);
            self.copy_rows(b, from, to, size, ahead);
            b.ins().jump(next, &[]);
            b.switch_to_block(zero);
            b.seal_block(zero);
            self.zero_rows(b, to, sequence.rows, sequence.row);
            b.ins().jump(next, &[]);
            b.switch_to_block(next);
            b.seal_block(next);
        }
    }

    /// Emits loop node `root` of `fused`: a loop over its steps whose body
    /// calls the body's kernels (module doc).
    pub(super) fn scan(
        &mut self,
        b: &mut FunctionBuilder,
        fused: &Fused,
        plan: &Plan,
        root: NodeId,
        functions: &Functions,
        number: usize,
    ) -> Result<(), String> {
        let shape = LoopShape::new(fused, plan, root)?;
        let looped = &plan.loops[&root];
        let body = &fused.bodies[&root];
        let length = shape.length as i64;
        for (c, &(init, len)) in shape.inits.iter().enumerate() {
            self.copy_shared(b, init, looped.carry_slots[c], len);
        }
        // The next step's sequences are copied in right after this step's
        // copies out, with no barrier between: the barrier at the top of
        // the next step orders them before its body. That needs the
        // sequences' slots apart from everything the copies out touch.
        let early = looped.early_steps;
        if early && length > 0 {
            let zero = b.ins().iconst(I64, 0);
            let first = shape.step_at(b, zero);
            self.copy_sequences_in(b, &shape, looped, first);
        }
        let counter = b.declare_var(I64);
        let zero = b.ins().iconst(I64, 0);
        b.def_var(counter, zero);
        let (header, step_block, exit) = (b.create_block(), b.create_block(), b.create_block());
        b.ins().jump(header, &[]);
        b.switch_to_block(header);
        let i = b.use_var(counter);
        let done = b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, i, length);
        b.ins().brif(done, exit, &[], step_block, &[]);
        b.switch_to_block(step_block);
        b.seal_block(step_block);
        let t = shape.step_at(b, i);
        // Every thread copies its share of the rows; the barrier after the
        // copies orders them before the body (and the carries' first
        // values before the first step).
        if !early {
            self.copy_sequences_in(b, &shape, looped, t);
        }
        self.barrier(b);
        self.kernels(b, body, &looped.body, functions, true)?;
        // The body ends with a barrier when its last kernel is shared.
        if shared(body, &looped.body, functions, self.threads, true)?.last() != Some(&true) {
            self.barrier(b);
        }
        let stream = shape.stacked_bytes() > self.stream_stacks_above;
        for y in &shape.ys {
            let from = b.ins().iconst(I64, looped.body.buffer(y.node).offset as i64);
            let to = b.ins().imul_imm_s(t, y.row as i64);
            let to = b.ins().iadd_imm_s(to, y.offset as i64);
            let row = y.row as i64;
            let how = if stream {
                RowCopy::Stream
            } else {
                let no = b.ins().iconst(I64, 0);
                RowCopy::Ahead(no, shape.ahead(b, t, shape.length, y.row))
            };
            self.copy_rows(b, (from, row), (to, length * row), (y.rows, y.row), how);
        }
        // Carries passed round unchanged wait outside the slots; every
        // thread's share of them is out before any slot is written.
        let mut next = Vec::new();
        for (&(node, len), held) in shape.carries.iter().zip(&looped.held) {
            let value = looped.body.buffer(node).offset;
            next.push(match held {
                Some(at) => {
                    self.copy_shared(b, value, *at, len);
                    *at
                }
                None => value,
            });
        }
        if looped.held.iter().any(Option::is_some) {
            self.barrier(b);
        }
        for (c, (&from, &(_, len))) in next.iter().zip(&shape.carries).enumerate() {
            self.copy_shared(b, from, looped.carry_slots[c], len);
        }
        let next = b.ins().iadd_imm_s(i, 1);
        if early {
            // The next step's sequences (none after the last step).
            let (copy, skip) = (b.create_block(), b.create_block());
            let more = b.ins().icmp_imm_s(IntCC::SignedLessThan, next, length);
            b.ins().brif(more, copy, &[], skip, &[]);
            b.switch_to_block(copy);
            b.seal_block(copy);
            let t_next = shape.step_at(b, next);
            self.copy_sequences_in(b, &shape, looped, t_next);
            b.ins().jump(skip, &[]);
            b.switch_to_block(skip);
            b.seal_block(skip);
        } else {
            // No thread writes the next step's slots before every thread
            // has read this step's.
            self.barrier(b);
        }
        if self.profile {
            // The copies between two bodies count as the loop's own time.
            self.on_thread_0(b, &mut |s, b| s.tick_at(b, number as i64));
        }
        b.def_var(counter, next);
        b.ins().jump(header, &[]);
        b.seal_block(header);
        b.switch_to_block(exit);
        b.seal_block(exit);
        if early {
            // Every thread's carries are in their slots before the final
            // values are copied out of them.
            self.barrier(b);
        }
        // The loop is a shared kernel: a barrier follows it.
        for (c, &(_, len)) in shape.carries.iter().enumerate() {
            self.copy_shared(b, looped.carry_slots[c], shape.finals[c], len);
        }
        Ok(())
    }
}

/// A sequence of a loop: `rows` rows (axis 0) of `row` elements a step,
/// row `r` of step `t` at `offset + r·row_stride + (t − before)·step_stride`
/// (see `SequenceView`); the `before` first and `after` last steps are
/// zeros.
struct Sequence {
    offset: usize,
    rows: usize,
    row: usize,
    row_stride: usize,
    step_stride: usize,
    before: usize,
    after: usize,
}

/// How a loop's rows are copied: fetching the rows a later step copies
/// (source and target offsets from these rows, zero for none; see
/// `nnc_copy_rows`), or with stores around the caches (`nnc_stream_rows`).
#[derive(Clone, Copy)]
enum RowCopy {
    Ahead(Value, Value),
    Stream,
}

/// How many steps ahead a loop's copies fetch the rows they will copy.
const PREFETCH_STEPS: i64 = 2;

/// A stacked result of a loop: the body's node, where its rows (axis 0)
/// start in the loop's value, `rows` rows of `length` steps of `row`
/// elements each.
struct Stacked {
    node: NodeId,
    offset: usize,
    rows: usize,
    row: usize,
}

/// Where a loop's copies read and write, checked against the buffers they
/// touch.
struct LoopShape {
    length: usize,
    reverse: bool,
    /// Each carry's initial value (offset, length).
    inits: Vec<(usize, usize)>,
    sequences: Vec<Sequence>,
    /// Each carry's next value (the body's node) and its length.
    carries: Vec<(NodeId, usize)>,
    /// Where each final carry goes in the loop's value.
    finals: Vec<usize>,
    ys: Vec<Stacked>,
}

impl LoopShape {
    /// The step the `i`-th iteration runs (from the last when reversed).
    fn step_at(&self, b: &mut FunctionBuilder, i: Value) -> Value {
        if self.reverse {
            let last = b.ins().iconst(I64, self.length as i64 - 1);
            b.ins().isub(last, i)
        } else {
            i
        }
    }

    /// Bytes of every stacked result together.
    fn stacked_bytes(&self) -> usize {
        let floats: usize = self.ys.iter().map(|y| y.rows * y.row * self.length).sum();
        floats * std::mem::size_of::<f32>()
    }

    /// How far from step `s` of `steps` (in floats, `stride` a step) the
    /// rows [`PREFETCH_STEPS`] iterations on lie, or zero when that step
    /// is past the end.
    fn ahead(&self, b: &mut FunctionBuilder, s: Value, steps: usize, stride: usize) -> Value {
        let distance = if self.reverse { -PREFETCH_STEPS } else { PREFETCH_STEPS };
        let later = b.ins().iadd_imm_s(s, distance);
        let inside = b.ins().icmp_imm_s(IntCC::UnsignedLessThan, later, steps as i64);
        let offset = b.ins().iconst(I64, distance * stride as i64);
        let zero = b.ins().iconst(I64, 0);
        b.ins().select(inside, offset, zero)
    }

    fn new(fused: &Fused, plan: &Plan, root: NodeId) -> Result<LoopShape, String> {
        let bound = &fused.bound;
        let name = bound.name(root);
        let Prim::Scan(looped) = bound.op(root) else {
            return Err(format!("{name} is not a loop"));
        };
        let body = &fused.bodies[&root];
        let region = &plan.loops[&root];
        let operands = bound.inputs(root);
        let length = looped.length;
        let fail = |what: &str| Err(format!("{name} = scan: {what}"));
        let mut inits = Vec::new();
        let mut carries = Vec::new();
        let mut finals = Vec::new();
        let own = plan.buffer(root);
        let mut offset = own.offset;
        for (c, &init) in operands[..looped.carries].iter().enumerate() {
            let len = bound.count(init);
            let Some(node) = looped.carry_output(c) else {
                return fail(&format!("the body lacks `carry {c}`"));
            };
            if body.bound.count(node) != len || region.body.buffer(node).len < len {
                return fail(&format!("`carry {c}` has another size than its initial value"));
            }
            inits.push((plan.buffer(init).offset, len));
            carries.push((node, len));
            finals.push(offset);
            offset += len;
        }
        let mut sequences = Vec::new();
        for &sequence in &operands[looped.carries..looped.carries + looped.sequences] {
            let shape = bound.shape(sequence);
            let Some(view) = fused.sequence_view(sequence).filter(|_| shape[1] == length) else {
                return fail(&format!("a sequence is {shape:?}, not {length} steps"));
            };
            let (rows, row) = (shape[0], bound.count(sequence) / (shape[0] * length));
            let stored = length.checked_sub(view.before + view.after);
            // The last element read, past the view's first.
            let last = stored
                .filter(|&s| s > 0)
                .map(|s| (rows - 1) * view.row_stride + (s - 1) * view.step_stride + row);
            if last.is_some_and(|last| plan.buffer(view.buffer).len < view.offset + last) || stored.is_none() {
                return fail(&format!("a sequence of {shape:?} does not lie in its buffer"));
            }
            sequences.push(Sequence {
                offset: plan.buffer(view.buffer).offset + view.offset,
                rows,
                row,
                row_stride: view.row_stride,
                step_stride: view.step_stride,
                before: view.before,
                after: view.after,
            });
        }
        let mut ys = Vec::new();
        for k in 0..looped.ys {
            let Some(node) = looped.y_output(k) else {
                return fail(&format!("the body lacks `y {k}`"));
            };
            let step = body.bound.shape(node);
            let count = body.bound.count(node);
            let rows = step.first().copied().unwrap_or(1);
            if region.body.buffer(node).len < count {
                return fail(&format!("`y {k}` has no buffer of its size"));
            }
            ys.push(Stacked {
                node,
                offset,
                rows,
                row: count / rows.max(1),
            });
            offset += count * length;
        }
        if offset > own.offset + own.len {
            return fail("its results do not fit its value");
        }
        Ok(LoopShape {
            length,
            reverse: looped.reverse,
            inits,
            sequences,
            carries,
            finals,
            ys,
        })
    }
}
