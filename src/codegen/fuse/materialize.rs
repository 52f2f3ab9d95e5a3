//! Which nodes get a buffer: the bound graph in, one flag per node out
//! ("materialized"), plus the sums of matrix products computed straight
//! into one buffer, and matrix operands as strided views of buffers.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap as HashMap;

use super::{Accumulate, Strided, View};
use crate::codegen::expand::{vars, Bound, Expander};
use crate::codegen::expr::{Expr, Exprs};
use crate::codegen::gemm::{Operand, MAX_BATCH};
use crate::codegen::index::Atom;
use crate::ir::NodeId;
use crate::prim::{Prim, UnaryOp};

/// Nodes whose buffer no kernel computes: inputs, parameters, states, and
/// the arguments of a loop body (placed by the loop, see `memory.rs`).
pub fn is_leaf(op: &Prim) -> bool {
    matches!(op, Prim::Input(_) | Prim::Param(_) | Prim::State(_) | Prim::Arg(_))
}

/// Cost of inlining a node, in rough instruction counts.
fn own_cost(op: &Prim) -> usize {
    match op {
        Prim::Const(_) | Prim::Count(_) | Prim::Iota { .. } | Prim::StopGrad | Prim::Cast(_) => 0,
        Prim::Reshape | Prim::Permute(_) | Prim::Broadcast | Prim::Slice { .. } => 0,
        Prim::Unary(UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Not | UnaryOp::Sqrt) => 1,
        Prim::Unary(_) | Prim::Random { .. } => 8,
        Prim::Binary(crate::prim::BinaryOp::Pow) => 8,
        Prim::Fold2d(w) => 2 * w.kernel * w.kernel,
        Prim::Concat { .. } => 4,
        _ => 1,
    }
}

