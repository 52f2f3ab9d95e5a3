//! The vector path's helpers: whether an index moves by a fixed step per
//! lane, `f32x4` / `i32x4` constants, and vectors built lane by lane from
//! scalar evaluations for what cannot be vectorized.

use rustc_hash::FxHashMap as HashMap;

use cranelift_codegen::ir::types::{F32X4, I32, I32X4};
use cranelift_codegen::ir::{ConstantData, InstBuilder, Value};

use super::{Emitter, LANES};
use crate::codegen::expr::{Kind, E};
use crate::codegen::index::{Atom, Ix};

impl Emitter<'_, '_> {
    /// How much `ix` moves per lane of the vector variable, if it moves by
    /// a fixed step (also through `div` and `rem` of a variable whose loop
    /// starts at a multiple of `LANES`) and nothing else in it depends on
    /// the lane.
    pub(super) fn lane_step(&mut self, ix: &Ix) -> Option<i64> {
        let v = self.vector?;
        let c = match ix.coefficient(v) {
            (c, false) => c,
            _ if self.aligned => ix.lane_step_aligned(v, LANES)?,
            _ => return None,
        };
        let dyn_depends = dyn_atoms(ix).into_iter().any(|e| self.depends(e).contains(&v));
        (!dyn_depends).then_some(c)
    }

    pub(super) fn f32x4(&mut self, lanes: [f32; 4]) -> Value {
        let bytes: Vec<u8> = lanes.iter().flat_map(|x| x.to_le_bytes()).collect();
        let constant = self.b.func.dfg.constants.insert(ConstantData::from(bytes));
        self.b.ins().vconst(F32X4, constant)
    }

    pub(super) fn i32x4(&mut self, lanes: [i32; 4]) -> Value {
        let bytes: Vec<u8> = lanes.iter().flat_map(|x| x.to_le_bytes()).collect();
        let constant = self.b.func.dfg.constants.insert(ConstantData::from(bytes));
        self.b.ins().vconst(I32X4, constant)
    }

    /// A vector built from four scalar evaluations, lane `l` with the
    /// vector variable at `v + l`.
    pub(super) fn per_lane(&mut self, e: E) -> Value {
        let v = self.vector.expect("a vector loop");
        let size = self.sizes.get(&v).copied().unwrap_or(i64::MAX);
        let kind = self.exprs.kind(e);
        let mut result: Option<Value> = None;
        for lane in 0..LANES {
            let shifted = Ix::var(v, size).add_constant(lane);
            let mut memo = HashMap::default();
            let lane_e = self.exprs.substitute(e, v, &shifted, &mut memo);
            let saved = self.vector.take();
            let s = self.eval(lane_e, false);
            self.vector = saved;
            let s = match kind {
                Kind::F32 => s,
                Kind::Mask => self.b.ins().bmask(I32, s),
            };
            let ty = if kind == Kind::F32 { F32X4 } else { I32X4 };
            result = Some(match result {
                None => self.b.ins().scalar_to_vector(ty, s),
                Some(acc) => self.b.ins().insertlane(acc, s, lane as u8),
            });
        }
        result.expect("four lanes")
    }
}

/// Expressions that data-dependent atoms of `ix` read.
fn dyn_atoms(ix: &Ix) -> Vec<E> {
    let mut out = Vec::new();
    for (atom, _) in &ix.terms {
        match atom {
            Atom::Dyn { expr, .. } => out.push(*expr),
            Atom::Div(x, _) | Atom::Rem(x, _) | Atom::Clamp(x, _) => out.extend(dyn_atoms(x)),
            Atom::Var { .. } => {}
        }
    }
    out
}
