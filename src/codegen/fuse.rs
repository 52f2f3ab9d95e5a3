//! Fusion: which nodes get a buffer ("materialized"), and how those nodes
//! are grouped into kernels.
//!
//! Element-wise ops, layout ops and gathers are inlined into the
//! expressions of the nodes that use them (a node used twice is kept in a
//! buffer when recomputing it would cost more than a load). Matrix
//! products, scatters, concatenations and reductions each get a buffer.
//! Materialized nodes are grouped greedily, in topological order, into loop
//! kernels over an index space: an outer space (rows) and a sequence of
//! phases, each a map or a reduction over its own inner space, so softmax,
//! layer norm, a loss or an optimizer update becomes one kernel that reads
//! each row while it is in cache.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;
use std::rc::Rc;

use super::expand::{vars, Bound, Expander};
use super::expr::{Expr, Exprs};
use super::gemm::{Operand, MAX_BATCH};
use super::index::{flat, unflatten, Atom, Ix};
use crate::ir::NodeId;
use crate::prim::{Prim, UnaryOp};

/// Largest map (in elements) that joins a kernel without outer loops:
/// such kernels run on one thread.
const SMALL_MAP: usize = 1 << 14;

/// How many kernels back a root looks for one to join.
const SCAN: usize = 12;

/// A kernel: one loop nest (or one call) of the step.
#[derive(Clone, Debug, PartialEq)]
pub enum Kernel {
    Loop(LoopKernel),
    /// A reduction whose last axis is kept: accumulated row by row into its
    /// output.
    Accumulate(NodeId),
    /// A (batched) matrix product through the GEMM library, into `root`'s
    /// buffer, or written or added into the buffer of a sum of products.
    MatMul {
        root: NodeId,
        a: View,
        b: View,
        into: Option<Accumulate>,
    },
    /// `scatter_rows`: zero the output, add each row at its id.
    Scatter(NodeId),
    /// `concat`: one loop per operand into its slice of the output.
    Concat(NodeId),
}

/// A product that is one term of a sum of products: it writes (the first
/// term) or adds to (the others) the buffer of the sum, `total`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Accumulate {
    pub total: NodeId,
    pub add: bool,
}

/// Loops over `outer`, and inside, the phases in order.
#[derive(Clone, Debug, PartialEq)]
pub struct LoopKernel {
    pub outer: Vec<usize>,
    pub phases: Vec<Phase>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    /// Computes and stores `roots` (each of shape `outer ++ inner`) at
    /// every inner index.
    Map { inner: Vec<usize>, roots: Vec<NodeId> },
    /// Reduces `root`'s operand over `inner` (its reduced axes) for each
    /// outer index.
    Reduce { inner: Vec<usize>, root: NodeId },
}

impl Phase {
    pub fn inner(&self) -> &[usize] {
        match self {
            Phase::Map { inner, .. } | Phase::Reduce { inner, .. } => inner,
        }
    }

    pub fn roots(&self) -> Vec<NodeId> {
        match self {
            Phase::Map { roots, .. } => roots.clone(),
            Phase::Reduce { root, .. } => vec![*root],
        }
    }
}

/// A matrix operand as a strided view of a materialized node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View {
    pub buffer: NodeId,
    /// Offsets and strides in elements, relative to the buffer.
    pub strides: Operand,
}

/// The fused graph.
pub struct Fused<'g> {
    pub bound: Bound<'g>,
    /// By node index.
    pub materialized: Vec<bool>,
    pub kernels: Vec<Kernel>,
    /// Kernel of each materialized, computed node.
    pub kernel_of: HashMap<NodeId, usize>,
    /// Products summed straight into the buffer of a sum: product -> the
    /// sum (its last product computes the sum).
    pub sums: HashMap<NodeId, Accumulate>,
    load_cache: LoadCache,
}

/// Root, outer space, phase number, reduction or not, inner space.
type LoadKey = (NodeId, Vec<usize>, usize, bool, Vec<usize>);
type LoadCache = RefCell<HashMap<LoadKey, Rc<Vec<(NodeId, Ix)>>>>;

/// Loop variable ids: outer axes are `0..`, phase `p`'s inner axes are
/// `1000·(p+1)..`.
pub fn inner_var(phase: usize, k: usize) -> u32 {
    1000 * (phase as u32 + 1) + k as u32
}

