//! The decoder: the model at a context of one position, its recurrent state
//! carried from call to call, for generating text one token at a time.
//!
//! In: a checked program whose text dataset's `context:` is a constant and
//! which has a `generate` section. Out: [`Program::decode_trace`], the model
//! alone in evaluation mode with that constant set to 1, on inputs
//! `decode.<input>` and `decode.carry.<k>` (the initial carry of the k-th
//! `scan`), with outputs `model_output` and `carry.<k>` (its carry after the
//! step). Only a model whose positions meet through forward `scan`s alone
//! decodes so: a model without a `scan` (attention reads the whole window)
//! or with a reverse one gets no decoder, and the runtime checks on the
//! prompt that the decoder agrees with the whole-window model before using
//! it.

use super::eval::Checker;
use super::types::{Tensor, TensorType, Value};
use super::{trace, types, Program};
use crate::diagnostics::Span;
use crate::prim::Prim;
use crate::syntax::ast;

/// The decoding pass's carries so far.
#[derive(Clone, Debug, Default)]
pub struct Carries {
    /// Scans seen (each has input `decode.carry.<k>`).
    pub count: usize,
    /// A scan that cannot carry its state from call to call was seen
    /// (reverse, or longer than one step): the model gets no decoder.
    pub blocked: bool,
}

/// The constant the text dataset's `context:` names, when the program
/// generates text: decoding sets it to 1.
pub fn context_constant(program: &Program, files: &[ast::File]) -> Option<String> {
    program.sections.get("generate")?;
    let user = files.first()?;
    let constant = user.items.iter().find_map(|item| match item {
        ast::Item::Data(data) => context_name(&data.source),
        _ => None,
    })?;
    program
        .constants
        .iter()
        .any(|(name, _)| *name == constant)
        .then(|| constant.to_string())
}

/// The name a data source's `context:` argument is, if it is one.
fn context_name(source: &ast::Expr) -> Option<&str> {
    let ast::ExprKind::Call { args, .. } = &source.kind else {
        return None;
    };
    let arg = args
        .iter()
        .find(|arg| arg.name.as_ref().is_some_and(|n| n.name == "context"))?;
    match &arg.value.kind {
        ast::ExprKind::Name(name) => Some(name),
        _ => None,
    }
}

/// In the decoding pass, makes `init` the input `decode.carry.<k>` and
/// returns `k`; elsewhere, or for a scan that cannot carry its state from
/// call to call (reverse, or longer than one step), `None`.
pub(crate) fn carry_in(checker: &mut Checker, init: &mut Tensor, reverse: bool, length: i64) -> Option<usize> {
    let carries = checker.decode.as_mut()?;
    if reverse || length != 1 {
        carries.blocked = true;
        return None;
    }
    let k = carries.count;
    carries.count += 1;
    init.node = checker.emit(Prim::Input(format!("decode.carry.{k}")), &init.ty, &[]);
    Some(k)
}

/// Records the carry after the step of scan `k` (its stacked carries are
/// one step long) as the output `carry.<k>`.
pub(crate) fn carry_out(
    checker: &mut Checker,
    k: Option<usize>,
    init: &Tensor,
    stacked: &Option<(TensorType, Option<usize>)>,
) {
    let (Some(k), Some((_, node))) = (k, stacked) else {
        return;
    };
    if let Some(node) = checker.emit(Prim::Reshape, &init.ty, &[*node]) {
        checker.trace.set_output(&format!("carry.{k}"), node);
    }
}

/// The model called alone in evaluation mode at a context of 1, on inputs
/// `decode.<name>`; `None` when it has no scan or cannot carry its state.
pub(crate) fn trace(
    checker: &mut Checker,
    model: &str,
    inputs: &[(String, types::TensorType)],
    span: Span,
) -> Option<trace::Trace> {
    checker.decode = Some(Carries::default());
    let output = super::again::call_model_alone(checker, model, inputs, "decode", span);
    let carries = checker.decode.take()?;
    let trace = std::mem::take(&mut checker.trace);
    let usable = matches!(output, Value::Tensor(_))
        && carries.count > 0
        && !carries.blocked
        && trace.outputs.iter().any(|(name, _)| name == "model_output");
    usable.then_some(trace)
}
