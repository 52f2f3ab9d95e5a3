//! Kernels of equal structure, found before their code is built: a loop,
//! accumulation or concatenation kernel's planned loops and expressions in, a [`Key`] that names its
//! buffers by order of appearance (and each buffer's first-index constants
//! relative to its first use) out, with the [`Layout`] that says which
//! buffer each name stands for here.
//!
//! Two kernels with equal keys differ only in which buffers they read and
//! write and in a constant shift of each buffer's index: the emitter gives
//! them the same code (their buffer tables differ), so the second one's
//! table is derived from the first one's ([`Shared::table`]) without
//! building its CLIF. The steps of an unrolled `scan` and the layers of a
//! `repeat` are such kernels. Debug builds build the CLIF anyway and check
//! that it is the same function with the same table.

use rustc_hash::FxHashMap as HashMap;

use super::accumulate::AccumulateCode;
use super::emit::Streams;
use super::expr::{Expr, Exprs};
use super::fuse::{Fused, LoopKernel, Phase};
use super::index::Ix;
use super::kernels::{ConcatCode, LoopCode};
use super::memory::Plan;
use crate::ir::NodeId;
use crate::prim::{Distribution, Prim};

/// A kernel's code with its buffers named `0, 1, ...` by first
/// appearance (the buffers it writes first, then loads in expression
/// order).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    body: Body,
    exprs: Vec<Expr>,
    /// With bounds checks the code holds each buffer's length.
    lengths: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Body {
    Loop {
        outer_loops: Vec<(u32, i64)>,
        phases: Vec<PhaseKey>,
    },
    Accumulate {
        op: u8,
        columns: i64,
        out_loops: Vec<(u32, i64)>,
        out_offset: Ix,
        identity: u32,
        value: u32,
        loops: Vec<(u32, i64)>,
        out: Ix,
        mean: Option<u32>,
    },
    Concat {
        split_rows: bool,
        groups: Vec<GroupKey>,
    },
}

/// A concatenation's group: loops, values, offsets in the output.
type GroupKey = (Vec<(u32, i64)>, Vec<u32>, Vec<Ix>);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PhaseKey {
    /// 0 map, 1 argmax, 2 + the reduction's op.
    kind: u8,
    values: Vec<u32>,
    stores: Vec<Ix>,
    loads: Vec<u32>,
    loops: Vec<(u32, i64)>,
}

/// Each named buffer of one kernel: the node, and the constant its indices
/// were shifted by (the first use's).
pub type Layout = Vec<(NodeId, i64)>;

/// What a kernel compiled from a key leaves for the next kernel with the
/// same key: per entry of its buffer table, the buffer's name and the shift
/// of the entry from the buffer's first-use constant.
#[derive(Clone, Debug)]
pub struct Shared<F> {
    pub function: F,
    /// The kernel the code was built for.
    pub first: usize,
    entries: Vec<(usize, i64)>,
}

impl<F: Copy> Shared<F> {
    /// `uses`: the kernel's table entries as the emitter made them (buffer,
    /// first-use constant), in table order.
    pub fn new(function: F, first: usize, layout: &Layout, uses: &[(NodeId, i64)]) -> Option<Shared<F>> {
        let mut entries = Vec::with_capacity(uses.len());
        for &(buffer, first_use) in uses {
            let name = layout.iter().position(|&(b, _)| b == buffer)?;
            entries.push((name, first_use - layout[name].1));
        }
        Some(Shared {
            function,
            first,
            entries,
        })
    }

    /// The buffer table (byte offsets into the arena) of a kernel with the
    /// same key and `layout`.
    pub fn table(&self, layout: &Layout, plan: &Plan) -> Vec<i64> {
        self.entries
            .iter()
            .map(|&(name, shift)| {
                let (buffer, constant) = layout[name];
                (plan.buffer(buffer).offset as i64 + constant + shift) * 4
            })
            .collect()
    }
}

/// Names buffers in order of first appearance, each with the constant
/// its indices are taken relative to (none with bounds checks, where the
/// constants stay in the code).
struct Namer {
    names: HashMap<NodeId, usize>,
    layout: Layout,
    check_bounds: bool,
}

impl Namer {
    fn new(check_bounds: bool) -> Namer {
        Namer {
            names: HashMap::default(),
            layout: Vec::new(),
            check_bounds,
        }
    }

