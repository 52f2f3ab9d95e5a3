//! Memory: a buffer and an offset in, an address in the arena out
//! (bounds-checked when asked), and the loads and stores at it.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, F32X4, I32};
use cranelift_codegen::ir::{Block, InstBuilder, Value};

use super::{trusted, Emitter};
use crate::codegen::index::Ix;
use crate::ir::NodeId;

impl Emitter<'_, '_> {
    /// The address of element `offset` (and the `lanes - 1` after it) of
    /// `buffer`, bounds-checked when asked.
    pub fn address(&mut self, buffer: NodeId, offset: &Ix, lanes: i64) -> Value {
        let info = self.plan.buffer(buffer);
        let (start, len) = (info.offset as i64, info.len as i64);
        let i = self.index(offset);
        self.checked_address(i, start, len, lanes)
    }

    /// The address of element `i` of the buffer at `start` (elements) of
    /// `len` elements.
    pub fn checked_address(&mut self, i: Value, start: i64, len: i64, lanes: i64) -> Value {
        if self.check_bounds {
            let limit = self.iconst(len - lanes + 1);
            let bad = self.b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, i, limit);
            let fail = self.fail_block();
            let ok = self.b.create_block();
            self.b.ins().brif(bad, fail, &[], ok, &[]);
            self.b.seal_block(ok);
            self.b.switch_to_block(ok);
        }
        let element = self.b.ins().iadd_imm_s(i, start);
        let bytes = self.b.ins().ishl_imm_u(element, 2);
        self.b.ins().iadd(self.arena, bytes)
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
