//! One CLIF function per kernel: the loop nests of a [`Kernel`], built from
//! its expressions. Loop kernels first merge adjacent axes whose accesses
//! stay contiguous (a `[64, 128]` map becomes one loop of 8192), then loop
//! over the outer axes and, inside, over each phase's inner axes, the
//! innermost in chunks of four. Every kernel function has the signature
//! `(arena, random table, start, end) -> status` and runs its first loop
//! over `start..end`, so the step can split it between threads.

use rustc_hash::FxHashMap as HashMap;

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::types::{F32, I64};
use cranelift_codegen::ir::{InstBuilder, Value};

use super::emit::{Emitter, LANES};
use super::expand::{vars, Expander};
use super::expr::{Expr, Exprs, E};
use super::fuse::{inner_var, reduced_axes, Fused, Kernel, LoopKernel, Phase};
use super::index::{flat, unflatten, Ix};
use crate::ir::NodeId;
use crate::prim::{Prim, ReduceOp};

/// The expressions of one phase.
pub struct PhaseCode {
    /// Per root: its value (map) or its operand's value (reduction).
    pub values: Vec<E>,
    /// Per root: where it is stored, and the load that reads it back.
    pub stores: Vec<Ix>,
    pub loads: Vec<E>,
    /// Loop variables (id, size), outermost first.
    pub loops: Vec<(u32, i64)>,
}

/// A loop kernel with its axes grouped into loops, and its expressions.
pub struct LoopCode {
    pub outer_loops: Vec<(u32, i64)>,
    pub phases: Vec<PhaseCode>,
    pub exprs: Exprs,
}

/// The index of axes grouped into loops with the given variables.
fn grouped_index(groups: &[Vec<usize>], var: impl Fn(usize) -> u32) -> (Vec<Ix>, Vec<(u32, i64)>) {
    let mut index = Vec::new();
    let mut loops = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        let size: usize = group.iter().product();
        let v = Ix::var(var(g), size as i64);
        loops.push((var(g), size as i64));
        index.extend(unflatten(&v, group));
    }
    (index, loops)
}

fn singletons(dims: &[usize]) -> Vec<Vec<usize>> {
    dims.iter().map(|&d| vec![d]).collect()
}

/// Builds the kernel's expressions for a grouping of its axes.
fn build(fused: &Fused, kernel: &LoopKernel, outer: &[Vec<usize>], inner: &[Vec<Vec<usize>>]) -> LoopCode {
    let bound = &fused.bound;
    let mut exprs = Exprs::default();
    let (outer_index, outer_loops) = grouped_index(outer, |g| g as u32);
    let mut phases = Vec::new();
    for (p, phase) in kernel.phases.iter().enumerate() {
        let (inner_index, loops) = grouped_index(&inner[p], |g| inner_var(p, g));
        let mut expander = Expander::new(bound, &fused.materialized, &mut exprs);
        let mut code = PhaseCode {
            values: Vec::new(),
            stores: Vec::new(),
            loads: Vec::new(),
            loops,
        };
        match phase {
            Phase::Map { roots, .. } => {
                let index: Vec<Ix> = outer_index.iter().chain(&inner_index).cloned().collect();
                let space = super::fuse::phase_space(&kernel.outer, phase);
                for &root in roots {
                    let at = super::fuse::root_index(bound, root, &index, &space);
                    let value = expander.define(root, &at);
                    let value = expander.exprs.as_f32(value);
                    let store = flat(&at, bound.shape(root));
                    code.loads.push(expander.exprs.add(Expr::Load {
                        buffer: root,
                        offset: store.clone(),
                    }));
                    code.values.push(value);
                    code.stores.push(store);
                }
            }
            Phase::Reduce { root, .. } => {
                let operand = bound.inputs(*root)[0];
                let axes = reduced_axes(bound, *root);
                let (mut o, mut i) = (outer_index.iter(), inner_index.iter());
                let index: Vec<Ix> = (0..bound.shape(operand).len())
                    .map(|a| {
                        let source = if axes.contains(&a) { i.next() } else { o.next() };
                        source.cloned().unwrap_or_default()
                    })
                    .collect();
                let value = expander.value(operand, &index);
                let value = expander.exprs.as_f32(value);
                let store = flat(&outer_index, &kernel.outer);
                code.loads.push(expander.exprs.add(Expr::Load {
                    buffer: *root,
                    offset: store.clone(),
                }));
                code.values.push(value);
                code.stores.push(store);
            }
        }
        phases.push(code);
    }
    LoopCode {
        outer_loops,
        phases,
        exprs,
    }
}

