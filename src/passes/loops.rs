//! Work hoisted out of loops: the part of a scan's body that does not
//! depend on the carries (the input projection `x_t @ w + b` of an RNN,
//! LSTM or GRU cell) is computed for every step at once before the loop,
//! as one product over all steps, and the body reads its rows as a new
//! sequence.
//!
//! Run on the forward graph before autodiff, so the gradients follow: the
//! weight's gradient is one product over all steps after the backward
//! loop, instead of a sum of one product per step inside it.
//!
//! A body value is *per-step* when it depends on a sequence and on no
//! carry, *invariant* when it depends on neither. A per-step value is
//! hoisted when every op from the sequences to it can run on the stacked
//! sequences (`[N, T, ...]`: element-wise ops, products with an invariant
//! right operand, slices, reshapes and reductions that keep the batch axis,
//! gathers of invariant tables) and a product is among them; invariant
//! operands are recomputed outside the loop and spread over the steps.
//! Invariant work the loop reads (a transposed weight in a backward loop)
//! is done once before the loop and captured.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Order, Pass};
use crate::check::dims::Dim;
use crate::ir::loops::{Loop, Source};
use crate::ir::{Graph, NodeId};
use crate::prim::Prim;

pub struct HoistOutOfLoops {
    /// Loops of at most this many steps will be unrolled (see
    /// [`super::unroll_bound`]): their element-wise work after a product is
    /// hoisted with it, where the unrolled steps share one kernel for it
    /// (and the backward pass one sum for a bias's gradient). A loop kept
    /// as a loop keeps it in its body, fused with the cell's element-wise
    /// work.
    pub unrolled_up_to: usize,
}

impl Pass for HoistOutOfLoops {
    fn name(&self) -> &'static str {
        "hoist-loops"
    }

    fn run_in_order(&self, graph: &mut Graph, order: &mut Order) -> bool {
        let scans = scans(graph, order);
        let mut changed = false;
        for id in scans {
            changed |= hoist(graph, id, self.unrolled_up_to);
        }
        changed
    }
}

/// The graph's scans, in topological order.
pub(super) fn scans(graph: &Graph, order: &mut Order) -> Vec<NodeId> {
    order
        .get(graph)
        .iter()
        .copied()
        .filter(|&id| matches!(graph.node(id).op, Prim::Scan(_)))
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Carried,
    PerStep,
    Invariant,
}

/// Each body node's kind, and whether a product or gather is among the
/// per-step ops that make it.
fn classify(looped: &Loop, order: &[NodeId]) -> (HashMap<NodeId, Kind>, HashMap<NodeId, bool>) {
    let mut kinds: HashMap<NodeId, Kind> = HashMap::with_capacity(order.len());
    let mut has_product: HashMap<NodeId, bool> = HashMap::new();
    for &n in order {
        let node = looped.body.node(n);
        let inputs = looped.body.inputs(n);
        let kind = match node.op {
            Prim::Arg(i) if i < looped.carries => Kind::Carried,
            Prim::Arg(i) if i < looped.carries + looped.sequences => Kind::PerStep,
            Prim::Arg(_) => Kind::Invariant,
            Prim::Random { .. } | Prim::Scan(_) => Kind::Carried,
            _ if inputs.iter().any(|i| kinds[i] == Kind::Carried) => Kind::Carried,
            _ if inputs.iter().any(|i| kinds[i] == Kind::PerStep) => Kind::PerStep,
            _ => Kind::Invariant,
        };
        kinds.insert(n, kind);
        let product = matches!(node.op, Prim::MatMul | Prim::Take) || inputs.iter().any(|i| has_product[i]);
        has_product.insert(n, product && kind == Kind::PerStep);
    }
    (kinds, has_product)
}

