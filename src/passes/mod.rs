//! Graph-to-graph passes: constant folding, algebraic simplification,
//! sums of pads as concatenations, element-wise ops distributed over
//! concatenations, common-subexpression elimination and
//! dead-code elimination. Each pass is one file and one value of [`Pass`];
//! the pipeline is [`optimize`], run after autodiff on whole step graphs
//! (so `stop_grad` is the identity by then). [`prepare_forward`] runs
//! before autodiff, on the forward graph: products hoisted out of unrolled
//! recurrences, products over embedding tables before their gathers
//! (`tables.rs`) and permutations sunk below element-wise ops (`layout.rs`),
//! so that the gradients are hoisted and laid out the same way.

mod concat;
mod cse;
mod dce;
mod fold;
mod hoist;
mod layout;
mod loops;
mod pads;
mod shifted;
mod simplify;
mod tables;

pub use concat::DistributeOverConcat;
pub use cse::Cse;
pub use dce::Dce;
pub use fold::ConstantFold;
pub use hoist::HoistProducts;
pub use layout::SinkPermutes;
pub use loops::{HoistOutOfLoops, NarrowSequences, SumProductsAfterLoops};
pub use pads::PadsToConcat;
pub use shifted::ShiftedProducts;
pub use simplify::Simplify;
pub use tables::{ProjectTables, ScatterInLoops, SinkGathers};

use crate::ir::{Graph, NodeId};

pub trait Pass {
    fn name(&self) -> &'static str;

    /// Rewrites the graph; returns whether anything changed.
    fn run(&self, graph: &mut Graph) -> bool {
        self.run_in_order(graph, &mut Order::default())
    }

    /// [`Pass::run`], taking the graph's topological order (if the pass
    /// visits the nodes in one) from `order`, which [`optimize`] keeps from
    /// one pass to the next while they change nothing.
    fn run_in_order(&self, graph: &mut Graph, order: &mut Order) -> bool;
}

/// A graph's [`Graph::topo_order`], computed when a pass first asks for it
/// and kept for the next pass if the graph stays as it was: on a graph of
/// tens of thousands of nodes, ordering costs about as much as a pass.
#[derive(Default)]
pub struct Order {
    /// The order, and the graph's node count, edge count and next serial
    /// when it was computed.
    known: Option<(Vec<NodeId>, (usize, usize, u64))>,
}

impl Order {
    /// The graph's topological order.
    pub fn get(&mut self, graph: &Graph) -> &[NodeId] {
        let stamp = (graph.len(), graph.graph.edge_count(), graph.next_serial());
        match &mut self.known {
            Some((_, known)) if *known == stamp => {}
            known => *known = Some((graph.topo_order(), stamp)),
        }
        &self.known.as_ref().expect("an order").0
    }

    /// Forgets the order: a pass changed the graph. (A pass that says it
    /// changed nothing may still have added nodes it did not use, which
    /// the stamp sees; any other change it would report.)
    fn forget(&mut self) {
        self.known = None;
    }
}

/// The passes in the order they run.
pub fn pipeline() -> Vec<Box<dyn Pass>> {
    vec![
        Box::new(ConstantFold),
        Box::new(Simplify),
        Box::new(PadsToConcat),
        Box::new(DistributeOverConcat),
        Box::new(HoistProducts),
        Box::new(NarrowSequences),
        Box::new(SinkGathers),
        Box::new(ScatterInLoops),
        Box::new(ShiftedProducts),
        Box::new(Cse),
        Box::new(Dce),
    ]
}

/// The passes that shape the forward graph before autodiff differentiates
/// it.
pub fn prepare_forward(graph: &mut Graph) {
    prepare_forward_up_to(graph, unroll_bound());
}

/// [`prepare_forward`] for a step whose loops of at most `steps` steps
/// will be unrolled (as [`optimize_loops_up_to`] does).
pub fn prepare_forward_up_to(graph: &mut Graph, steps: usize) {
    // (Each pass orders the graph anew: every round changes it.)
    run_verified(graph, &HoistOutOfLoops { unrolled_up_to: steps });
    run_verified(graph, &HoistProducts);
    run_verified(graph, &ProjectTables);
    // Each round sinks a permutation one op further (bounded by the depth
    // of the element-wise chains it crosses).
    for _ in 0..64 {
        if !SinkPermutes.run(graph) {
            break;
        }
    }
    verified(graph, &SinkPermutes);
}