/// Whether every index in the kernel's expressions is affine in `var`.
fn affine_in(code: &LoopCode, var: u32) -> bool {
    let roots: Vec<E> = code.phases.iter().flat_map(|p| p.values.iter().copied()).collect();
    code.exprs
        .reachable(&roots)
        .into_iter()
        .all(|e| code.exprs.indices(e).iter().all(|ix| !ix.coefficient(var).1))
}

/// Groups adjacent axes into single loops where that keeps every access
/// affine, then builds the expressions.
pub fn plan_loops(fused: &Fused, kernel: &LoopKernel) -> LoopCode {
    let mut outer = singletons(&kernel.outer);
    let mut inner: Vec<Vec<Vec<usize>>> = kernel.phases.iter().map(|p| singletons(p.inner())).collect();
    // Argmax walks one axis with its own loop.
    let argmax: Vec<bool> = kernel
        .phases
        .iter()
        .map(|p| matches!(p, Phase::Reduce { root, .. } if matches!(fused.bound.op(*root), Prim::ArgMax { .. })))
        .collect();
    // Most kernels read and write contiguously: every group merged into
    // one loop is then affine, and the greedy merging below would arrive
    // at the same grouping one build per axis later (an access affine in
    // the merged index is affine in any coarser merge of adjacent axes).
    // Try that first, in one build.
    let merged = |groups: &[Vec<usize>]| -> Vec<Vec<usize>> {
        if groups.len() < 2 {
            groups.to_vec()
        } else {
            vec![groups.concat()]
        }
    };
    let all_outer = merged(&outer);
    let all_inner: Vec<Vec<Vec<usize>>> = inner
        .iter()
        .zip(&argmax)
        .map(|(groups, &argmax)| if argmax { groups.clone() } else { merged(groups) })
        .collect();
    if outer.len() >= 2 || inner.iter().zip(&argmax).any(|(g, &a)| !a && g.len() >= 2) {
        let code = build(fused, kernel, &all_outer, &all_inner);
        let outer_ok = outer.len() < 2 || affine_in(&code, 0);
        let inner_ok = (0..inner.len()).all(|p| argmax[p] || inner[p].len() < 2 || affine_in(&code, inner_var(p, 0)));
        if outer_ok && inner_ok {
            return code;
        }
    }
    let mut i = outer.len();
    while i >= 2 {
        i -= 1;
        let mut trial = outer.clone();
        let tail = trial.remove(i);
        trial[i - 1].extend(tail);
        let code = build(fused, kernel, &trial, &inner);
        if affine_in(&code, (i - 1) as u32) {
            outer = trial;
        }
    }
    for p in 0..inner.len() {
        if argmax[p] {
            continue;
        }
        let mut i = inner[p].len();
        while i >= 2 {
            i -= 1;
            let mut trial = inner.clone();
            let tail = trial[p].remove(i);
            trial[p][i - 1].extend(tail);
            let code = build(fused, kernel, &outer, &trial);
            if affine_in(&code, inner_var(p, i - 1)) {
                inner = trial;
            }
        }
    }
    build(fused, kernel, &outer, &inner)
}

