//! Products moved before the gathers that feed them: `take(table, ids) @ w`
//! becomes `take(table @ w, ids)` when the table has fewer rows than the
//! ids gather (a character model's embedding of 65 rows feeding the input
//! projection of an LSTM over `B·T` tokens).
//!
//! Each gathered row of the product is the product of a table row, so the
//! two are equal; the product over the table does `V·E·F` multiply-adds
//! instead of `B·T·E·F`. Run on the forward graph before autodiff, so the
//! gradients follow: the projection's gradient `dP` is added into the
//! table's `V` rows (`scatter_rows`, one pass over `dP`) and the weight's
//! and the table's gradients are products over those `V` rows, where they
//! were products over every token (`x^T dP` and `dP w^T`).
//!
//! After autodiff, a loop kept as a loop whose sequence is such a gather
//! (`take(table @ w, ids)`, read by the loop alone) gathers the rows
//! itself, step by step ([`SinkGathers`]): the loop reads the ids and
//! captures the table (130 KB for the LSTM's 65 × 512), where the stacked
//! rows (`[N, T, F]`, 32 MB at T = 512) would be written before the loop and
//! read back by it.
//!
//! The gradient goes the other way ([`ScatterInLoops`]): the scatter of a
//! loop's stacked result into the table's rows after the loop (reading the
//! stacked `dP` back from memory) becomes a sum the loop carries, each
//! step adding its own rows while they are in cache.

use std::sync::Arc;

use super::{Order, Pass};
use crate::check::dims::Dim;
use crate::ir::loops::{replace_scan, Source};
use crate::ir::{Graph, NodeId};
use crate::prim::{DType, Prim};

pub struct ProjectTables;

/// The batch the rewrite assumes when the ids' count depends on it: the
/// product over the table is done when the table has fewer rows than the
/// ids gather at this batch. (Below it both products are small; a batch of
/// one would make the table's product at worst this many times the
/// gathered one.)
pub const BATCH_AT_LEAST: i64 = 8;

impl Pass for ProjectTables {
    fn name(&self) -> &'static str {
        "project-tables"
    }

    fn run_in_order(&self, graph: &mut Graph, order: &mut Order) -> bool {
        let products: Vec<(NodeId, NodeId, NodeId, NodeId)> = order
            .get(graph)
            .iter()
            .filter_map(|&id| gathered_product(graph, id).map(|(table, ids, w)| (id, table, ids, w)))
            .collect();
        for &(product, table, ids, w) in &products {
            let projected = graph.matmul(table, w);
            let mut shape = graph.shape(ids);
            shape.push(graph.shape(w)[1].clone());
            let rows = graph.add(Prim::Take, DType::F32, shape, &[projected, ids]);
            let rows = graph.reshape(rows, graph.shape(product));
            graph.replace_uses(product, rows);
            super::hoist::remove_unused(graph, product);
        }
        !products.is_empty()
    }
}

/// `reshape(take(table, ids)) @ w` (or `take(table, ids) @ w`) with
/// `table: f32[V, E]`, `w: f32[E, F]`, and fewer table rows than ids at a
/// batch of [`BATCH_AT_LEAST`]: the table, the ids and the weight.
fn gathered_product(graph: &Graph, id: NodeId) -> Option<(NodeId, NodeId, NodeId)> {
    let (a, w) = super::hoist::matrix_product(graph, id)?;
    let shape = |x: NodeId| &graph.node(x).shape[..];
    let gathered = match graph.node(a).op {
        Prim::Reshape => graph.inputs(a)[0],
        _ => a,
    };
    if !matches!(graph.node(gathered).op, Prim::Take) {
        return None;
    }
    let [table, ids] = graph.inputs(gathered)[..] else {
        return None;
    };
    // Rows of a matrix, reshaped so that only the ids' axes merge: the
    // product's rows are the gathered rows, in the ids' order.
    let t = shape(table);
    if t.len() != 2 || shape(a)[1] != t[1] || shape(gathered).last() != Some(&t[1]) {
        return None;
    }
    let ids_count = shape(ids).iter().fold(Dim::constant(1), |n, d| n.mul(d));
    let at_batch = ids_count.evaluate(&|_| Some(BATCH_AT_LEAST))?;
    (t[0].as_const()? < at_batch).then_some((table, ids, w))
}

