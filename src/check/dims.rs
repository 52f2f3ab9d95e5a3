//! Symbolic dimensions: integer polynomials over named sizes (`B`, `T`),
//! kept in a canonical form so that equal sizes compare equal.
//!
//! Arithmetic is checked: an operation whose coefficient would not fit in
//! an `i64` gives an overflowed dimension ([`Dim::is_overflow`]), which has
//! no value and makes every dimension computed from it overflowed too, so
//! the checker reports it (E0312) where it was made instead of computing on.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A dimension: `sum of coefficient * product of symbols`, e.g. `4*B*T + 1`.
/// Zero coefficients are never stored; the constant term has an empty monomial.
/// The terms are shared (a shape's clone, made for every node of every
/// graph, copies no polynomial); operations build new ones.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Dim {
    terms: Arc<BTreeMap<Vec<String>, i64>>,
    /// Whether the arithmetic that made it overflowed (then `terms` is empty).
    overflow: bool,
}

impl Dim {
    pub fn constant(value: i64) -> Dim {
        let mut terms = BTreeMap::new();
        if value != 0 {
            terms.insert(Vec::new(), value);
        }
        Dim::of(terms)
    }

    pub fn symbol(name: &str) -> Dim {
        let mut terms = BTreeMap::new();
        terms.insert(vec![name.to_string()], 1);
        Dim::of(terms)
    }

    fn of(terms: BTreeMap<Vec<String>, i64>) -> Dim {
        Dim {
            terms: Arc::new(terms),
            overflow: false,
        }
    }

    /// The result of arithmetic that overflowed: no value.
    fn overflowed() -> Dim {
        Dim {
            terms: Default::default(),
            overflow: true,
        }
    }

    /// Whether arithmetic overflowed making this dimension (or one it was
    /// computed from): a coefficient did not fit in an `i64`.
    pub fn is_overflow(&self) -> bool {
        self.overflow
    }

    /// The value, if it does not depend on any symbol (an overflowed
    /// dimension has none).
    pub fn as_const(&self) -> Option<i64> {
        if self.overflow {
            return None;
        }
        match self.terms.len() {
            0 => Some(0),
            1 => self.terms.get(&Vec::new()).copied(),
            _ => None,
        }
    }

    /// The least value the size can take with every symbol at least 1: the
    /// constant, or for a polynomial whose coefficients are all positive
    /// their sum (saturating); 0 when a negative coefficient could make it
    /// anything; `i64::MAX` for an overflowed dimension, larger than any.
    pub fn least(&self) -> i64 {
        if self.overflow {
            return i64::MAX;
        }
        if let Some(n) = self.as_const() {
            return n;
        }
        if self.terms.values().all(|&c| c > 0) {
            self.terms.values().fold(0i64, |acc, &c| acc.saturating_add(c))
        } else {
            0
        }
    }

    pub fn is_symbolic(&self) -> bool {
        self.as_const().is_none()
    }

    pub fn add(&self, other: &Dim) -> Dim {
        if self.overflow || other.overflow {
            return Dim::overflowed();
        }
        if other.terms.is_empty() {
            return self.clone();
        }
        let mut terms = (*self.terms).clone();
        for (monomial, coefficient) in other.terms.iter() {
            let entry = terms.entry(monomial.clone()).or_insert(0);
            let Some(sum) = entry.checked_add(*coefficient) else {
                return Dim::overflowed();
            };
            *entry = sum;
            if *entry == 0 {
                terms.remove(monomial);
            }
        }
        Dim::of(terms)
    }

    pub fn neg(&self) -> Dim {
        if self.overflow {
            return Dim::overflowed();
        }
        let terms: Option<BTreeMap<Vec<String>, i64>> = self
            .terms
            .iter()
            .map(|(m, c)| Some((m.clone(), c.checked_neg()?)))
            .collect();
        terms.map_or_else(Dim::overflowed, Dim::of)
    }

    pub fn sub(&self, other: &Dim) -> Dim {
        self.add(&other.neg())
    }

    pub fn mul(&self, other: &Dim) -> Dim {
        if self.overflow || other.overflow {
            return Dim::overflowed();
        }
        let mut out = Dim::default();
        for (ma, ca) in self.terms.iter() {
            for (mb, cb) in other.terms.iter() {
                let mut monomial: Vec<String> = ma.iter().chain(mb.iter()).cloned().collect();
                monomial.sort();
                let Some(coefficient) = ca.checked_mul(*cb) else {
                    return Dim::overflowed();
                };
                out = out.add(&Dim::of(BTreeMap::from([(monomial, coefficient)])));
            }
        }
        out
    }

    /// Exact division: `Some` when every term divides by `other`, which must be
    /// a constant or a single monomial; overflowed when either is.
    pub fn div_exact(&self, other: &Dim) -> Option<Dim> {
        if self.overflow || other.overflow {
            return Some(Dim::overflowed());
        }
        if other.terms.len() != 1 {
            return None;
        }
        let (divisor_monomial, divisor) = other.terms.iter().next()?;
        if *divisor == 0 {
            return None;
        }
        let mut out = BTreeMap::new();
        let mut overflow = false;
        for (monomial, coefficient) in self.terms.iter() {
            // The divisor is not 0, so only `i64::MIN / -1` fails (2^63),
            // which divides exactly.
            if coefficient.checked_rem(*divisor).is_some_and(|r| r != 0) {
                return None;
            }
            let mut rest = monomial.clone();
            for symbol in divisor_monomial {
                let position = rest.iter().position(|s| s == symbol)?;
                rest.remove(position);
            }
            match coefficient.checked_div(*divisor) {
                Some(quotient) => {
                    out.insert(rest, quotient);
                }
                None => overflow = true,
            }
        }
        Some(if overflow { Dim::overflowed() } else { Dim::of(out) })
    }

