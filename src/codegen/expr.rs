//! Scalar expressions of a kernel: what one element of a fused kernel's
//! results is, with every layout op already turned into index arithmetic.
//! Expressions are hash-consed in an [`Exprs`] arena, so a value used twice
//! is one expression (and one instruction in the generated code).
//!
//! Values are f32 or masks (conditions). Tensors of every dtype live in
//! memory as f32: `i32` values are integral floats, bools are 0.0 / 1.0.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap as HashMap;
use std::fmt::Write;

use super::index::{Atom, Ix};
use crate::ir::NodeId;
use crate::prim::{BinaryOp, Distribution, UnaryOp};

pub type E = u32;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expr {
    /// Element `offset` of a materialized node's buffer.
    Load {
        buffer: NodeId,
        offset: Ix,
    },
    /// An f32 constant, by its bits.
    Const(u32),
    /// An index as a float (`iota`).
    Index(Ix),
    /// Random number number `flat` of a stream (see `interp::random`).
    Random {
        dist: Distribution,
        stream: u32,
        flat: Ix,
    },
    Unary(UnaryOp, E),
    /// Arithmetic gives f32, comparisons give masks.
    Binary(BinaryOp, E, E),
    /// `(mask, a, b)`.
    Select(E, E, E),
    /// Truncation toward zero (results of `i32` ops).
    Trunc(E),
    /// `x != 0` as a mask.
    ToMask(E),
    /// A mask as 0.0 / 1.0.
    FromMask(E),
    /// Mask: `lo <= ix < hi`.
    InRange {
        ix: Ix,
        lo: i64,
        hi: i64,
    },
    /// Mask: the id `expr` names an entry of `0..size` (see `interp::gather`).
    IdValid {
        expr: E,
        size: i64,
    },
    /// Mask: the id `expr` names entry `ix`.
    IdEquals {
        expr: E,
        ix: Ix,
    },
    And(E, E),
    Or(E, E),
    Not(E),
    True,
    False,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    F32,
    Mask,
}

/// The expressions of one kernel.
#[derive(Clone, Debug, Default)]
pub struct Exprs {
    pub nodes: Vec<Expr>,
    map: HashMap<Expr, E>,
}

impl Exprs {
    pub fn get(&self, e: E) -> &Expr {
        &self.nodes[e as usize]
    }

    pub fn kind(&self, e: E) -> Kind {
        match self.get(e) {
            Expr::Binary(op, _, _) if op.is_predicate() => Kind::Mask,
            Expr::ToMask(_)
            | Expr::InRange { .. }
            | Expr::IdValid { .. }
            | Expr::IdEquals { .. }
            | Expr::And(..)
            | Expr::Or(..)
            | Expr::Not(_)
            | Expr::True
            | Expr::False => Kind::Mask,
            Expr::Select(_, a, _) => self.kind(*a),
            _ => Kind::F32,
        }
    }

    /// Adds (or finds) an expression, simplifying the obvious cases.
    pub fn add(&mut self, expr: Expr) -> E {
        let expr = match self.simplify(expr) {
            Ok(existing) => return existing,
            Err(expr) => expr,
        };
        if let Some(&e) = self.map.get(&expr) {
            return e;
        }
        let e = self.nodes.len() as E;
        self.nodes.push(expr.clone());
        self.map.insert(expr, e);
        e
    }