/// The values to hoist out of a loop kept as a loop for per-step value
/// `n`: `n` itself, or, when `n` is element-wise, the per-step values with
/// products under it. An
/// element-wise op after the product (the bias of `x_t @ w + b`) stays in
/// the body, fused with the cell's own element-wise work, where hoisted it
/// would write a stacked array and the loop read it back (two passes over
/// `[N, T, ...]` memory for no arithmetic saved).
fn products_under(
    looped: &Loop,
    kinds: &HashMap<NodeId, Kind>,
    has_product: &HashMap<NodeId, bool>,
    n: NodeId,
    found: &mut Vec<NodeId>,
) {
    if !looped.body.node(n).op.is_elementwise() {
        if !found.contains(&n) {
            found.push(n);
        }
        return;
    }
    for i in looped.body.inputs(n) {
        if kinds[&i] == Kind::PerStep && has_product[&i] {
            products_under(looped, kinds, has_product, i, found);
        }
    }
}

/// Hoists what it can out of scan `id` (to be unrolled if it has at most
/// `unrolled_up_to` steps); returns whether it did.
fn hoist(graph: &mut Graph, id: NodeId, unrolled_up_to: usize) -> bool {
    let Prim::Scan(looped) = graph.node(id).op.clone() else {
        return false;
    };
    let mut looped = Arc::unwrap_or_clone(looped);
    let operands = graph.inputs(id);
    let order = looped.body.topo_order();
    let (kinds, has_product) = classify(&looped, &order);
    // Per-step values read by what stays in the loop (or returned by it).
    let outputs: Vec<NodeId> = looped.body.outputs.iter().map(|(_, o)| *o).collect();
    let mut frontier: Vec<NodeId> = Vec::new();
    for &n in &order {
        if kinds[&n] == Kind::PerStep
            && has_product[&n]
            && (outputs.contains(&n) || looped.body.users(n).iter().any(|u| kinds[u] == Kind::Carried))
        {
            if looped.length > unrolled_up_to {
                products_under(&looped, &kinds, &has_product, n, &mut frontier);
            } else if !frontier.contains(&n) {
                frontier.push(n);
            }
        }
    }
    let mut stacker = Stacker {
        looped: &looped,
        operands: &operands,
        kinds: &kinds,
        stacked: HashMap::new(),
        invariant: HashMap::new(),
    };
    let mut hoisted: Vec<(NodeId, NodeId)> = Vec::new();
    for n in frontier {
        if let Some(outer) = stacker.stack(graph, n) {
            hoisted.push((n, outer));
        }
    }
    // Invariant work the loop reads (a transposed weight, a function of
    // parameters) is done once before it and captured.
    let invariants: Vec<NodeId> = order
        .iter()
        .copied()
        .filter(|&n| {
            kinds[&n] == Kind::Invariant
                && !matches!(
                    looped.body.node(n).op,
                    Prim::Arg(_) | Prim::Const(_) | Prim::Broadcast | Prim::Reshape
                )
                && looped.body.users(n).iter().any(|u| kinds[u] != Kind::Invariant)
        })
        .collect();
    let invariants: Vec<(NodeId, NodeId)> = invariants
        .into_iter()
        .map(|n| (n, stacker.invariant(graph, n)))
        .collect();
    if hoisted.is_empty() && invariants.is_empty() {
        return false;
    }
    // The hoisted values become sequences after the existing ones.
    let (c, s) = (looped.carries, looped.sequences);
    let shift = hoisted.len();
    for n in looped.body.graph.node_indices().collect::<Vec<_>>() {
        if let Prim::Arg(i) = looped.body.node(n).op {
            if i >= c + s {
                looped.body.node_mut(n).op = Prim::Arg(i + shift);
            }
        }
    }
    let mut new_operands: Vec<NodeId> = operands[..c + s].to_vec();
    for (k, &(n, outer)) in hoisted.iter().enumerate() {
        let node = looped.body.node(n);
        let (dtype, shape) = (node.dtype, node.shape.clone());
        let arg = looped.body.add(Prim::Arg(c + s + k), dtype, shape, &[]);
        looped.body.replace_uses(n, arg);
        new_operands.push(outer);
    }
    new_operands.extend_from_slice(&operands[c + s..]);
    looped.sequences += shift;
    for &(n, outer) in &invariants {
        let node = looped.body.node(n);
        let (dtype, shape) = (node.dtype, node.shape.clone());
        let arg = looped.body.add(Prim::Arg(new_operands.len()), dtype, shape, &[]);
        looped.body.replace_uses(n, arg);
        new_operands.push(outer);
        looped.captured += 1;
    }
    super::Dce.run(&mut looped.body);
    let operands = drop_unread(&mut looped, new_operands);
    same_value(graph, id, looped, &operands);
    true
}