/// Decides which nodes live in buffers; and which of them need one
/// whoever reads them (the rest have one because they are used more than
/// once or are costly to inline, see `locals.rs`).
pub(super) fn choose_materialized(bound: &Bound) -> (Vec<bool>, Vec<bool>) {
    let graph = bound.graph;
    let mut materialized = vec![false; bound.shapes.len()];
    let mut pinned = vec![false; bound.shapes.len()];
    let mut cost = vec![0usize; bound.shapes.len()];
    let outputs: BTreeSet<NodeId> = graph.outputs.iter().map(|(_, id)| *id).collect();
    for &id in &bound.order {
        let op = bound.op(id);
        let must = is_leaf(op)
            || outputs.contains(&id)
            || matches!(op, Prim::Scan(_) | Prim::AllReduce)
            || feeds_product(bound, id)
            || folded_into(bound, id).is_some()
            || written_product(bound, id).is_some()
            || matches!(op, Prim::Reduce { .. } | Prim::ArgMax { .. })
            || (matches!(op, Prim::ScatterRows { .. }) && !added_scatter(bound, id))
            || scatter_added(bound, id).is_some()
            || (matches!(op, Prim::MatMul) && permuted_product(bound, id).is_none())
            || (matches!(op, Prim::Concat { .. })
                && !inside_concat(bound, id)
                && !read_by_loop_in_place(bound, &materialized, id))
            || (matches!(op, Prim::Fold2d(_)) && permuted_fold(bound, id).is_none());
        // A fold reads its operand at k·k places.
        let reads = match op {
            Prim::Fold2d(w) => w.kernel * w.kernel,
            _ => 1,
        };
        let operands = bound
            .inputs(id)
            .iter()
            .map(|i| if materialized[i.index()] { 1 } else { cost[i.index()] })
            .sum::<usize>();
        let inline_cost = own_cost(op) + reads * operands;
        if reads > 1 {
            for &operand in bound.inputs(id) {
                if !materialized[operand.index()] && cost[operand.index()] >= 4 {
                    materialized[operand.index()] = true;
                }
            }
        }
        cost[id.index()] = inline_cost;
        pinned[id.index()] = must;
        let users = bound.users(id).len();
        let shared = users >= 2 && inline_cost >= 3 && !disjoint_slices(bound, id);
        let opened = matches!(op, Prim::Concat { .. }) && inside_concat(bound, id);
        materialized[id.index()] = must || (!opened && (shared || inline_cost > 48));
        // A loop reads its operands from buffers: the captured ones in
        // place at every step; a sequence that lies in a buffer (one result
        // of an earlier loop, or a step-shifted view of it) is read there,
        // not copied first.
        if let Prim::Scan(looped) = op {
            let sequences = looped.carries..looped.carries + looped.sequences;
            for (i, &operand) in bound.inputs(id).iter().enumerate() {
                if !sequences.contains(&i) || sequence_view(bound, &materialized, operand).is_none() {
                    materialized[operand.index()] = true;
                }
            }
        }
        // The collective sums a whole buffer, row-major.
        if matches!(op, Prim::AllReduce) {
            materialized[bound.inputs(id)[0].index()] = true;
        }
        if matches!(op, Prim::MatMul) {
            for &operand in bound.inputs(id) {
                if materialized[operand.index()] {
                    continue;
                }
                // Patches for a product are gathered by the native
                // `unfold2d` into their own buffer, which the product (or
                // a reshape of it) reads as a view.
                if let Some(unfold) = unfolded(bound, operand) {
                    materialized[unfold.index()] = true;
                    if matmul_view(bound, &materialized, operand).is_some() {
                        continue;
                    }
                }
                // A transposed view read by several products (a weight in
                // every step of an unrolled loop) is copied once: the GEMM
                // would otherwise repack the strided operand every time.
                let shared = bound
                    .users(operand)
                    .iter()
                    .filter(|u| matches!(bound.op(**u), Prim::MatMul))
                    .count()
                    >= 2;
                match matmul_view(bound, &materialized, operand) {
                    None => materialize_under_layout(bound, &mut materialized, operand),
                    Some(view) if shared && view.strides.col != 1 && bound.count(operand) > 1 => {
                        materialized[operand.index()] = true;
                    }
                    Some(_) => {}
                }
            }
        }
    }
    // The native window kernels read their operand as a strided view of a
    // buffer: materialize the operands that are not one, preferably the
    // value under a chain of layout ops (a permuted pooling result is then
    // written once in its own order and read through the permutation).
    for &id in &bound.order {
        let window = match bound.op(id) {
            Prim::Unfold2d(_) | Prim::Fold2d(_) => Some(id),
            _ => folded_into(bound, id),
        };
        if let Some(window) = window.filter(|_| materialized[id.index()]) {
            let operand = bound.inputs(window)[0];
            if strided_view(bound, &materialized, operand).is_some() {
                continue;
            }
            let (source, _) = under_layout(bound, &materialized, operand);
            materialized[source.index()] = true;
            if strided_view(bound, &materialized, operand).is_none() {
                materialized[operand.index()] = true;
            }
        }
    }
    (materialized, pinned)
}

/// Gives a product's operand that is no view a buffer: where it is a
/// transposition (through reshapes) of a value computed for it alone, that
/// value is written in its own order and the product reads it through the
/// transposition — contiguous rows out rather than a strided scatter (the
/// weight gradient of a recurrence reads the shifted hidden states
/// transposed). Otherwise the operand itself.
fn materialize_under_layout(bound: &Bound, materialized: &mut [bool], operand: NodeId) {
    let (source, permuted) = under_layout(bound, materialized, operand);
    if permuted && !materialized[source.index()] && !is_leaf(bound.op(source)) {
        materialized[source.index()] = true;
        if matmul_view(bound, materialized, operand).is_some() {
            return;
        }
        materialized[source.index()] = false;
    }
    materialized[operand.index()] = true;
}

/// The value under `node`'s chain of permutations and reshapes without
/// buffers, and whether a permutation is among them.
fn under_layout(bound: &Bound, materialized: &[bool], node: NodeId) -> (NodeId, bool) {
    let mut source = node;
    let mut permuted = false;
    while matches!(bound.op(source), Prim::Permute(_) | Prim::Reshape) && !materialized[source.index()] {
        permuted |= matches!(bound.op(source), Prim::Permute(_));
        source = bound.inputs(source)[0];
    }
    (source, permuted)
}

