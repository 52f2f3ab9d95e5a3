//! `exp`, `log`, `tanh` and `sigmoid` in CLIF, for `f32` and `f32x4` alike (`exp`
//! and `log` Cephes' single-precision polynomials, ~1 ulp; `tanh` Eigen's
//! rational function, ~2 ulp): Cranelift has no instructions
//! for them, and a library call per element would cost more than the
//! polynomial. NaN and infinities behave as the interpreter's `f64`
//! functions do; `exp` of very negative numbers flushes to zero instead of
//! giving denormals.

// The coefficients are Cephes' and Eigen's published values, digits as
// printed there.
#![allow(clippy::excessive_precision)]

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::types::{F32X4, I32, I32X4};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;

/// Below this, `e^x` is zero in `f32` (the exp's lower cap).
const EXP_LOW: f32 = -87.336_55;

/// `1.5·2²³`: added to a float of magnitude under 2²², it leaves the
/// nearest integer (ties to even) in the sum's low mantissa bits.
const EXP_MAGIC: f32 = 12_582_912.0;

/// Float operations that work the same on `F32` and `F32X4`.
pub struct Math<'a, 'b> {
    pub b: &'a mut FunctionBuilder<'b>,
    pub ty: Type,
}

impl Math<'_, '_> {
    fn int_ty(&self) -> Type {
        if self.ty == F32X4 {
            I32X4
        } else {
            I32
        }
    }

    pub fn f(&mut self, value: f32) -> Value {
        let c = self.b.ins().f32const(value);
        if self.ty == F32X4 {
            self.b.ins().splat(F32X4, c)
        } else {
            c
        }
    }

    fn i(&mut self, value: i32) -> Value {
        let c = self.b.ins().iconst(I32, i64::from(value));
        if self.ty == F32X4 {
            self.b.ins().splat(I32X4, c)
        } else {
            c
        }
    }

    /// `a` where `mask` holds, else `b`; `mask` from [`Math::cmp`].
    pub fn pick(&mut self, mask: Value, a: Value, b: Value) -> Value {
        if self.ty == F32X4 {
            let mask = self.b.ins().bitcast(F32X4, MemFlagsData::new(), mask);
            self.b.ins().bitselect(mask, a, b)
        } else {
            self.b.ins().select(mask, a, b)
        }
    }

    pub fn cmp(&mut self, cc: FloatCC, a: Value, b: Value) -> Value {
        self.b.ins().fcmp(cc, a, b)
    }

    fn bits_of(&mut self, x: Value) -> Value {
        let int = self.int_ty();
        self.b.ins().bitcast(int, MemFlagsData::new(), x)
    }

    fn float_of(&mut self, x: Value) -> Value {
        self.b.ins().bitcast(self.ty, MemFlagsData::new(), x)
    }

    /// `a·x + b`, Horner step.
    fn horner(&mut self, x: Value, coefficients: &[f32]) -> Value {
        let mut acc = self.f(coefficients[0]);
        for &c in &coefficients[1..] {
            let c = self.f(c);
            acc = self.b.ins().fma(acc, x, c);
        }
        acc
    }

    pub fn exp(&mut self, x: Value) -> Value {
        const HIGH: f32 = 88.722_83;
        let (hi, lo) = (self.f(HIGH), self.f(EXP_LOW));
        // The caps as one `minps` and one `maxps` (the compares written as
        // Cranelift matches them; a NaN passes both).
        let over = self.cmp(FloatCC::LessThan, hi, x);
        let xc = self.pick(over, hi, x);
        let under = self.cmp(FloatCC::LessThan, xc, lo);
        let xc = self.pick(under, lo, xc);
        let nan = self.cmp(FloatCC::Unordered, x, x);
        let (shifted, y) = self.exp_reduced(xc);
        // 2^n through the exponent bits; n is in -126..=128 here, so split
        // it in two halves to stay in range.
        let shifted_bits = self.bits_of(shifted);
        let magic_bits = self.i(EXP_MAGIC.to_bits() as i32);
        let n_int = self.b.ins().isub(shifted_bits, magic_bits);
        let half = self.b.ins().sshr_imm_u(n_int, 1);
        let rest = self.b.ins().isub(n_int, half);
        let s1 = self.power_of_two(half);
        let s2 = self.power_of_two(rest);
        let y = self.b.ins().fmul(y, s1);
        let y = self.b.ins().fmul(y, s2);
        let inf = self.f(f32::INFINITY);
        let zero = self.f(0.0);
        let y = self.pick(over, inf, y);
        let y = self.pick(under, zero, y);
        self.pick(nan, x, y)
    }

