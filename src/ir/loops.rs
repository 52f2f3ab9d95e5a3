//! Loops in the IR: `scan` as one node, [`Prim::Scan`], whose body is a
//! graph over one time step, run `length` times.
//!
//! A scan node's operands are, in order, the initial value of each carry,
//! each sequence (`[N, T, ...]`, time on axis 1) and each captured value
//! (parameters and anything else the step reads, the same every step). The
//! body reads them as [`Prim::Arg`] leaves in the same order; a sequence's
//! argument is one step of it (`[N, ...]`). The body's outputs are named
//! `carry 0, carry 1, ...` (the carries' next values) and `y 0, y 1, ...`
//! (one step of each stacked result).
//!
//! The node's value is every result flattened and laid end to end: the
//! final value of each carry, then each stacked result (`[N, T, ...]`,
//! step `t` at `[:, t]`), in that order; [`Loop::pieces`] says where each
//! lies, and users take them with `slice` and `reshape`. One value per node
//! keeps every stage's rules as they are (the gradient of a `slice` is a
//! `pad`), and a loop with several results needs no tuple type.
//!
//! [`unroll`] replaces every scan by its steps, for the stages that do not
//! handle loops.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::{Graph, NodeId};
use crate::check::dims::Dim;
use crate::prim::{DType, Prim};

#[derive(Clone, Debug)]
pub struct Loop {
    pub body: Graph,
    /// Steps (the sequences' axis 1).
    pub length: usize,
    /// Steps run from `length - 1` down to 0 (stacked results stay in time
    /// order).
    pub reverse: bool,
    pub carries: usize,
    pub sequences: usize,
    pub captured: usize,
    /// Stacked results (`y k` outputs of the body).
    pub ys: usize,
}

/// Equal loops print the same body (loops are rare, so this is cheap
/// enough for the traces and tests that compare programs).
impl PartialEq for Loop {
    fn eq(&self, other: &Loop) -> bool {
        (
            self.length,
            self.reverse,
            self.carries,
            self.sequences,
            self.captured,
            self.ys,
        ) == (
            other.length,
            other.reverse,
            other.carries,
            other.sequences,
            other.captured,
            other.ys,
        ) && super::print::print(&self.body) == super::print::print(&other.body)
    }
}

impl fmt::Display for Loop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "length={} carries={} sequences={} captured={} ys={}",
            self.length, self.carries, self.sequences, self.captured, self.ys
        )?;
        if self.reverse {
            write!(f, " reverse")?;
        }
        Ok(())
    }
}

/// Where one result of a loop lies in the node's flat value.
#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    pub offset: Dim,
    pub shape: Vec<Dim>,
}

impl Piece {
    pub fn size(&self) -> Dim {
        element_count(&self.shape)
    }
}

pub fn element_count(shape: &[Dim]) -> Dim {
    shape.iter().fold(Dim::constant(1), |count, d| count.mul(d))
}

impl Loop {
    pub fn carry_output(&self, k: usize) -> Option<NodeId> {
        self.body.output(&format!("carry {k}"))
    }

    pub fn y_output(&self, k: usize) -> Option<NodeId> {
        self.body.output(&format!("y {k}"))
    }

    pub fn operands(&self) -> usize {
        self.carries + self.sequences + self.captured
    }

    /// One step's shape of stacked result `k`, stacked: `[N, T, ...]`.
    fn stacked(&self, shape: &[Dim]) -> Vec<Dim> {
        let mut stacked = shape.to_vec();
        stacked.insert(1.min(stacked.len()), Dim::constant(self.length as i64));
        stacked
    }

    /// The final carries, then the stacked results, as laid out in the
    /// node's value; `None` if the body lacks an output.
    pub fn pieces(&self) -> Option<Vec<Piece>> {
        let mut shapes = Vec::with_capacity(self.carries + self.ys);
        for k in 0..self.carries {
            shapes.push(self.body.node(self.carry_output(k)?).shape.clone());
        }
        for k in 0..self.ys {
            shapes.push(self.stacked(&self.body.node(self.y_output(k)?).shape));
        }
        let mut offset = Dim::constant(0);
        Some(
            shapes
                .into_iter()
                .map(|shape| {
                    let piece = Piece {
                        offset: offset.clone(),
                        shape,
                    };
                    offset = offset.add(&piece.size());
                    piece
                })
                .collect(),
        )
    }

    /// The node's shape: every piece, flattened.
    pub fn flat_shape(&self) -> Option<Vec<Dim>> {
        let pieces = self.pieces()?;
        let total = pieces.iter().fold(Dim::constant(0), |sum, p| sum.add(&p.size()));
        Some(vec![total])
    }
}