/// Drops from every scan of `graph` the sequences and captured values its
/// body no longer reads (a backward loop is given every forward value its
/// body might recompute from; once the dead recomputation is gone, it reads
/// fewer), so that no step copies them; returns whether it dropped any.
pub(super) fn drop_unread_operands(graph: &mut Graph) -> bool {
    let scans: Vec<NodeId> = graph
        .graph
        .node_indices()
        .filter(|&id| matches!(graph.node(id).op, Prim::Scan(_)))
        .collect();
    let mut changed = false;
    for id in scans {
        let Prim::Scan(looped) = graph.node(id).op.clone() else {
            continue;
        };
        let operands = graph.inputs(id);
        let mut looped = Arc::unwrap_or_clone(looped);
        let kept = drop_unread(&mut looped, operands.clone());
        if kept.len() == operands.len() {
            continue;
        }
        same_value(graph, id, looped, &kept);
        changed = true;
    }
    changed
}

/// Replaces scan `id` by a scan of `looped` over `operands` whose value
/// (every piece where it was) is the old one's.
pub(super) fn same_value(graph: &mut Graph, id: NodeId, looped: Loop, operands: &[NodeId]) {
    let flat = graph.node(id).shape.clone();
    let dtype = graph.node(id).dtype;
    let replacement = graph.add(Prim::Scan(Arc::new(looped)), dtype, flat, operands);
    graph.replace_uses(id, replacement);
    graph.remove(id);
}

/// Removes the sequences and captured values the body no longer reads,
/// numbering the arguments anew; returns the operands left.
fn drop_unread(looped: &mut Loop, operands: Vec<NodeId>) -> Vec<NodeId> {
    let mut read = vec![false; operands.len()];
    for n in looped.body.graph.node_indices() {
        if let Prim::Arg(i) = looped.body.node(n).op {
            read[i] = true;
        }
    }
    let c = looped.carries;
    let keep: Vec<bool> = (0..operands.len()).map(|i| i < c || read[i]).collect();
    let mut renumbered = vec![0; operands.len()];
    let mut next = 0;
    for (i, &kept) in keep.iter().enumerate() {
        renumbered[i] = next;
        next += usize::from(kept);
    }
    for n in looped.body.graph.node_indices().collect::<Vec<_>>() {
        if let Prim::Arg(i) = looped.body.node(n).op {
            looped.body.node_mut(n).op = Prim::Arg(renumbered[i]);
        }
    }
    let s = looped.sequences;
    looped.sequences = (c..c + s).filter(|&i| keep[i]).count();
    looped.captured = (c + s..operands.len()).filter(|&i| keep[i]).count();
    operands
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(o, _)| o)
        .collect()
}

/// Builds body values outside the loop: per-step ones for all steps at
/// once (`[N, T, ...]`), invariant ones once.
struct Stacker<'a> {
    looped: &'a Loop,
    operands: &'a [NodeId],
    kinds: &'a HashMap<NodeId, Kind>,
    stacked: HashMap<NodeId, Option<NodeId>>,
    invariant: HashMap<NodeId, NodeId>,
}