    /// [`Math::exp`] of an `x` known to be at most 80 (or NaN): the same
    /// bits, with less work. Nothing overflows, so there is no cap above;
    /// `n` is at most 116, so `2^n` is one float and one product (the two
    /// halves' products round once, at the second, and are exact at the
    /// first: the same value); a NaN goes through the arithmetic as NaN.
    fn exp_at_most_80(&mut self, x: Value) -> Value {
        let lo = self.f(EXP_LOW);
        let under = self.cmp(FloatCC::LessThan, x, lo);
        let xc = self.pick(under, lo, x);
        let (shifted, y) = self.exp_reduced(xc);
        let shifted_bits = self.bits_of(shifted);
        let magic_bits = self.i(EXP_MAGIC.to_bits() as i32);
        let n_int = self.b.ins().isub(shifted_bits, magic_bits);
        let scale = self.power_of_two(n_int);
        let y = self.b.ins().fmul(y, scale);
        let zero = self.f(0.0);
        self.pick(under, zero, y)
    }

    /// `2^n` for an integer `n` in -126..=127, through the exponent bits.
    fn power_of_two(&mut self, n: Value) -> Value {
        let bias = self.i(127);
        let bits = self.b.ins().iadd(n, bias);
        let bits = self.b.ins().ishl_imm_u(bits, 23);
        self.float_of(bits)
    }

    /// `exp`'s shared part for `xc` in `[EXP_LOW, 88.7]`: `(shifted, y)`
    /// with `round(xc·log₂e)` in the low bits of `shifted` (minus
    /// [`EXP_MAGIC`]'s) and `y = e^r`, `r = xc − n·ln 2`.
    fn exp_reduced(&mut self, xc: Value) -> (Value, Value) {
        let log2e = self.f(std::f32::consts::LOG2_E);
        let scaled = self.b.ins().fmul(xc, log2e);
        // n = round(scaled), ties to even, as an integer in the low bits of
        // `shifted` (in [2²³, 2²⁴) every float is an integer, and the sum
        // rounds to nearest even): no rounding instruction and no
        // saturating conversion (~8 instructions a vector on x86).
        let magic = self.f(EXP_MAGIC);
        let shifted = self.b.ins().fadd(scaled, magic);
        let n = self.b.ins().fsub(shifted, magic);
        let c1 = self.f(-0.693_359_4);
        let c2 = self.f(2.121_944_4e-4);
        let r = self.b.ins().fma(n, c1, xc);
        let r = self.b.ins().fma(n, c2, r);
        let p = self.horner(
            r,
            &[
                1.987_569_1e-4,
                1.398_199_9e-3,
                8.333_452e-3,
                4.166_579_6e-2,
                1.666_666_5e-1,
                5.000_000_1e-1,
            ],
        );
        let rr = self.b.ins().fmul(r, r);
        let one = self.f(1.0);
        let r1 = self.b.ins().fadd(r, one);
        (shifted, self.b.ins().fma(p, rr, r1))
    }

