//! Random numbers: a stream and a flat index in, the same numbers as
//! `interp::random` out (uniforms computed inline, four at a time on the
//! vector path; normals through a library call).

use cranelift_codegen::ir::types::{F32, F32X4, I32, I32X4};
use cranelift_codegen::ir::{ConstantData, InstBuilder, Type, Value};
use cranelift_frontend::FunctionBuilder;

use super::{trusted, Emitter};
use crate::codegen::index::Ix;
use crate::interp::random;
use crate::prim::Distribution;

impl Emitter<'_, '_> {
    /// Random number `flat` of `stream` (see `interp::random`).
    pub(super) fn random(&mut self, dist: Distribution, stream: u32, flat: &Ix) -> Value {
        let index = self.index(flat);
        match dist {
            Distribution::Uniform => {
                let index = self.b.ins().ireduce(I32, index);
                let (low, high) = self.stream_key(stream, I32);
                let bits = lane(&mut self.b, index, low, high);
                self.uniform_from_bits(bits, F32)
            }
            Distribution::Normal => {
                let stream = self.iconst(i64::from(stream));
                let call = self.b.ins().call(self.calls.normal, &[self.rng, stream, index]);
                self.b.inst_results(call)[0]
            }
        }
    }

    /// The two 32-bit halves of a stream's key, as `ty` (`I32` or `I32X4`).
    fn stream_key(&mut self, stream: u32, ty: Type) -> (Value, Value) {
        let slot = self.streams[&stream] as i32;
        let mut half = |offset: i32| {
            let word = self.b.ins().load(I32, trusted(), self.rng, 8 * slot + offset);
            if ty == I32 {
                word
            } else {
                self.b.ins().splat(ty, word)
            }
        };
        // Little-endian: the low half first.
        (half(0), half(4))
    }

    /// `(bits >> 8) · 2^-24` as `ty` (`F32` or `F32X4`): exact, as
    /// `random::tensor_uniform`.
    fn uniform_from_bits(&mut self, bits: Value, ty: Type) -> Value {
        let top = self.b.ins().ushr_imm_u(bits, 8);
        let f = self.b.ins().fcvt_from_sint(ty, top);
        let scale = self.b.ins().f32const(1.0 / (1u32 << 24) as f32);
        let scale = if ty == F32 {
            scale
        } else {
            self.b.ins().splat(ty, scale)
        };
        self.b.ins().fmul(f, scale)
    }

    /// Four uniform numbers at flat indices `flat + 0..4`, one per `i32x4`
    /// lane.
    pub(super) fn uniform_vector(&mut self, stream: u32, flat: &Ix) -> Value {
        let base = self.index(flat);
        let base = self.b.ins().ireduce(I32, base);
        let base = self.b.ins().splat(I32X4, base);
        let bytes: Vec<u8> = (0..4u32).flat_map(|x| x.to_le_bytes()).collect();
        let constant = self.b.func.dfg.constants.insert(ConstantData::from(bytes));
        let lanes = self.b.ins().vconst(I32X4, constant);
        let index = self.b.ins().iadd(base, lanes);
        let (low, high) = self.stream_key(stream, I32X4);
        let bits = lane(&mut self.b, index, low, high);
        self.uniform_from_bits(bits, F32X4)
    }
}

/// `random::lane` in CLIF, on `i32` or `i32x4` values.
fn lane(b: &mut FunctionBuilder, index: Value, low: Value, high: Value) -> Value {
    let x = b.ins().bxor(index, low);
    let x = hash32(b, x);
    let x = b.ins().bxor(x, high);
    hash32(b, x)
}

/// `random::hash32` in CLIF.
fn hash32(b: &mut FunctionBuilder, x: Value) -> Value {
    let ty = b.func.dfg.value_type(x);
    let mut constant = |c: u32| {
        let c = b.ins().iconst(I32, i64::from(c as i32));
        if ty == I32 {
            c
        } else {
            b.ins().splat(ty, c)
        }
    };
    let (m1, m2) = (constant(random::HASH32.0), constant(random::HASH32.1));
    let s = b.ins().ushr_imm_u(x, 16);
    let x = b.ins().bxor(x, s);
    let x = b.ins().imul(x, m1);
    let s = b.ins().ushr_imm_u(x, 15);
    let x = b.ins().bxor(x, s);
    let x = b.ins().imul(x, m2);
    let s = b.ins().ushr_imm_u(x, 16);
    b.ins().bxor(x, s)
}
