//! Memory: a buffer and an offset in, an address in the arena out
//! (bounds-checked when asked), and the loads and stores at it.

use cranelift_codegen::cursor::{Cursor, FuncCursor};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, F32X4, I32, I64};
use cranelift_codegen::ir::{Block, InstBuilder, MemFlagsData, Value};

use super::{trusted, Emitter};
use crate::codegen::index::Ix;
use crate::ir::NodeId;

impl Emitter<'_, '_> {
    /// The address of element `offset` (and the `lanes - 1` after it) of
    /// `buffer`, bounds-checked when asked.
    pub fn address(&mut self, buffer: NodeId, offset: &Ix, lanes: i64) -> Value {
        let info = self.plan.buffer(buffer);
        let (start, len) = (info.offset as i64, info.len as i64);
        if self.table.is_none() {
            let i = self.index(offset);
            return self.checked_address(i, self.arena, start, len, lanes);
        }
        // Through the table, the constant of the buffer's first index moves
        // into the table entry (unless bounds are checked), so that a
        // kernel reading step `t` of a sequence is the same code for
        // every `t`.
        let first = if self.check_bounds { 0 } else { offset.constant };
        let (base, shift) = self.base(buffer, start, first);
        let relative = Ix {
            terms: offset.terms.clone(),
            constant: offset.constant - shift,
        };
        let i = self.index(&relative);
        self.checked_address(i, base, 0, len, lanes)
    }

    /// The address of `buffer`'s element `shift` when the kernel takes its
    /// buffers from a table, and `shift`: the arena plus the table's entry
    /// for the buffer, loaded once in the entry block. `first` is the
    /// shift of a buffer's first use. Entries are numbered by first use,
    /// so kernels of the same structure over different buffers are the
    /// same code and differ only in their tables.
    fn base(&mut self, buffer: NodeId, start: i64, first: i64) -> (Value, i64) {
        if let Some(&(_, shift, value)) = self.bases.iter().find(|(b, ..)| *b == buffer) {
            return (value, shift);
        }
        let table = self.table.expect("a buffer table");
        let slot = self.relocations.len() as i32;
        self.relocations.push((start + first) * 4);
        let entry = self.entry;
        let arena = self.arena;
        let mut cursor = FuncCursor::new(self.b.func);
        match cursor.layout().last_inst(entry) {
            Some(last) if cursor.func.dfg.insts[last].opcode().is_terminator() => cursor.goto_inst(last),
            _ => cursor.goto_bottom(entry),
        }
        let flags = MemFlagsData::trusted().with_readonly();
        let bytes = cursor.ins().load(I64, flags, table, slot * 8);
        let value = cursor.ins().iadd(arena, bytes);
        self.bases.push((buffer, first, value));
        (value, first)
    }

    /// The address of element `i` from `base` of the buffer that starts
    /// `start` elements after `base` and has `len` elements (`i` is checked
    /// against the buffer's bounds when asked, with `start` zero).
    fn checked_address(&mut self, i: Value, base: Value, start: i64, len: i64, lanes: i64) -> Value {
        if self.check_bounds {
            let limit = self.iconst(len - lanes + 1);
            let bad = self.b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, i, limit);
            let fail = self.fail_block();
            let ok = self.b.create_block();
            self.b.ins().brif(bad, fail, &[], ok, &[]);
            self.b.seal_block(ok);
            self.b.switch_to_block(ok);
        }
        let element = if start == 0 {
            i
        } else {
            self.b.ins().iadd_imm_s(i, start)
        };
        let bytes = self.b.ins().ishl_imm_u(element, 2);
        self.b.ins().iadd(base, bytes)
    }

    fn fail_block(&mut self) -> Block {
        if let Some(block) = self.out_of_bounds {
            return block;
        }
        let block = self.b.create_block();
        self.out_of_bounds = Some(block);
        block
    }

    /// Emits the out-of-bounds exit, if any check jumps there.
    pub fn finish_fail_block(&mut self) {
        if let Some(block) = self.out_of_bounds {
            self.b.switch_to_block(block);
            self.b.seal_block(block);
            let one = self.b.ins().iconst(I32, 1);
            self.b.ins().return_(&[one]);
        }
    }

    pub fn load(&mut self, address: Value, vector: bool) -> Value {
        let ty = if vector { F32X4 } else { F32 };
        self.b.ins().load(ty, trusted(), address, 0)
    }

    pub fn store(&mut self, value: Value, address: Value) {
        self.b.ins().store(trusted(), value, address, 0);
    }
}
