//! Expressions to CLIF: the [`Emitter`] turns a kernel's expressions into
//! instructions, in scalar (`f32`) or vector (`f32x4`, four consecutive
//! values of the innermost loop variable) form, with loops, loads, stores
//! and optional bounds checks. Values are cached per loop scope, so an
//! expression used twice is computed once, and expressions that do not
//! depend on a loop are computed before it. What cannot be vectorized
//! (gathers, random numbers, library calls) is computed lane by lane.
//!
//! The files: this one holds the [`Emitter`], its value caches and
//! hoisting; `loops.rs` emits loops and index arithmetic, `memory.rs`
//! addresses, bounds checks, loads and stores, `eval.rs` expressions and
//! math calls, `vector.rs` the helpers of the `f32x4` path, and
//! `random.rs` the random numbers.

mod eval;
mod loops;
mod memory;
mod random;
mod vector;

use std::collections::BTreeSet;

use rustc_hash::FxHashMap as HashMap;

use cranelift_codegen::ir::{Block, FuncRef, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilder;

use super::expr::{Expr, Exprs, E};
use super::index::Ix;
use super::memory::Plan;
use crate::ir::NodeId;
use crate::prim::BinaryOp;

/// Functions generated code may call.
#[derive(Clone, Copy)]
pub struct Calls {
    pub normal: FuncRef,
    pub sin: FuncRef,
    pub cos: FuncRef,
    pub pow: FuncRef,
    pub column_sums: FuncRef,
    pub scatter_rows: FuncRef,
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
    /// The kernel's buffer table (byte offsets in the arena), when buffers
    /// are addressed through one rather than by constant offsets.
    pub table: Option<Value>,
    /// The function's entry block, where buffer bases are loaded.
    entry: Block,
    /// Buffers used so far, the element their base address points at, and
    /// that address, in order of first use.
    bases: Vec<(NodeId, i64, Value)>,
    /// The table this kernel needs: each used buffer's byte offset.
    pub relocations: Vec<i64>,
    scopes: Vec<Scope>,
    /// Current values (i64) and sizes of loop variables.
    vars: HashMap<u32, Value>,
    sizes: HashMap<u32, i64>,
    /// The variable of the vectorized loop being emitted, if any.
    vector: Option<u32>,
    /// Whether the vectorized variable only takes multiples of `LANES`
    /// (its loop starts at one): then an index through `div` or `rem` of
    /// it can still move by a fixed step per lane ([`Ix::lane_step_aligned`]).
    ///
    /// [`Ix::lane_step_aligned`]: crate::codegen::index::Ix::lane_step_aligned
    aligned: bool,
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
        mut b: FunctionBuilder<'b>,
        exprs: Exprs,
        plan: &'a Plan,
        arena: Value,
        rng: Value,
        calls: Calls,
        streams: &'a Streams,
        check_bounds: bool,
        table: Option<Value>,
    ) -> Self {
        // Buffer bases are inserted into the entry block by a cursor, which
        // needs the block in the layout.
        b.ensure_inserted_block();
        let entry = b.current_block().expect("the builder is in the entry block");
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
            table,
            entry,
            bases: Vec::new(),
            relocations: Vec::new(),
            scopes: vec![Scope::default()],
            vars: HashMap::default(),
            sizes: HashMap::default(),
            vector: None,
            aligned: false,
            deps: HashMap::default(),
            loads: HashMap::default(),
            pending: BTreeSet::new(),
        }
    }

    /// The buffer table's entries so far: each used buffer and the
    /// constant its entry was shifted by, in table order.
    pub fn table_uses(&self) -> Vec<(NodeId, i64)> {
        self.bases.iter().map(|&(buffer, first, _)| (buffer, first)).collect()
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
}