impl Stacker<'_> {
    fn steps(&self) -> Dim {
        Dim::constant(self.looped.length as i64)
    }

    /// A per-step shape with the steps inserted after the batch axis.
    fn stacked_shape(&self, shape: &[Dim]) -> Vec<Dim> {
        let mut stacked = shape.to_vec();
        stacked.insert(1, self.steps());
        stacked
    }

    /// Invariant body value `n`, computed outside the loop.
    fn invariant(&mut self, graph: &mut Graph, n: NodeId) -> NodeId {
        if let Some(&outer) = self.invariant.get(&n) {
            return outer;
        }
        let body = &self.looped.body;
        let node = body.node(n);
        let outer = match node.op {
            Prim::Arg(i) => self.operands[i],
            _ => {
                let inputs: Vec<NodeId> = body.inputs(n).into_iter().map(|i| self.invariant(graph, i)).collect();
                graph.add(node.op.clone(), node.dtype, node.shape.clone(), &inputs)
            }
        };
        self.invariant.insert(n, outer);
        outer
    }

    /// Invariant body value `n` (of a per-step shape `[N, ...]`) the same
    /// at every step, stacked.
    fn spread(&mut self, graph: &mut Graph, n: NodeId) -> NodeId {
        let body = &self.looped.body;
        let node = body.node(n);
        let (dtype, shape) = (node.dtype, self.stacked_shape(&node.shape));
        // A broadcast of something without the batch axis broadcasts
        // straight to the stacked shape (numpy aligns on the right).
        if matches!(node.op, Prim::Broadcast) {
            let source = body.inputs(n)[0];
            if body.node(source).shape.len() < node.shape.len() {
                let outer = self.invariant(graph, source);
                return graph.add(Prim::Broadcast, dtype, shape, &[outer]);
            }
        }
        let outer = self.invariant(graph, n);
        let mut row = node.shape.clone();
        row.insert(1, Dim::constant(1));
        let row = graph.add(Prim::Reshape, dtype, row, &[outer]);
        graph.add(Prim::Broadcast, dtype, shape, &[row])
    }

    /// An operand of a stacked op: stacked if per-step, spread if
    /// invariant.
    fn operand(&mut self, graph: &mut Graph, n: NodeId) -> Option<NodeId> {
        match self.kinds[&n] {
            Kind::PerStep => self.stack(graph, n),
            Kind::Invariant if !self.looped.body.node(n).shape.is_empty() => Some(self.spread(graph, n)),
            _ => None,
        }
    }

    /// Per-step body value `n` for every step, `[N, T, ...]`, if every op
    /// that makes it runs on stacked values.
    fn stack(&mut self, graph: &mut Graph, n: NodeId) -> Option<NodeId> {
        if let Some(known) = self.stacked.get(&n) {
            return *known;
        }
        let stacked = self.stack_new(graph, n);
        self.stacked.insert(n, stacked);
        stacked
    }

    fn stack_new(&mut self, graph: &mut Graph, n: NodeId) -> Option<NodeId> {
        let body = &self.looped.body;
        let node = body.node(n).clone();
        let inputs = body.inputs(n);
        if node.shape.is_empty() {
            return None;
        }
        let shape = self.stacked_shape(&node.shape);
        let dtype = node.dtype;
        let shifted = |axis: usize| if axis == 0 { 0 } else { axis + 1 };
        Some(match &node.op {
            Prim::Arg(i) => self.operands[*i],
            op if op.is_elementwise() => {
                let operands: Option<Vec<NodeId>> = inputs.iter().map(|&i| self.operand(graph, i)).collect();
                graph.add(node.op.clone(), dtype, shape, &operands?)
            }
            Prim::MatMul => {
                let (a, b) = (inputs[0], inputs[1]);
                if self.kinds[&a] != Kind::PerStep || self.kinds[&b] != Kind::Invariant || node.shape.len() != 2 {
                    return None;
                }
                let a_shape = body.node(a).shape.clone();
                let a = self.stack(graph, a)?;
                let b = self.invariant(graph, b);
                let rows = a_shape[0].mul(&self.steps());
                let a = graph.add(Prim::Reshape, dtype, vec![rows.clone(), a_shape[1].clone()], &[a]);
                let product = graph.add(Prim::MatMul, dtype, vec![rows, node.shape[1].clone()], &[a, b]);
                graph.add(Prim::Reshape, dtype, shape, &[product])
            }
            Prim::Take => {
                let (table, ids) = (inputs[0], inputs[1]);
                if self.kinds[&table] != Kind::Invariant || self.kinds[&ids] != Kind::PerStep {
                    return None;
                }
                let table = self.invariant(graph, table);
                let ids = self.stack(graph, ids)?;
                graph.add(Prim::Take, dtype, shape, &[table, ids])
            }
            Prim::Broadcast if body.node(inputs[0]).shape.len() == node.shape.len() => {
                let x = self.stack(graph, inputs[0])?;
                graph.add(Prim::Broadcast, dtype, shape, &[x])
            }
            Prim::Reshape if body.node(inputs[0]).shape.first() == node.shape.first() => {
                let x = self.stack(graph, inputs[0])?;
                graph.add(Prim::Reshape, dtype, shape, &[x])
            }
            Prim::Slice { axis, start, step } => {
                let x = self.stack(graph, inputs[0])?;
                let op = Prim::Slice {
                    axis: shifted(*axis),
                    start: start.clone(),
                    step: *step,
                };
                graph.add(op, dtype, shape, &[x])
            }
            Prim::Concat { axis } if *axis > 0 => {
                let operands: Option<Vec<NodeId>> = inputs.iter().map(|&i| self.operand(graph, i)).collect();
                graph.add(Prim::Concat { axis: axis + 1 }, dtype, shape, &operands?)
            }
            Prim::Reduce { op, axes, keepdims } if !axes.contains(&0) => {
                let x = self.stack(graph, inputs[0])?;
                let op = Prim::Reduce {
                    op: *op,
                    axes: axes.iter().map(|&a| a + 1).collect(),
                    keepdims: *keepdims,
                };
                graph.add(op, dtype, shape, &[x])
            }
            _ => return None,
        })
    }
}

