//! Products over states shifted by a step, read where the states lie.
//!
//! A recurrent weight's gradient sums `h_{t−1}ᵀ · dG_t` over the steps:
//! after a loop, `reshape(concat(h_init, h[:, :T−1]))ᵀ @ dG`, whose
//! concatenation copies every state but the last (8 MB for the char LSTM
//! at T = 512). Laid end to end (`[N·T, H]`), the shifted states are the
//! states one row earlier, except at each sequence's first step, where the
//! row before is the previous sequence's last state instead of `h_init`:
//!
//! ```text
//! Σ_r shifted[r]ᵀ dG[r] = S[0 .. NT−1]ᵀ dG[1 .. NT]          (views, no copy)
//!                         − Σ_{n ≥ 1} S[n−1, T−1]ᵀ dG[n, 0]  (N rows)
//!                         + Σ_n h_init[n]ᵀ dG[n, 0]          (unless zeros)
//! ```
//!
//! The middle sum is written over `N` rows (`dG[:, 0]` padded by a row of
//! zeros and read one row on), so no size is `N − 1`, which a batch of one
//! would make empty. A reversed recurrence shifts the other way,
//! `concat(h[:, 1:], h_init)`: the states one row later, less the pairs
//! `S[n+1, 0]ᵀ dG[n, T−1]`, plus `h_init[n]ᵀ dG[n, T−1]`.

use super::{Order, Pass};
use crate::check::dims::Dim;
use crate::ir::{Graph, NodeId};
use crate::prim::Prim;

pub struct ShiftedProducts;

impl Pass for ShiftedProducts {
    fn name(&self) -> &'static str {
        "shifted-products"
    }

    fn run_in_order(&self, graph: &mut Graph, order: &mut Order) -> bool {
        let products: Vec<(NodeId, Shifted)> = order
            .get(graph)
            .iter()
            .filter_map(|&id| shifted_product(graph, id).map(|s| (id, s)))
            .collect();
        for (product, shifted) in &products {
            let sum = rewrite(graph, *product, shifted);
            graph.replace_uses(*product, sum);
            super::hoist::remove_unused(graph, *product);
        }
        !products.is_empty()
    }
}

/// A product `reshape(concat(init, slice(states, axis 1, 0..T−1)))ᵀ @ g`:
/// what it reads.
struct Shifted {
    /// `[N, 1, H]`: the state before the first step (after the last one,
    /// for a reversed recurrence).
    init: NodeId,
    /// The states read one step later (`concat(h[:, 1:], init)`).
    later: bool,
    /// The states' base and the slices other than the step's, innermost
    /// first, that make `[N, T, H]` of it.
    base: NodeId,
    slices: Vec<Cut>,
    /// `[N·T, F]`.
    g: NodeId,
}

/// A slice: axis, start and length.
type Cut = (usize, Dim, Dim);

fn shifted_product(graph: &Graph, id: NodeId) -> Option<Shifted> {
    let (a, g) = super::hoist::matrix_product(graph, id)?;
    if graph.node(a).op != Prim::Permute(vec![1, 0]) {
        return None;
    }
    let rows = graph.inputs(a)[0];
    if !matches!(graph.node(rows).op, Prim::Reshape) {
        return None;
    }
    let concat = graph.inputs(rows)[0];
    if graph.node(concat).op != (Prim::Concat { axis: 1 })
        || graph.sole_user(rows) != Some(a)
        || graph.sole_user(a) != Some(id)
        || graph.sole_user(concat) != Some(rows)
    {
        return None;
    }
    let [first, second] = graph.inputs(concat)[..] else {
        return None;
    };
    let shape = graph.shape(concat);
    let (g_shape, rows_shape) = (graph.shape(g), graph.shape(rows));
    let steps = shape.get(1)?.as_const()?;
    if shape.len() != 3
        || steps < 2
        || rows_shape.len() != 2
        || rows_shape[1] != shape[2]
        || g_shape[0] != rows_shape[0]
    {
        return None;
    }
    // `init` first and the states of steps 0..T−1 after it, or the states
    // of steps 1..T and `init` last.
    [(first, second, false), (second, first, true)]
        .into_iter()
        .find_map(|(init, shifted, later)| {
            if graph.shape(init)[1].as_const() != Some(1) {
                return None;
            }
            let (base, slices) = states_of(graph, shifted, steps, later)?;
            Some(Shifted {
                init,
                later,
                base,
                slices,
                g,
            })
        })
}