    pub fn log(&mut self, x: Value) -> Value {
        let zero = self.f(0.0);
        let tiny = self.f(f32::MIN_POSITIVE);
        // Denormals: scale up by 2^23 first.
        let small = self.cmp(FloatCC::LessThan, x, tiny);
        let big = self.f(8_388_608.0);
        let scaled = self.b.ins().fmul(x, big);
        let xs = self.pick(small, scaled, x);
        let bits = self.bits_of(xs);
        let exponent = self.b.ins().sshr_imm_u(bits, 23);
        let bias = self.i(127);
        let exponent = self.b.ins().isub(exponent, bias);
        let mantissa_mask = self.i(0x007f_ffff);
        let one_bits = self.i(0x3f80_0000);
        let mantissa = self.b.ins().band(bits, mantissa_mask);
        let mantissa = self.b.ins().bor(mantissa, one_bits);
        let m = self.float_of(mantissa);
        let e = self.b.ins().fcvt_from_sint(self.ty, exponent);
        let e_shift = self.f(-23.0);
        let e_small = self.b.ins().fadd(e, e_shift);
        let e = self.pick(small, e_small, e);
        // m in [1, 2): fold to [sqrt(1/2), sqrt(2)).
        let sqrt2 = self.f(std::f32::consts::SQRT_2);
        let high = self.cmp(FloatCC::GreaterThan, m, sqrt2);
        let half = self.f(0.5);
        let m_half = self.b.ins().fmul(m, half);
        let m = self.pick(high, m_half, m);
        let one = self.f(1.0);
        let e_plus = self.b.ins().fadd(e, one);
        let e = self.pick(high, e_plus, e);
        let t = self.b.ins().fsub(m, one);
        let z = self.b.ins().fmul(t, t);
        let p = self.horner(
            t,
            &[
                7.037_683_6e-2,
                -1.151_461e-1,
                1.167_699_9e-1,
                -1.242_014_1e-1,
                1.424_932_3e-1,
                -1.666_805_8e-1,
                2.000_071_4e-1,
                -2.499_999_4e-1,
                3.333_333e-1,
            ],
        );
        let tz = self.b.ins().fmul(t, z);
        let y = self.b.ins().fmul(tz, p);
        let c2 = self.f(-2.121_944_4e-4);
        let y = self.b.ins().fma(e, c2, y);
        let minus_half = self.f(-0.5);
        let y = self.b.ins().fma(z, minus_half, y);
        let y = self.b.ins().fadd(t, y);
        let c1 = self.f(0.693_359_4);
        let y = self.b.ins().fma(e, c1, y);
        // Special values: 0 -> -inf, negative -> NaN, +inf and NaN -> x.
        let is_zero = self.cmp(FloatCC::Equal, x, zero);
        let negative = self.cmp(FloatCC::LessThan, x, zero);
        let inf = self.f(f32::INFINITY);
        let not_finite = self.cmp(FloatCC::UnorderedOrGreaterThanOrEqual, x, inf);
        let minus_inf = self.f(f32::NEG_INFINITY);
        let nan = self.f(f32::NAN);
        let y = self.pick(not_finite, x, y);
        let y = self.pick(negative, nan, y);
        self.pick(is_zero, minus_inf, y)
    }

    /// A 13/6-degree rational function of x on [-9, 9] (beyond, tanh is
    /// ±1 in `f32`): Eigen's `generic_fast_tanh_float`, coefficients from
    /// Eigen's `MathFunctionsImpl.h`, accurate to a couple of ulp. About a
    /// quarter of the instructions of `1 - 2 / (exp(2x) + 1)` with a
    /// polynomial for small |x|. |x| < 0.0004 gives x itself; NaN stays NaN.
    pub fn tanh(&mut self, x: Value) -> Value {
        let (hi, lo) = (self.f(9.0), self.f(-9.0));
        let below = self.cmp(FloatCC::LessThan, x, hi);
        let c = self.pick(below, x, hi);
        // `lo < c ? c : lo` is one `maxps`, as `x < hi ? x : hi` above is
        // one `minps` (a NaN comes out as the cap; the end puts it back).
        let above = self.cmp(FloatCC::LessThan, lo, c);
        let c = self.pick(above, c, lo);
        let c2 = self.b.ins().fmul(c, c);
        let p = self.horner(
            c2,
            &[
                -2.76076847742355e-16,
                2.00018790482477e-13,
                -8.60467152213735e-11,
                5.12229709037114e-8,
                1.48572235717979e-5,
                6.37261928875436e-4,
                4.89352455891786e-3,
            ],
        );
        let p = self.b.ins().fmul(p, c);
        let q = self.horner(
            c2,
            &[
                1.19825839466702e-6,
                1.18534705686654e-4,
                2.26843463243900e-3,
                4.89352518554385e-3,
            ],
        );
        let y = self.b.ins().fdiv(p, q);
        let a = self.b.ins().fabs(x);
        let tiny_limit = self.f(0.0004);
        let tiny = self.cmp(FloatCC::LessThan, a, tiny_limit);
        let y = self.pick(tiny, x, y);
        let nan = self.cmp(FloatCC::Unordered, x, x);
        self.pick(nan, x, y)
    }

    /// `1 / (1 + exp(min(-x, 80)))`, as the interpreter computes it (the
    /// cap keeps `exp` finite); NaN stays NaN (the comparison with the cap
    /// is false for NaN, which `exp` and the division carry through).
    pub fn sigmoid(&mut self, x: Value) -> Value {
        let minus = self.b.ins().fneg(x);
        let cap = self.f(80.0);
        // `cap < minus ? cap : minus`, one `minps` (which gives its second
        // operand, `minus`, for NaN).
        let over = self.cmp(FloatCC::LessThan, cap, minus);
        let m = self.pick(over, cap, minus);
        let e = self.exp_at_most_80(m);
        let one = self.f(1.0);
        let d = self.b.ins().fadd(one, e);
        self.b.ins().fdiv(one, d)
    }
}