/// Copies `body` into `graph` with its arguments bound to `args`; returns
/// the copy of every body node.
pub fn inline(graph: &mut Graph, body: &Graph, args: &[NodeId]) -> Result<HashMap<NodeId, NodeId>, String> {
    let mut copies: HashMap<NodeId, NodeId> = HashMap::with_capacity(body.len());
    let mut operands = Vec::new();
    for id in body.topo_order() {
        let node = body.node(id);
        let copy = match node.op {
            Prim::Arg(i) => *args
                .get(i)
                .ok_or_else(|| format!("the body reads argument {i} of {}", args.len()))?,
            _ => {
                body.inputs_into(id, &mut operands);
                let inputs: Vec<NodeId> = operands.iter().map(|o| copies[o]).collect();
                let copy = graph.add(node.op.clone(), node.dtype, node.shape.clone(), &inputs);
                if let Some(span) = body.origins.get(&node.serial) {
                    graph.origins.insert(graph.node(copy).serial, *span);
                }
                copy
            }
        };
        copies.insert(id, copy);
    }
    Ok(copies)
}

/// Replaces every scan of the graph (and of the bodies) by its steps: the
/// program the checker used to trace, step by step.
pub fn unroll(graph: &mut Graph) -> Result<(), String> {
    unroll_up_to(graph, usize::MAX)
}

/// [`unroll`] for the scans of at most `steps` steps (and every scan in
/// their bodies); longer ones stay loops.
pub fn unroll_up_to(graph: &mut Graph, steps: usize) -> Result<(), String> {
    let scans: Vec<NodeId> = graph
        .topo_order()
        .into_iter()
        .filter(|&id| matches!(&graph.node(id).op, Prim::Scan(l) if l.length <= steps))
        .collect();
    for id in scans {
        let Prim::Scan(looped) = graph.node(id).op.clone() else {
            unreachable!()
        };
        let mut looped = Arc::unwrap_or_clone(looped);
        unroll(&mut looped.body)?;
        let pieces = unroll_one(graph, id, &looped)?;
        take_pieces(graph, id, &looped, &pieces);
    }
    Ok(())
}

/// The steps of one scan; returns the node of each piece.
fn unroll_one(graph: &mut Graph, id: NodeId, looped: &Loop) -> Result<Vec<NodeId>, String> {
    let operands = graph.inputs(id);
    if operands.len() != looped.operands() {
        return Err(format!(
            "a scan takes {} operands, found {}",
            looped.operands(),
            operands.len()
        ));
    }
    let (inits, rest) = operands.split_at(looped.carries);
    let (sequences, captured) = rest.split_at(looped.sequences);
    let mut carries = inits.to_vec();
    let mut ys: Vec<Vec<NodeId>> = vec![Vec::with_capacity(looped.length); looped.ys];
    let mut times: Vec<usize> = (0..looped.length).collect();
    if looped.reverse {
        times.reverse();
    }
    for &t in &times {
        let mut args = carries.clone();
        for &sequence in sequences {
            let node = graph.node(sequence);
            let dtype = node.dtype;
            let mut row = node.shape.clone();
            row[1] = Dim::constant(1);
            let mut step = row.clone();
            step.remove(1);
            let op = Prim::Slice {
                axis: 1,
                start: Dim::constant(t as i64),
                step: 1,
            };
            let sliced = graph.add(op, dtype, row, &[sequence]);
            args.push(graph.add(Prim::Reshape, dtype, step, &[sliced]));
        }
        args.extend_from_slice(captured);
        let copies = inline(graph, &looped.body, &args)?;
        for (k, carry) in carries.iter_mut().enumerate() {
            let output = looped.carry_output(k).ok_or("a scan body lacks a carry")?;
            *carry = copies[&output];
        }
        for (k, stack) in ys.iter_mut().enumerate() {
            let output = copies[&looped.y_output(k).ok_or("a scan body lacks a result")?];
            let node = graph.node(output);
            let (dtype, mut shape) = (node.dtype, node.shape.clone());
            shape.insert(1.min(shape.len()), Dim::constant(1));
            stack.push(graph.add(Prim::Reshape, dtype, shape, &[output]));
        }
    }
    let mut pieces = carries;
    for mut stack in ys {
        if looped.reverse {
            stack.reverse();
        }
        let node = graph.node(stack[0]);
        let (dtype, mut shape) = (node.dtype, node.shape.clone());
        if stack.len() == 1 {
            pieces.push(stack[0]);
            continue;
        }
        let steps = Dim::constant(stack.len() as i64);
        shape[1] = steps;
        pieces.push(graph.add(Prim::Concat { axis: 1 }, dtype, shape, &stack));
    }
    Ok(pieces)
}

