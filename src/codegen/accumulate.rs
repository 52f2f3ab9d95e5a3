//! Reductions over leading axes (`Kernel::Accumulate`): the reduction node
//! in, the planned code and its Cranelift emission out. Every element of
//! the operand is combined into its output element in memory order, so the
//! result's bits do not depend on how the threads split the columns. A sum
//! or mean of every axis but the last over rows that lie in a buffer (a
//! bias's gradient) calls the native `calls::nnc_column_sums`, which keeps
//! blocks of columns in vector registers through the rows; a narrow one
//! computed on the fly keeps its sums in Cranelift registers.

use cranelift_codegen::ir::types::{F32, F32X4};
use cranelift_codegen::ir::{InstBuilder, Value};

use super::emit::{Emitter, LANES};
use super::expand::{vars, Expander};
use super::expr::{Expr, Exprs, E};
use super::fuse::{reduced_axes, Fused};
use super::index::{flat, Ix};
use super::kernels::{combine, identity, nest_at, scalar_nest};
use crate::ir::NodeId;
use crate::prim::{Prim, ReduceOp};

/// A reduction over leading axes, planned: the output's loops and index,
/// the identity it starts from, the operand's value, loops and where each
/// element goes, and for a mean the division that ends it.
pub struct AccumulateCode {
    pub exprs: Exprs,
    pub op: ReduceOp,
    /// Columns of the operand (the last axis, always kept).
    pub columns: i64,
    pub out_loops: Vec<(u32, i64)>,
    pub out_offset: Ix,
    pub identity: E,
    pub value: E,
    pub loops: Vec<(u32, i64)>,
    pub out: Ix,
    /// The output element divided by the count (a mean).
    pub mean: Option<E>,
    /// Every axis but the last summed, in registers (see
    /// [`in_registers`]).
    pub in_registers: bool,
    /// A sum or mean of every axis but the last of rows that lie in a
    /// buffer (the buffer and its first element): summed by the native
    /// `nnc_column_sums`.
    pub native: Option<(NodeId, i64)>,
}

/// A reduction over leading axes: `out[kept] ⊕= x[...]` for every element
/// of the operand, in memory order.
pub fn plan_accumulate(fused: &Fused, root: NodeId) -> AccumulateCode {
    let bound = &fused.bound;
    let operand = bound.inputs(root)[0];
    let shape = bound.shape(operand).to_vec();
    let out_shape = bound.shape(root).to_vec();
    let axes = reduced_axes(bound, root);
    let Prim::Reduce { op, keepdims, .. } = bound.op(root).clone() else {
        unreachable!("accumulate kernels reduce")
    };
    let mut exprs = Exprs::default();
    let out_index = vars(200, &out_shape);
    let out_offset = flat(&out_index, &out_shape);
    let out_loops: Vec<(u32, i64)> = out_shape
        .iter()
        .enumerate()
        .map(|(k, &n)| (200 + k as u32, n as i64))
        .collect();
    // The output element, read back by a mean's division.
    let load = exprs.add(Expr::Load {
        buffer: root,
        offset: out_offset.clone(),
    });
    let identity = exprs.constant(identity(op));
    let index = vars(0, &shape);
    let value = {
        let mut expander = Expander::new(bound, &fused.materialized, &mut exprs);
        let v = expander.value(operand, &index);
        expander.exprs.as_f32(v)
    };
    let mut kept = Vec::new();
    for (a, ix) in index.iter().enumerate() {
        if !axes.contains(&a) {
            kept.push(ix.clone());
        } else if keepdims {
            kept.push(Ix::constant(0));
        }
    }
    let out = flat(&kept, &out_shape);
    // Rows read as they lie: the value is a load at the dense index.
    let native = match exprs.get(value) {
        Expr::Load { buffer, offset }
            if sums_rows(&shape, &axes)
                && matches!(op, ReduceOp::Sum | ReduceOp::Mean)
                && offset.constant >= 0
                && offset.terms == flat(&index, &shape).terms =>
        {
            Some((*buffer, offset.constant))
        }
        _ => None,
    };
    let loops: Vec<(u32, i64)> = shape.iter().enumerate().map(|(k, &n)| (k as u32, n as i64)).collect();
    let mean = (op == ReduceOp::Mean).then(|| {
        let count: usize = axes.iter().map(|&a| shape[a]).product();
        let c = exprs.constant(count as f32);
        exprs.add(Expr::Binary(crate::prim::BinaryOp::Div, load, c))
    });
    AccumulateCode {
        in_registers: in_registers(fused, root),
        native,
        exprs,
        op,
        columns: *shape.last().expect("the last axis is kept") as i64,
        out_loops,
        out_offset,
        identity,
        value,
        loops,
        out,
        mean,
    }
}

/// At most this many columns, a reduction over every axis but the last
/// keeps its sums in registers (see [`emit_accumulate`]).
const REGISTER_COLUMNS: i64 = 8 * LANES;

/// Whether the reduction `root` (an accumulate kernel) sums every axis but
/// the last, and that one is narrow: a bias's gradient over the positions
/// of an image, `[N·H·W, C]` rows summed to `[C]`.
pub fn in_registers(fused: &Fused, root: NodeId) -> bool {
    let shape = fused.bound.shape(fused.bound.inputs(root)[0]);
    sums_rows(shape, &reduced_axes(&fused.bound, root)) && shape[shape.len() - 1] as i64 <= REGISTER_COLUMNS
}

