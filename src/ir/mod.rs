//! The IR: a `petgraph` graph of primitive ops ([`crate::prim::Prim`]),
//! each node with a dtype and a (possibly symbolic) shape, plus named
//! outputs (`loss`, `model_output`, `update state.path`, ...).
//!
//! In: the checker's trace (`lower`). Out: a [`Graph`] that autodiff extends,
//! passes rewrite, the interpreter runs and codegen compiles. The text form
//! (`print`) numbers nodes in topological order, never by petgraph index.

pub mod build;
pub mod loops;
pub mod lower;
pub mod print;
pub mod verify;

use std::collections::HashMap;

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences};
use petgraph::Direction;

use crate::check::dims::Dim;
use crate::prim::{DType, Prim};

pub type NodeId = NodeIndex<u32>;

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Prim,
    pub dtype: DType,
    pub shape: Vec<Dim>,
    /// Creation number, unique in the graph's life (petgraph reuses the
    /// indices of removed nodes; this is never reused).
    pub serial: u64,
}

/// A dataflow graph. Edges run from operand to user; an edge's weight is
/// the operand's position.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub graph: StableDiGraph<Node, usize>,
    /// Named results, in a fixed order.
    pub outputs: Vec<(String, NodeId)>,
    /// Where nodes lowered from the checker's trace come from in the
    /// user's file, by serial (nodes made later, e.g. gradients, have none).
    pub origins: HashMap<u64, crate::diagnostics::Span>,
    next_serial: u64,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Adds a node computing `op` on `inputs`.
    pub fn add(&mut self, op: Prim, dtype: DType, shape: Vec<Dim>, inputs: &[NodeId]) -> NodeId {
        let serial = self.next_serial;
        self.next_serial += 1;
        let id = self.graph.add_node(Node {
            op,
            dtype,
            shape,
            serial,
        });
        for (position, &input) in inputs.iter().enumerate() {
            self.graph.add_edge(input, id, position);
        }
        id
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.graph[id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.graph[id]
    }

    /// The serial the next node will get: it grows with every node added.
    pub fn next_serial(&self) -> u64 {
        self.next_serial
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// Operands of a node, in position order.
    pub fn inputs(&self, id: NodeId) -> Vec<NodeId> {
        let mut inputs = Vec::new();
        self.inputs_into(id, &mut inputs);
        inputs
    }

    /// [`Graph::inputs`] into a buffer the caller reuses (the passes visit
    /// every node of graphs of tens of thousands).
    pub fn inputs_into(&self, id: NodeId, out: &mut Vec<NodeId>) {
        out.clear();
        // (position, operand), sorted by insertion: operands are few.
        let mut positions = [0usize; 8];
        for edge in self.graph.edges_directed(id, Direction::Incoming) {
            let (position, source) = (*edge.weight(), edge.source());
            if out.len() == positions.len() {
                return self.inputs_sorted(id, out);
            }
            let mut at = out.len();
            while at > 0 && (positions[at - 1], out[at - 1]) > (position, source) {
                at -= 1;
            }
            positions.copy_within(at..out.len(), at + 1);
            positions[at] = position;
            out.insert(at, source);
        }
    }

    /// Many operands (a concatenation of every step of a sequence): each
    /// put at its position, which the edges number `0..n`.
    fn inputs_sorted(&self, id: NodeId, out: &mut Vec<NodeId>) {
        let count = self.graph.edges_directed(id, Direction::Incoming).count();
        out.clear();
        out.resize(count, NodeId::end());
        for edge in self.graph.edges_directed(id, Direction::Incoming) {
            match out.get_mut(*edge.weight()) {
                Some(slot) if *slot == NodeId::end() => *slot = edge.source(),
                // Positions not `0..n` (no stage makes them): sorted as pairs.
                _ => {
                    let mut edges: Vec<(usize, NodeId)> = Vec::with_capacity(count);
                    edges.extend(
                        self.graph
                            .edges_directed(id, Direction::Incoming)
                            .map(|e| (*e.weight(), e.source())),
                    );
                    edges.sort_unstable();
                    out.clear();
                    out.extend(edges.into_iter().map(|(_, n)| n));
                    return;
                }
            }
        }
    }

    /// Nodes that use `id`, each once, in index order.
    pub fn users(&self, id: NodeId) -> Vec<NodeId> {
        let mut users: Vec<NodeId> = self.graph.neighbors_directed(id, Direction::Outgoing).collect();
        users.sort_unstable();
        users.dedup();
        users
    }

    /// Whether `user` is the only node that uses `id` (and uses it at
    /// least once): `users(id) == [user]` without collecting.
    pub fn only_user(&self, id: NodeId, user: NodeId) -> bool {
        let mut users = self.graph.neighbors_directed(id, Direction::Outgoing).peekable();
        users.peek().is_some() && users.all(|u| u == user)
    }

    /// The one node that uses `id` (perhaps more than once), if exactly one
    /// does: `users(id)` of length one, without collecting.
    pub fn sole_user(&self, id: NodeId) -> Option<NodeId> {
        let mut users = self.graph.neighbors_directed(id, Direction::Outgoing);
        let first = users.next()?;
        users.all(|u| u == first).then_some(first)
    }

    /// Whether an output names `id`.
    pub fn is_output(&self, id: NodeId) -> bool {
        self.outputs.iter().any(|(_, o)| *o == id)
    }

    pub fn output(&self, name: &str) -> Option<NodeId> {
        self.outputs.iter().find(|(n, _)| n == name).map(|(_, id)| *id)
    }

    pub fn set_output(&mut self, name: &str, id: NodeId) {
        match self.outputs.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = id,
            None => self.outputs.push((name.to_string(), id)),
        }
    }

    /// Makes every user of `old` (and every output naming it) use `new`.
    pub fn replace_uses(&mut self, old: NodeId, new: NodeId) {
        if old == new {
            return;
        }
        let edges: Vec<(NodeId, usize)> = self
            .graph
            .edges_directed(old, Direction::Outgoing)
            .map(|e| (e.target(), *e.weight()))
            .collect();
        for (target, position) in edges {
            if let Some(edge) = self.graph.find_edge(old, target) {
                self.graph.remove_edge(edge);
            }
            self.graph.add_edge(new, target, position);
        }
        for (_, id) in &mut self.outputs {
            if *id == old {
                *id = new;
            }
        }
    }

    /// Removes the edges from a node's operands (the node becomes a leaf).
    pub fn detach_inputs(&mut self, id: NodeId) {
        let edges: Vec<_> = self
            .graph
            .edges_directed(id, Direction::Incoming)
            .map(|e| e.id())
            .collect();
        for edge in edges {
            self.graph.remove_edge(edge);
        }
    }

    pub fn remove(&mut self, id: NodeId) {
        self.graph.remove_node(id);
    }

    /// Node ids in a topological order that depends only on the graph's
    /// structure and insertion order: among ready nodes, the oldest first.
    pub fn topo_order(&self) -> Vec<NodeId> {
        let bound = petgraph::visit::NodeIndexable::node_bound(&self.graph);
        // Operands not yet ordered, counted in one sweep over the edges
        // (cheaper than following each node's list of incoming edges).
        let mut pending = vec![0u32; bound];
        for edge in self.graph.edge_references() {
            pending[edge.target().index()] += 1;
        }
        let mut ready = ReadySet::new(bound);
        for id in self.graph.node_indices() {
            if pending[id.index()] == 0 {
                ready.insert(id.index());
            }
        }
        let mut order = Vec::with_capacity(self.len());
        while let Some(index) = ready.pop_min() {
            let id = NodeId::new(index);
            order.push(id);
            for edge in self.graph.edges_directed(id, Direction::Outgoing) {
                let count = &mut pending[edge.target().index()];
                *count -= 1;
                if *count == 0 {
                    ready.insert(edge.target().index());
                }
            }
        }
        order
    }

    /// Leaves of one kind, by name, in topological order: `Param`s, `State`s
    /// or `Input`s.
    pub fn leaves(&self, kind: fn(&Prim) -> Option<&str>) -> Vec<(String, NodeId)> {
        self.topo_order()
            .into_iter()
            .filter_map(|id| kind(&self.node(id).op).map(|name| (name.to_string(), id)))
            .collect()
    }
}