/// Runs `pass` once on `graph`, then [`verified`].
fn run_verified(graph: &mut Graph, pass: &dyn Pass) {
    pass.run(graph);
    verified(graph, pass);
}

/// In debug builds, checks the graph `pass` left.
fn verified(graph: &Graph, pass: &dyn Pass) {
    if cfg!(debug_assertions) {
        crate::ir::verify::assert_valid(graph, pass.name());
    }
}

/// Sums products after loops, unrolls every loop, then runs the pipeline
/// until nothing changes (at most 8 rounds). In debug builds the verifier
/// checks the graph after every pass.
pub fn optimize(graph: &mut Graph) {
    let start = std::time::Instant::now();
    SumProductsAfterLoops.run(graph);
    if let Err(why) = crate::ir::loops::unroll(graph) {
        unreachable!("a verified graph's loops unroll: {why}");
    }
    crate::timing::parts("unroll", &[("loops", start.elapsed())]);
    run_pipeline(graph);
}

/// Loops of at most this many steps run unrolled: their step is faster
/// so (the kernels of every step scheduled as one sequence, products split
/// between threads) and they compile in under 0.1 s. Measured on the char
/// LSTM (`BENCHMARKS.md`, "Loops").
pub const UNROLL_STEPS: usize = 64;

/// [`optimize`] keeping the loops longer than [`UNROLL_STEPS`]: the
/// pipeline runs on the graph and on every loop body (they are graphs of
/// their own; their arguments are leaves).
/// `NNC_UNROLL_STEPS` overrides the bound, for measurement.
pub fn optimize_loops(graph: &mut Graph) {
    optimize_loops_up_to(graph, unroll_bound());
}

/// The loops of at most this many steps [`optimize_loops`] unrolls:
/// [`UNROLL_STEPS`] or `NNC_UNROLL_STEPS`.
pub fn unroll_bound() -> usize {
    let steps = std::env::var("NNC_UNROLL_STEPS").ok().and_then(|s| s.parse().ok());
    steps.unwrap_or(UNROLL_STEPS)
}

/// [`optimize_loops`] unrolling the loops of at most `steps` steps (0 keeps
/// every loop).
pub fn optimize_loops_up_to(graph: &mut Graph, steps: usize) {
    HoistOutOfLoops { unrolled_up_to: steps }.run(graph);
    SumProductsAfterLoops.run(graph);
    if let Err(why) = crate::ir::loops::unroll_up_to(graph, steps) {
        unreachable!("a verified graph's loops unroll: {why}");
    }
    optimize_nested(graph);
}

fn optimize_nested(graph: &mut Graph) {
    run_pipeline(graph);
    let scans: Vec<NodeId> = graph
        .graph
        .node_indices()
        .filter(|&id| matches!(graph.node(id).op, crate::prim::Prim::Scan(_)))
        .collect();
    for id in scans {
        if let crate::prim::Prim::Scan(looped) = &mut graph.node_mut(id).op {
            optimize_nested(&mut std::sync::Arc::make_mut(looped).body);
        }
    }
    if loops::drop_unread_operands(graph) {
        run_pipeline(graph);
    }
}

fn run_pipeline(graph: &mut Graph) {
    let passes = pipeline();
    let mut spent = vec![std::time::Duration::ZERO; passes.len()];
    let mut order = Order::default();
    for _ in 0..8 {
        let mut changed = false;
        for (pass, spent) in passes.iter().zip(&mut spent) {
            let start = std::time::Instant::now();
            if pass.run_in_order(graph, &mut order) {
                order.forget();
                changed = true;
            }
            *spent += start.elapsed();
            verified(graph, pass.as_ref());
        }
        if !changed {
            break;
        }
    }
    let parts: Vec<(&str, std::time::Duration)> = passes.iter().map(|p| p.name()).zip(spent).collect();
    crate::timing::parts("passes", &parts);
}