/// The states `shifted` is a shift of (steps `0..T−1`, or `1..T` when
/// `later`): the node under its slices and the slices other than the
/// step's, innermost first.
fn states_of(graph: &Graph, shifted: NodeId, steps: i64, later: bool) -> Option<(NodeId, Vec<Cut>)> {
    let mut slices = Vec::new();
    let mut step_slice = false;
    let mut node = shifted;
    while let Prim::Slice { axis, start, step: 1 } = &graph.node(node).op {
        let operand = graph.inputs(node)[0];
        let len = graph.shape(node)[*axis].clone();
        if *axis == 1 {
            let all = graph.shape(operand)[1].as_const();
            let from = i64::from(later);
            if step_slice || start.as_const() != Some(from) || all != Some(steps) || len.as_const() != Some(steps - 1) {
                return None;
            }
            step_slice = true;
        } else {
            slices.push((*axis, start.clone(), len));
        }
        node = operand;
    }
    slices.reverse();
    step_slice.then_some((node, slices))
}

fn rewrite(graph: &mut Graph, product: NodeId, s: &Shifted) -> NodeId {
    let mut states = s.base;
    for (axis, start, len) in &s.slices {
        states = graph.slice(states, *axis, start.clone(), len.clone(), 1);
    }
    let shape = graph.shape(states);
    let (n, steps, width) = (shape[0].clone(), shape[1].clone(), shape[2].clone());
    let g_shape = graph.shape(s.g);
    let (rows, f) = (g_shape[0].clone(), g_shape[1].clone());
    let one = Dim::constant(1);
    let earlier = rows.sub(&one);

    // S[0 .. NT−1]ᵀ dG[1 .. NT] (S[1 .. NT]ᵀ dG[0 .. NT−1] when later).
    let (s_from, g_from) = if s.later { (1, 0) } else { (0, 1) };
    let flat = graph.reshape(states, vec![rows.clone(), width.clone()]);
    let shifted = graph.slice(flat, 0, Dim::constant(s_from), earlier.clone(), 1);
    let shifted = graph.transpose_last(shifted);
    let g_rows = graph.slice(s.g, 0, Dim::constant(g_from), earlier, 1);
    let all = graph.matmul(shifted, g_rows);

    // The pairs across sequences: S[n−1, T−1] with dG[n, 0] for n ≥ 1, or
    // when later S[n, 0] with dG[n−1, T−1]; over N rows, the `dG` side
    // padded by a row of zeros where it has no partner.
    let last_step = steps.sub(&one);
    let (s_step, g_step) = if s.later {
        (Dim::constant(0), last_step)
    } else {
        (last_step, Dim::constant(0))
    };
    let edge = graph.slice(states, 1, s_step, one.clone(), 1);
    let edge = graph.reshape(edge, vec![n.clone(), width.clone()]);
    let g3 = graph.reshape(s.g, vec![n.clone(), steps, f.clone()]);
    let g_edge = graph.slice(g3, 1, g_step, one.clone(), 1);
    let g_edge = graph.reshape(g_edge, vec![n.clone(), f]);
    let partner = if s.later {
        let padded = graph.pad(g_edge, 0, one.clone(), Dim::constant(0));
        graph.slice(padded, 0, Dim::constant(0), n.clone(), 1)
    } else {
        let padded = graph.pad(g_edge, 0, Dim::constant(0), one.clone());
        graph.slice(padded, 0, one, n.clone(), 1)
    };
    let edge = graph.transpose_last(edge);
    let across = graph.matmul(edge, partner);
    let mut sum = graph.sub(all, across);

    if !zeros(graph, s.init) {
        let init = graph.reshape(s.init, vec![n, width]);
        let init = graph.transpose_last(init);
        let start = graph.matmul(init, g_edge);
        sum = graph.add_nodes(sum, start);
    }
    debug_assert_eq!(graph.shape(sum), graph.shape(product));
    sum
}

