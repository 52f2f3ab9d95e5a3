//! Index arithmetic over loop variables: affine sums of atoms (a loop
//! variable, a floor division, a remainder, a clamp, a data-dependent id),
//! simplified on construction with the atoms' known ranges, so that layout
//! ops (reshape, permute, broadcast, slice) fold into plain strides and the
//! code generator can see which loads are contiguous.

use std::fmt;

/// An atom of an index expression.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Atom {
    /// Loop variable `id`, in `0..size`.
    Var { id: u32, size: i64 },
    /// `floor(x / d)`, `d > 1`.
    Div(Box<Ix>, i64),
    /// `x mod d` (non-negative), `d > 1`.
    Rem(Box<Ix>, i64),
    /// `x` clamped to `0..=n-1`.
    Clamp(Box<Ix>, i64),
    /// A data-dependent index in `0..size`: expression `expr` of the
    /// kernel (an id), truncated and clamped.
    Dyn { expr: u32, size: i64 },
}

/// `constant + Σ coefficient · atom`, terms sorted by atom, no zero
/// coefficients.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ix {
    pub terms: Vec<(Atom, i64)>,
    pub constant: i64,
}

impl Atom {
    /// Inclusive range of values.
    pub fn range(&self) -> (i64, i64) {
        match self {
            Atom::Var { size, .. } | Atom::Dyn { size, .. } => (0, (size - 1).max(0)),
            Atom::Div(x, d) => {
                let (lo, hi) = x.range();
                (lo.div_euclid(*d), hi.div_euclid(*d))
            }
            Atom::Rem(x, d) => {
                let (lo, hi) = x.range();
                if lo >= 0 && hi < *d {
                    (lo, hi)
                } else {
                    (0, d - 1)
                }
            }
            Atom::Clamp(_, n) => (0, (n - 1).max(0)),
        }
    }
}

impl Ix {
    pub fn constant(value: i64) -> Ix {
        Ix {
            terms: Vec::new(),
            constant: value,
        }
    }

    pub fn var(id: u32, size: i64) -> Ix {
        if size <= 1 {
            return Ix::constant(0);
        }
        Ix::atom(Atom::Var { id, size })
    }

    pub fn atom(atom: Atom) -> Ix {
        Ix {
            terms: vec![(atom, 1)],
            constant: 0,
        }
    }

    pub fn as_constant(&self) -> Option<i64> {
        self.terms.is_empty().then_some(self.constant)
    }

    /// Inclusive range of values.
    pub fn range(&self) -> (i64, i64) {
        let (mut lo, mut hi) = (self.constant, self.constant);
        for (atom, c) in &self.terms {
            let (a, b) = atom.range();
            let (x, y) = (a.saturating_mul(*c), b.saturating_mul(*c));
            lo = lo.saturating_add(x.min(y));
            hi = hi.saturating_add(x.max(y));
        }
        (lo, hi)
    }

    fn normalize(mut terms: Vec<(Atom, i64)>, constant: i64) -> Ix {
        terms.sort_by(|a, b| a.0.cmp(&b.0));
        let mut merged: Vec<(Atom, i64)> = Vec::with_capacity(terms.len());
        for (atom, c) in terms {
            match merged.last_mut() {
                Some((last, total)) if *last == atom => *total += c,
                _ => merged.push((atom, c)),
            }
        }
        merged.retain(|(_, c)| *c != 0);
        let ix = Ix {
            terms: merged,
            constant,
        };
        ix.recombine()
    }

    /// `c·d·floor(x/d) + c·(x mod d)` is `c·x`: undoes a split followed by a
    /// merge (a reshape and its inverse).
    fn recombine(self) -> Ix {
        for (i, (atom, c)) in self.terms.iter().enumerate() {
            let Atom::Div(x, d) = atom else { continue };
            if c % d != 0 {
                continue;
            }
            let want = c / d;
            let rem = Atom::Rem(x.clone(), *d);
            let Some(j) = self.terms.iter().position(|(a, k)| *a == rem && *k == want) else {
                continue;
            };
            let mut rest: Vec<(Atom, i64)> = self
                .terms
                .iter()
                .enumerate()
                .filter(|(k, _)| *k != i && *k != j)
                .map(|(_, t)| t.clone())
                .collect();
            let x = x.scale(want);
            rest.extend(x.terms);
            return Ix::normalize(rest, self.constant + x.constant);
        }
        self
    }