    /// `Ok(e)`: the expression is an existing one; `Err(expr)`: add this.
    fn simplify(&mut self, expr: Expr) -> Result<E, Expr> {
        let simplified = match &expr {
            Expr::InRange { ix, lo, hi } => {
                let (min, max) = ix.range();
                if min >= *lo && max < *hi {
                    Expr::True
                } else if max < *lo || min >= *hi {
                    Expr::False
                } else {
                    return Err(expr);
                }
            }
            Expr::Select(c, a, b) => match self.get(*c) {
                Expr::True => return Ok(*a),
                Expr::False => return Ok(*b),
                _ if a == b => return Ok(*a),
                _ => return Err(expr),
            },
            Expr::ToMask(x) => match self.get(*x) {
                Expr::FromMask(m) => return Ok(*m),
                _ => return Err(expr),
            },
            Expr::And(a, b) => match (self.get(*a), self.get(*b)) {
                (Expr::True, _) => return Ok(*b),
                (_, Expr::True) => return Ok(*a),
                (Expr::False, _) | (_, Expr::False) => Expr::False,
                _ => return Err(expr),
            },
            Expr::Or(a, b) => match (self.get(*a), self.get(*b)) {
                (Expr::False, _) => return Ok(*b),
                (_, Expr::False) => return Ok(*a),
                (Expr::True, _) | (_, Expr::True) => Expr::True,
                _ => return Err(expr),
            },
            Expr::Not(x) => match self.get(*x) {
                Expr::True => Expr::False,
                Expr::False => Expr::True,
                _ => return Err(expr),
            },
            Expr::Trunc(x) => match self.get(*x) {
                Expr::Trunc(_) | Expr::FromMask(_) | Expr::Index(_) => return Ok(*x),
                Expr::Const(bits) => Expr::Const(f32::from_bits(*bits).trunc().to_bits()),
                _ => return Err(expr),
            },
            _ => return Err(expr),
        };
        Ok(self.add(simplified))
    }

    pub fn constant(&mut self, value: f32) -> E {
        self.add(Expr::Const(value.to_bits()))
    }

    /// `e` as an f32 (masks become 0.0 / 1.0).
    pub fn as_f32(&mut self, e: E) -> E {
        match self.kind(e) {
            Kind::F32 => e,
            Kind::Mask => self.add(Expr::FromMask(e)),
        }
    }

    /// `e` as a mask (f32 values are true when non-zero).
    pub fn as_mask(&mut self, e: E) -> E {
        match self.kind(e) {
            Kind::Mask => e,
            Kind::F32 => self.add(Expr::ToMask(e)),
        }
    }

    /// The operands of an expression.
    pub fn children(&self, e: E) -> Vec<E> {
        match self.get(e) {
            Expr::Unary(_, a)
            | Expr::Trunc(a)
            | Expr::ToMask(a)
            | Expr::FromMask(a)
            | Expr::Not(a)
            | Expr::IdValid { expr: a, .. }
            | Expr::IdEquals { expr: a, .. } => vec![*a],
            Expr::Binary(_, a, b) | Expr::And(a, b) | Expr::Or(a, b) => vec![*a, *b],
            Expr::Select(c, a, b) => vec![*c, *a, *b],
            Expr::Load { offset, .. } => dyn_exprs(offset),
            Expr::Index(ix) | Expr::Random { flat: ix, .. } | Expr::InRange { ix, .. } => dyn_exprs(ix),
            Expr::Const(_) | Expr::True | Expr::False => Vec::new(),
        }
    }

    /// The index expressions an expression reads.
    pub fn indices(&self, e: E) -> Vec<&Ix> {
        match self.get(e) {
            Expr::Load { offset, .. } => vec![offset],
            Expr::Index(ix) | Expr::Random { flat: ix, .. } | Expr::InRange { ix, .. } | Expr::IdEquals { ix, .. } => {
                vec![ix]
            }
            _ => Vec::new(),
        }
    }

    /// Every expression reachable from `roots`, operands first.
    pub fn reachable(&self, roots: &[E]) -> Vec<E> {
        let mut seen = vec![false; self.nodes.len()];
        let mut order = Vec::new();
        let mut stack: Vec<(E, bool)> = roots.iter().rev().map(|&e| (e, false)).collect();
        while let Some((e, done)) = stack.pop() {
            if done {
                order.push(e);
                continue;
            }
            if seen[e as usize] {
                continue;
            }
            seen[e as usize] = true;
            stack.push((e, true));
            for child in self.children(e).into_iter().rev() {
                if !seen[child as usize] {
                    stack.push((child, false));
                }
            }
        }
        order
    }