/// Whether a reduction of `axes` of `shape` reduces every axis before the
/// last (an accumulate kernel always keeps the last): rows summed to one.
fn sums_rows(shape: &[usize], axes: &[usize]) -> bool {
    let rank = shape.len();
    rank >= 2 && (0..rank - 1).all(|a| axes.contains(&a))
}

/// Emits a planned reduction over leading axes into `root`. The kernel
/// splits between threads by columns: part `start..end` (in groups of
/// [`LANES`] columns, see `split_size`) fills, sums and scales its
/// columns of every row, in the same order whatever the split. A narrow
/// reduction of every axis but the last runs whole on one thread with its
/// sums in registers, row after row (the same order): going through
/// memory, each row's sum waited for the last one's store, and two
/// threads each read every row's cache line for half of it.
pub fn emit_accumulate(em: &mut Emitter, code: &AccumulateCode, root: NodeId, start: Value, end: Value) {
    if code.in_registers && code.native.is_none() {
        emit_accumulate_in_registers(em, code, root);
        return;
    }
    let all = em.iconst(code.columns);
    let (first, last) = if code.in_registers {
        // Not split: every column.
        (em.iconst(0), all)
    } else {
        let first = em.b.ins().imul_imm_s(start, LANES);
        let last = em.b.ins().imul_imm_s(end, LANES);
        (first, em.b.ins().smin(last, all))
    };
    let range = Some((first, last));
    let over_output = |em: &mut Emitter, v: E| {
        let loops = &code.out_loops;
        nest_at(em, loops, loops.len() - 1, range, &[v], &mut |em, vector| {
            let lanes = if vector { LANES } else { 1 };
            let x = em.eval(v, vector);
            let address = em.address(root, &code.out_offset, lanes);
            em.store(x, address);
        });
    };
    if let Some((buffer, at)) = code.native {
        let rows = code.loops.iter().map(|&(_, n)| n).product::<i64>() / code.columns.max(1);
        let skip = em.b.ins().imul_imm_s(first, 4);
        let x = em.address(buffer, &Ix::constant(at), 1);
        let x = em.b.ins().iadd(x, skip);
        let out = em.address(root, &Ix::constant(0), 1);
        let out = em.b.ins().iadd(out, skip);
        let count = em.b.ins().isub(last, first);
        let (rows, stride) = (em.iconst(rows), em.iconst(code.columns));
        em.b.ins().call(em.calls.column_sums, &[x, rows, stride, out, count]);
        if let Some(mean) = code.mean {
            over_output(em, mean);
        }
        return;
    }
    over_output(em, code.identity);
    let value = code.value;
    em.hoist(&[value]);
    nest_at(
        em,
        &code.loops,
        code.loops.len() - 1,
        range,
        &[value],
        &mut |em, vector| {
            let lanes = if vector { LANES } else { 1 };
            let x = em.eval(value, vector);
            let address = em.address(root, &code.out, lanes);
            let acc = em.load(address, vector);
            let next = combine(em, code.op, acc, x, vector);
            em.store(next, address);
        },
    );
    if let Some(mean) = code.mean {
        over_output(em, mean);
    }
}

/// [`emit_accumulate`] of a narrow reduction over every axis but the last:
/// a vector sum per [`LANES`] columns and a scalar one per column left
/// over, in registers through the loops over the rows, then stored.
fn emit_accumulate_in_registers(em: &mut Emitter, code: &AccumulateCode, root: NodeId) {
    let (&(column, columns), rows) = code.loops.split_last().expect("an accumulate kernel has a column axis");
    let groups = columns / LANES;
    // (first column, vector) of each sum.
    let sums: Vec<(i64, bool)> = (0..groups)
        .map(|g| (g * LANES, true))
        .chain((groups * LANES..columns).map(|c| (c, false)))
        .collect();
    let mut variables = Vec::new();
    for &(_, vector) in &sums {
        let v = em.b.declare_var(if vector { F32X4 } else { F32 });
        let identity = splat_if(em, code.identity, vector);
        em.b.def_var(v, identity);
        variables.push(v);
    }
    let value = code.value;
    em.hoist(&[value]);
    scalar_nest(em, rows, &mut |em| {
        for (&(at, vector), &v) in sums.iter().zip(&variables) {
            em.at(column, columns, at, vector, &mut |em| {
                let x = em.eval(value, vector);
                let acc = em.b.use_var(v);
                let next = combine(em, code.op, acc, x, vector);
                em.b.def_var(v, next);
            });
        }
    });
    // A mean divides each sum by the count, as the general path does
    // after storing it.
    let count = rows.iter().map(|&(_, n)| n).product::<i64>();
    let count = code.mean.map(|_| em.exprs.constant(count as f32));
    for (&(at, vector), &v) in sums.iter().zip(&variables) {
        let mut total = em.b.use_var(v);
        if let Some(count) = count {
            let count = splat_if(em, count, vector);
            total = em.b.ins().fdiv(total, count);
        }
        let lanes = if vector { LANES } else { 1 };
        let address = em.address(root, &Ix::constant(at), lanes);
        em.store(total, address);
    }
}

/// Loop-invariant `e` as a scalar, or in every lane when `vector`.
fn splat_if(em: &mut Emitter, e: E, vector: bool) -> Value {
    let x = em.eval(e, false);
    if vector {
        em.b.ins().splat(F32X4, x)
    } else {
        x
    }
}