    pub fn add(&self, other: &Ix) -> Ix {
        let mut terms = self.terms.clone();
        terms.extend(other.terms.iter().cloned());
        Ix::normalize(terms, self.constant + other.constant)
    }

    pub fn add_constant(&self, value: i64) -> Ix {
        Ix {
            terms: self.terms.clone(),
            constant: self.constant + value,
        }
    }

    pub fn scale(&self, factor: i64) -> Ix {
        if factor == 0 {
            return Ix::constant(0);
        }
        Ix {
            terms: self.terms.iter().map(|(a, c)| (a.clone(), c * factor)).collect(),
            constant: self.constant * factor,
        }
    }

    /// Splits into the part whose coefficients (and constant) are multiples
    /// of `d`, divided by `d`, and the rest.
    fn split(&self, d: i64) -> (Ix, Ix) {
        let mut quotient = Vec::new();
        let mut rest = Vec::new();
        for (atom, c) in &self.terms {
            if c % d == 0 {
                quotient.push((atom.clone(), c / d));
            } else {
                rest.push((atom.clone(), *c));
            }
        }
        let q = Ix::normalize(quotient, self.constant.div_euclid(d));
        let r = Ix::normalize(rest, self.constant.rem_euclid(d));
        (q, r)
    }

    /// `floor(self / d)`.
    pub fn div(&self, d: i64) -> Ix {
        assert!(d > 0, "division by {d}");
        if d == 1 {
            return self.clone();
        }
        let (lo, hi) = self.range();
        if lo.div_euclid(d) == hi.div_euclid(d) {
            return Ix::constant(lo.div_euclid(d));
        }
        let (q, r) = self.split(d);
        let (lo, hi) = r.range();
        if lo >= 0 && hi < d {
            return q;
        }
        if lo.div_euclid(d) == hi.div_euclid(d) {
            return q.add_constant(lo.div_euclid(d));
        }
        if let Some((g, high, _)) = r.common_factor(d) {
            // floor((g·high + low) / d) with 0 <= low < g is floor(high / (d/g)).
            return q.add(&high.div(d / g));
        }
        q.add(&Ix::atom(Atom::Div(Box::new(r), d)))
    }

    /// `self` as `g·high + low` with `g` a factor of `d` (`1 < g < d`, the
    /// largest that works) and `0 <= low < g`: a flat index `128·row +
    /// column` split at a multiple of 128 (a reshape of a strided slice)
    /// divides as `row` alone does.
    fn common_factor(&self, d: i64) -> Option<(i64, Ix, Ix)> {
        fn gcd(a: i64, b: i64) -> i64 {
            if b == 0 {
                a.abs()
            } else {
                gcd(b, a % b)
            }
        }
        let mut factors: Vec<i64> = self
            .terms
            .iter()
            .map(|(_, c)| gcd(d, *c))
            .filter(|&g| 1 < g && g < d)
            .collect();
        factors.sort_unstable_by(|a, b| b.cmp(a));
        factors.dedup();
        factors.into_iter().find_map(|g| {
            let (high, low) = self.split(g);
            let (lo, hi) = low.range();
            (lo >= 0 && hi < g).then_some((g, high, low))
        })
    }

    /// `self mod d`, in `0..d`.
    pub fn rem(&self, d: i64) -> Ix {
        assert!(d > 0, "remainder by {d}");
        if d == 1 {
            return Ix::constant(0);
        }
        let (_, r) = self.split(d);
        let (lo, hi) = r.range();
        if lo >= 0 && hi < d {
            return r;
        }
        if lo.div_euclid(d) == hi.div_euclid(d) {
            return r.add_constant(-lo.div_euclid(d) * d);
        }
        if let Some((g, high, low)) = r.common_factor(d) {
            // (g·high + low) mod d with 0 <= low < g is g·(high mod d/g) + low.
            return high.rem(d / g).scale(g).add(&low);
        }
        Ix::atom(Atom::Rem(Box::new(r), d))
    }