    /// Loop variables each expression depends on, for every expression
    /// reachable from `roots` (by expression id).
    pub fn var_sets(&self, roots: &[E]) -> HashMap<E, BTreeSet<u32>> {
        let mut sets: HashMap<E, BTreeSet<u32>> = HashMap::default();
        for e in self.reachable(roots) {
            let mut set = BTreeSet::new();
            for ix in self.indices(e) {
                vars_of(ix, &mut set);
            }
            for child in self.children(e) {
                set.extend(sets[&child].iter().copied());
            }
            sets.insert(e, set);
        }
        sets
    }

    /// Rebuilds `e` with loop variable `var` replaced by `value`.
    pub fn substitute(&mut self, e: E, var: u32, value: &Ix, memo: &mut HashMap<E, E>) -> E {
        if let Some(&done) = memo.get(&e) {
            return done;
        }
        let sub = |ix: &Ix, this: &mut Exprs, memo: &mut HashMap<E, E>| this.substitute_ix(ix, var, value, memo);
        let expr = self.get(e).clone();
        let out = match expr {
            Expr::Load { buffer, offset } => {
                let offset = sub(&offset, self, memo);
                self.add(Expr::Load { buffer, offset })
            }
            Expr::Index(ix) => {
                let ix = sub(&ix, self, memo);
                self.add(Expr::Index(ix))
            }
            Expr::Random { dist, stream, flat } => {
                let flat = sub(&flat, self, memo);
                self.add(Expr::Random { dist, stream, flat })
            }
            Expr::InRange { ix, lo, hi } => {
                let ix = sub(&ix, self, memo);
                self.add(Expr::InRange { ix, lo, hi })
            }
            Expr::IdEquals { expr, ix } => {
                let expr = self.substitute(expr, var, value, memo);
                let ix = sub(&ix, self, memo);
                self.add(Expr::IdEquals { expr, ix })
            }
            Expr::IdValid { expr, size } => {
                let expr = self.substitute(expr, var, value, memo);
                self.add(Expr::IdValid { expr, size })
            }
            Expr::Unary(op, a) => {
                let a = self.substitute(a, var, value, memo);
                self.add(Expr::Unary(op, a))
            }
            Expr::Binary(op, a, b) => {
                let a = self.substitute(a, var, value, memo);
                let b = self.substitute(b, var, value, memo);
                self.add(Expr::Binary(op, a, b))
            }
            Expr::Select(c, a, b) => {
                let c = self.substitute(c, var, value, memo);
                let a = self.substitute(a, var, value, memo);
                let b = self.substitute(b, var, value, memo);
                self.add(Expr::Select(c, a, b))
            }
            Expr::Trunc(a) => {
                let a = self.substitute(a, var, value, memo);
                self.add(Expr::Trunc(a))
            }
            Expr::ToMask(a) => {
                let a = self.substitute(a, var, value, memo);
                self.add(Expr::ToMask(a))
            }
            Expr::FromMask(a) => {
                let a = self.substitute(a, var, value, memo);
                self.add(Expr::FromMask(a))
            }
            Expr::Not(a) => {
                let a = self.substitute(a, var, value, memo);
                self.add(Expr::Not(a))
            }
            Expr::And(a, b) => {
                let a = self.substitute(a, var, value, memo);
                let b = self.substitute(b, var, value, memo);
                self.add(Expr::And(a, b))
            }
            Expr::Or(a, b) => {
                let a = self.substitute(a, var, value, memo);
                let b = self.substitute(b, var, value, memo);
                self.add(Expr::Or(a, b))
            }
            Expr::Const(_) | Expr::True | Expr::False => e,
        };
        memo.insert(e, out);
        out
    }

