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
//!
//! The files: this one holds the types and the index spaces of loop
//! kernels; `materialize.rs` chooses the buffers, `group.rs` groups them
//! into kernels, `locals.rs` takes the buffer back from a value that only
//! later roots of its own kernel read (it is computed in registers there),
//! `reads.rs` finds what each kernel reads, and `print.rs` writes the
//! result for `nnc dump --stage fused`.

mod group;
mod locals;
mod materialize;
mod print;
mod reads;

use std::cell::RefCell;
use std::collections::BTreeSet;

use rustc_hash::FxHashMap as HashMap;
use std::rc::Rc;

use super::expand::{vars, Bound};
use super::gemm::Operand;
use super::index::{flat, unflatten, Ix};
use crate::ir::NodeId;
use crate::prim::Prim;

use materialize::{choose_materialized, sums_of_products};
pub use materialize::{folded_into, is_leaf, matmul_view, scatter_added, strided_view, written_product, SequenceView};
pub use print::print;
pub use reads::Read;

/// Largest map (in elements) that joins a kernel without outer loops:
/// such kernels run on one thread.
const SMALL_MAP: usize = 1 << 14;

/// How many kernels back a root looks for one to join.
const SCAN: usize = 12;

/// Most roots one loop kernel computes. A kernel that reads every gradient
/// (the global norm of clipping, its scaling) would otherwise take them
/// all: one function whose compile time (register allocation) and whose
/// fusion checks (each join re-checks every root) grow faster than the
/// model, where kernels of a few layers' roots each share code.
const MAX_ROOTS: usize = 32;

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
    /// `scatter_rows`: zero the output, add each row at its id; or a sum
    /// `base + scatter_rows(..)` ([`scatter_added`]): start from `base`.
    Scatter(NodeId),
    /// `concat`: one loop per operand into its slice of the output.
    Concat(NodeId),
    /// `unfold2d` or `fold2d` by a native kernel (`codegen/window.rs`):
    /// from a strided view of the operand into `root`'s buffer.
    Window {
        root: NodeId,
        operand: Strided,
    },
    /// A `scan`: its body (`Fused::bodies`) run once per step, in a region
    /// of the arena reserved while it runs (`memory::LoopPlan`).
    Scan(NodeId),
    /// `all_reduce`: the operand's buffer copied into the root's, then
    /// summed over the run's processes in place (`crate::collective`), on
    /// thread 0.
    AllReduce(NodeId),
}

/// A tensor as a strided view of one buffer: offset and one stride per
/// axis of the tensor, in elements, relative to the buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Strided {
    pub buffer: NodeId,
    pub offset: isize,
    pub strides: Vec<isize>,
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
    /// The body of every loop node, fused on its own.
    pub bodies: HashMap<NodeId, Fused<'g>>,
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

/// The element of map root `node` that phase `phase_number` computes at
/// each step of its loops, flattened: where a root that reads `node`
/// element by element finds it (see [`root_index`]).
pub fn own_element(bound: &Bound, outer: &[usize], phase_number: usize, phase: &Phase, node: NodeId) -> Ix {
    let index = phase_index(bound, outer, phase_number, phase);
    let space = phase_space(outer, phase);
    flat(&root_index(bound, node, &index, &space), bound.shape(node))
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

impl<'g> Fused<'g> {
    pub fn new(mut bound: Bound<'g>) -> Fused<'g> {
        let bodies = std::mem::take(&mut bound.bodies)
            .into_iter()
            .map(|(id, body)| (id, Fused::new(body)))
            .collect();
        let (mut materialized, pinned) = choose_materialized(&bound);
        let sums = sums_of_products(&bound, &mut materialized);
        let mut fused = Fused {
            bound,
            materialized,
            kernels: Vec::new(),
            kernel_of: HashMap::default(),
            sums,
            bodies,
            load_cache: RefCell::new(HashMap::default()),
        };
        fused.build_kernels();
        fused.keep_values_local(&pinned);
        fused
    }

    pub fn is_materialized(&self, id: NodeId) -> bool {
        self.materialized[id.index()]
    }

    /// Kernels of this graph and of every loop body inside it, in the order
    /// their functions are numbered (a loop's body right after the loop):
    /// the graph (or body) and the kernel's number in it.
    pub fn all_kernels(&self) -> Vec<(&Fused<'g>, usize)> {
        let mut out = Vec::new();
        for (k, kernel) in self.kernels.iter().enumerate() {
            out.push((self, k));
            if let Kernel::Scan(root) = kernel {
                out.extend(self.bodies[root].all_kernels());
            }
        }
        out
    }

    /// Where the steps of a loop's sequence lie (see [`SequenceView`]).
    pub fn sequence_view(&self, operand: NodeId) -> Option<SequenceView> {
        materialize::sequence_view(&self.bound, &self.materialized, operand)
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
}