/// Gathers sunk into the loops that read them (the module's second half).
/// Run on a step graph after its short loops are unrolled: every scan left
/// is kept as a loop.
pub struct SinkGathers;

impl Pass for SinkGathers {
    fn name(&self) -> &'static str {
        "sink-gathers"
    }

    fn run_in_order(&self, graph: &mut Graph, order: &mut Order) -> bool {
        let mut changed = false;
        for id in super::loops::scans(graph, order) {
            changed |= sink_gathers(graph, id);
        }
        changed
    }
}

/// Moves into scan `id` each gather its sequences are (read by it alone);
/// returns whether there was one.
fn sink_gathers(graph: &mut Graph, id: NodeId) -> bool {
    let Prim::Scan(looped) = &graph.node(id).op else {
        return false;
    };
    let mut looped = Arc::unwrap_or_clone(looped.clone());
    let mut operands = graph.inputs(id);
    let (c, s) = (looped.carries, looped.sequences);
    let mut sunk = Vec::new();
    for i in c..c + s {
        let gathered = operands[i];
        let node = graph.node(gathered);
        if !matches!(node.op, Prim::Take)
            || graph.sole_user(gathered) != Some(id)
            || graph.is_output(gathered)
            || operands.iter().filter(|&&o| o == gathered).count() != 1
        {
            continue;
        }
        let [table, ids] = graph.inputs(gathered)[..] else {
            continue;
        };
        if graph.shape(ids).len() < 2 {
            continue;
        }
        let (dtype, mut step_shape) = (node.dtype, node.shape.clone());
        step_shape.remove(1);
        let mut ids_shape = graph.shape(ids);
        ids_shape.remove(1);
        let body = &mut looped.body;
        let old = body.graph.node_indices().find(|&n| body.node(n).op == Prim::Arg(i));
        let ids_arg = body.add(Prim::Arg(i), graph.dtype(ids), ids_shape, &[]);
        let table_arg = body.add(Prim::Arg(operands.len()), graph.dtype(table), graph.shape(table), &[]);
        let rows = body.add(Prim::Take, dtype, step_shape, &[table_arg, ids_arg]);
        if let Some(old) = old {
            body.replace_uses(old, rows);
            body.remove(old);
        }
        operands[i] = ids;
        operands.push(table);
        looped.captured += 1;
        sunk.push(gathered);
    }
    if sunk.is_empty() {
        return false;
    }
    super::loops::same_value(graph, id, looped, &operands);
    for gathered in sunk {
        graph.remove(gathered);
    }
    true
}

/// Scatters of a loop's stacked results moved into the loop (the module's
/// third part). Run on a step graph after its short loops are unrolled.
pub struct ScatterInLoops;

impl Pass for ScatterInLoops {
    fn name(&self) -> &'static str {
        "scatter-in-loops"
    }

    fn run_in_order(&self, graph: &mut Graph, order: &mut Order) -> bool {
        let scatters: Vec<NodeId> = order
            .get(graph)
            .iter()
            .copied()
            .filter(|&id| matches!(graph.node(id).op, Prim::ScatterRows { .. }))
            .collect();
        let mut changed = false;
        for id in scatters {
            changed |= scatter_in_loop(graph, id);
        }
        changed
    }
}