/// The size of the loop a kernel's `start..end` range covers.
pub fn split_size(fused: &Fused, k: usize, code: Option<&LoopCode>) -> i64 {
    match (&fused.kernels[k], code) {
        (Kernel::Loop(_), Some(code)) => match (code.outer_loops.first(), code.phases.as_slice()) {
            (Some(&(_, n)), _) => n,
            // A single loop is the vectorized one: cut in groups of
            // `LANES`, so each element takes the vector or the scalar path
            // whichever threads run it (see `emit_loop`).
            (None, [only]) if only.loops.len() == 1 && only_map(fused, k) => (only.loops[0].1 + LANES - 1) / LANES,
            (None, [only]) if !only.loops.is_empty() && only_map(fused, k) => only.loops[0].1,
            _ => 1,
        },
        (Kernel::Accumulate(root), _) if super::accumulate::in_registers(fused, *root) => 1,
        (Kernel::Accumulate(root), _) => {
            let operand = fused.bound.inputs(*root)[0];
            let columns = fused.bound.shape(operand).last().copied().unwrap_or(1) as i64;
            (columns + LANES - 1) / LANES
        }
        // A concatenation along a later axis is cut along the first.
        (Kernel::Concat(root), _) => match fused.bound.op(*root) {
            Prim::Concat { axis } if *axis > 0 => fused.bound.shape(*root)[0] as i64,
            _ => 1,
        },
        (Kernel::Scatter(_) | Kernel::Loop(_) | Kernel::Scan(_), _) => 1,
        (Kernel::MatMul { .. } | Kernel::Window { .. } | Kernel::AllReduce(_), _) => 1,
    }
}

fn only_map(fused: &Fused, k: usize) -> bool {
    matches!(&fused.kernels[k], Kernel::Loop(l) if l.phases.len() == 1 && matches!(l.phases[0], Phase::Map { .. }))
}

/// Emits a loop kernel's body.
pub fn emit_loop(em: &mut Emitter, code: &LoopCode, fused: &Fused, kernel: &LoopKernel, start: Value, end: Value) {
    let all: Vec<E> = code.phases.iter().flat_map(|p| p.values.iter().copied()).collect();
    em.pending = kernel.phases.iter().flat_map(|p| p.roots()).collect();
    em.hoist(&all);
    let split_phase = code.outer_loops.is_empty() && code.phases.len() == 1;
    let (start, end) = match code.phases[0].loops.as_slice() {
        // The range counts groups of `LANES` elements (`split_size`).
        &[(_, n)] if split_phase => {
            let first = em.b.ins().imul_imm_s(start, LANES);
            let last = em.b.ins().imul_imm_s(end, LANES);
            let all = em.iconst(n);
            (first, em.b.ins().smin(last, all))
        }
        _ => (start, end),
    };
    outer_level(em, code, fused, kernel, 0, start, end, split_phase, &all);
}

#[allow(clippy::too_many_arguments)]
fn outer_level(
    em: &mut Emitter,
    code: &LoopCode,
    fused: &Fused,
    kernel: &LoopKernel,
    level: usize,
    start: Value,
    end: Value,
    split_phase: bool,
    all: &[E],
) {
    if level == code.outer_loops.len() {
        for (p, phase) in kernel.phases.iter().enumerate() {
            let range = split_phase.then_some((start, end));
            emit_phase(em, &code.phases[p], fused, phase, range);
            for root in phase.roots() {
                em.pending.remove(&root);
            }
        }
        em.pending = kernel.phases.iter().flat_map(|p| p.roots()).collect();
        return;
    }
    let (var, size) = code.outer_loops[level];
    let (s, e) = if level == 0 {
        (start, end)
    } else {
        (em.iconst(0), em.iconst(size))
    };
    em.for_range(var, size, s, e, &mut |em, _| {
        em.hoist(all);
        let (s2, e2) = (start, end);
        outer_level(em, code, fused, kernel, level + 1, s2, e2, split_phase, all);
    });
}

/// Loops over `loops` (the first over `range` if given), hoisting what is
/// invariant before each, the innermost vectorized when it has four or
/// more iterations; `body` runs in the innermost loop.
pub fn nest(
    em: &mut Emitter,
    loops: &[(u32, i64)],
    range: Option<(Value, Value)>,
    roots: &[E],
    body: &mut dyn FnMut(&mut Emitter, bool),
) {
    nest_at(em, loops, 0, range, roots, body);
}