/// Points the scan's users at its pieces: a `slice` that takes one piece
/// (and the `reshape`s that read it) become that piece; any other user
/// reads the pieces flattened and laid end to end.
fn take_pieces(graph: &mut Graph, id: NodeId, looped: &Loop, nodes: &[NodeId]) {
    let pieces = looped.pieces().unwrap_or_default();
    let dtype = graph.node(id).dtype;
    let flat_of = |graph: &mut Graph, k: usize| -> NodeId {
        let size = pieces[k].size();
        if graph.node(nodes[k]).shape == [size.clone()] {
            nodes[k]
        } else {
            graph.add(Prim::Reshape, dtype, vec![size], &[nodes[k]])
        }
    };
    for user in graph.users(id) {
        let Some(k) = piece_taken(graph, user, &pieces) else {
            continue;
        };
        for reader in graph.users(user) {
            let reader_node = graph.node(reader);
            if matches!(reader_node.op, Prim::Reshape) && reader_node.shape == graph.node(nodes[k]).shape {
                graph.replace_uses(reader, nodes[k]);
                graph.graph.remove_node(reader);
            }
        }
        let flat = flat_of(graph, k);
        graph.replace_uses(user, flat);
        graph.graph.remove_node(user);
    }
    if !graph.users(id).is_empty() || graph.is_output(id) {
        let flats: Vec<NodeId> = (0..nodes.len()).map(|k| flat_of(graph, k)).collect();
        let shape = graph.node(id).shape.clone();
        let flat = if flats.len() == 1 {
            flats[0]
        } else {
            graph.add(Prim::Concat { axis: 0 }, dtype, shape, &flats)
        };
        graph.replace_uses(id, flat);
    }
    graph.graph.remove_node(id);
}

/// The piece of a loop's value that `user` takes whole (a `slice` of
/// exactly that range), if it is such a slice.
fn piece_taken(graph: &Graph, user: NodeId, pieces: &[Piece]) -> Option<usize> {
    let node = graph.node(user);
    match &node.op {
        Prim::Slice {
            axis: 0,
            start,
            step: 1,
        } => pieces
            .iter()
            .position(|p| &p.offset == start && node.shape == [p.size()]),
        _ => None,
    }
}

/// Every operand of a scan node must have the type its body argument has.
pub fn argument_types(looped: &Loop) -> Vec<Option<(DType, Vec<Dim>)>> {
    let mut types = vec![None; looped.operands()];
    for id in looped.body.graph.node_indices() {
        let node = looped.body.node(id);
        if let Prim::Arg(i) = node.op {
            if let Some(slot) = types.get_mut(i) {
                *slot = Some((node.dtype, node.shape.clone()));
            }
        }
    }
    types
}

/// Where a piece of a replaced loop's value comes from now.
#[derive(Clone, Copy, Debug)]
pub enum Source {
    /// Piece `k` of the new loop.
    Piece(usize),
    /// A node computed outside the loop, in the piece's shape.
    Node(NodeId),
}

/// Replaces scan `old` by a new scan of `looped` over `operands`, where
/// old piece `k` is now `sources[k]`: users that take one piece take it
/// from where it is now; any other user reads the pieces laid end to end
/// again. Returns the new scan.
pub fn replace_scan(graph: &mut Graph, old: NodeId, looped: Loop, operands: &[NodeId], sources: &[Source]) -> NodeId {
    let old_pieces = match &graph.node(old).op {
        Prim::Scan(old_loop) => old_loop.pieces().unwrap_or_default(),
        _ => unreachable!("replace_scan replaces a scan"),
    };
    let new_pieces = looped.pieces().unwrap_or_default();
    let flat = looped.flat_shape().unwrap_or_default();
    let dtype = graph.node(old).dtype;
    let new = graph.add(Prim::Scan(Arc::new(looped)), dtype, flat, operands);
    let piece = |graph: &mut Graph, k: usize| -> NodeId {
        let size = old_pieces[k].size();
        match sources[k] {
            Source::Piece(j) => {
                let op = Prim::Slice {
                    axis: 0,
                    start: new_pieces[j].offset.clone(),
                    step: 1,
                };
                graph.add(op, dtype, vec![size], &[new])
            }
            Source::Node(node) => graph.add(Prim::Reshape, dtype, vec![size], &[node]),
        }
    };
    for user in graph.users(old) {
        if let Some(k) = piece_taken(graph, user, &old_pieces) {
            let replacement = piece(graph, k);
            graph.replace_uses(user, replacement);
            graph.remove(user);
        }
    }
    if !graph.users(old).is_empty() || graph.is_output(old) {
        let parts: Vec<NodeId> = (0..old_pieces.len()).map(|k| piece(graph, k)).collect();
        let shape = graph.node(old).shape.clone();
        let all = graph.add(Prim::Concat { axis: 0 }, dtype, shape, &parts);
        graph.replace_uses(old, all);
    }
    graph.remove(old);
    new
}
