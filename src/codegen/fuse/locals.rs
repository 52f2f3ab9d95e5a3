//! Values kept in registers: a map root that was given a buffer only
//! because it is used more than once (or is large to inline), whose every
//! reader turned out to be a later root of the same map phase reading it
//! at the very element being computed, loses its buffer. The readers then
//! compute it inline, once (expressions are hash-consed within a kernel),
//! and the kernel stores one result fewer per element — the backward of a
//! tanh-GELU wrote three results of its 2048×1536 elements where the one
//! the products read is needed.

use rustc_hash::FxHashSet as HashSet;

use super::{is_leaf, own_element, Fused, Kernel, Phase};
use crate::ir::NodeId;
use crate::prim::Prim;

impl Fused<'_> {
    /// Drops the buffers of the map roots that only later roots of their
    /// own phase read, element by element (see the module doc). `pinned`:
    /// the nodes that need a buffer whoever reads them (outputs, operands
    /// of native calls, ...).
    pub(super) fn keep_values_local(&mut self, pinned: &[bool]) {
        let mut dropped = false;
        for k in 0..self.kernels.len() {
            let Kernel::Loop(kernel) = &self.kernels[k] else {
                continue;
            };
            let maps: Vec<Vec<NodeId>> = kernel
                .phases
                .iter()
                .map(|phase| match phase {
                    Phase::Map { roots, .. } => roots.clone(),
                    Phase::Reduce { .. } => Vec::new(),
                })
                .collect();
            for (p, roots) in maps.into_iter().enumerate() {
                // Latest first: a dropped root's readers are then final.
                for root in roots.into_iter().rev() {
                    if !pinned[root.index()] && self.only_read_in_phase(k, p, root) {
                        self.drop_root(k, p, root);
                        dropped = true;
                    }
                }
            }
        }
        if dropped {
            self.load_cache.borrow_mut().clear();
        }
    }

    /// Whether every buffer that reads `root` through values without
    /// buffers is a later root of phase `p` of kernel `k`, reading it at
    /// its own element, through element-wise ops only.
    fn only_read_in_phase(&self, k: usize, p: usize, root: NodeId) -> bool {
        let bound = &self.bound;
        if is_leaf(bound.op(root)) || !elementwise(bound.op(root)) {
            return false;
        }
        let Kernel::Loop(kernel) = &self.kernels[k] else {
            return false;
        };
        let phase = &kernel.phases[p];
        let roots = phase.roots();
        let Some(position) = roots.iter().position(|&r| r == root) else {
            return false;
        };
        // The buffers reading `root`, found through its users.
        let mut readers = Vec::new();
        let mut seen = HashSet::default();
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            for &user in bound.users(id) {
                if !seen.insert(user) {
                    continue;
                }
                if self.materialized[user.index()] {
                    readers.push(user);
                } else if elementwise(bound.op(user)) {
                    stack.push(user);
                } else {
                    return false;
                }
            }
        }
        if readers.is_empty() {
            return false;
        }
        let later = |r: &NodeId| roots.iter().position(|x| x == r).is_some_and(|i| i > position);
        if !readers.iter().all(later) {
            return false;
        }
        let own = own_element(bound, &kernel.outer, p, phase, root);
        readers.iter().all(|&reader| {
            self.compute_loads(&kernel.outer, p, phase, reader)
                .iter()
                .filter(|(buffer, _)| *buffer == root)
                .all(|(_, offset)| *offset == own)
        })
    }

    fn drop_root(&mut self, k: usize, p: usize, root: NodeId) {
        self.materialized[root.index()] = false;
        self.kernel_of.remove(&root);
        if let Kernel::Loop(kernel) = &mut self.kernels[k] {
            if let Phase::Map { roots, .. } = &mut kernel.phases[p] {
                roots.retain(|&r| r != root);
            }
        }
    }
}

/// Ops a kernel computes element by element from its operands at the same
/// element, so that computing one inline at a reader's element is
/// computing it at its own.
fn elementwise(op: &Prim) -> bool {
    matches!(op, Prim::Unary(_) | Prim::Binary(_) | Prim::Select | Prim::Cast(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::dims::Dim;
    use crate::codegen::expand::Bound;
    use crate::ir::Graph;
    use crate::prim::{BinaryOp, DType, ReduceOp, UnaryOp};

    /// `t = exp(x)·x` (`[64, 32]`, used twice, so given a buffer at first)
    /// and `y = t·t + t`, an output; with `reduced`, also an output summing
    /// `t` over its rows. Whether `t` keeps its buffer.
    fn shared_value_is_stored(reduced: bool) -> bool {
        let mut graph = Graph::new();
        let shape = vec![Dim::constant(64), Dim::constant(32)];
        let x = graph.add(Prim::Param("x".into()), DType::F32, shape.clone(), &[]);
        let e = graph.add(Prim::Unary(UnaryOp::Exp), DType::F32, shape.clone(), &[x]);
        let t = graph.add(Prim::Binary(BinaryOp::Mul), DType::F32, shape.clone(), &[e, x]);
        let square = graph.add(Prim::Binary(BinaryOp::Mul), DType::F32, shape.clone(), &[t, t]);
        let y = graph.add(Prim::Binary(BinaryOp::Add), DType::F32, shape, &[square, t]);
        graph.set_output("y", y);
        if reduced {
            let sum = Prim::Reduce {
                op: ReduceOp::Sum,
                axes: vec![0],
                keepdims: false,
            };
            let s = graph.add(sum, DType::F32, vec![Dim::constant(32)], &[t]);
            graph.set_output("s", s);
        }
        let bound = Bound::new(&graph, &std::collections::HashMap::new()).unwrap();
        let (materialized, _) = super::super::choose_materialized(&bound);
        assert!(
            materialized[t.index()],
            "a value used three times is given a buffer first"
        );
        Fused::new(bound).is_materialized(t)
    }

    /// Read only by a later root of its own kernel at its own element, the
    /// value is computed there in registers; read by a reduction as well
    /// (another phase), it keeps its buffer.
    #[test]
    fn a_value_only_its_own_kernel_reads_loses_its_buffer() {
        assert!(!shared_value_is_stored(false));
        assert!(shared_value_is_stored(true));
    }
}
