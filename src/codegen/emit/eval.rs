//! Expressions: an expression in, its CLIF value out, scalar or `f32x4`,
//! with unary and binary operations and the library calls (`sin`, `cos`,
//! `pow`) they need.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, F32X4, I32, I32X4, I8};
use cranelift_codegen::ir::{InstBuilder, Value};

use super::{Emitter, LANES};
use crate::codegen::expr::{Expr, Kind, E};
use crate::codegen::math::Math;
use crate::prim::{BinaryOp, Distribution, UnaryOp};

impl<'b> Emitter<'_, 'b> {
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
            UnaryOp::Sigmoid => self.math(vector).sigmoid(x),
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
        // Against a constant that is a number (`relu`'s 0) the NaN test of
        // `max_min` is known false.
        let y_number = matches!(self.exprs.get(b), Expr::Const(bits) if !f32::from_bits(*bits).is_nan());
        let (x, y) = (self.eval(a, vector), self.eval(b, vector));
        let cc = match op {
            BinaryOp::Add => return self.b.ins().fadd(x, y),
            BinaryOp::Sub => return self.b.ins().fsub(x, y),
            BinaryOp::Mul => return self.b.ins().fmul(x, y),
            BinaryOp::Div => return self.b.ins().fdiv(x, y),
            BinaryOp::Max => return self.max_min(x, y, FloatCC::GreaterThan, vector, y_number),
            BinaryOp::Min => return self.max_min(x, y, FloatCC::LessThan, vector, y_number),
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
    /// `y_number`: `y` is known not to be NaN, so the test is left out.
    pub fn max_min(&mut self, x: Value, y: Value, cc: FloatCC, vector: bool, y_number: bool) -> Value {
        let mut m = self.math(vector);
        let wins = m.cmp(cc, x, y);
        if y_number {
            return m.pick(wins, x, y);
        }
        let y_nan = m.cmp(FloatCC::Unordered, y, y);
        let other = m.pick(y_nan, x, y);
        m.pick(wins, x, other)
    }
}
