//! Expressions to CLIF: the [`Emitter`] turns a kernel's expressions into
//! instructions, in scalar (`f32`) or vector (`f32x4`, four consecutive
//! values of the innermost loop variable) form, with loops, loads, stores
//! and optional bounds checks. Values are cached per loop scope, so an
//! expression used twice is computed once, and expressions that do not
//! depend on a loop are computed before it. What cannot be vectorized
//! (gathers, random numbers, library calls) is computed lane by lane.

use std::collections::{BTreeSet, HashMap};

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, F32X4, I32, I32X4, I64, I8};
use cranelift_codegen::ir::{Block, ConstantData, FuncRef, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::{FunctionBuilder, Variable};

use super::expr::{Expr, Exprs, Kind, E};
use super::index::{Atom, Ix};
use super::math::Math;
use super::memory::Plan;
use crate::interp::random;
use crate::ir::NodeId;
use crate::prim::{BinaryOp, Distribution, UnaryOp};

/// Functions generated code may call.
#[derive(Clone, Copy)]
pub struct Calls {
    pub normal: FuncRef,
    pub sin: FuncRef,
    pub cos: FuncRef,
    pub pow: FuncRef,
}

#[derive(Default)]
struct Scope {
    values: HashMap<(E, bool), Value>,
    indices: HashMap<Ix, Value>,
}

/// Where each random stream's key lives in the step's random table: the
/// table holds `seed, step`, then one key per stream.
pub type Streams = HashMap<u32, usize>;

pub struct Emitter<'a, 'b> {
    pub b: FunctionBuilder<'b>,
    pub exprs: Exprs,
    pub plan: &'a Plan,
    pub arena: Value,
    pub rng: Value,
    pub calls: Calls,
    pub streams: &'a Streams,
    pub check_bounds: bool,
    /// Where failed bounds checks jump (returns 1).
    pub out_of_bounds: Option<Block>,
    scopes: Vec<Scope>,
    /// Current values (i64) and sizes of loop variables.
    vars: HashMap<u32, Value>,
    sizes: HashMap<u32, i64>,
    /// The variable of the vectorized loop being emitted, if any.
    vector: Option<u32>,
    deps: HashMap<E, BTreeSet<u32>>,
    /// Buffers each expression loads.
    loads: HashMap<E, BTreeSet<NodeId>>,
    /// Buffers of the current kernel not computed yet: expressions that
    /// load them are never hoisted.
    pub pending: BTreeSet<NodeId>,
}

pub const LANES: i64 = 4;

fn trusted() -> MemFlagsData {
    MemFlagsData::trusted()
}

impl<'a, 'b> Emitter<'a, 'b> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        b: FunctionBuilder<'b>,
        exprs: Exprs,
        plan: &'a Plan,
        arena: Value,
        rng: Value,
        calls: Calls,
        streams: &'a Streams,
        check_bounds: bool,
    ) -> Self {
        Emitter {
            b,
            exprs,
            plan,
            arena,
            rng,
            calls,
            streams,
            check_bounds,
            out_of_bounds: None,
            scopes: vec![Scope::default()],
            vars: HashMap::new(),
            sizes: HashMap::new(),
            vector: None,
            deps: HashMap::new(),
            loads: HashMap::new(),
            pending: BTreeSet::new(),
        }
    }

    // ---- dependencies and caching

    /// Loop variables an expression depends on.
    pub fn depends(&mut self, e: E) -> BTreeSet<u32> {
        if let Some(set) = self.deps.get(&e) {
            return set.clone();
        }
        let mut set = BTreeSet::new();
        for ix in self.exprs.indices(e) {
            super::expr::vars_of(ix, &mut set);
        }
        for child in self.exprs.children(e) {
            set.extend(self.depends(child));
        }
        self.deps.insert(e, set.clone());
        set
    }

    /// Buffers an expression loads.
    fn buffers(&mut self, e: E) -> BTreeSet<NodeId> {
        if let Some(set) = self.loads.get(&e) {
            return set.clone();
        }
        let mut set = BTreeSet::new();
        if let Expr::Load { buffer, .. } = self.exprs.get(e) {
            set.insert(*buffer);
        }
        for child in self.exprs.children(e) {
            set.extend(self.buffers(child));
        }
        self.loads.insert(e, set.clone());
        set
    }

    fn cached(&self, key: &(E, bool)) -> Option<Value> {
        self.scopes.iter().rev().find_map(|s| s.values.get(key).copied())
    }

    pub fn remember(&mut self, e: E, vector: bool, value: Value) {
        self.scopes
            .last_mut()
            .expect("a scope")
            .values
            .insert((e, vector), value);
    }

    pub fn push_scope(&mut self) {
        self.scopes.push(Scope::default());
    }

    pub fn pop_scope(&mut self) {
        self.scopes.pop();
    }

    /// Computes, before a loop, every expression reachable from `roots`
    /// that depends only on the variables bound so far.
    pub fn hoist(&mut self, roots: &[E]) {
        let bound: BTreeSet<u32> = self.vars.keys().copied().collect();
        for e in self.exprs.reachable(roots) {
            if matches!(self.exprs.get(e), Expr::Const(_) | Expr::True | Expr::False) {
                continue;
            }
            if self.depends(e).is_subset(&bound) && self.buffers(e).is_disjoint(&self.pending) {
                self.eval(e, false);
            } else if let Expr::Binary(BinaryOp::Div, _, divisor) = *self.exprs.get(e) {
                // Division by an invariant: multiply by its reciprocal.
                if self.depends(divisor).is_subset(&bound) && self.buffers(divisor).is_disjoint(&self.pending) {
                    let one = self.exprs.constant(1.0);
                    let reciprocal = self.exprs.add(Expr::Binary(BinaryOp::Div, one, divisor));
                    self.eval(reciprocal, false);
                }
            }
        }
    }

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
            self.counted_loop(counter, var, end, LANES, body);
        }
        self.counted_loop(counter, var, end, 1, body);
        self.vars.remove(&var);
    }

    fn counted_loop(
        &mut self,
        counter: Variable,
        var: u32,
        end: Value,
        step: i64,
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
        self.push_scope();
        self.vars.insert(var, i);
        let previous = self.vector;
        if step > 1 {
            self.vector = Some(var);
        }
        body(self, step > 1);
        self.vector = previous;
        self.pop_scope();
        let i = self.b.use_var(counter);
        let next = self.b.ins().iadd_imm_s(i, step);
        self.b.def_var(counter, next);
        self.b.ins().jump(header, &[]);
        self.b.seal_block(header);
        self.b.seal_block(exit);
        self.b.switch_to_block(exit);
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

    /// Whether `ix` moves by exactly `step` per lane of the vector variable,
    /// and nothing else in it depends on the lane.
    fn lane_step(&mut self, ix: &Ix) -> Option<i64> {
        let v = self.vector?;
        let (c, nested) = ix.coefficient(v);
        if nested {
            return None;
        }
        let dyn_depends = dyn_atoms(ix).into_iter().any(|e| self.depends(e).contains(&v));
        (!dyn_depends).then_some(c)
    }

    // ---- expressions

    /// The value of `e`: f32 (or I8 mask) when scalar, f32x4 (or I32X4
    /// mask) when `vector`.
    pub fn eval(&mut self, e: E, vector: bool) -> Value {
        let vector = vector && self.vector.is_some();
        if let Some(v) = self.cached(&(e, vector)) {
            return v;
        }
        let value = if vector && !self.depends(e).contains(&self.vector.expect("vector loop")) {
            let s = self.eval(e, false);
            match self.exprs.kind(e) {
                Kind::F32 => self.b.ins().splat(F32X4, s),
                Kind::Mask => {
                    let wide = self.b.ins().bmask(I32, s);
                    self.b.ins().splat(I32X4, wide)
                }
            }
        } else {
            self.compute(e, vector)
        };
        self.remember(e, vector, value);
        value
    }

    fn compute(&mut self, e: E, vector: bool) -> Value {
        let expr = self.exprs.get(e).clone();
        match expr {
            Expr::Load { buffer, offset } => {
                if !vector {
                    let address = self.address(buffer, &offset, 1);
                    return self.load(address, false);
                }
                match self.lane_step(&offset) {
                    Some(1) => {
                        let address = self.address(buffer, &offset, LANES);
                        self.load(address, true)
                    }
                    _ => self.per_lane(e),
                }
            }
            Expr::Const(bits) => {
                let c = self.b.ins().f32const(f32::from_bits(bits));
                if vector {
                    self.b.ins().splat(F32X4, c)
                } else {
                    c
                }
            }
            Expr::Index(ix) => {
                if !vector {
                    let i = self.index(&ix);
                    return self.b.ins().fcvt_from_sint(F32, i);
                }
                match self.lane_step(&ix) {
                    Some(c) => {
                        let i = self.index(&ix);
                        let f = self.b.ins().fcvt_from_sint(F32, i);
                        let base = self.b.ins().splat(F32X4, f);
                        let lanes = self.f32x4([0.0, c as f32, 2.0 * c as f32, 3.0 * c as f32]);
                        self.b.ins().fadd(base, lanes)
                    }
                    None => self.per_lane(e),
                }
            }
            Expr::Random { dist, stream, flat } => {
                if vector {
                    if dist == Distribution::Uniform && self.lane_step(&flat) == Some(1) {
                        return self.uniform_vector(stream, &flat);
                    }
                    return self.per_lane(e);
                }
                self.random(dist, stream, &flat)
            }
            Expr::Unary(op, a) => self.unary(e, op, a, vector),
            Expr::Binary(op, a, b) => self.binary(e, op, a, b, vector),
            Expr::Select(c, a, b) => {
                let (c, a, b) = (self.eval(c, vector), self.eval(a, vector), self.eval(b, vector));
                self.math(vector).pick(c, a, b)
            }
            Expr::Trunc(a) => {
                let a = self.eval(a, vector);
                self.b.ins().trunc(a)
            }
            Expr::ToMask(a) => {
                let a = self.eval(a, vector);
                let mut m = self.math(vector);
                let zero = m.f(0.0);
                m.cmp(FloatCC::NotEqual, a, zero)
            }
            Expr::FromMask(m) => {
                let m = self.eval(m, vector);
                let mut math = self.math(vector);
                let (one, zero) = (math.f(1.0), math.f(0.0));
                math.pick(m, one, zero)
            }
            Expr::InRange { ix, lo, hi } => {
                if !vector {
                    let i = self.index(&ix);
                    let above = self.b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, i, lo);
                    let below = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, i, hi);
                    return self.b.ins().band(above, below);
                }
                match self.lane_step(&ix) {
                    Some(c) => {
                        let i = self.index(&ix);
                        let narrow = self.b.ins().ireduce(I32, i);
                        let base = self.b.ins().splat(I32X4, narrow);
                        let lanes = self.i32x4([0, c as i32, 2 * c as i32, 3 * c as i32]);
                        let lanes = self.b.ins().iadd(base, lanes);
                        let lo = self.b.ins().iconst(I32, lo);
                        let lo = self.b.ins().splat(I32X4, lo);
                        let hi = self.b.ins().iconst(I32, hi);
                        let hi = self.b.ins().splat(I32X4, hi);
                        let above = self.b.ins().icmp(IntCC::SignedGreaterThanOrEqual, lanes, lo);
                        let below = self.b.ins().icmp(IntCC::SignedLessThan, lanes, hi);
                        self.b.ins().band(above, below)
                    }
                    None => self.per_lane(e),
                }
            }
            Expr::IdValid { expr, size } => {
                let x = self.eval(expr, vector);
                let t = self.b.ins().trunc(x);
                let mut m = self.math(vector);
                let zero = m.f(0.0);
                let size = m.f(size as f32);
                let above = m.cmp(FloatCC::GreaterThanOrEqual, t, zero);
                let below = m.cmp(FloatCC::LessThan, t, size);
                self.b.ins().band(above, below)
            }
            Expr::IdEquals { expr, ix } => {
                let x = self.eval(expr, vector);
                let t = self.b.ins().trunc(x);
                let position = self.exprs.add(Expr::Index(ix));
                let p = self.eval(position, vector);
                self.b.ins().fcmp(FloatCC::Equal, t, p)
            }
            Expr::And(a, b) => {
                let (a, b) = (self.eval(a, vector), self.eval(b, vector));
                self.b.ins().band(a, b)
            }
            Expr::Or(a, b) => {
                let (a, b) = (self.eval(a, vector), self.eval(b, vector));
                self.b.ins().bor(a, b)
            }
            Expr::Not(a) => {
                let a = self.eval(a, vector);
                if vector {
                    self.b.ins().bnot(a)
                } else {
                    self.b.ins().bxor_imm_u(a, 1)
                }
            }
            Expr::True | Expr::False => {
                let truth = matches!(expr, Expr::True);
                if vector {
                    let c = self.b.ins().iconst(I32, if truth { -1 } else { 0 });
                    self.b.ins().splat(I32X4, c)
                } else {
                    self.b.ins().iconst(I8, i64::from(truth))
                }
            }
        }
    }

    pub fn math(&mut self, vector: bool) -> Math<'_, 'b> {
        Math {
            b: &mut self.b,
            ty: if vector { F32X4 } else { F32 },
        }
    }

    fn f32x4(&mut self, lanes: [f32; 4]) -> Value {
        let bytes: Vec<u8> = lanes.iter().flat_map(|x| x.to_le_bytes()).collect();
        let constant = self.b.func.dfg.constants.insert(ConstantData::from(bytes));
        self.b.ins().vconst(F32X4, constant)
    }

    fn i32x4(&mut self, lanes: [i32; 4]) -> Value {
        let bytes: Vec<u8> = lanes.iter().flat_map(|x| x.to_le_bytes()).collect();
        let constant = self.b.func.dfg.constants.insert(ConstantData::from(bytes));
        self.b.ins().vconst(I32X4, constant)
    }

    /// A vector built from four scalar evaluations, lane `l` with the
    /// vector variable at `v + l`.
    fn per_lane(&mut self, e: E) -> Value {
        let v = self.vector.expect("a vector loop");
        let size = self.sizes.get(&v).copied().unwrap_or(i64::MAX);
        let kind = self.exprs.kind(e);
        let mut result: Option<Value> = None;
        for lane in 0..LANES {
            let shifted = Ix::var(v, size).add_constant(lane);
            let mut memo = HashMap::new();
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

    fn unary(&mut self, e: E, op: UnaryOp, a: E, vector: bool) -> Value {
        if vector && matches!(op, UnaryOp::Sin | UnaryOp::Cos) {
            return self.per_lane(e);
        }
        let x = self.eval(a, vector);
        match op {
            UnaryOp::Neg => self.b.ins().fneg(x),
            UnaryOp::Abs => self.b.ins().fabs(x),
            UnaryOp::Sqrt => self.b.ins().sqrt(x),
            UnaryOp::Exp => self.math(vector).exp(x),
            UnaryOp::Log => self.math(vector).log(x),
            UnaryOp::Tanh => self.math(vector).tanh(x),
            UnaryOp::Sin | UnaryOp::Cos => {
                let f = if op == UnaryOp::Sin {
                    self.calls.sin
                } else {
                    self.calls.cos
                };
                let call = self.b.ins().call(f, &[x]);
                self.b.inst_results(call)[0]
            }
            UnaryOp::Not => {
                let mut m = self.math(vector);
                let zero = m.f(0.0);
                let is_zero = m.cmp(FloatCC::Equal, x, zero);
                let (one, zero) = (m.f(1.0), m.f(0.0));
                m.pick(is_zero, one, zero)
            }
        }
    }

    fn binary(&mut self, e: E, op: BinaryOp, a: E, b: E, vector: bool) -> Value {
        if vector && op == BinaryOp::Pow {
            return self.per_lane(e);
        }
        if vector && op == BinaryOp::Div {
            let one = self.exprs.constant(1.0);
            let reciprocal = self.exprs.add(Expr::Binary(BinaryOp::Div, one, b));
            if let Some(r) = self.cached(&(reciprocal, false)) {
                let x = self.eval(a, vector);
                let r = self.b.ins().splat(F32X4, r);
                return self.b.ins().fmul(x, r);
            }
        }
        let (x, y) = (self.eval(a, vector), self.eval(b, vector));
        let cc = match op {
            BinaryOp::Add => return self.b.ins().fadd(x, y),
            BinaryOp::Sub => return self.b.ins().fsub(x, y),
            BinaryOp::Mul => return self.b.ins().fmul(x, y),
            BinaryOp::Div => return self.b.ins().fdiv(x, y),
            BinaryOp::Max => return self.max_min(x, y, FloatCC::GreaterThan, vector),
            BinaryOp::Min => return self.max_min(x, y, FloatCC::LessThan, vector),
            BinaryOp::Pow => {
                let call = self.b.ins().call(self.calls.pow, &[x, y]);
                return self.b.inst_results(call)[0];
            }
            BinaryOp::And | BinaryOp::Or => {
                let mut m = self.math(vector);
                let zero = m.f(0.0);
                let xa = m.cmp(FloatCC::NotEqual, x, zero);
                let ya = m.cmp(FloatCC::NotEqual, y, zero);
                return if op == BinaryOp::And {
                    self.b.ins().band(xa, ya)
                } else {
                    self.b.ins().bor(xa, ya)
                };
            }
            BinaryOp::Eq => FloatCC::Equal,
            BinaryOp::Ne => FloatCC::NotEqual,
            BinaryOp::Lt => FloatCC::LessThan,
            BinaryOp::Le => FloatCC::LessThanOrEqual,
            BinaryOp::Gt => FloatCC::GreaterThan,
            BinaryOp::Ge => FloatCC::GreaterThanOrEqual,
        };
        self.b.ins().fcmp(cc, x, y)
    }

    /// `f64::max` / `f64::min` semantics: a NaN operand loses to a number.
    pub fn max_min(&mut self, x: Value, y: Value, cc: FloatCC, vector: bool) -> Value {
        let mut m = self.math(vector);
        let wins = m.cmp(cc, x, y);
        let y_nan = m.cmp(FloatCC::Unordered, y, y);
        let other = m.pick(y_nan, x, y);
        m.pick(wins, x, other)
    }

    /// Random number `flat` of `stream` (see `interp::random`).
    fn random(&mut self, dist: Distribution, stream: u32, flat: &Ix) -> Value {
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
}

impl Emitter<'_, '_> {
    /// Four uniform numbers at flat indices `flat + 0..4`, one per `i32x4`
    /// lane.
    fn uniform_vector(&mut self, stream: u32, flat: &Ix) -> Value {
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