/// The roots a phase computes, with the index of each root's operand
/// space: for a map the root's own index, for a reduction its operand's.
pub fn phase_index(bound: &Bound, outer: &[usize], phase_number: usize, phase: &Phase) -> Vec<Ix> {
    let outer_vars = vars(0, outer);
    let inner_vars: Vec<Ix> = phase
        .inner()
        .iter()
        .enumerate()
        .map(|(k, &n)| Ix::var(inner_var(phase_number, k), n as i64))
        .collect();
    match phase {
        Phase::Map { .. } => outer_vars.into_iter().chain(inner_vars).collect(),
        Phase::Reduce { root, .. } => {
            let operand = bound.inputs(*root)[0];
            let rank = bound.shape(operand).len();
            let axes = reduced_axes(bound, *root);
            let (mut o, mut i) = (outer_vars.into_iter(), inner_vars.into_iter());
            (0..rank)
                .map(|axis| {
                    if axes.contains(&axis) {
                        i.next().unwrap_or_default()
                    } else {
                        o.next().unwrap_or_default()
                    }
                })
                .collect()
        }
    }
}

/// The index of map root `root` when its phase walks `space` at `index`:
/// the same index when the root has the space's shape, else the element
/// at the same row-major position (a reshaped root shares the loop).
pub fn root_index(bound: &Bound, root: NodeId, index: &[Ix], space: &[usize]) -> Vec<Ix> {
    let shape = bound.shape(root);
    if shape == space {
        index.to_vec()
    } else {
        unflatten(&flat(index, space), shape)
    }
}

/// The loop space of a phase: the outer axes, then its inner axes.
pub fn phase_space(outer: &[usize], phase: &Phase) -> Vec<usize> {
    outer.iter().chain(phase.inner()).copied().collect()
}