    /// `offset` into `buffer`, relative to the buffer's first appearance.
    fn relative(&mut self, buffer: NodeId, offset: &Ix) -> (usize, Ix) {
        let n = *self.names.entry(buffer).or_insert_with(|| {
            let shift = if self.check_bounds { 0 } else { offset.constant };
            self.layout.push((buffer, shift));
            self.layout.len() - 1
        });
        let relative = Ix {
            terms: offset.terms.clone(),
            constant: offset.constant - self.layout[n].1,
        };
        (n, relative)
    }

    /// The kernel's expressions with buffers named.
    fn exprs(&mut self, exprs: &Exprs, streams: &Streams) -> Vec<Expr> {
        exprs
            .nodes
            .iter()
            .map(|expr| match expr {
                Expr::Load { buffer, offset } => {
                    let (n, offset) = self.relative(*buffer, offset);
                    Expr::Load {
                        buffer: NodeId::new(n),
                        offset,
                    }
                }
                // Uniform numbers read the stream's key from its slot in
                // the random table; normal ones pass the stream itself.
                Expr::Random { dist, stream, flat } => Expr::Random {
                    dist: *dist,
                    stream: match dist {
                        Distribution::Uniform => streams.get(stream).map_or(u32::MAX, |&slot| slot as u32),
                        Distribution::Normal => *stream,
                    },
                    flat: flat.clone(),
                },
                other => other.clone(),
            })
            .collect()
    }

    fn key(self, body: Body, exprs: Vec<Expr>, plan: &Plan) -> (Key, Layout) {
        let lengths = if self.check_bounds {
            self.layout.iter().map(|&(b, _)| plan.buffer(b).len).collect()
        } else {
            Vec::new()
        };
        (Key { body, exprs, lengths }, self.layout)
    }
}

/// The key of loop kernel `kernel` planned as `code`, and its layout.
pub fn loop_key(
    fused: &Fused,
    kernel: &LoopKernel,
    code: &LoopCode,
    streams: &Streams,
    plan: &Plan,
    check_bounds: bool,
) -> (Key, Layout) {
    let mut namer = Namer::new(check_bounds);
    let mut phases = Vec::with_capacity(code.phases.len());
    for (phase, pc) in kernel.phases.iter().zip(&code.phases) {
        let stores = phase
            .roots()
            .iter()
            .zip(&pc.stores)
            .map(|(&root, store)| namer.relative(root, store).1)
            .collect();
        let kind = match phase {
            Phase::Map { .. } => 0,
            Phase::Reduce { root, .. } => match fused.bound.op(*root) {
                Prim::ArgMax { .. } => 1,
                Prim::Reduce { op, .. } => 2 + *op as u8,
                _ => u8::MAX,
            },
        };
        phases.push(PhaseKey {
            kind,
            values: pc.values.clone(),
            stores,
            loads: pc.loads.clone(),
            loops: pc.loops.clone(),
        });
    }
    let exprs = namer.exprs(&code.exprs, streams);
    let body = Body::Loop {
        outer_loops: code.outer_loops.clone(),
        phases,
    };
    namer.key(body, exprs, plan)
}

/// The key of concatenation kernel `root` planned as `code`, and its
/// layout.
pub fn concat_key(
    root: NodeId,
    code: &ConcatCode,
    streams: &Streams,
    plan: &Plan,
    check_bounds: bool,
) -> (Key, Layout) {
    let mut namer = Namer::new(check_bounds);
    let groups = code
        .groups
        .iter()
        .map(|group| {
            let offsets = group.offsets.iter().map(|o| namer.relative(root, o).1).collect();
            (group.loops.clone(), group.values.clone(), offsets)
        })
        .collect();
    let exprs = namer.exprs(&code.exprs, streams);
    let body = Body::Concat {
        split_rows: code.split_rows,
        groups,
    };
    namer.key(body, exprs, plan)
}

/// The key of accumulation kernel `root` planned as `code`, and its
/// layout.
pub fn accumulate_key(
    root: NodeId,
    code: &AccumulateCode,
    streams: &Streams,
    plan: &Plan,
    check_bounds: bool,
) -> (Key, Layout) {
    let mut namer = Namer::new(check_bounds);
    let (_, out_offset) = namer.relative(root, &code.out_offset);
    let (_, out) = namer.relative(root, &code.out);
    let exprs = namer.exprs(&code.exprs, streams);
    let body = Body::Accumulate {
        op: code.op as u8,
        columns: code.columns,
        out_loops: code.out_loops.clone(),
        out_offset,
        identity: code.identity,
        value: code.value,
        loops: code.loops.clone(),
        out,
        mean: code.mean,
    };
    namer.key(body, exprs, plan)
}