/// Sums of products carried through a loop, summed after it instead: a
/// carry that only accumulates `aᵀ_t @ r_t`, with `a` a sequence (the
/// gradient of a weight in a backward loop: the carries before each step
/// times the step's adjoint), becomes one product of the stacked values
/// after the loop, `reshape(A)ᵀ @ reshape(R)` over all steps; the loop
/// stacks `r_t` instead.
pub struct SumProductsAfterLoops;

impl Pass for SumProductsAfterLoops {
    fn name(&self) -> &'static str {
        "sum-after-loops"
    }

    fn run_in_order(&self, graph: &mut Graph, order: &mut Order) -> bool {
        let scans = scans(graph, order);
        let mut changed = false;
        for mut id in scans {
            while let Some(next) = sum_one_after(graph, id) {
                id = next;
                changed = true;
            }
        }
        changed
    }
}

/// The accumulating carries of a loop: `(k, a, r)` for
/// `carry k = arg k + permute(a) @ r`, `a` per-step.
fn accumulated_products(looped: &Loop, kinds: &HashMap<NodeId, Kind>) -> Vec<(usize, NodeId, NodeId)> {
    let body = &looped.body;
    (0..looped.carries)
        .filter_map(|k| {
            let out = looped.carry_output(k)?;
            if !matches!(body.node(out).op, Prim::Binary(crate::prim::BinaryOp::Add)) {
                return None;
            }
            let inputs = body.inputs(out);
            let is_acc = |n: NodeId| body.node(n).op == Prim::Arg(k) && body.only_user(n, out) && !body.is_output(n);
            let product = match inputs.as_slice() {
                [acc, p] | [p, acc] if is_acc(*acc) && acc != p => *p,
                _ => return None,
            };
            if !matches!(body.node(product).op, Prim::MatMul) || body.node(product).shape.len() != 2 {
                return None;
            }
            let [left, r] = body.inputs(product)[..] else {
                return None;
            };
            if body.node(left).op != Prim::Permute(vec![1, 0]) || body.node(r).shape.len() != 2 {
                return None;
            }
            let a = body.inputs(left)[0];
            (kinds[&a] == Kind::PerStep).then_some((k, a, r))
        })
        .collect()
}