/// Whether `id` is a constant zero, reshaped, broadcast or sliced.
fn zeros(graph: &Graph, id: NodeId) -> bool {
    match graph.node(id).op {
        Prim::Const(c) => c == 0.0,
        Prim::Reshape | Prim::Broadcast | Prim::Slice { .. } => zeros(graph, graph.inputs(id)[0]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prim::DType;

    fn dims(sizes: &[i64]) -> Vec<Dim> {
        sizes.iter().map(|&s| Dim::constant(s)).collect()
    }

    /// `reshape(concat(init, slice(states[.., :5], steps 0..T−1)))ᵀ @ g` for
    /// `n` sequences of 4 steps, the states the first 5 of 8 columns; when
    /// `later`, `concat(slice(states, steps 1..T), init)`.
    fn shifted_product_graph(n: i64, init_zeros: bool, later: bool) -> Graph {
        let mut graph = Graph::default();
        let base = graph.add(Prim::Input("states".into()), DType::F32, dims(&[n, 4, 8]), &[]);
        let g = graph.add(Prim::Input("g".into()), DType::F32, dims(&[n * 4, 6]), &[]);
        let init = match init_zeros {
            true => graph.add(Prim::Const(0.0), DType::F32, dims(&[n, 1, 5]), &[]),
            false => graph.add(Prim::Input("init".into()), DType::F32, dims(&[n, 1, 5]), &[]),
        };
        let steps = graph.slice(base, 1, Dim::constant(i64::from(later)), Dim::constant(3), 1);
        let steps = graph.slice(steps, 2, Dim::constant(0), Dim::constant(5), 1);
        let pieces = if later { [steps, init] } else { [init, steps] };
        let shifted = graph.add(Prim::Concat { axis: 1 }, DType::F32, dims(&[n, 4, 5]), &pieces);
        let rows = graph.reshape(shifted, dims(&[n * 4, 5]));
        let rows = graph.transpose_last(rows);
        let product = graph.matmul(rows, g);
        graph.outputs.push(("dw".into(), product));
        graph
    }

    /// [`ShiftedProducts`] on the graph: it rewrites it, leaves no
    /// concatenation, and the interpreter's values agree.
    fn check(n: i64, init_zeros: bool, later: bool) {
        let mut graph = shifted_product_graph(n, init_zeros, later);
        let original = graph.clone();
        let label = format!("{n} sequences, zeros {init_zeros}, later {later}");
        assert!(ShiftedProducts.run(&mut graph), "{label}");
        super::super::Dce.run(&mut graph);
        assert!(!graph
            .graph
            .node_indices()
            .any(|x| matches!(graph.node(x).op, Prim::Concat { .. })));
        let n = n as usize;
        let env = crate::interp::patterned_env(&[("states", &[n, 4, 8]), ("g", &[n * 4, 6]), ("init", &[n, 1, 5])]);
        assert_close(&original, &graph, &env, &label);
    }

    /// The product over the states where they lie, with and without an
    /// initial state, for three sequences and for one (where the pairs
    /// across sequences are none): the interpreter's values agree, and no
    /// concatenation is left.
    #[test]
    fn a_product_of_shifted_states_reads_them_where_they_lie() {
        for (n, init_zeros) in [(3, true), (3, false), (1, true), (1, false)] {
            check(n, init_zeros, false);
        }
    }

    /// States shifted the other way (a reversed recurrence: the state
    /// after the last step last) are read one row later, with the same
    /// values, for three sequences and for one.
    #[test]
    fn states_shifted_the_other_way_are_read_where_they_lie() {
        for (n, init_zeros) in [(3, true), (3, false), (1, false)] {
            check(n, init_zeros, true);
        }
    }

    /// `dw` of both graphs in the interpreter: equal to 1e-12, and not all
    /// zeros.
    fn assert_close(original: &Graph, graph: &Graph, env: &crate::interp::Env, label: &str) {
        let want = crate::interp::run_outputs(original, env).unwrap();
        let got = crate::interp::run_outputs(graph, env).unwrap();
        let (want, got) = (&want["dw"], &got["dw"]);
        assert!(want.iter().any(|&v| v != 0.0));
        for (w, g) in want.iter().zip(got) {
            assert!(
                (w - g).abs() <= 1e-12 * (1.0 + w.abs()),
                "{label}: {want} against {got}"
            );
        }
    }
}