/// Whether every reader of `id` slices it along one axis (step 1) and no
/// two of them overlap, so inlining `id` into them computes each element
/// once: an LSTM's gate sums `x_t @ w + b + h @ u`, read as four gates,
/// are then added in the cell's kernel rather than written by a kernel of
/// their own and read back.
fn disjoint_slices(bound: &Bound, id: NodeId) -> bool {
    let mut ranges = Vec::new();
    let mut along = None;
    for &user in bound.users(id) {
        let Prim::Slice { axis, step: 1, .. } = bound.op(user) else {
            return false;
        };
        if along.is_some_and(|a| a != *axis) {
            return false;
        }
        along = Some(*axis);
        let (Some(&start), Some(&len)) = (bound.sizes[user.index()].first(), bound.shape(user).get(*axis)) else {
            return false;
        };
        ranges.push((start, start + len as i64));
    }
    ranges.sort_unstable();
    ranges.windows(2).all(|w| w[0].1 <= w[1].0)
}

/// Whether `id`, a concatenation, is read only by another concatenation,
/// which then writes its operands in place (`kernels::emit_concat`).
fn inside_concat(bound: &Bound, id: NodeId) -> bool {
    let outputs = &bound.graph.outputs;
    matches!(bound.users(id), [user] if matches!(bound.op(*user), Prim::Concat { .. }))
        && !outputs.iter().any(|(_, o)| *o == id)
}

/// The permutation that is `id`'s only reader, and its axes, when `id` is
/// not an output.
fn sole_permutation<'b>(bound: &'b Bound, id: NodeId) -> Option<(NodeId, &'b [usize])> {
    if bound.graph.is_output(id) {
        return None;
    }
    match bound.users(id) {
        [user] => match bound.op(*user) {
            Prim::Permute(axes) => Some((*user, axes.as_slice())),
            _ => None,
        },
        _ => None,
    }
}

/// The value that `id`, a permutation, is the written layout of: the one
/// `through` says is written through it.
fn written_through(bound: &Bound, id: NodeId, through: fn(&Bound, NodeId) -> Option<NodeId>) -> Option<NodeId> {
    if !matches!(bound.op(id), Prim::Permute(_)) {
        return None;
    }
    let source = bound.inputs(id)[0];
    (through(bound, source) == Some(id)).then_some(source)
}

/// The permutation a `fold2d` is written through, if its only use is one:
/// the native kernel then adds the patches straight into the permuted
/// buffer (a convolution's input gradient channels-last, where the layers
/// around it read it), and the fold itself gets no buffer.
fn permuted_fold(bound: &Bound, fold: NodeId) -> Option<NodeId> {
    if !matches!(bound.op(fold), Prim::Fold2d(_)) {
        return None;
    }
    sole_permutation(bound, fold).map(|(permutation, _)| permutation)
}

/// The `fold2d` that `id`, a permutation, is the written layout of
/// (see `permuted_fold`).
pub fn folded_into(bound: &Bound, id: NodeId) -> Option<NodeId> {
    written_through(bound, id, permuted_fold)
}

/// The permutation a matrix product is written through, if it is the
/// product's only reader and keeps the last axis last (the product's rows
/// stay contiguous): the product's kernel then writes the permuted buffer
/// (`[B, H, T, D]` per head written as the merged `[B, T, H, D]`, which the
/// layers after attention read as `[B, T, H·D]`), and the product itself
/// gets no buffer.
fn permuted_product(bound: &Bound, product: NodeId) -> Option<NodeId> {
    if !matches!(bound.op(product), Prim::MatMul) {
        return None;
    }
    let (permutation, axes) = sole_permutation(bound, product)?;
    (axes.last() == Some(&(axes.len() - 1)) && axes.len() <= MAX_BATCH + 2).then_some(permutation)
}