/// [`nest`] with `range` bounding loop number `at` instead of the first.
pub fn nest_at(
    em: &mut Emitter,
    loops: &[(u32, i64)],
    at: usize,
    range: Option<(Value, Value)>,
    roots: &[E],
    body: &mut dyn FnMut(&mut Emitter, bool),
) {
    let Some((&(var, size), rest)) = loops.split_first() else {
        body(em, false);
        return;
    };
    let (s, e) = match range {
        Some(r) if at == 0 => r,
        _ => (em.iconst(0), em.iconst(size)),
    };
    let (inner_at, inner_range) = if at == 0 { (0, None) } else { (at - 1, range) };
    let innermost = rest.is_empty();
    em.loop_with(var, size, s, e, innermost && size >= LANES, &mut |em, vector| {
        if innermost {
            body(em, vector);
        } else {
            em.hoist(roots);
            nest_at(em, rest, inner_at, inner_range, roots, body);
        }
    });
}

fn emit_phase(em: &mut Emitter, code: &PhaseCode, fused: &Fused, phase: &Phase, range: Option<(Value, Value)>) {
    em.hoist(&code.values);
    match phase {
        Phase::Map { roots, .. } => {
            nest(em, &code.loops, range, &code.values, &mut |em, vector| {
                let lanes = if vector { LANES } else { 1 };
                for (i, &root) in roots.iter().enumerate() {
                    let v = em.eval(code.values[i], vector);
                    let address = em.address(root, &code.stores[i], lanes);
                    em.store(v, address);
                    em.remember(code.loads[i], vector, v);
                }
            });
        }
        Phase::Reduce { root, .. } => {
            let total = match fused.bound.op(*root) {
                Prim::ArgMax { .. } => argmax(em, code),
                Prim::Reduce { op, .. } => {
                    let count: i64 = code.loops.iter().map(|(_, n)| n).product();
                    reduce(em, code, *op, count)
                }
                _ => unreachable!("a reduction"),
            };
            let address = em.address(*root, &code.stores[0], 1);
            em.store(total, address);
            em.remember(code.loads[0], false, total);
        }
    }
}

/// The identity of a reduction.
pub(super) fn identity(op: ReduceOp) -> f32 {
    match op {
        ReduceOp::Sum | ReduceOp::Mean => 0.0,
        ReduceOp::Max => f32::NEG_INFINITY,
    }
}

/// `acc ⊕ x`.
pub fn combine(em: &mut Emitter, op: ReduceOp, acc: Value, x: Value, vector: bool) -> Value {
    match op {
        ReduceOp::Sum | ReduceOp::Mean => em.b.ins().fadd(acc, x),
        ReduceOp::Max => em.max_min(acc, x, FloatCC::GreaterThan, vector, false),
    }
}

fn reduce(em: &mut Emitter, code: &PhaseCode, op: ReduceOp, count: i64) -> Value {
    let scalar = em.b.declare_var(F32);
    let vector = em.b.declare_var(cranelift_codegen::ir::types::F32X4);
    let init = em.b.ins().f32const(identity(op));
    em.b.def_var(scalar, init);
    let init_v = em.b.ins().splat(cranelift_codegen::ir::types::F32X4, init);
    em.b.def_var(vector, init_v);
    let value = code.values[0];
    nest(em, &code.loops, None, &code.values, &mut |em, is_vector| {
        let x = em.eval(value, is_vector);
        let var = if is_vector { vector } else { scalar };
        let acc = em.b.use_var(var);
        let next = combine(em, op, acc, x, is_vector);
        em.b.def_var(var, next);
    });
    let mut total = em.b.use_var(scalar);
    if code.loops.last().is_some_and(|&(_, n)| n >= LANES) {
        let v = em.b.use_var(vector);
        let mut lanes = em.b.ins().extractlane(v, 0);
        for lane in 1..LANES as u8 {
            let x = em.b.ins().extractlane(v, lane);
            lanes = combine(em, op, lanes, x, false);
        }
        total = combine(em, op, lanes, total, false);
    }
    if op == ReduceOp::Mean {
        let n = em.b.ins().f32const(count as f32);
        total = em.b.ins().fdiv(total, n);
    }
    total
}

