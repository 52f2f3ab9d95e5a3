//! The checks that run the checker again over the same files: once per
//! variant of a sweep (each must check), once at a context of one position
//! for the decoder of generation; and the model called alone, outside the
//! loss, for a probe's trace and the decoder's.
//!
//! In: the parsed files, the first pass's [`Program`] and its [`Options`].
//! Out: diagnostics of the variants, [`Program::decode_trace`],
//! [`Program::probe_trace`].

use super::eval::{self, Checker};
use super::items::check_items;
use super::{decode, trace, types, variants, Options, Program};
use crate::diagnostics::{Diagnostic, Span};
use crate::syntax::ast;
use types::Value;

/// Checks the file again with the constants of the sweep's variants
/// ([`super::variants`]); the lists `--set` fixes are not swept.
pub(super) fn check_variants(
    files: &[ast::File],
    user: u32,
    options: &Options,
    program: &mut Program,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let mut sweep = program.sweep.clone();
    sweep
        .axes
        .retain(|axis| !options.overrides.iter().any(|(name, _)| *name == axis.name));
    let (chosen, _) = variants::selection(&sweep);
    let reports = variants::check_all(&chosen, |constants| {
        let mut overrides = options.overrides.clone();
        overrides.extend_from_slice(constants);
        let options = options.again(overrides, false);
        let mut variant = Program::empty(std::mem::take(&mut program.sources));
        let mut found = Vec::new();
        check_items(files, user, &options, &mut variant, &mut found, false);
        program.sources = std::mem::take(&mut variant.sources);
        found
    });
    diagnostics.extend(reports);
}

/// Checks the file again at a context of one position for the decoder
/// ([`super::decode`]); a program that does not check so has no decoder.
pub(super) fn check_decoder(files: &[ast::File], user: u32, options: &Options, program: &mut Program) {
    let Some(context) = decode::context_constant(program, files) else {
        return;
    };
    let mut overrides = vec![(context.clone(), 1.0)];
    overrides.extend(options.overrides.iter().filter(|(name, _)| *name != context).cloned());
    let options = options.again(overrides, true);
    let mut decoder = Program::empty(std::mem::take(&mut program.sources));
    let mut found = Vec::new();
    check_items(files, user, &options, &mut decoder, &mut found, false);
    program.sources = std::mem::take(&mut decoder.sources);
    if !found.iter().any(Diagnostic::is_error) {
        program.decode_trace = decoder.decode_trace.take();
    }
}

/// The model called alone in evaluation mode on inputs `probe.<name>`,
/// recording the output of the first call of `block` as `hidden`.
pub(super) fn probe(
    checker: &mut Checker,
    block: &str,
    model: &str,
    inputs: &[(String, types::TensorType)],
    span: Span,
) -> trace::Trace {
    checker.probe = Some(block.to_string());
    call_model_alone(checker, model, inputs, "probe", span);
    checker.probe = None;
    std::mem::take(&mut checker.trace)
}

/// Calls the model alone in evaluation mode, in a fresh trace, on inputs
/// `<prefix>.<name>`; returns its value (the trace stays in the checker).
pub(super) fn call_model_alone(
    checker: &mut Checker,
    model: &str,
    inputs: &[(String, types::TensorType)],
    prefix: &str,
    span: Span,
) -> Value {
    checker.training = false;
    checker.instantiated_models.clear();
    checker.trace = Default::default();
    let args = inputs
        .iter()
        .map(|(name, ty)| {
            let input = crate::prim::Prim::Input(format!("{prefix}.{name}"));
            let value = checker.tensor_value(input, ty.clone(), &[], span);
            eval::ArgValue {
                name: Some(ast::Ident {
                    name: name.clone(),
                    span,
                }),
                value,
                span,
            }
        })
        .collect();
    let callee = types::Value::Fn(types::Callable::Block(model.to_string()));
    checker.call(callee, span, args, span)
}