    /// `self` clamped to `0..=n-1`.
    pub fn clamp_to(&self, n: i64) -> Ix {
        let (lo, hi) = self.range();
        if lo >= 0 && hi < n {
            return self.clone();
        }
        if n <= 1 || hi < 0 {
            return Ix::constant(0);
        }
        if lo >= n {
            return Ix::constant(n - 1);
        }
        Ix::atom(Atom::Clamp(Box::new(self.clone()), n))
    }

    /// The coefficient of loop variable `id` among the top-level terms, and
    /// whether it also appears inside an atom (then the index is not affine
    /// in it).
    pub fn coefficient(&self, id: u32) -> (i64, bool) {
        let mut coefficient = 0;
        let mut nested = false;
        for (atom, c) in &self.terms {
            match atom {
                Atom::Var { id: v, .. } if *v == id => coefficient += c,
                Atom::Var { .. } => {}
                Atom::Div(x, _) | Atom::Rem(x, _) | Atom::Clamp(x, _) => nested |= x.mentions(id),
                Atom::Dyn { .. } => {}
            }
        }
        (coefficient, nested)
    }

    /// How much the index moves per lane of vector variable `v` when `v`
    /// takes only multiples of `lanes` and may appear inside `div` and
    /// `rem`: an operand `x` of `x / d` or `x mod d` that moves by `c` per
    /// lane and is otherwise a multiple of `lanes·c`, with `d` one too,
    /// stays within one block of `d` across the lanes, so its quotient is
    /// the same in every lane and its remainder moves by `c`. (A head's
    /// columns read through `merge_heads`: `[B, T, H·D]` as `[B, H, T, D]`,
    /// column `j` at `(j / D)·T·D + j mod D`.) `None` when some lane could
    /// cross a block, or `v` is inside another atom.
    pub fn lane_step_aligned(&self, v: u32, lanes: i64) -> Option<i64> {
        let mut step = 0;
        for (atom, c) in &self.terms {
            match atom {
                Atom::Var { id, .. } if *id == v => step += c,
                Atom::Var { .. } | Atom::Dyn { .. } => {}
                Atom::Div(x, d) | Atom::Rem(x, d) => {
                    let (per_lane, nested) = x.coefficient(v);
                    if nested || per_lane < 0 {
                        return None;
                    }
                    if per_lane == 0 {
                        continue;
                    }
                    let block = lanes * per_lane;
                    let rest_aligned = x.constant % block == 0
                        && x.terms
                            .iter()
                            .all(|(a, k)| matches!(a, Atom::Var { id, .. } if *id == v) || k % block == 0);
                    if !rest_aligned || d % block != 0 {
                        return None;
                    }
                    if matches!(atom, Atom::Rem(..)) {
                        step += c * per_lane;
                    }
                }
                Atom::Clamp(x, _) if x.mentions(v) => return None,
                Atom::Clamp(..) => {}
            }
        }
        Some(step)
    }

    /// Whether loop variable `id` appears anywhere.
    pub fn mentions(&self, id: u32) -> bool {
        let (c, nested) = self.coefficient(id);
        c != 0 || nested
    }

    /// Whether some data-dependent atom appears (possibly nested).
    pub fn has_dyn(&self) -> bool {
        self.terms.iter().any(|(atom, _)| match atom {
            Atom::Dyn { .. } => true,
            Atom::Var { .. } => false,
            Atom::Div(x, _) | Atom::Rem(x, _) | Atom::Clamp(x, _) => x.has_dyn(),
        })
    }