/// The first index of the largest value (a NaN is never larger).
fn argmax(em: &mut Emitter, code: &PhaseCode) -> Value {
    let (var, size) = code.loops.first().copied().unwrap_or((u32::MAX, 1));
    let value = code.values[0];
    let mut memo = HashMap::default();
    let first = em.exprs.substitute(value, var, &Ix::constant(0), &mut memo);
    let best_value = em.b.declare_var(F32);
    let best_index = em.b.declare_var(F32);
    let x0 = em.eval(first, false);
    em.b.def_var(best_value, x0);
    let zero = em.b.ins().f32const(0.0);
    em.b.def_var(best_index, zero);
    if size > 1 {
        let (s, e) = (em.iconst(1), em.iconst(size));
        em.for_range(var, size, s, e, &mut |em, _| {
            let x = em.eval(value, false);
            let best = em.b.use_var(best_value);
            let greater = em.b.ins().fcmp(FloatCC::GreaterThan, x, best);
            let new_best = em.b.ins().select(greater, x, best);
            em.b.def_var(best_value, new_best);
            let i = em.index(&Ix::var(var, size));
            let position = em.b.ins().fcvt_from_sint(F32, i);
            let old = em.b.use_var(best_index);
            let new_index = em.b.ins().select(greater, position, old);
            em.b.def_var(best_index, new_index);
        });
    }
    em.b.use_var(best_index)
}

/// Fills `count` elements of `buffer` with `value`.
fn fill(em: &mut Emitter, buffer: NodeId, count: usize, value: f32) {
    let var = 9000;
    let e = em.exprs.constant(value);
    let offset = Ix::var(var, count as i64);
    nest(em, &[(var, count as i64)], None, &[e], &mut |em, vector| {
        let lanes = if vector { LANES } else { 1 };
        let v = em.eval(e, vector);
        let address = em.address(buffer, &offset, lanes);
        em.store(v, address);
    });
}

/// Whether `a` and `b` lie in one buffer.
fn same_buffer(em: &Emitter, a: NodeId, b: NodeId) -> bool {
    let offset = |n: NodeId| em.plan.buffers.get(&n).map(|buffer| buffer.offset);
    offset(a).is_some() && offset(a) == offset(b)
}

/// `to` (a buffer) set to `from`'s value, element by element.
fn copy(em: &mut Emitter, fused: &Fused, from: NodeId, to: NodeId) {
    let shape = fused.bound.shape(to).to_vec();
    let index = vars(0, &shape);
    let value = {
        let mut expander = Expander::new(&fused.bound, &fused.materialized, &mut em.exprs);
        let value = expander.value(from, &index);
        expander.exprs.as_f32(value)
    };
    let loops: Vec<(u32, i64)> = shape.iter().enumerate().map(|(k, &n)| (k as u32, n as i64)).collect();
    let offset = flat(&index, &shape);
    em.push_scope();
    nest(em, &loops, None, &[value], &mut |em, vector| {
        let lanes = if vector { LANES } else { 1 };
        let x = em.eval(value, vector);
        let address = em.address(to, &offset, lanes);
        em.store(x, address);
    });
    em.pop_scope();
}

