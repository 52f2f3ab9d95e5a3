//! The generated `graphs` task for graph attention: a checked `graphs(...)`
//! source in, train and validation splits out. Each example is a small
//! random undirected graph of `nodes` nodes, each node holding a value in
//! `0..values`; a node's label is the largest value among its neighbours
//! (not counting its own). The label is a function of the neighbours alone,
//! so a model that sees only each node by itself can do no better than
//! guessing from the node's own value; one that attends along the edges can
//! read it off.
//!
//! Every pair of nodes is joined with probability `degree / (nodes - 1)`
//! (so a node has `degree` neighbours on average); a node left without
//! neighbours is then joined to one other node drawn at random, so every
//! label is defined. Fields: `x` the values (`[count, nodes]`), `edges` the
//! adjacency (`[count, nodes, nodes]`, 1 where two nodes are joined,
//! symmetric, 0 on the diagonal) and `y` the labels (`[count, nodes]`).
//! Everything is drawn from the seed, the two splits from different
//! streams.

use super::data::{Data, Split};
use crate::check::data::Dataset;
use crate::interp::random;

/// Random streams: the draws of the training and validation splits.
const DRAW_STREAM: u64 = 50;

/// Settings of the task, read from the validated source.
#[derive(Clone, Copy, Debug)]
pub struct Graphs {
    pub nodes: usize,
    pub values: usize,
    pub degree: f64,
    pub seed: u64,
}

/// One graph: node values, the adjacency (row-major, `nodes × nodes`) and
/// the labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    pub values: Vec<usize>,
    pub edges: Vec<bool>,
    pub labels: Vec<usize>,
}

impl Graphs {
    pub fn from_dataset(dataset: &Dataset) -> Graphs {
        let source = &dataset.source;
        Graphs {
            nodes: source.int("nodes").unwrap_or(12) as usize,
            values: source.int("values").unwrap_or(8) as usize,
            degree: source.float("degree").unwrap_or(3.0),
            seed: source.int("seed").unwrap_or(0) as u64,
        }
    }

    /// Graph `index` of split `split` (0 train, 1 validation).
    pub fn graph(&self, split: u64, index: u64) -> Graph {
        let n = self.nodes;
        let mut draws = 0u64;
        let mut draw = || {
            draws += 1;
            random::bits(self.seed, index, DRAW_STREAM + split, draws)
        };
        let uniform = |bits: u64| (bits >> 11) as f64 / (1u64 << 53) as f64;
        let values: Vec<usize> = (0..n).map(|_| (draw() % self.values as u64) as usize).collect();
        let p = self.degree / (n - 1) as f64;
        let mut edges = vec![false; n * n];
        for i in 0..n {
            for j in i + 1..n {
                if uniform(draw()) < p {
                    edges[i * n + j] = true;
                    edges[j * n + i] = true;
                }
            }
        }
        for i in 0..n {
            if !(0..n).any(|j| edges[i * n + j]) {
                // Any node but i.
                let j = (i + 1 + (draw() % (n as u64 - 1)) as usize) % n;
                edges[i * n + j] = true;
                edges[j * n + i] = true;
            }
        }
        let labels = (0..n)
            .map(|i| {
                (0..n)
                    .filter(|&j| edges[i * n + j])
                    .map(|j| values[j])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        Graph { values, edges, labels }
    }

    /// `count` graphs of split `split` as a table.
    fn split(&self, split: u64, count: usize) -> Split {
        let n = self.nodes;
        let mut x = Vec::with_capacity(count * n);
        let mut edges = Vec::with_capacity(count * n * n);
        let mut y = Vec::with_capacity(count * n);
        for index in 0..count as u64 {
            let graph = self.graph(split, index);
            x.extend(graph.values.iter().map(|&v| v as f64));
            edges.extend(graph.edges.iter().map(|&e| if e { 1.0 } else { 0.0 }));
            y.extend(graph.labels.iter().map(|&l| l as f64));
        }
        Split::table(
            count,
            [
                ("x", vec![count, n], x),
                ("edges", vec![count, n, n], edges),
                ("y", vec![count, n], y),
            ],
        )
    }
}

/// Fills the splits of a `graphs` dataset.
pub fn synthesize(dataset: &Dataset, data: &mut Data) {
    let graphs = Graphs::from_dataset(dataset);
    let source = &dataset.source;
    data.train = graphs.split(0, source.int("train").unwrap_or(4000) as usize);
    data.val = graphs.split(1, source.int("val").unwrap_or(500) as usize);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Graphs {
        Graphs {
            nodes: 10,
            values: 6,
            degree: 2.5,
            seed: 3,
        }
    }

    #[test]
    fn every_node_has_a_neighbour_and_is_labelled_by_their_largest_value() {
        let graphs = task();
        let n = graphs.nodes;
        let mut degrees = 0;
        for index in 0..300 {
            let g = graphs.graph(0, index);
            assert!(g.values.iter().all(|&v| v < 6));
            for i in 0..n {
                assert!(!g.edges[i * n + i], "no self-loops");
                let neighbours: Vec<usize> = (0..n).filter(|&j| g.edges[i * n + j]).collect();
                assert!(!neighbours.is_empty());
                for &j in &neighbours {
                    assert!(g.edges[j * n + i], "undirected");
                }
                degrees += neighbours.len();
                let largest = neighbours.iter().map(|&j| g.values[j]).max().unwrap();
                assert_eq!(g.labels[i], largest);
            }
        }
        // About `degree` neighbours a node (a little more: no node is left
        // alone).
        let mean = degrees as f64 / (300 * n) as f64;
        assert!((2.4..3.1).contains(&mean), "{mean}");
    }

    #[test]
    fn a_node_alone_tells_little_of_its_label() {
        // The label differs from the node's own value most of the time: the
        // task needs the neighbours.
        let graphs = task();
        let (mut same, mut all) = (0, 0);
        for index in 0..300 {
            let g = graphs.graph(1, index);
            same += g.values.iter().zip(&g.labels).filter(|(v, l)| v == l).count();
            all += g.labels.len();
        }
        let share = same as f64 / all as f64;
        assert!(share < 0.3, "{share}");
    }

    #[test]
    fn graphs_are_seeded_and_splits_differ() {
        let graphs = task();
        assert_eq!(graphs.graph(0, 7), graphs.graph(0, 7));
        let differ = |a: Graphs, s: u64| (0..20).any(|i| graphs.graph(0, i) != a.graph(s, i));
        assert!(differ(graphs, 1));
        assert!(differ(Graphs { seed: 4, ..graphs }, 0));
        let Split::Table { fields, len } = graphs.split(0, 5) else {
            panic!("a table")
        };
        assert_eq!(len, 5);
        let shapes: Vec<&[usize]> = fields.iter().map(|(_, a)| a.shape()).collect();
        assert_eq!(shapes, [&[5, 10][..], &[5, 10, 10], &[5, 10]]);
    }
}
