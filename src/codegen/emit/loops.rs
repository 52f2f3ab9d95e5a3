//! Loops and index arithmetic: loop variables and index expressions in,
//! `i64` values out, each loop body in its own cache scope.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::Variable;

use super::{Emitter, LANES};
use crate::codegen::index::{Atom, Ix};

impl Emitter<'_, '_> {
    // ---- loops

    /// `for var in start..end` (step 1), `body` inside its own scope.
    pub fn for_range(&mut self, var: u32, size: i64, start: Value, end: Value, body: &mut dyn FnMut(&mut Self, bool)) {
        self.loop_with(var, size, start, end, false, body);
    }

    /// `for var in start..end`, in chunks of four while they fit when
    /// `vectorize`, then one at a time.
    pub fn loop_with(
        &mut self,
        var: u32,
        size: i64,
        start: Value,
        end: Value,
        vectorize: bool,
        body: &mut dyn FnMut(&mut Self, bool),
    ) {
        let counter = self.b.declare_var(I64);
        self.b.def_var(counter, start);
        self.sizes.insert(var, size);
        if vectorize {
            let aligned = self.multiple_of_lanes(start);
            self.counted_loop(counter, var, end, LANES, aligned, body);
        }
        self.counted_loop(counter, var, end, 1, false, body);
        self.vars.remove(&var);
    }

    /// Whether `value` is known, from the instructions that made it, to be
    /// a multiple of `LANES`: a constant that is one, or a product with one
    /// (a thread's range counted in groups of `LANES`).
    fn multiple_of_lanes(&self, value: Value) -> bool {
        use cranelift_codegen::ir::{InstructionData, Opcode, ValueDef};
        let dfg = &self.b.func.dfg;
        let made_by = |v: Value| match dfg.value_def(v) {
            ValueDef::Result(inst, _) => Some(dfg.insts[inst]),
            _ => None,
        };
        let constant_multiple = |v: Value| matches!(made_by(v), Some(InstructionData::UnaryImm { opcode: Opcode::Iconst, imm }) if imm.bits() % LANES == 0);
        constant_multiple(value)
            || matches!(made_by(value), Some(InstructionData::Binary { opcode: Opcode::Imul, args })
                if args.iter().any(|&a| constant_multiple(a)))
    }

    fn counted_loop(
        &mut self,
        counter: Variable,
        var: u32,
        end: Value,
        step: i64,
        aligned: bool,
        body: &mut dyn FnMut(&mut Self, bool),
    ) {
        let header = self.b.create_block();
        let inside = self.b.create_block();
        let exit = self.b.create_block();
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(header);
        let i = self.b.use_var(counter);
        let last = self.b.ins().iadd_imm_s(i, step - 1);
        let more = self.b.ins().icmp(IntCC::SignedLessThan, last, end);
        self.b.ins().brif(more, inside, &[], exit, &[]);
        self.b.seal_block(inside);
        self.b.switch_to_block(inside);
        let (vector, aligned) = if step > 1 {
            (Some(var), aligned)
        } else {
            (self.vector, self.aligned)
        };
        self.bound(var, i, vector, aligned, &mut |em| body(em, step > 1));
        let i = self.b.use_var(counter);
        let next = self.b.ins().iadd_imm_s(i, step);
        self.b.def_var(counter, next);
        self.b.ins().jump(header, &[]);
        self.b.seal_block(header);
        self.b.seal_block(exit);
        self.b.switch_to_block(exit);
    }

    /// `body` at `var = at` in its own scope: vectorized along `var` (the
    /// four elements from `at`) when `vector`.
    pub fn at(&mut self, var: u32, size: i64, at: i64, vector: bool, body: &mut dyn FnMut(&mut Self)) {
        self.sizes.insert(var, size);
        let i = self.iconst(at);
        self.bound(var, i, vector.then_some(var), vector && at % LANES == 0, body);
        self.vars.remove(&var);
    }

    /// `body` in its own scope with `var` bound to `value` and the
    /// vectorized variable `vector`.
    fn bound(&mut self, var: u32, value: Value, vector: Option<u32>, aligned: bool, body: &mut dyn FnMut(&mut Self)) {
        self.push_scope();
        self.vars.insert(var, value);
        let previous = std::mem::replace(&mut self.vector, vector);
        let was_aligned = std::mem::replace(&mut self.aligned, aligned);
        body(self);
        self.vector = previous;
        self.aligned = was_aligned;
        self.pop_scope();
    }

    pub fn iconst(&mut self, value: i64) -> Value {
        self.b.ins().iconst(I64, value)
    }

    // ---- index arithmetic

    /// The value of an index expression (i64).
    pub fn index(&mut self, ix: &Ix) -> Value {
        if let Some(v) = self.scopes.iter().rev().find_map(|s| s.indices.get(ix).copied()) {
            return v;
        }
        let mut acc: Option<Value> = None;
        for (atom, c) in &ix.terms {
            let a = self.atom(atom);
            let term = if *c == 1 { a } else { self.b.ins().imul_imm_s(a, *c) };
            acc = Some(match acc {
                None => term,
                Some(s) => self.b.ins().iadd(s, term),
            });
        }
        let v = match acc {
            None => self.iconst(ix.constant),
            Some(s) if ix.constant != 0 => self.b.ins().iadd_imm_s(s, ix.constant),
            Some(s) => s,
        };
        self.scopes.last_mut().expect("a scope").indices.insert(ix.clone(), v);
        v
    }

    fn atom(&mut self, atom: &Atom) -> Value {
        match atom {
            Atom::Var { id, .. } => *self
                .vars
                .get(id)
                .unwrap_or_else(|| panic!("loop variable i{id} is not bound")),
            Atom::Div(x, d) | Atom::Rem(x, d) => {
                let v = self.index(x);
                // Shift to non-negative values, divide unsigned, shift back.
                let (lo, _) = x.range();
                let shift = if lo < 0 { ((-lo + d - 1) / d) * d } else { 0 };
                let shifted = if shift > 0 {
                    self.b.ins().iadd_imm_s(v, shift)
                } else {
                    v
                };
                let divisor = self.iconst(*d);
                if matches!(atom, Atom::Div(..)) {
                    let q = self.b.ins().udiv(shifted, divisor);
                    if shift > 0 {
                        self.b.ins().iadd_imm_s(q, -shift / d)
                    } else {
                        q
                    }
                } else {
                    self.b.ins().urem(shifted, divisor)
                }
            }
            Atom::Clamp(x, n) => {
                let v = self.index(x);
                let high = self.iconst(n - 1);
                let zero = self.iconst(0);
                let v = self.b.ins().smin(v, high);
                self.b.ins().smax(v, zero)
            }
            Atom::Dyn { expr, size } => {
                let f = self.eval(*expr, false);
                let i = self.b.ins().fcvt_to_sint_sat(I64, f);
                let high = self.iconst(size - 1);
                let zero = self.iconst(0);
                let i = self.b.ins().smin(i, high);
                self.b.ins().smax(i, zero)
            }
        }
    }
}