/// `scatter_rows`: zero the output, then add each value row to the row
/// its id names (rows of invalid ids are dropped). A sum `base +
/// scatter_rows(..)` ([`super::fuse::scatter_added`]) starts from `base`
/// instead, copied unless the sum is written where `base` lies.
pub fn emit_scatter(em: &mut Emitter, fused: &Fused, root: NodeId) {
    let bound = &fused.bound;
    let (base, scatter) = match super::fuse::scatter_added(bound, root) {
        Some((base, scatter)) => (Some(base), scatter),
        None => (None, root),
    };
    let (values, ids) = (bound.inputs(scatter)[0], bound.inputs(scatter)[1]);
    let id_shape = bound.shape(ids).to_vec();
    let out_shape = bound.shape(root).to_vec();
    let rows = out_shape[0] as i64;
    let rest = &out_shape[1..];
    let width: i64 = rest.iter().product::<usize>() as i64;
    match base {
        None => fill(em, root, bound.count(root), 0.0),
        Some(base) if same_buffer(em, base, root) => {}
        Some(base) => copy(em, fused, base, root),
    }
    let id_index = vars(0, &id_shape);
    let rest_index: Vec<Ix> = rest
        .iter()
        .enumerate()
        .map(|(k, &n)| Ix::var(100 + k as u32, n as i64))
        .collect();
    let (id_value, valid, value, offset) = {
        let mut expander = Expander::new(bound, &fused.materialized, &mut em.exprs);
        let id_value = expander.value(ids, &id_index);
        let id_value = expander.exprs.as_f32(id_value);
        let full: Vec<Ix> = id_index.iter().chain(&rest_index).cloned().collect();
        let value = expander.value(values, &full);
        let value = expander.exprs.as_f32(value);
        let valid = expander.exprs.add(Expr::IdValid {
            expr: id_value,
            size: rows,
        });
        let row = Ix::atom(super::index::Atom::Dyn {
            expr: id_value,
            size: rows,
        });
        let offset = row.scale(width).add(&flat(&rest_index, rest));
        (id_value, valid, value, offset)
    };
    // Rows read as they lie, ids too: the native loop (wider vectors, the
    // row's address once per id), in the same order.
    let dense = |e: E, index: &[Ix], shape: &[usize]| match em.exprs.get(e) {
        Expr::Load { buffer, offset } if offset.constant >= 0 && offset.terms == flat(index, shape).terms => {
            Some((*buffer, offset.constant))
        }
        _ => None,
    };
    let full: Vec<Ix> = id_index.iter().chain(&rest_index).cloned().collect();
    let native = dense(value, &full, bound.shape(values)).zip(dense(id_value, &id_index, &id_shape));
    if let Some(((from, at), (id_buffer, id_at))) = native {
        let x = em.address(from, &Ix::constant(at), 1);
        let ids = em.address(id_buffer, &Ix::constant(id_at), 1);
        let out = em.address(root, &Ix::constant(0), 1);
        let count = id_shape.iter().product::<usize>() as i64;
        let (count, width, rows) = (em.iconst(count), em.iconst(width), em.iconst(rows));
        em.b.ins()
            .call(em.calls.scatter_rows, &[x, ids, count, width, out, rows]);
        return;
    }
    let id_loops: Vec<(u32, i64)> = id_shape
        .iter()
        .enumerate()
        .map(|(k, &n)| (k as u32, n as i64))
        .collect();
    let rest_loops: Vec<(u32, i64)> = rest
        .iter()
        .enumerate()
        .map(|(k, &n)| (100 + k as u32, n as i64))
        .collect();
    // The id loops run one at a time (no chunks): rows may repeat.
    let mut outer = |em: &mut Emitter| {
        let ok = em.eval(valid, false);
        let then = em.b.create_block();
        let merge = em.b.create_block();
        em.b.ins().brif(ok, then, &[], merge, &[]);
        em.b.seal_block(then);
        em.b.switch_to_block(then);
        em.push_scope();
        em.hoist(&[value]);
        nest(em, &rest_loops, None, &[value], &mut |em, vector| {
            let lanes = if vector { LANES } else { 1 };
            let x = em.eval(value, vector);
            let address = em.address(root, &offset, lanes);
            let acc = em.load(address, vector);
            let sum = em.b.ins().fadd(acc, x);
            em.store(sum, address);
        });
        em.pop_scope();
        em.b.ins().jump(merge, &[]);
        em.b.seal_block(merge);
        em.b.switch_to_block(merge);
    };
    scalar_nest(em, &id_loops, &mut outer);
}

/// Loops one element at a time over `loops`.
pub(super) fn scalar_nest(em: &mut Emitter, loops: &[(u32, i64)], body: &mut dyn FnMut(&mut Emitter)) {
    let Some((&(var, size), rest)) = loops.split_first() else {
        body(em);
        return;
    };
    let (s, e) = (em.iconst(0), em.iconst(size));
    em.for_range(var, size, s, e, &mut |em, _| scalar_nest(em, rest, body));
}

/// A concatenation's writes, planned: per group of operands of one shape,
/// its loops and each operand's value and offset in the output.
pub struct ConcatCode {
    pub exprs: Exprs,
    pub groups: Vec<ConcatGroup>,
    /// Whether the kernel takes rows `start..end` of the first axis (a
    /// concatenation along a later one, split among threads).
    pub split_rows: bool,
}

pub struct ConcatGroup {
    pub loops: Vec<(u32, i64)>,
    pub values: Vec<E>,
    pub offsets: Vec<Ix>,
}