    /// `ix` with `var` replaced, data-dependent atoms rebuilt too.
    fn substitute_ix(&mut self, ix: &Ix, var: u32, value: &Ix, memo: &mut HashMap<E, E>) -> Ix {
        let mut out = Ix::constant(ix.constant);
        for (atom, c) in &ix.terms {
            let replaced = match atom {
                Atom::Var { id, .. } if *id == var => value.clone(),
                Atom::Var { .. } => Ix::atom(atom.clone()),
                Atom::Dyn { expr, size } => {
                    let expr = self.substitute(*expr, var, value, memo);
                    Ix::atom(Atom::Dyn { expr, size: *size })
                }
                Atom::Div(x, d) => self.substitute_ix(x, var, value, memo).div(*d),
                Atom::Rem(x, d) => self.substitute_ix(x, var, value, memo).rem(*d),
                Atom::Clamp(x, n) => self.substitute_ix(x, var, value, memo).clamp_to(*n),
            };
            out = out.add(&replaced.scale(*c));
        }
        out
    }

    /// One line per expression reachable from `roots`: `e3 = add(e1, e2)`.
    pub fn print(&self, roots: &[E], name: &dyn Fn(NodeId) -> String) -> String {
        let mut out = String::new();
        for e in self.reachable(roots) {
            let _ = writeln!(out, "    e{e} = {}", self.describe(e, name));
        }
        out
    }

    pub fn describe(&self, e: E, name: &dyn Fn(NodeId) -> String) -> String {
        match self.get(e) {
            Expr::Load { buffer, offset } => format!("load {}[{offset}]", name(*buffer)),
            Expr::Const(bits) => format!("{}", f32::from_bits(*bits)),
            Expr::Index(ix) => format!("index({ix})"),
            Expr::Random { dist, stream, flat } => format!("random {dist:?} stream={stream} [{flat}]"),
            Expr::Unary(op, a) => format!("{}(e{a})", op.name()),
            Expr::Binary(op, a, b) => format!("{}(e{a}, e{b})", op.name()),
            Expr::Select(c, a, b) => format!("select(e{c}, e{a}, e{b})"),
            Expr::Trunc(a) => format!("trunc(e{a})"),
            Expr::ToMask(a) => format!("nonzero(e{a})"),
            Expr::FromMask(a) => format!("float(e{a})"),
            Expr::InRange { ix, lo, hi } => format!("{lo} <= {ix} < {hi}"),
            Expr::IdValid { expr, size } => format!("valid_id(e{expr}, {size})"),
            Expr::IdEquals { expr, ix } => format!("id(e{expr}) == {ix}"),
            Expr::And(a, b) => format!("and(e{a}, e{b})"),
            Expr::Or(a, b) => format!("or(e{a}, e{b})"),
            Expr::Not(a) => format!("not(e{a})"),
            Expr::True => "true".into(),
            Expr::False => "false".into(),
        }
    }
}

/// Expressions that data-dependent atoms of `ix` refer to.
fn dyn_exprs(ix: &Ix) -> Vec<E> {
    let mut out = Vec::new();
    fn walk(ix: &Ix, out: &mut Vec<E>) {
        for (atom, _) in &ix.terms {
            match atom {
                Atom::Dyn { expr, .. } => out.push(*expr),
                Atom::Div(x, _) | Atom::Rem(x, _) | Atom::Clamp(x, _) => walk(x, out),
                Atom::Var { .. } => {}
            }
        }
    }
    walk(ix, &mut out);
    out
}

/// Loop variables that appear in `ix`.
pub fn vars_of(ix: &Ix, set: &mut BTreeSet<u32>) {
    for (atom, _) in &ix.terms {
        match atom {
            Atom::Var { id, .. } => {
                set.insert(*id);
            }
            Atom::Div(x, _) | Atom::Rem(x, _) | Atom::Clamp(x, _) => vars_of(x, set),
            Atom::Dyn { .. } => {}
        }
    }
}