/// `scatter_rows(reshape(slice(scan, piece of y k)), ids)` with ids from
/// outside the loop: the scan gains a carry, zeros at first, to which each
/// step adds `scatter_rows(y k, ids_t)` (the ids become a sequence), and
/// the scatter is that carry's final value. Returns whether it was so.
fn scatter_in_loop(graph: &mut Graph, id: NodeId) -> bool {
    let Prim::ScatterRows { rows } = graph.node(id).op.clone() else {
        return false;
    };
    let [values, ids] = graph.inputs(id)[..] else {
        return false;
    };
    let sliced = match graph.node(values).op {
        Prim::Reshape => graph.inputs(values)[0],
        _ => values,
    };
    let Prim::Slice {
        axis: 0,
        start,
        step: 1,
    } = graph.node(sliced).op.clone()
    else {
        return false;
    };
    let scan = graph.inputs(sliced)[0];
    let Prim::Scan(looped) = &graph.node(scan).op else {
        return false;
    };
    let Some(pieces) = looped.pieces() else {
        return false;
    };
    let (c, s) = (looped.carries, looped.sequences);
    // The scattered values are stacked result k, whole; the ids are
    // `[N, T]` and do not come from the loop.
    let Some(k) = (0..looped.ys).find(|&k| pieces[c + k].offset == start) else {
        return false;
    };
    let ids_shape = graph.shape(ids);
    let stacked = &pieces[c + k].shape;
    if graph.shape(values) != *stacked
        || ids_shape.len() != 2
        || ids_shape[..] != stacked[..2]
        || reaches(graph, ids, scan)
    {
        return false;
    }
    // Every user of the loop takes a whole piece (their offsets move).
    let whole_piece = |user: NodeId| match &graph.node(user).op {
        Prim::Slice {
            axis: 0,
            start,
            step: 1,
        } => pieces.iter().any(|p| p.offset == *start),
        _ => false,
    };
    if !graph.users(scan).into_iter().all(whole_piece) || graph.is_output(scan) {
        return false;
    }

    let mut looped = Arc::unwrap_or_clone(looped.clone());
    let table_shape = graph.shape(id);
    let body = &mut looped.body;
    for n in body.graph.node_indices().collect::<Vec<_>>() {
        if let Prim::Arg(i) = body.node(n).op {
            let shift = usize::from(i >= c) + usize::from(i >= c + s);
            body.node_mut(n).op = Prim::Arg(i + shift);
        }
    }
    let sum = body.add(Prim::Arg(c), DType::F32, table_shape.clone(), &[]);
    let mut step_ids = ids_shape.clone();
    step_ids.remove(1);
    let step_ids = body.add(Prim::Arg(c + 1 + s), graph.dtype(ids), step_ids, &[]);
    let y = looped.y_output(k).expect("a verified loop has its outputs");
    let body = &mut looped.body;
    let step = body.add(
        Prim::ScatterRows { rows },
        DType::F32,
        table_shape.clone(),
        &[y, step_ids],
    );
    let next = body.add_nodes(sum, step);
    // Carries are named in order: the new one is the last.
    body.set_output(&format!("carry {c}"), next);
    looped.carries += 1;
    looped.sequences += 1;

    let operands = graph.inputs(scan);
    let zeros = graph.add(Prim::Const(0.0), DType::F32, table_shape.clone(), &[]);
    let mut new_operands: Vec<NodeId> = operands[..c].to_vec();
    new_operands.push(zeros);
    new_operands.extend_from_slice(&operands[c..c + s]);
    new_operands.push(ids);
    new_operands.extend_from_slice(&operands[c + s..]);
    // Old piece j is new piece j before the new carry, j + 1 after it.
    let sources: Vec<Source> = (0..pieces.len())
        .map(|j| Source::Piece(if j < c { j } else { j + 1 }))
        .collect();
    let sum_piece = looped.pieces().expect("the loop's outputs")[c].clone();
    let new_scan = replace_scan(graph, scan, looped, &new_operands, &sources);
    let size = sum_piece.size();
    let last = graph.slice(new_scan, 0, sum_piece.offset, size, 1);
    let table = graph.reshape(last, table_shape);
    graph.replace_uses(id, table);
    graph.remove(id);
    true
}

