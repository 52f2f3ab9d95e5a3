//! The trace: the program the checker elaborated, as primitive ops. Every
//! tensor the checker computes is a node here; `ir::lower` turns the trace
//! into the IR graph.

use std::collections::HashMap;

use super::dims::Dim;
use crate::diagnostics::Span;
use crate::prim::{DType, Prim};

#[derive(Clone, Debug, PartialEq)]
pub struct TraceNode {
    pub op: Prim,
    pub dtype: DType,
    pub shape: Vec<Dim>,
    /// Operands, by index of earlier nodes.
    pub inputs: Vec<usize>,
}

/// Nodes in creation order (so operands always come first) and named outputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    pub nodes: Vec<TraceNode>,
    pub outputs: Vec<(String, usize)>,
    /// Where nodes come from: the expression of the user's file that made
    /// them (for a library block's ops, the user's call of the block).
    pub origins: HashMap<usize, Span>,
    /// Leaves by name, so a parameter used twice is one node.
    leaves: HashMap<String, usize>,
}

impl Trace {
    pub fn push(&mut self, op: Prim, dtype: DType, shape: Vec<Dim>, inputs: Vec<usize>) -> usize {
        let key = match &op {
            Prim::Input(name) => Some(format!("input {name}")),
            Prim::Param(name) => Some(format!("param {name}")),
            Prim::State(name) => Some(format!("state {name}")),
            _ => None,
        };
        if let Some(key) = &key {
            if let Some(&existing) = self.leaves.get(key) {
                return existing;
            }
        }
        self.nodes.push(TraceNode {
            op,
            dtype,
            shape,
            inputs,
        });
        let id = self.nodes.len() - 1;
        if let Some(key) = key {
            self.leaves.insert(key, id);
        }
        id
    }

    pub fn set_output(&mut self, name: &str, node: usize) {
        match self.outputs.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = node,
            None => self.outputs.push((name.to_string(), node)),
        }
    }
}