/// The matrix product that `id`, a permutation, is the written layout of
/// (see `permuted_product`).
pub fn written_product(bound: &Bound, id: NodeId) -> Option<NodeId> {
    written_through(bound, id, permuted_product)
}

/// `add(base, scatter_rows(values, ids))` (either order), where the
/// scatter is read by the sum alone: the sum's kernel starts from `base`
/// and adds the rows into it (in place when `base` is the buffer the sum is
/// written to: a sum carried through a loop), and the scatter gets no
/// buffer of its own. Returns `(base, scatter)`.
pub fn scatter_added(bound: &Bound, id: NodeId) -> Option<(NodeId, NodeId)> {
    if !matches!(bound.op(id), Prim::Binary(crate::prim::BinaryOp::Add)) {
        return None;
    }
    let inputs = bound.inputs(id);
    let [a, b] = inputs[..] else {
        return None;
    };
    let scattered = |x: NodeId| {
        matches!(bound.op(x), Prim::ScatterRows { .. })
            && bound.users(x) == [id]
            && !bound.graph.is_output(x)
            && bound.shape(x) == bound.shape(id)
    };
    match (scattered(a), scattered(b)) {
        (_, true) if a != b => Some((a, b)),
        (true, false) => Some((b, a)),
        _ => None,
    }
}

/// Whether `id` is the scatter of a [`scatter_added`] sum.
fn added_scatter(bound: &Bound, id: NodeId) -> bool {
    matches!(bound.users(id)[..], [sum] if scatter_added(bound, sum).is_some_and(|(_, s)| s == id))
}

/// Whether `id` is an `unfold2d` whose patches a matrix product reads
/// (directly or reshaped): those are gathered by the native window kernel
/// into their own buffer, however cheap the patches would be to inline.
fn feeds_product(bound: &Bound, id: NodeId) -> bool {
    matches!(bound.op(id), Prim::Unfold2d(_))
        && bound.users(id).iter().any(|&user| match bound.op(user) {
            Prim::MatMul => true,
            Prim::Reshape => bound.users(user).iter().any(|&u| matches!(bound.op(u), Prim::MatMul)),
            _ => false,
        })
}

/// The `unfold2d` a product's operand is (directly or reshaped).
fn unfolded(bound: &Bound, operand: NodeId) -> Option<NodeId> {
    let source = match bound.op(operand) {
        Prim::Reshape => bound.inputs(operand)[0],
        _ => operand,
    };
    matches!(bound.op(source), Prim::Unfold2d(_)).then_some(source)
}

/// `node` as a strided view of one buffer, if it is one: its offset affine
/// in the indices with no negative strides.
pub fn strided_view(bound: &Bound, materialized: &[bool], node: NodeId) -> Option<Strided> {
    let shape = bound.shape(node).to_vec();
    let mut exprs = Exprs::default();
    let index = vars(0, &shape);
    let e = Expander::new(bound, materialized, &mut exprs).value(node, &index);
    let Expr::Load { buffer, offset } = exprs.get(e).clone() else {
        return None;
    };
    if offset.terms.iter().any(|(a, _)| !matches!(a, Atom::Var { .. })) || offset.constant < 0 {
        return None;
    }
    let strides: Vec<isize> = (0..shape.len())
        .map(|axis| {
            if shape[axis] > 1 {
                offset.coefficient(axis as u32).0 as isize
            } else {
                0
            }
        })
        .collect();
    if strides.iter().any(|&s| s < 0) {
        return None;
    }
    Some(Strided {
        buffer,
        offset: offset.constant as isize,
        strides,
    })
}

/// Where the steps of a loop's sequence lie when the loop reads them in
/// place: step `t` is `rows` rows of `row` contiguous elements, row `r`
/// at `offset + r·row_stride + (t − before)·step_stride` of `buffer`; the
/// `before` first and `after` last steps are zeros. A sequence with its
/// own buffer is that buffer, row-major; a strided view of another buffer
/// (a result of an earlier loop) is read where it lies; a sequence shifted
/// by a step, `concat(zeros, x[:, ..T − 1])` along the steps, is read from
/// `x` (the previous step's state for a backward loop).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequenceView {
    pub buffer: NodeId,
    pub offset: usize,
    pub row_stride: usize,
    pub step_stride: usize,
    pub before: usize,
    pub after: usize,
}

