//! Grouping: the materialized nodes in, in topological order, out the
//! kernels that compute them (`Fused::kernels`, `Fused::kernel_of`). Map
//! and reduction roots join an earlier loop kernel when its index space and
//! the rows they read allow it.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap as HashMap;

use super::{
    folded_into, matmul_view, phase_index, phase_space, reduced_axes, root_index, strided_view, written_product, Fused,
    Kernel, LoopKernel, Phase, MAX_ROOTS, SCAN, SMALL_MAP,
};
use crate::codegen::expand::vars;
use crate::codegen::index::flat;
use crate::ir::NodeId;
use crate::prim::Prim;

impl Fused<'_> {
    pub(super) fn build_kernels(&mut self) {
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
                Prim::Binary(_) if super::scatter_added(&self.bound, root).is_some() => Some(Kernel::Scatter(root)),
                Prim::Scan(_) => Some(Kernel::Scan(root)),
                Prim::AllReduce => Some(Kernel::AllReduce(root)),
                Prim::Concat { .. } => Some(Kernel::Concat(root)),
                Prim::Unfold2d(_) | Prim::Fold2d(_) => {
                    let operand = strided_view(&self.bound, &self.materialized, self.bound.inputs(root)[0])
                        .expect("window operands are views");
                    Some(Kernel::Window { root, operand })
                }
                // A product written through its permutation.
                Prim::Permute(_) if written_product(&self.bound, root).is_some() => {
                    let product = written_product(&self.bound, root).expect("a product");
                    let operands = self.bound.inputs(product);
                    let a =
                        matmul_view(&self.bound, &self.materialized, operands[0]).expect("matmul operands are views");
                    let b =
                        matmul_view(&self.bound, &self.materialized, operands[1]).expect("matmul operands are views");
                    Some(Kernel::MatMul { root, a, b, into: None })
                }
                // A fold written through its permutation.
                Prim::Permute(_) if folded_into(&self.bound, root).is_some() => {
                    let fold = folded_into(&self.bound, root).expect("a fold");
                    let operand = strided_view(&self.bound, &self.materialized, self.bound.inputs(fold)[0])
                        .expect("window operands are views");
                    Some(Kernel::Window { root, operand })
                }
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
        if kernel.phases.iter().map(|p| p.roots().len()).sum::<usize>() >= MAX_ROOTS {
            return None;
        }
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
        let mut phase_of: HashMap<NodeId, usize> = HashMap::default();
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