    /// Replaces loop variable `id` by `value`.
    pub fn substitute(&self, id: u32, value: &Ix) -> Ix {
        let mut out = Ix::constant(self.constant);
        for (atom, c) in &self.terms {
            let replaced = match atom {
                Atom::Var { id: v, .. } if *v == id => value.clone(),
                Atom::Var { .. } | Atom::Dyn { .. } => Ix::atom(atom.clone()),
                Atom::Div(x, d) => x.substitute(id, value).div(*d),
                Atom::Rem(x, d) => x.substitute(id, value).rem(*d),
                Atom::Clamp(x, n) => x.substitute(id, value).clamp_to(*n),
            };
            out = out.add(&replaced.scale(*c));
        }
        out
    }
}

/// Row-major strides of a shape.
pub fn strides(shape: &[usize]) -> Vec<i64> {
    let mut strides = vec![1i64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1] as i64;
    }
    strides
}

/// The row-major flat offset of a multi-index into `shape`.
pub fn flat(index: &[Ix], shape: &[usize]) -> Ix {
    let mut out = Ix::constant(0);
    for (ix, stride) in index.iter().zip(strides(shape)) {
        out = out.add(&ix.scale(stride));
    }
    out
}

/// The multi-index of flat offset `offset` into `shape`.
pub fn unflatten(offset: &Ix, shape: &[usize]) -> Vec<Ix> {
    let strides = strides(shape);
    shape
        .iter()
        .zip(&strides)
        .enumerate()
        .map(|(axis, (&size, &stride))| {
            let q = offset.div(stride);
            if axis == 0 {
                q
            } else {
                q.rem(size as i64)
            }
        })
        .collect()
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Var { id, .. } => write!(f, "i{id}"),
            Atom::Div(x, d) => write!(f, "({x})/{d}"),
            Atom::Rem(x, d) => write!(f, "({x})%{d}"),
            Atom::Clamp(x, n) => write!(f, "clamp({x}, {n})"),
            Atom::Dyn { expr, .. } => write!(f, "id(e{expr})"),
        }
    }
}