/// `node` (`[rows, steps, ...]`) as a sequence a loop reads in place, if
/// it is one (see [`SequenceView`]).
pub fn sequence_view(bound: &Bound, materialized: &[bool], node: NodeId) -> Option<SequenceView> {
    let shape = bound.shape(node);
    if shape.len() < 2 || shape[0] == 0 || shape[1] == 0 {
        return None;
    }
    if materialized[node.index()] {
        let row = bound.count(node) / (shape[0] * shape[1]);
        return Some(SequenceView {
            buffer: node,
            offset: 0,
            row_stride: shape[1] * row,
            step_stride: row,
            before: 0,
            after: 0,
        });
    }
    if let Prim::Concat { axis: 1 } = bound.op(node) {
        let pieces = bound.inputs(node);
        let zero = |p: &NodeId| matches!(bound.op(*p), Prim::Const(v) if *v == 0.0);
        let mut read = (0..pieces.len()).filter(|&i| !zero(&pieces[i]));
        let (Some(k), None) = (read.next(), read.next()) else {
            return None;
        };
        let steps = |ps: &[NodeId]| ps.iter().map(|&p| bound.shape(p)[1]).sum::<usize>();
        let inner = sequence_view(bound, materialized, pieces[k])?;
        if inner.before + inner.after > 0 {
            return None;
        }
        return Some(SequenceView {
            before: steps(&pieces[..k]),
            after: steps(&pieces[k + 1..]),
            ..inner
        });
    }
    let view = strided_view(bound, materialized, node)?;
    let mut stride = 1isize;
    for axis in (2..shape.len()).rev() {
        if shape[axis] > 1 && view.strides[axis] != stride {
            return None;
        }
        stride *= shape[axis] as isize;
    }
    Some(SequenceView {
        buffer: view.buffer,
        offset: view.offset as usize,
        row_stride: view.strides[0] as usize,
        step_stride: view.strides[1] as usize,
        before: 0,
        after: 0,
    })
}

/// A concatenation along the steps that a loop reads only as one of its
/// sequences, in place (see [`SequenceView`]): it gets no buffer.
fn read_by_loop_in_place(bound: &Bound, materialized: &[bool], id: NodeId) -> bool {
    let [user] = bound.users(id) else {
        return false;
    };
    let Prim::Scan(looped) = bound.op(*user) else {
        return false;
    };
    let sequences = looped.carries..looped.carries + looped.sequences;
    let inputs = bound.inputs(*user);
    inputs.iter().filter(|&&i| i == id).count() == 1
        && inputs
            .iter()
            .position(|&i| i == id)
            .is_some_and(|i| sequences.contains(&i))
        && !bound.graph.outputs.iter().any(|(_, o)| *o == id)
        && sequence_view(bound, materialized, id).is_some()
}