/// Axes a reduction (or argmax) removes, sorted.
pub fn reduced_axes(bound: &Bound, id: NodeId) -> Vec<usize> {
    match bound.op(id) {
        Prim::Reduce { axes, .. } => {
            let set: BTreeSet<usize> = axes.iter().copied().collect();
            set.into_iter().collect()
        }
        Prim::ArgMax { axis } => vec![*axis],
        _ => Vec::new(),
    }
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

impl<'g> Fused<'g> {
    pub fn new(bound: Bound<'g>) -> Fused<'g> {
        let mut materialized = choose_materialized(&bound);
        let sums = sums_of_products(&bound, &mut materialized);
        let mut fused = Fused {
            bound,
            materialized,
            kernels: Vec::new(),
            kernel_of: HashMap::new(),
            sums,
            load_cache: RefCell::new(HashMap::new()),
        };
        fused.build_kernels();
        fused
    }

    pub fn is_materialized(&self, id: NodeId) -> bool {
        self.materialized[id.index()]
    }

    /// Nodes whose value a kernel computes into a buffer, in order.
    pub fn roots(&self) -> Vec<NodeId> {
        self.bound
            .order
            .iter()
            .copied()
            .filter(|&id| self.is_materialized(id) && !is_leaf(self.bound.op(id)))
            .collect()
    }

    fn build_kernels(&mut self) {
        let totals: BTreeSet<NodeId> = self.sums.values().map(|s| s.total).collect();
        for root in self.roots() {
            if totals.contains(&root) {
                // Computed by its products: the last one finishes it.
                let last = self
                    .sums
                    .iter()
                    .filter(|(_, s)| s.total == root)
                    .filter_map(|(m, _)| self.kernel_of.get(m))
                    .max()
                    .copied()
                    .expect("a sum has products");
                self.kernel_of.insert(root, last);
                continue;
            }
            let kernel = match self.bound.op(root) {
                Prim::MatMul => {
                    let a = matmul_view(&self.bound, &self.materialized, self.bound.inputs(root)[0])
                        .expect("matmul operands are views");
                    let b = matmul_view(&self.bound, &self.materialized, self.bound.inputs(root)[1])
                        .expect("matmul operands are views");
                    let into = self.sums.get(&root).copied();
                    Some(Kernel::MatMul { root, a, b, into })
                }
                Prim::ScatterRows { .. } => Some(Kernel::Scatter(root)),
                Prim::Concat { .. } => Some(Kernel::Concat(root)),
                Prim::Reduce { .. } if self.accumulates(root) => Some(Kernel::Accumulate(root)),
                _ => None,
            };
            let number = match kernel {
                Some(kernel) => {
                    self.kernels.push(kernel);
                    self.kernels.len() - 1
                }
                None => self.place_in_loop(root),
            };
            self.kernel_of.insert(root, number);
        }
    }

    /// A reduction whose operand's last axis is kept.
    fn accumulates(&self, id: NodeId) -> bool {
        let operand = self.bound.inputs(id)[0];
        let rank = self.bound.shape(operand).len();
        let axes = reduced_axes(&self.bound, id);
        rank > 0 && !axes.is_empty() && !axes.contains(&(rank - 1))
    }

    /// Buffers (materialized nodes) that `root`'s expression in `phase`
    /// reads, with their offsets (memoized: fusion asks often).
    fn loads(&self, outer: &[usize], phase_number: usize, phase: &Phase, root: NodeId) -> Rc<Vec<(NodeId, Ix)>> {
        let key = (
            root,
            outer.to_vec(),
            phase_number,
            matches!(phase, Phase::Reduce { .. }),
            phase.inner().to_vec(),
        );
        if let Some(found) = self.load_cache.borrow().get(&key) {
            return Rc::clone(found);
        }
        let loads = Rc::new(self.compute_loads(outer, phase_number, phase, root));
        self.load_cache.borrow_mut().insert(key, Rc::clone(&loads));
        loads
    }

    fn compute_loads(&self, outer: &[usize], phase_number: usize, phase: &Phase, root: NodeId) -> Vec<(NodeId, Ix)> {
        let mut exprs = Exprs::default();
        let index = phase_index(&self.bound, outer, phase_number, phase);
        let space = phase_space(outer, phase);
        let mut expander = Expander::new(&self.bound, &self.materialized, &mut exprs);
        let top = match phase {
            Phase::Map { .. } => expander.define(root, &root_index(&self.bound, root, &index, &space)),
            Phase::Reduce { .. } => expander.value(self.bound.inputs(root)[0], &index),
        };
        let reachable = exprs.reachable(&[top]);
        reachable
            .into_iter()
            .filter_map(|e| match exprs.get(e) {
                Expr::Load { buffer, offset } => Some((*buffer, offset.clone())),
                _ => None,
            })
            .collect()
    }

    /// Puts a map or reduction root into an existing loop kernel if it fits,
    /// else into a new one; returns the kernel's number.
    fn place_in_loop(&mut self, root: NodeId) -> usize {
        let (outer, inner, reduce) = match self.bound.op(root) {
            Prim::Reduce { .. } | Prim::ArgMax { .. } => {
                let operand = self.bound.inputs(root)[0];
                let axes = reduced_axes(&self.bound, root);
                let shape = self.bound.shape(operand);
                let outer: Vec<usize> = (0..shape.len())
                    .filter(|a| !axes.contains(a))
                    .map(|a| shape[a])
                    .collect();
                let inner: Vec<usize> = axes.iter().map(|&a| shape[a]).collect();
                (outer, inner, true)
            }
            _ => (Vec::new(), self.bound.shape(root).to_vec(), false),
        };
        // Loads of buffers computed by other kernels bound how early the
        // root can run.
        let candidate = Phase::Map {
            inner: inner.clone(),
            roots: vec![root],
        };
        let probe_outer = if reduce { outer.clone() } else { Vec::new() };
        let probe_phase = if reduce {
            Phase::Reduce {
                inner: inner.clone(),
                root,
            }
        } else {
            candidate
        };
        let mut earliest: Option<usize> = None;
        for (buffer, _) in self.loads(&probe_outer, 0, &probe_phase, root).iter() {
            if let Some(&k) = self.kernel_of.get(buffer) {
                earliest = Some(earliest.map_or(k, |e| e.max(k)));
            }
        }
        let lowest = earliest.unwrap_or(0).max(self.kernels.len().saturating_sub(SCAN));
        for k in (lowest..self.kernels.len()).rev() {
            if let Some(updated) = self.try_join(k, root, &outer, &inner, reduce) {
                self.kernels[k] = Kernel::Loop(updated);
                return k;
            }
        }
        let kernel = if reduce {
            LoopKernel {
                outer,
                phases: vec![Phase::Reduce { inner, root }],
            }
        } else {
            LoopKernel {
                outer: Vec::new(),
                phases: vec![Phase::Map {
                    inner,
                    roots: vec![root],
                }],
            }
        };
        // As early as the operands allow, so that later roots can join the
        // kernels of their neighbours.
        let position = earliest.map_or(0, |e| e + 1);
        self.insert_kernel(position, Kernel::Loop(kernel))
    }

    /// Inserts a kernel at `position`, renumbering the ones after it.
    fn insert_kernel(&mut self, position: usize, kernel: Kernel) -> usize {
        for k in self.kernel_of.values_mut() {
            if *k >= position {
                *k += 1;
            }
        }
        self.kernels.insert(position, kernel);
        position
    }

    /// The kernel `k` with `root` added, if that is legal.
    fn try_join(&self, k: usize, root: NodeId, outer: &[usize], inner: &[usize], reduce: bool) -> Option<LoopKernel> {
        let Kernel::Loop(kernel) = &self.kernels[k] else {
            return None;
        };
        let has_reduce = kernel.phases.iter().any(|p| matches!(p, Phase::Reduce { .. }));
        let full = |kernel: &LoopKernel, p: &Phase| -> Vec<usize> {
            kernel.outer.iter().chain(p.inner().iter()).copied().collect()
        };
        let mut candidate = kernel.clone();
        let depends_on_kernel = || {
            let probe = Phase::Map {
                inner: self.bound.shape(root).to_vec(),
                roots: vec![root],
            };
            let (o, p) = if reduce {
                (
                    outer.to_vec(),
                    Phase::Reduce {
                        inner: inner.to_vec(),
                        root,
                    },
                )
            } else {
                (Vec::new(), probe)
            };
            self.loads(&o, 0, &p, root)
                .iter()
                .any(|(b, _)| self.kernel_of.get(b) == Some(&k))
        };
        if reduce {
            if has_reduce {
                if kernel.outer != outer {
                    return None;
                }
            } else {
                // Re-split a map-only kernel at the reduction's outer space.
                let fits = kernel.phases.iter().all(|p| full(kernel, p).starts_with(outer));
                if !fits || kernel.outer.len() > outer.len() {
                    return None;
                }
                candidate.outer = outer.to_vec();
                for phase in &mut candidate.phases {
                    let f = full(kernel, phase);
                    if let Phase::Map { inner, .. } = phase {
                        *inner = f[outer.len()..].to_vec();
                    }
                }
            }
            if !has_reduce && !depends_on_kernel() {
                return None;
            }
            candidate.phases.push(Phase::Reduce {
                inner: inner.to_vec(),
                root,
            });
        } else {
            let shape = self.bound.shape(root);
            let count: usize = shape.iter().product();
            let last = candidate.phases.len() - 1;
            let space = full(&candidate, &candidate.phases[last]);
            // Same elements in the same row-major order, rows of equal width.
            let same_space = matches!(&candidate.phases[last], Phase::Map { .. })
                && space.iter().product::<usize>() == count
                && space.last() == shape.last();
            let outer_count: usize = candidate.outer.iter().product();
            // The root's axes after those that make up the outer space.
            let rows = (0..=shape.len()).find(|&j| shape[..j].iter().product::<usize>() == outer_count);
            if same_space {
                if let Phase::Map { roots, .. } = &mut candidate.phases[last] {
                    roots.push(root);
                }
            } else if let (true, Some(j)) = (has_reduce, rows) {
                let fits = (!candidate.outer.is_empty() || count <= SMALL_MAP) && depends_on_kernel();
                if !fits {
                    return None;
                }
                candidate.phases.push(Phase::Map {
                    inner: shape[j..].to_vec(),
                    roots: vec![root],
                });
            } else {
                return None;
            }
        }
        self.check_dependencies(k, &candidate).then_some(candidate)
    }

    /// Every load inside the kernel of a buffer the kernel computes reads a
    /// row that is complete: same outer index, and in the same phase the
    /// very element being computed.
    fn check_dependencies(&self, k: usize, kernel: &LoopKernel) -> bool {
        let mut phase_of: HashMap<NodeId, usize> = HashMap::new();
        for (p, phase) in kernel.phases.iter().enumerate() {
            for root in phase.roots() {
                phase_of.insert(root, p);
            }
        }
        let outer_flat = flat(&vars(0, &kernel.outer), &kernel.outer);
        let outer_count: usize = kernel.outer.iter().product();
        for (p, phase) in kernel.phases.iter().enumerate() {
            let index = phase_index(&self.bound, &kernel.outer, p, phase);
            for root in phase.roots() {
                for (buffer, offset) in self.loads(&kernel.outer, p, phase, root).iter() {
                    let (buffer, offset) = (*buffer, offset.clone());
                    let Some(&q) = phase_of.get(&buffer) else {
                        // A buffer of a later kernel cannot be read here.
                        if let Some(&other) = self.kernel_of.get(&buffer) {
                            if other > k && buffer != root {
                                return false;
                            }
                        }
                        continue;
                    };
                    if q > p || (q == p && !self.precedes(phase, buffer, root)) {
                        return false;
                    }
                    let rest = (self.bound.count(buffer) / outer_count.max(1)) as i64;
                    if offset.div(rest.max(1)) != outer_flat {
                        return false;
                    }
                    if q == p {
                        let own = match phase {
                            Phase::Map { .. } => {
                                let space = phase_space(&kernel.outer, phase);
                                flat(
                                    &root_index(&self.bound, buffer, &index, &space),
                                    self.bound.shape(buffer),
                                )
                            }
                            Phase::Reduce { .. } => return false,
                        };
                        if offset != own {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }

    /// Whether `first` is computed before `second` in a map phase.
    fn precedes(&self, phase: &Phase, first: NodeId, second: NodeId) -> bool {
        let roots = phase.roots();
        let a = roots.iter().position(|&r| r == first);
        let b = roots.iter().position(|&r| r == second);
        matches!((a, b), (Some(a), Some(b)) if a < b)
    }
}

pub fn is_leaf(op: &Prim) -> bool {
    matches!(op, Prim::Input(_) | Prim::Param(_) | Prim::State(_))
}

/// Decides which nodes live in buffers.
fn choose_materialized(bound: &Bound) -> Vec<bool> {
    let graph = bound.graph;
    let mut materialized = vec![false; bound.shapes.len()];
    let mut cost = vec![0usize; bound.shapes.len()];
    let outputs: BTreeSet<NodeId> = graph.outputs.iter().map(|(_, id)| *id).collect();
    for &id in &bound.order {
        let op = bound.op(id);
        let must = is_leaf(op)
            || outputs.contains(&id)
            || matches!(
                op,
                Prim::Reduce { .. }
                    | Prim::ArgMax { .. }
                    | Prim::MatMul
                    | Prim::ScatterRows { .. }
                    | Prim::Concat { .. }
            );
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
        let users = bound.users(id).len();
        let shared = users >= 2 && inline_cost >= 3;
        materialized[id.index()] = must || shared || inline_cost > 48;
        if matches!(op, Prim::MatMul) {
            for &operand in bound.inputs(id) {
                if materialized[operand.index()] {
                    continue;
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
                    None => materialized[operand.index()] = true,
                    Some(view) if shared && view.strides.col != 1 && bound.count(operand) > 1 => {
                        materialized[operand.index()] = true;
                    }
                    Some(_) => {}
                }
            }
        }
    }
    materialized
}

/// Finds sums of matrix products (`add(add(p1, p2), p3)`, each product and
/// each inner sum used only there): their products are computed straight
/// into the sum's buffer, the first writing, the others adding. Inner sums
/// lose their buffers.
fn sums_of_products(bound: &Bound, materialized: &mut [bool]) -> HashMap<NodeId, Accumulate> {
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
    let mut sums = HashMap::new();
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
    let shape = bound.shape(node).to_vec();
    let rank = shape.len();
    let mut exprs = Exprs::default();
    let index = vars(0, &shape);
    let e = Expander::new(bound, materialized, &mut exprs).value(node, &index);
    let Expr::Load { buffer, offset } = exprs.get(e).clone() else {
        return None;
    };
    if offset.terms.iter().any(|(a, _)| !matches!(a, Atom::Var { .. })) || offset.constant < 0 {
        return None;
    }
    let stride = |axis: usize| offset.coefficient(axis as u32).0 as isize;
    let (row, col) = (stride(rank - 2), stride(rank - 1));
    if (shape[rank - 2] > 1 && row < 0) || (shape[rank - 1] > 1 && col < 0) || rank - 2 > MAX_BATCH {
        return None;
    }
    let mut batch = [0isize; MAX_BATCH];
    let first = MAX_BATCH - (rank - 2);
    for axis in 0..rank - 2 {
        batch[first + axis] = if shape[axis] > 1 { stride(axis) } else { 0 };
    }
    Some(View {
        buffer,
        strides: Operand {
            offset: offset.constant as isize,
            batch,
            row: if shape[rank - 2] > 1 { row } else { 0 },
            col: if shape[rank - 1] > 1 { col } else { 0 },
        },
    })
}

/// The fused graph as text: one block per kernel with the nodes it
/// computes and the nodes inlined into each.
pub fn print(fused: &Fused) -> String {
    let bound = &fused.bound;
    let shape = |id: NodeId| format!("{:?}", bound.shape(id));
    let node = |id: NodeId| {
        let op = bound.op(id).to_string();
        let op = op.split(' ').next().unwrap_or("").to_string();
        format!("{}: {}{} = {op}", bound.name(id), bound.dtype(id).name(), shape(id))
    };
    let inlined = |id: NodeId| -> String {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<NodeId> = bound.inputs(id).to_vec();
        while let Some(n) = stack.pop() {
            if fused.is_materialized(n) || !seen.insert(bound.position[n.index()]) {
                continue;
            }
            stack.extend(bound.inputs(n).iter().copied());
        }
        let names: Vec<String> = seen.iter().map(|&p| bound.name(bound.order[p])).collect();
        if names.is_empty() {
            String::new()
        } else {
            format!("  <- {}", names.join(" "))
        }
    };
    let mut out = String::new();
    for (k, kernel) in fused.kernels.iter().enumerate() {
        match kernel {
            Kernel::Loop(l) => {
                let _ = writeln!(out, "k{k}: loop outer {:?}", l.outer);
                for phase in &l.phases {
                    match phase {
                        Phase::Map { inner, roots } => {
                            let _ = writeln!(out, "  map {inner:?}");
                            for &r in roots {
                                let _ = writeln!(out, "    {}{}", node(r), inlined(r));
                            }
                        }
                        Phase::Reduce { inner, root } => {
                            let _ = writeln!(out, "  reduce {inner:?}");
                            let _ = writeln!(out, "    {}{}", node(*root), inlined(*root));
                        }
                    }
                }
            }
            Kernel::Accumulate(root) => {
                let _ = writeln!(out, "k{k}: accumulate\n    {}{}", node(*root), inlined(*root));
            }
            Kernel::MatMul { root, a, b, into } => {
                let target = match into {
                    Some(Accumulate { total, add: true }) => format!(" += into {}", bound.name(*total)),
                    Some(Accumulate { total, add: false }) => format!(" into {}", bound.name(*total)),
                    None => String::new(),
                };
                let _ = writeln!(
                    out,
                    "k{k}: matmul {}{target} = {} {:?} @ {} {:?}",
                    node(*root),
                    bound.name(a.buffer),
                    a.strides,
                    bound.name(b.buffer),
                    b.strides
                );
            }
            Kernel::Scatter(root) => {
                let _ = writeln!(out, "k{k}: scatter\n    {}{}", node(*root), inlined(*root));
            }
            Kernel::Concat(root) => {
                let _ = writeln!(out, "k{k}: concat\n    {}{}", node(*root), inlined(*root));
            }
        }
    }
    out
}

/// One buffer read of a kernel: by which root (in which phase, at which
/// position among the phase's roots), and where.
#[derive(Clone, Debug)]
pub struct Read {
    pub phase: usize,
    pub root: NodeId,
    pub position: usize,
    pub buffer: NodeId,
    pub offset: Option<Ix>,
}

impl Fused<'_> {
    /// Every buffer kernel `k` reads.
    pub fn reads(&self, k: usize) -> Vec<Read> {
        let read = |root: NodeId, buffer: NodeId| Read {
            phase: 0,
            root,
            position: 0,
            buffer,
            offset: None,
        };
        match &self.kernels[k] {
            Kernel::Loop(kernel) => {
                let mut out = Vec::new();
                for (p, phase) in kernel.phases.iter().enumerate() {
                    for (position, root) in phase.roots().into_iter().enumerate() {
                        for (buffer, offset) in self.loads(&kernel.outer, p, phase, root).iter() {
                            let (buffer, offset) = (*buffer, offset.clone());
                            out.push(Read {
                                phase: p,
                                root,
                                position,
                                buffer,
                                offset: Some(offset),
                            });
                        }
                    }
                }
                out
            }
            Kernel::MatMul { root, a, b, .. } => vec![read(*root, a.buffer), read(*root, b.buffer)],
            Kernel::Accumulate(root) | Kernel::Scatter(root) | Kernel::Concat(root) => {
                let mut exprs = Exprs::default();
                let mut expander = Expander::new(&self.bound, &self.materialized, &mut exprs);
                let mut tops = Vec::new();
                for &operand in self.bound.inputs(*root) {
                    let index = vars(0, self.bound.shape(operand));
                    tops.push(expander.value(operand, &index));
                }
                let reachable = exprs.reachable(&tops);
                reachable
                    .into_iter()
                    .filter_map(|e| match exprs.get(e) {
                        Expr::Load { buffer, .. } => Some(read(*root, *buffer)),
                        _ => None,
                    })
                    .collect()
            }
        }
    }
}
