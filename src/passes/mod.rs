//! Graph-to-graph passes over the training step: constant folding,
//! algebraic simplification, common-subexpression elimination and dead-code
//! elimination. Each pass is one file and one value of [`Pass`]; the
//! pipeline is [`optimize`]. Passes run after autodiff, on whole step
//! graphs (so `stop_grad` is the identity by then).

mod cse;
mod dce;
mod fold;
mod simplify;

pub use cse::Cse;
pub use dce::Dce;
pub use fold::ConstantFold;
pub use simplify::Simplify;

use crate::ir::Graph;

pub trait Pass {
    fn name(&self) -> &'static str;
    /// Rewrites the graph; returns whether anything changed.
    fn run(&self, graph: &mut Graph) -> bool;
}

/// The passes in the order they run.
pub fn pipeline() -> Vec<Box<dyn Pass>> {
    vec![Box::new(ConstantFold), Box::new(Simplify), Box::new(Cse), Box::new(Dce)]
}

/// Runs the pipeline until nothing changes (at most 8 rounds). In debug
/// builds the verifier checks the graph after every pass.
pub fn optimize(graph: &mut Graph) {
    for _ in 0..8 {
        let mut changed = false;
        for pass in pipeline() {
            changed |= pass.run(graph);
            if cfg!(debug_assertions) {
                crate::ir::verify::assert_valid(graph, pass.name());
            }
        }
        if !changed {
            break;
        }
    }
}