/// Moves one accumulated product of scan `id` after it; returns the new
/// scan.
fn sum_one_after(graph: &mut Graph, id: NodeId) -> Option<NodeId> {
    let Prim::Scan(looped) = &graph.node(id).op else {
        return None;
    };
    let looped_now = Arc::clone(looped);
    let operands = graph.inputs(id);
    let order = looped_now.body.topo_order();
    let (kinds, _) = classify(&looped_now, &order);
    // The first accumulated product whose `a` stacks outside the loop.
    let mut stacker = Stacker {
        looped: &looped_now,
        operands: &operands,
        kinds: &kinds,
        stacked: HashMap::new(),
        invariant: HashMap::new(),
    };
    let (k, a, r) = accumulated_products(&looped_now, &kinds)
        .into_iter()
        .find_map(|(k, a, r)| Some((k, stacker.stack(graph, a)?, r)))?;
    let mut looped = Loop::clone(&looped_now);
    let (old_carries, old_ys) = (looped.carries, looped.ys);
    // Stack r (it may be stacked already).
    let stacked = match (0..looped.ys).find(|&i| looped.y_output(i) == Some(r)) {
        Some(i) => i,
        None => {
            looped.body.set_output(&format!("y {}", looped.ys), r);
            looped.ys += 1;
            looped.ys - 1
        }
    };
    // Drop carry k: its output, its argument, the numbers after it.
    let mut outputs = std::mem::take(&mut looped.body.outputs);
    outputs.retain(|(name, _)| name != &format!("carry {k}"));
    for (name, _) in &mut outputs {
        if let Some(j) = name.strip_prefix("carry ").and_then(|j| j.parse::<usize>().ok()) {
            if j > k {
                *name = format!("carry {}", j - 1);
            }
        }
    }
    looped.body.outputs = outputs;
    for n in looped.body.graph.node_indices().collect::<Vec<_>>() {
        match looped.body.node(n).op {
            Prim::Arg(i) if i == k => looped.body.remove(n),
            Prim::Arg(i) if i > k => looped.body.node_mut(n).op = Prim::Arg(i - 1),
            _ => {}
        }
    }
    super::Dce.run(&mut looped.body);
    looped.carries -= 1;
    let mut new_operands = operands.clone();
    new_operands.remove(k);
    let pieces = looped.pieces()?;
    let r_piece = pieces[looped.carries + stacked].clone();

    // The summed product stands in for carry k's piece once it exists.
    let init = operands[k];
    let (dtype, shape) = (graph.node(init).dtype, graph.node(init).shape.clone());
    let later = graph.add(Prim::Const(0.0), dtype, shape, &[]);
    let mut sources: Vec<Source> = (0..old_carries)
        .map(|j| match j.cmp(&k) {
            std::cmp::Ordering::Less => Source::Piece(j),
            std::cmp::Ordering::Equal => Source::Node(later),
            std::cmp::Ordering::Greater => Source::Piece(j - 1),
        })
        .collect();
    sources.extend((0..old_ys).map(|i| Source::Piece(looped.carries + i)));
    let new = crate::ir::loops::replace_scan(graph, id, looped, &new_operands, &sources);

    // After the loop: init + reshape(A)ᵀ @ reshape(R), over all steps.
    let a_shape = graph.shape(a);
    let rows = a_shape[0].mul(&a_shape[1]);
    let a_rows = graph.reshape(a, vec![rows.clone(), a_shape[2].clone()]);
    let a_t = graph.permute(a_rows, vec![1, 0]);
    let r_flat = graph.slice(new, 0, r_piece.offset.clone(), r_piece.size(), 1);
    let r_rows = graph.reshape(r_flat, vec![rows, r_piece.shape[2].clone()]);
    let product = graph.matmul(a_t, r_rows);
    let sum = graph.add_nodes(init, product);
    graph.replace_uses(later, sum);
    graph.remove(later);
    Some(new)
}