/// Whether `node` is `target` or computed from it.
fn reaches(graph: &Graph, node: NodeId, target: NodeId) -> bool {
    let mut stack = vec![node];
    let mut seen = std::collections::HashSet::new();
    while let Some(n) = stack.pop() {
        if n == target {
            return true;
        }
        if seen.insert(n) {
            stack.extend(graph.inputs(n));
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(sizes: &[i64]) -> Vec<Dim> {
        sizes.iter().map(|&s| Dim::constant(s)).collect()
    }

    /// `reshape(take(table[V, 3], ids[4, 6]), [24, 3]) @ w[3, 2]`.
    fn embedded_product(rows: i64) -> Graph {
        let mut graph = Graph::default();
        let table = graph.add(Prim::Input("table".into()), DType::F32, dims(&[rows, 3]), &[]);
        let ids = graph.add(Prim::Input("ids".into()), DType::I32, dims(&[4, 6]), &[]);
        let w = graph.add(Prim::Input("w".into()), DType::F32, dims(&[3, 2]), &[]);
        let gathered = graph.add(Prim::Take, DType::F32, dims(&[4, 6, 3]), &[table, ids]);
        let rows = graph.reshape(gathered, dims(&[24, 3]));
        let product = graph.matmul(rows, w);
        graph.outputs.push(("y".into(), product));
        graph
    }

    /// Five table rows for 24 ids: the product moves onto the table, the
    /// gather reads its rows, and every value is the same (an id outside
    /// the table still gives a row of zeros).
    #[test]
    fn a_product_of_gathered_rows_becomes_a_gather_of_the_tables_product() {
        let mut graph = embedded_product(5);
        let original = graph.clone();
        assert!(ProjectTables.run(&mut graph));
        super::super::Dce.run(&mut graph);
        let y = graph.outputs[0].1;
        assert_eq!(graph.node(y).op, Prim::Reshape);
        assert_eq!(graph.node(y).shape, dims(&[24, 2]));
        let take = graph.inputs(y)[0];
        assert_eq!(graph.node(take).op, Prim::Take);
        assert_eq!(graph.node(take).shape, dims(&[4, 6, 2]));
        let projected = graph.inputs(take)[0];
        assert_eq!(graph.node(projected).op, Prim::MatMul);
        assert_eq!(graph.node(projected).shape, dims(&[5, 2]));
        assert_eq!(graph.len(), 6, "table, ids, w, their product, the gather, the reshape");

        let ids: Vec<f64> = (0..24)
            .map(|i| [(i * 3 % 5) as f64, -1.0][usize::from(i == 17)])
            .collect();
        let mut env = crate::interp::patterned_env(&[("table", &[5, 3]), ("w", &[3, 2])]);
        let ids = ndarray::ArrayD::from_shape_vec(vec![4, 6], ids).unwrap();
        env.feeds.insert("ids".to_string(), ids);
        let expected = crate::interp::run_outputs(&original, &env).unwrap();
        let got = crate::interp::run_outputs(&graph, &env).unwrap();
        assert_eq!(expected["y"].as_slice().unwrap()[34..36], [0.0, 0.0]);
        assert_eq!(expected, got);
    }

    /// A table with more rows than the ids gather (a word vocabulary) keeps
    /// the product over the gathered rows.
    #[test]
    fn a_table_larger_than_its_gather_keeps_the_product_after_it() {
        let mut graph = embedded_product(24);
        assert!(!ProjectTables.run(&mut graph));
    }

    /// Ids whose count grows with the batch: the rewrite assumes a batch
    /// of at least [`BATCH_AT_LEAST`].
    #[test]
    fn a_batch_sized_gather_is_counted_at_the_least_batch() {
        let count = |rows: i64| {
            let mut graph = Graph::default();
            let table = graph.add(Prim::Input("table".into()), DType::F32, dims(&[rows, 3]), &[]);
            let shape = vec![Dim::symbol("B"), Dim::constant(4)];
            let ids = graph.add(Prim::Input("ids".into()), DType::I32, shape.clone(), &[]);
            let w = graph.add(Prim::Input("w".into()), DType::F32, dims(&[3, 2]), &[]);
            let gathered = graph.add(Prim::Take, DType::F32, [shape, dims(&[3])].concat(), &[table, ids]);
            let rows = graph.reshape(
                gathered,
                vec![Dim::symbol("B").mul(&Dim::constant(4)), Dim::constant(3)],
            );
            let product = graph.matmul(rows, w);
            graph.outputs.push(("y".into(), product));
            ProjectTables.run(&mut graph)
        };
        assert!(count(4 * BATCH_AT_LEAST - 1));
        assert!(!count(4 * BATCH_AT_LEAST));
    }
}
