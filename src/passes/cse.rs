//! Common-subexpression elimination: two nodes with the same op, attributes,
//! type and operands are one node. Random draws are never merged.

use std::hash::{Hash, Hasher};

use rustc_hash::{FxHashMap as HashMap, FxHasher};

use super::{Order, Pass};
use crate::ir::{Graph, Node, NodeId};
use crate::prim::Prim;

pub struct Cse;

/// A node kept so far: its operands are `operands[start..end]`; `next` is
/// the previous node with the same key (`usize::MAX` for none).
struct Kept {
    id: NodeId,
    start: usize,
    end: usize,
    next: usize,
}

impl Pass for Cse {
    fn name(&self) -> &'static str {
        "cse"
    }

    fn run_in_order(&self, graph: &mut Graph, order: &mut Order) -> bool {
        // Nodes by a hash of their operands, dtype and op ([`key`]; no
        // allocation per node: the operands of the kept nodes share one
        // buffer); among those, equal operands, dtypes, ops (a constant's
        // exact bits) and shapes are one node. At most one kept node is
        // equal to a new one, since two equal kept nodes would have been
        // merged, so the order of a key's list does not matter.
        let mut heads: HashMap<u64, usize> = HashMap::default();
        heads.reserve(graph.len());
        let mut kept: Vec<Kept> = Vec::with_capacity(graph.len());
        let mut operands: Vec<NodeId> = Vec::with_capacity(2 * graph.len());
        let mut inputs = Vec::new();
        let mut changed = false;
        for &id in order.get(graph) {
            let node = graph.node(id);
            if matches!(node.op, Prim::Random { .. }) {
                continue;
            }
            graph.inputs_into(id, &mut inputs);
            let key = key(&inputs, node);
            let head = heads.get(&key).copied().unwrap_or(usize::MAX);
            let mut at = head;
            let mut earlier = None;
            while at != usize::MAX {
                let entry = &kept[at];
                if operands[entry.start..entry.end] == inputs[..] && same(node, graph.node(entry.id)) {
                    earlier = Some(entry.id);
                    break;
                }
                at = entry.next;
            }
            match earlier {
                Some(earlier) => {
                    graph.replace_uses(id, earlier);
                    graph.remove(id);
                    changed = true;
                }
                None => {
                    let start = operands.len();
                    operands.extend_from_slice(&inputs);
                    heads.insert(key, kept.len());
                    kept.push(Kept {
                        id,
                        start,
                        end: operands.len(),
                        next: head,
                    });
                }
            }
        }
        changed
    }
}

/// Whether two nodes with the same operands compute the same values.
fn same(node: &Node, other: &Node) -> bool {
    let op = match (&node.op, &other.op) {
        (Prim::Const(a), Prim::Const(b)) => a.to_bits() == b.to_bits(),
        (a, b) => a == b,
    };
    op && other.dtype == node.dtype && other.shape == node.shape
}

/// A hash of a node's operands, dtype and op, equal for nodes that are
/// [`same`]: of the op, its kind and its cheap attributes only. For a leaf,
/// also its constant sizes: constants of many shapes (zeros, ones) would
/// otherwise share a key. (Other shapes are not read: each size is a
/// polynomial in its own allocation, and reading them costs more than the
/// rare comparison of nodes with equal operands.)
fn key(inputs: &[NodeId], node: &Node) -> u64 {
    let mut hasher = FxHasher::default();
    inputs.hash(&mut hasher);
    node.dtype.hash(&mut hasher);
    if inputs.is_empty() {
        node.shape.len().hash(&mut hasher);
        for size in &node.shape {
            size.as_const().hash(&mut hasher);
        }
    }
    std::mem::discriminant(&node.op).hash(&mut hasher);
    match &node.op {
        Prim::Const(value) => value.to_bits().hash(&mut hasher),
        Prim::Input(name) | Prim::Param(name) | Prim::State(name) => name.hash(&mut hasher),
        Prim::Unary(op) => op.hash(&mut hasher),
        Prim::Binary(op) => op.hash(&mut hasher),
        Prim::Cast(dtype) => dtype.hash(&mut hasher),
        Prim::Slice { axis, step, .. } => (axis, step).hash(&mut hasher),
        Prim::Concat { axis } => axis.hash(&mut hasher),
        _ => {}
    }
    hasher.finish()
}