/// Finds sums of matrix products (`add(add(p1, p2), p3)`, each product and
/// each inner sum used only there): their products are computed straight
/// into the sum's buffer, the first writing, the others adding. Inner sums
/// lose their buffers.
pub(super) fn sums_of_products(bound: &Bound, materialized: &mut [bool]) -> HashMap<NodeId, Accumulate> {
    let outputs: BTreeSet<NodeId> = bound.graph.outputs.iter().map(|(_, id)| *id).collect();
    let single = |id: NodeId, user: NodeId| bound.users(id) == [user] && !outputs.contains(&id);
    // Products of a sum node, in order, if it is a pure sum of products.
    fn products(bound: &Bound, id: NodeId, single: &dyn Fn(NodeId, NodeId) -> bool) -> Option<Vec<NodeId>> {
        let inputs = bound.inputs(id);
        if !matches!(bound.op(id), Prim::Binary(crate::prim::BinaryOp::Add))
            || inputs.len() != 2
            || inputs[0] == inputs[1]
        {
            return None;
        }
        let mut out = Vec::new();
        for &operand in inputs {
            if !single(operand, id) || bound.shape(operand) != bound.shape(id) {
                return None;
            }
            match bound.op(operand) {
                Prim::MatMul => out.push(operand),
                Prim::Binary(crate::prim::BinaryOp::Add) => out.extend(products(bound, operand, single)?),
                _ => return None,
            }
        }
        Some(out)
    }
    let mut sums = HashMap::default();
    let mut inner: BTreeSet<NodeId> = BTreeSet::new();
    for &id in bound.order.iter().rev() {
        if inner.contains(&id) || !materialized[id.index()] || bound.dtype(id) != crate::prim::DType::F32 {
            continue;
        }
        let Some(mut terms) = products(bound, id, &single) else {
            continue;
        };
        terms.sort_by_key(|t| bound.position[t.index()]);
        for (k, &term) in terms.iter().enumerate() {
            sums.insert(term, Accumulate { total: id, add: k > 0 });
        }
        // The inner sums: every add below `id` in the tree.
        let mut stack = bound.inputs(id).to_vec();
        while let Some(n) = stack.pop() {
            if matches!(bound.op(n), Prim::Binary(crate::prim::BinaryOp::Add)) {
                inner.insert(n);
                materialized[n.index()] = false;
                stack.extend(bound.inputs(n).iter().copied());
            }
        }
    }
    sums
}

/// `node` (a matrix product's operand of rank r) as a strided view of one
/// buffer, if it is one: offsets affine in the indices, batch axes
/// collapsible to one stride.
pub fn matmul_view(bound: &Bound, materialized: &[bool], node: NodeId) -> Option<View> {
    let shape = bound.shape(node);
    let rank = shape.len();
    if rank - 2 > MAX_BATCH {
        return None;
    }
    let view = strided_view(bound, materialized, node)?;
    let mut batch = [0isize; MAX_BATCH];
    let first = MAX_BATCH - (rank - 2);
    batch[first..].copy_from_slice(&view.strides[..rank - 2]);
    Some(View {
        buffer: view.buffer,
        strides: Operand {
            offset: view.offset,
            batch,
            row: view.strides[rank - 2],
            col: view.strides[rank - 1],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::dims::Dim;
    use crate::ir::Graph;
    use crate::prim::{BinaryOp, DType};

    /// Whether `exp(x) + x` (`[4, 8]`) gets a buffer when two outputs
    /// slice it along its columns at `first` and `second` (four columns
    /// each).
    fn sum_is_stored(first: i64, second: i64) -> bool {
        let mut graph = Graph::new();
        let shape = |cols: i64| vec![Dim::constant(4), Dim::constant(cols)];
        let x = graph.add(Prim::Param("x".into()), DType::F32, shape(8), &[]);
        let e = graph.add(Prim::Unary(UnaryOp::Exp), DType::F32, shape(8), &[x]);
        let sum = graph.add(Prim::Binary(BinaryOp::Add), DType::F32, shape(8), &[e, x]);
        for (name, start) in [("a", first), ("b", second)] {
            let slice = Prim::Slice {
                axis: 1,
                start: Dim::constant(start),
                step: 1,
            };
            let piece = graph.add(slice, DType::F32, shape(4), &[sum]);
            graph.set_output(name, piece);
        }
        let bound = Bound::new(&graph, &std::collections::HashMap::new()).unwrap();
        choose_materialized(&bound).0[sum.index()]
    }

    /// Read through slices that do not overlap, the sum is computed in
    /// them (each element once); through overlapping ones it is stored,
    /// so that no element is computed twice.
    #[test]
    fn values_read_through_disjoint_slices_are_computed_in_them() {
        assert!(!sum_is_stored(0, 4));
        assert!(!sum_is_stored(4, 0));
        assert!(sum_is_stored(0, 3));
        assert!(sum_is_stored(2, 2));
    }
}