/// The name of a `Param` leaf.
pub fn param_name(op: &Prim) -> Option<&str> {
    match op {
        Prim::Param(name) => Some(name),
        _ => None,
    }
}

pub fn state_name(op: &Prim) -> Option<&str> {
    match op {
        Prim::State(name) => Some(name),
        _ => None,
    }
}

pub fn input_name(op: &Prim) -> Option<&str> {
    match op {
        Prim::Input(name) => Some(name),
        _ => None,
    }
}

/// The ready nodes of [`Graph::topo_order`] by index, smallest first: a bit
/// per index and a bit per 64-index word that has any set (a binary heap's
/// pops cost several times more on graphs of tens of thousands of nodes).
struct ReadySet {
    words: Vec<u64>,
    summary: Vec<u64>,
    /// No summary word below this one has a bit set.
    low: usize,
}

impl ReadySet {
    fn new(bound: usize) -> ReadySet {
        let words = bound.div_ceil(64);
        ReadySet {
            words: vec![0; words],
            summary: vec![0; words.div_ceil(64)],
            low: 0,
        }
    }

    fn insert(&mut self, index: usize) {
        let word = index / 64;
        self.words[word] |= 1 << (index % 64);
        self.summary[word / 64] |= 1 << (word % 64);
        self.low = self.low.min(word / 64);
    }

    fn pop_min(&mut self) -> Option<usize> {
        while self.summary.get(self.low)? == &0 {
            self.low += 1;
        }
        let word = self.low * 64 + self.summary[self.low].trailing_zeros() as usize;
        let bit = self.words[word].trailing_zeros() as usize;
        self.words[word] &= !(1 << bit);
        if self.words[word] == 0 {
            self.summary[self.low] &= !(1 << (word % 64));
        }
        Some(word * 64 + bit)
    }
}