/// `concat`: each operand copied (computed) into its slice of the output.
pub fn plan_concat(fused: &Fused, root: NodeId) -> ConcatCode {
    let bound = &fused.bound;
    let Prim::Concat { axis } = bound.op(root).clone() else {
        unreachable!("a concat")
    };
    let out_shape = bound.shape(root).to_vec();
    let mut pieces = Vec::new();
    concat_pieces(fused, root, &vec![0; out_shape.len()], &mut pieces);
    // Operands of one shape are written in one loop nest, a few at a time,
    // so what they share (the four values of a pooling window, read by
    // each value's gradient) is loaded once per element; more would be
    // more streams through memory at once (the steps of a sequence).
    let mut groups: Vec<Vec<(NodeId, Vec<i64>)>> = Vec::new();
    for piece in pieces {
        match groups.last_mut() {
            Some(group) if group.len() < SHARED_NEST && bound.shape(group[0].0) == bound.shape(piece.0) => {
                group.push(piece)
            }
            _ => groups.push(vec![piece]),
        }
    }
    let mut exprs = Exprs::default();
    let mut planned = Vec::new();
    for (g, group) in groups.into_iter().enumerate() {
        let shape = bound.shape(group[0].0).to_vec();
        let first = 200 * (g as u32 + 1);
        let index = vars(first, &shape);
        let mut values = Vec::new();
        let mut offsets = Vec::new();
        for (operand, starts) in &group {
            let value = {
                let mut expander = Expander::new(bound, &fused.materialized, &mut exprs);
                let v = expander.value(*operand, &index);
                expander.exprs.as_f32(v)
            };
            let out_index: Vec<_> = index.iter().zip(starts).map(|(ix, &s)| ix.add_constant(s)).collect();
            values.push(value);
            offsets.push(flat(&out_index, &out_shape));
        }
        let loops: Vec<(u32, i64)> = shape
            .iter()
            .enumerate()
            .map(|(k, &n)| (first + k as u32, n as i64))
            .collect();
        planned.push(ConcatGroup { loops, values, offsets });
    }
    ConcatCode {
        exprs,
        groups: planned,
        split_rows: axis > 0,
    }
}

/// Emits a planned concatenation into `root`; rows `start..end` of the
/// first axis when `code.split_rows`, else all of it.
pub fn emit_concat(em: &mut Emitter, code: &ConcatCode, root: NodeId, first_row: Value, end_row: Value) {
    for group in &code.groups {
        em.hoist(&group.values);
        let range = code.split_rows.then_some((first_row, end_row));
        nest(em, &group.loops, range, &group.values, &mut |em, vector| {
            let lanes = if vector { LANES } else { 1 };
            let xs: Vec<Value> = group.values.iter().map(|&v| em.eval(v, vector)).collect();
            for (x, offset) in xs.into_iter().zip(&group.offsets) {
                let address = em.address(root, offset, lanes);
                em.store(x, address);
            }
        });
    }
}

/// Operands of a concatenation written in one loop nest, at most.
const SHARED_NEST: usize = 4;

/// The operands of a concatenation with where each starts in the output;
/// an operand that is itself a concatenation without a buffer (read only
/// here, see `fuse::materialize`) is opened, so nested concatenations are
/// written in one kernel.
fn concat_pieces(fused: &Fused, node: NodeId, starts: &[i64], out: &mut Vec<(NodeId, Vec<i64>)>) {
    let bound = &fused.bound;
    let Prim::Concat { axis } = bound.op(node).clone() else {
        unreachable!("a concat")
    };
    let mut starts = starts.to_vec();
    for &operand in bound.inputs(node) {
        if matches!(bound.op(operand), Prim::Concat { .. }) && !fused.materialized[operand.index()] {
            concat_pieces(fused, operand, &starts, out);
        } else {
            out.push((operand, starts.clone()));
        }
        starts[axis] += bound.shape(operand)[axis] as i64;
    }
}

/// Parameters of every kernel function: arena, random table, start, end,
/// buffer table.
pub fn kernel_params() -> [cranelift_codegen::ir::Type; 5] {
    [I64, I64, I64, I64, I64]
}
