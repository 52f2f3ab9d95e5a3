//! Whether the model fits the generation the runtime can do after training.
//! In: the program's datasets and its evaluation trace. Out: the kind of
//! generation (text continuation or sequence decoding), or a sentence saying
//! why the model does not fit.
//!
//! Text continuation (a `text` dataset) feeds the model windows of
//! `x: i32[B, context]` and reads the scores at the last position, so the
//! model must read only `x` and give `f32[B, context, V]`. Sequence decoding
//! (a `copy`, `reverse`, `sort` or `add` task) feeds `src` and the target
//! decoded so far as `tgt_in`, and reads the scores at each target position,
//! so the model must read only `src` and `tgt_in` and give
//! `f32[B, L, V]` over the target's `L` positions. A model that does not fit
//! (a per-token tagger of the source, a classifier) gets no generation; a
//! `generate` section that asks for it is an error at check time.

use std::collections::BTreeSet;

use super::data::Dataset;
use super::dims::Dim;
use super::trace::Trace;
use super::types::TensorType;
use crate::prim::Prim;

/// What the runtime generates with the first dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generation {
    /// Continue a prompt with a text model.
    Text,
    /// Decode the targets of a sequence task, token by token.
    Decode,
}

/// The synthetic sequence tasks, whose examples are (source, target) pairs.
const SEQUENCE_TASKS: &[&str] = &["copy", "reverse", "sort", "add", "replies"];

/// Whether the model of `eval_trace` fits the generation the first dataset
/// calls for; `Err` says why not.
pub fn fit(datasets: &[Dataset], eval_trace: &Trace) -> Result<Generation, String> {
    let Some(data) = datasets.first() else {
        return Err("generation needs a dataset".to_string());
    };
    let name = &data.name;
    let (kind, feeds, positions) = match data.source.name.as_str() {
        "text" => (Generation::Text, vec!["x"], data.field("x")),
        task if SEQUENCE_TASKS.contains(&task) => (Generation::Decode, vec!["src", "tgt_in"], data.field("tgt_out")),
        other => {
            return Err(format!(
                "generation needs a `text` dataset or a sequence task (copy, reverse, sort, add, replies), but `{name}` is `{other}`"
            ))
        }
    };
    let Some(&(_, output)) = eval_trace.outputs.iter().find(|(n, _)| n == "model_output") else {
        return Err("the model's output is not known".to_string());
    };
    let node = &eval_trace.nodes[output];
    let ty = TensorType::new(node.dtype, node.shape.clone());
    let length = positions
        .and_then(|t| t.shape.get(1))
        .cloned()
        .unwrap_or(Dim::constant(0));
    let fits_shape = node.dtype.is_float()
        && node.shape.len() == 3
        && node.shape[1] == length
        && node.shape[2].as_const().is_some_and(|v| v >= 1);
    if !fits_shape {
        let what = match kind {
            Generation::Text => "continuing text reads the scores of the next character at each of the",
            Generation::Decode => "decoding reads the scores of the next token at each of the",
        };
        return Err(format!(
            "the model gives {ty}, but {what} {length} positions: it must give f32[B, {length}, V]"
        ));
    }
    let allowed: Vec<String> = feeds.iter().map(|f| format!("{name}.{f}")).collect();
    let extra: Vec<String> = inputs_of(eval_trace, output)
        .into_iter()
        .filter(|input| !allowed.contains(input))
        .collect();
    if let Some(first) = extra.first() {
        let fed = allowed
            .iter()
            .map(|a| format!("`{a}`"))
            .collect::<Vec<_>>()
            .join(" and ");
        return Err(format!("the model reads `{first}`, but generation feeds it only {fed}"));
    }
    Ok(kind)
}

/// Whether the model's output in `eval_trace` depends on input `name`
/// (`pairs.tgt_in`: false for a non-autoregressive decoder).
pub fn reads(eval_trace: &Trace, name: &str) -> bool {
    eval_trace
        .outputs
        .iter()
        .find(|(n, _)| n == "model_output")
        .is_some_and(|&(_, output)| inputs_of(eval_trace, output).contains(name))
}

/// The names of the inputs `node` depends on.
fn inputs_of(trace: &Trace, node: usize) -> BTreeSet<String> {
    let mut seen = vec![false; trace.nodes.len()];
    let mut stack = vec![node];
    let mut inputs = BTreeSet::new();
    while let Some(id) = stack.pop() {
        if std::mem::replace(&mut seen[id], true) {
            continue;
        }
        if let Prim::Input(name) = &trace.nodes[id].op {
            inputs.insert(name.clone());
        }
        stack.extend(trace.nodes[id].inputs.iter().copied());
    }
    inputs
}
