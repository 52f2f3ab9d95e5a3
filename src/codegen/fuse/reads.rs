//! Read analysis: a kernel (or one root of a loop kernel) in, the
//! buffers it reads out, with the offset of each load where known.

use std::rc::Rc;

use super::{phase_index, phase_space, root_index, Fused, Kernel, Phase};
use crate::codegen::expand::{vars, Expander};
use crate::codegen::expr::{Expr, Exprs};
use crate::codegen::index::Ix;
use crate::ir::NodeId;

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
            Kernel::Window { root, operand } => vec![read(*root, operand.buffer)],
            Kernel::AllReduce(root) => vec![read(*root, self.bound.inputs(*root)[0])],
            // Every operand, read while the loop runs (a sequence read in
            // place: the buffer it lies in).
            Kernel::Scan(root) => self
                .bound
                .inputs(*root)
                .iter()
                .map(|&o| read(*root, self.sequence_view(o).map_or(o, |v| v.buffer)))
                .collect(),
            Kernel::Accumulate(root) | Kernel::Scatter(root) | Kernel::Concat(root) => {
                let mut exprs = Exprs::default();
                let mut expander = Expander::new(&self.bound, &self.materialized, &mut exprs);
                let mut tops = Vec::new();
                // A sum with a scatter reads the base and the scatter's
                // operands (the scatter has no buffer).
                let operands = match super::scatter_added(&self.bound, *root) {
                    Some((base, scatter)) => [&[base], self.bound.inputs(scatter)].concat(),
                    None => self.bound.inputs(*root).to_vec(),
                };
                for &operand in &operands {
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

    /// Buffers (materialized nodes) that `root`'s expression in `phase`
    /// reads, with their offsets (memoized: fusion asks often).
    pub(super) fn loads(
        &self,
        outer: &[usize],
        phase_number: usize,
        phase: &Phase,
        root: NodeId,
    ) -> Rc<Vec<(NodeId, Ix)>> {
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

    pub(super) fn compute_loads(
        &self,
        outer: &[usize],
        phase_number: usize,
        phase: &Phase,
        root: NodeId,
    ) -> Vec<(NodeId, Ix)> {
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
}