/// Sequences a loop copies in whole but reads in part, narrowed before it:
/// a sequence whose body argument is only ever taken by one slice (the
/// cell state out of a stacked `[h, c]` carry) becomes that slice of the
/// stacked operand, and a sequence that is a zero-padded value (the
/// adjoint of `h` padded to the width of `[h, c]`) becomes the value, padded
/// inside the body where the padding fuses with its user. Each step then
/// copies only what it reads.
pub struct NarrowSequences;

impl Pass for NarrowSequences {
    fn name(&self) -> &'static str {
        "narrow-sequences"
    }

    fn run_in_order(&self, graph: &mut Graph, order: &mut Order) -> bool {
        let mut changed = false;
        for id in scans(graph, order) {
            changed |= narrow(graph, id);
        }
        changed
    }
}

/// Narrows the sequences of scan `id`; returns whether it did.
fn narrow(graph: &mut Graph, id: NodeId) -> bool {
    let Prim::Scan(looped) = graph.node(id).op.clone() else {
        return false;
    };
    let mut looped = Arc::unwrap_or_clone(looped);
    let mut operands = graph.inputs(id);
    let c = looped.carries;
    let mut changed = false;
    for (i, operand) in operands.iter_mut().enumerate().skip(c).take(looped.sequences) {
        let args: Vec<NodeId> = looped
            .body
            .graph
            .node_indices()
            .filter(|&n| looped.body.node(n).op == Prim::Arg(i))
            .collect();
        let [arg] = args[..] else { continue };
        let body = &mut looped.body;
        // One slice of the argument, and nothing else, reads it.
        let users = body.users(arg);
        let slices: Vec<(usize, Dim, Vec<Dim>)> = users
            .iter()
            .filter_map(|&u| match &body.node(u).op {
                Prim::Slice { axis, start, step: 1 } => Some((*axis, start.clone(), body.node(u).shape.clone())),
                _ => None,
            })
            .collect();
        let only_sliced = !users.is_empty() && slices.len() == users.len() && !body.is_output(arg);
        if only_sliced && slices.iter().all(|s| *s == slices[0]) {
            let (axis, start, shape) = slices[0].clone();
            let outer = axis + usize::from(axis >= 1);
            let len = shape[axis].clone();
            *operand = graph.slice(*operand, outer, start, len, 1);
            body.node_mut(arg).shape = shape;
            for u in users {
                body.replace_uses(u, arg);
                body.remove(u);
            }
            changed = true;
            continue;
        }
        // A zero-padded sequence: the padding moves into the body.
        if let Prim::Pad {
            axis,
            before,
            after,
            value,
        } = graph.node(*operand).op.clone()
        {
            if axis < 2 || value != 0.0 {
                continue;
            }
            let inner = graph.inputs(*operand)[0];
            let mut shape = graph.shape(inner);
            shape.remove(1);
            let padded = body.node(arg).shape.clone();
            let dtype = body.node(arg).dtype;
            body.node_mut(arg).shape = shape;
            let op = Prim::Pad {
                axis: axis - 1,
                before,
                after,
                value,
            };
            let pad = body.add(op, dtype, padded, &[]);
            body.replace_uses(arg, pad);
            body.graph.add_edge(arg, pad, 0);
            *operand = inner;
            changed = true;
        }
    }
    if !changed {
        return false;
    }
    same_value(graph, id, looped, &operands);
    true
}