impl fmt::Display for Ix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (atom, c) in &self.terms {
            let sign = if *c < 0 { "-" } else { "+" };
            if first {
                if *c < 0 {
                    write!(f, "-")?;
                }
            } else {
                write!(f, " {sign} ")?;
            }
            match c.abs() {
                1 => write!(f, "{atom}")?,
                k => write!(f, "{k}*{atom}")?,
            }
            first = false;
        }
        if first {
            write!(f, "{}", self.constant)
        } else if self.constant != 0 {
            let sign = if self.constant < 0 { "-" } else { "+" };
            write!(f, " {sign} {}", self.constant.abs())
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Column `j` of `[T, H·D]` read from `[H, T, D]` (a head's columns,
    /// D = 32, T = 64): lanes from a multiple of four stay in one head, so
    /// the offset moves by one per lane; other blocks or strides do not.
    #[test]
    fn lanes_move_through_div_and_rem_of_an_aligned_variable() {
        let (j, t) = (Ix::var(0, 128), Ix::var(1, 64));
        let heads = |j: &Ix, d: i64| j.div(d).scale(64 * d).add(&t.scale(d)).add(&j.rem(d));
        let offset = heads(&j, 32);
        assert!(offset.coefficient(0).1, "j is inside a div and a rem");
        assert_eq!(offset.lane_step_aligned(0, 4), Some(1));
        // Heads of 6 columns: four lanes from column 4 cross into head 1.
        assert_eq!(heads(&j, 6).lane_step_aligned(0, 4), None);
        // Moved by 2 within the block: lane 3 of column 30 is in the next.
        assert_eq!(heads(&j.add_constant(2), 32).lane_step_aligned(0, 4), None);
        // Two per lane through blocks of 64: a step of 2.
        assert_eq!(j.scale(2).rem(64).lane_step_aligned(0, 4), Some(2));
        assert_eq!(j.scale(2).rem(36).lane_step_aligned(0, 4), None);
        // A quotient alone is the same in every lane.
        assert_eq!(j.div(8).scale(5).lane_step_aligned(0, 4), Some(0));
        // Not through a clamp.
        assert_eq!(j.clamp_to(100).lane_step_aligned(0, 4), None);
    }

    #[test]
    fn reshape_round_trip_simplifies_to_the_variables() {
        let (i, j) = (Ix::var(0, 4), Ix::var(1, 6));
        // [4, 6] -> flat -> [4, 6]
        let offset = flat(&[i.clone(), j.clone()], &[4, 6]);
        assert_eq!(unflatten(&offset, &[4, 6]), vec![i.clone(), j.clone()]);
        // [4, 6] -> [4, 2, 3] -> flat is the same offset
        let split = unflatten(&offset, &[4, 2, 3]);
        assert_eq!(flat(&split, &[4, 2, 3]), offset);
        // [24] viewed as [4, 6] and back
        let f = Ix::var(2, 24);
        let multi = unflatten(&f, &[4, 6]);
        assert_eq!(flat(&multi, &[4, 6]), f);
    }

    /// The value of `ix` with loop variable `v` set to `values[v]`.
    fn eval(ix: &Ix, values: &[i64]) -> i64 {
        let atom = |a: &Atom| match a {
            Atom::Var { id, .. } => values[*id as usize],
            Atom::Div(x, d) => eval(x, values).div_euclid(*d),
            Atom::Rem(x, d) => eval(x, values).rem_euclid(*d),
            Atom::Clamp(x, n) => eval(x, values).clamp(0, n - 1),
            Atom::Dyn { .. } => unreachable!(),
        };
        ix.constant + ix.terms.iter().map(|(a, c)| c * atom(a)).sum::<i64>()
    }

    /// A row of a strided slice, flattened and split again at a multiple
    /// of the row (`[B·T, 128]` read from `[B, T, 256]`): plain strides.
    #[test]
    fn reshapes_of_strided_rows_divide_by_the_row() {
        let (r, c) = (Ix::var(0, 64), Ix::var(1, 128));
        let f = r.scale(128).add(&c);
        assert_eq!(f.div(128 * 16), r.div(16));
        assert_eq!(f.rem(128 * 16), r.rem(16).scale(128).add(&c));
        let multi = unflatten(&f, &[4, 16, 128]);
        let offset = multi[0]
            .scale(16 * 256)
            .add(&multi[1].scale(256))
            .add(&multi[2])
            .add_constant(7);
        assert_eq!(offset.to_string(), "256*i0 + i1 + 7");
    }

    /// Divisions and remainders by every divisor of a few affine indices
    /// (some with a constant, one not splittable), against the integers.
    #[test]
    fn divisions_and_remainders_agree_with_the_integers() {
        let (a, b) = (Ix::var(0, 12), Ix::var(1, 6));
        let cases = [
            a.scale(6).add(&b),
            a.scale(6).add(&b).add_constant(3),
            a.scale(4).add(&b),
            a.scale(12).add(&b.scale(2)).add_constant(1),
            a.scale(-6).add(&b).add_constant(100),
        ];
        for x in &cases {
            for d in 1..=80 {
                let (q, r) = (x.div(d), x.rem(d));
                for i in 0..12 {
                    for j in 0..6 {
                        let v = eval(x, &[i, j]);
                        assert_eq!(eval(&q, &[i, j]), v.div_euclid(d), "({x}) / {d} at {i}, {j}: {q}");
                        assert_eq!(eval(&r, &[i, j]), v.rem_euclid(d), "({x}) % {d} at {i}, {j}: {r}");
                    }
                }
            }
        }
    }

    #[test]
    fn ranges_remove_needless_divisions() {
        let i = Ix::var(0, 10);
        assert_eq!(i.div(10), Ix::constant(0));
        assert_eq!(i.rem(10), i);
        assert_eq!(i.scale(4).add_constant(3).div(4), i);
        assert_eq!(i.clamp_to(10), i);
        assert_eq!(i.add_constant(-1).clamp_to(10).to_string(), "clamp(i0 - 1, 10)");
        let (c, nested) = i.scale(3).add(&Ix::var(1, 5)).coefficient(0);
        assert_eq!((c, nested), (3, false));
    }
}