    /// The value with every symbol bound, or `None` if one is unbound (or
    /// the value does not fit in an `i64`).
    pub fn evaluate(&self, lookup: &dyn Fn(&str) -> Option<i64>) -> Option<i64> {
        if self.overflow {
            return None;
        }
        let mut total: i64 = 0;
        for (monomial, coefficient) in self.terms.iter() {
            let mut term = *coefficient;
            for symbol in monomial {
                term = term.checked_mul(lookup(symbol)?)?;
            }
            total = total.checked_add(term)?;
        }
        Some(total)
    }

    /// Replaces symbols by the dimensions bound to them.
    pub fn substitute(&self, lookup: &dyn Fn(&str) -> Option<Dim>) -> Dim {
        if self.overflow {
            return self.clone();
        }
        let mut out = Dim::default();
        for (monomial, coefficient) in self.terms.iter() {
            let mut term = Dim::constant(*coefficient);
            for symbol in monomial {
                let value = lookup(symbol).unwrap_or_else(|| Dim::symbol(symbol));
                term = term.mul(&value);
            }
            out = out.add(&term);
        }
        out
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.overflow {
            return write!(f, "(too large)");
        }
        if self.terms.is_empty() {
            return write!(f, "0");
        }
        // Highest-degree terms first, constant last: `B*T + 1`.
        let mut terms: Vec<_> = self.terms.iter().collect();
        terms.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(b.0)));
        for (i, (monomial, coefficient)) in terms.into_iter().enumerate() {
            let negative = *coefficient < 0;
            let magnitude = coefficient.unsigned_abs();
            if i == 0 {
                if negative {
                    write!(f, "-")?;
                }
            } else {
                write!(f, " {} ", if negative { "-" } else { "+" })?;
            }
            let product = monomial.join("*");
            match (magnitude, monomial.is_empty()) {
                (_, true) => write!(f, "{magnitude}")?,
                (1, false) => write!(f, "{product}")?,
                (_, false) => write!(f, "{magnitude}*{product}")?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Formats a shape as `[B, 64]`.
pub fn format_shape(shape: &[Dim]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_makes_equal_sizes_equal() {
        let b = Dim::symbol("B");
        let t = Dim::symbol("T");
        assert_eq!(b.mul(&t), t.mul(&b));
        assert_eq!(b.add(&b), Dim::constant(2).mul(&b));
        assert_eq!(b.sub(&b), Dim::constant(0));
        assert_eq!(b.mul(&t).add(&Dim::constant(1)).to_string(), "B*T + 1");
        assert_eq!(Dim::constant(4).mul(&b).sub(&t).to_string(), "4*B - T");
    }

    #[test]
    fn division_is_exact_or_refused() {
        let b = Dim::symbol("B");
        let four_b = Dim::constant(4).mul(&b);
        assert_eq!(four_b.div_exact(&Dim::constant(2)), Some(Dim::constant(2).mul(&b)));
        assert_eq!(four_b.div_exact(&b), Some(Dim::constant(4)));
        assert_eq!(four_b.div_exact(&Dim::constant(3)), None);
        assert_eq!(Dim::constant(64).div_exact(&Dim::constant(4)), Some(Dim::constant(16)));
        assert_eq!(Dim::constant(7).div_exact(&Dim::constant(0)), None);
    }

    #[test]
    fn evaluation_needs_every_symbol() {
        let expr = Dim::symbol("B").mul(&Dim::constant(4)).add(&Dim::constant(1));
        assert_eq!(expr.evaluate(&|s| (s == "B").then_some(8)), Some(33));
        assert_eq!(expr.evaluate(&|_| None), None);
    }

    #[test]
    fn overflow_is_detected_not_saturated() {
        let big = Dim::constant(1 << 62);
        let b = Dim::symbol("B");
        // The extremes fit.
        assert_eq!(big.add(&big.sub(&Dim::constant(1))).as_const(), Some(i64::MAX));
        assert_eq!(big.neg().sub(&big).as_const(), Some(i64::MIN));
        for overflowed in [
            big.mul(&Dim::constant(2)),
            big.add(&big),
            big.mul(&b).mul(&Dim::constant(4)),
            Dim::constant(i64::MIN).neg(),
            big.neg().sub(&big).sub(&Dim::constant(1)),
            Dim::constant(i64::MIN).div_exact(&Dim::constant(-1)).unwrap(),
        ] {
            assert!(overflowed.is_overflow());
            assert_eq!(overflowed.as_const(), None);
            assert_eq!(overflowed.evaluate(&|_| Some(1)), None);
            assert_eq!(overflowed.to_string(), "(too large)");
            // What is computed from it has overflowed too.
            let after = overflowed.div_exact(&Dim::constant(16)).unwrap();
            assert!(after.mul(&Dim::constant(0)).is_overflow());
            assert!(after.sub(&overflowed).is_overflow());
        }
    }

    #[test]
    fn substitution_binds_symbols() {
        let expr = Dim::symbol("D").mul(&Dim::constant(4));
        let bound = expr.substitute(&|s| (s == "D").then(|| Dim::constant(16)));
        assert_eq!(bound.as_const(), Some(64));
    }
}
