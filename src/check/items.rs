//! Item checking: the items of one parsed file, each kind in its turn.
//!
//! In: the parsed files (the user's first, then the standard library's),
//! the [`Options`] (constants set by `--set`, the data directory, what to
//! trace besides the loss) and a [`Program`] with only its sources. Out: the
//! program's constants, datasets, model, parameters, states, optimizer,
//! schedule, sections, sweep and traces filled in where they check, and the
//! diagnostics of what does not.
//!
//! The order is fixed, each kind reading what the ones before it made:
//! blocks; constants, dimensions and data, in the file's order; the loss,
//! in a training and an evaluation pass (with the probe and the decoder);
//! the blocks nothing called; the optimizer and schedule; the sections
//! (`sweep` after `eval`, whose metrics it ranks by); what `generate` and
//! `analyze` ask of the model; the size of the parameters and states
//! together.

use std::collections::HashMap;

use super::eval::Checker;
use super::scope::{Binding, BindingKind, Scope};
use super::types::{self, Value};
use super::{
    again, config, data, data_file, decode, dims, generation, group_thousands, hessian, observe, schemas, sweep, trace,
    ModelInfo, Options, Program,
};
use crate::diagnostics::{codes, Diagnostic, Span};
use crate::syntax::ast::{self, BlockKind, Item, SectionKind};

/// Checks the items of `files` (the user's file, id `user`, first) into
/// `program`, adding to `diagnostics`; with `observe`, also the value
/// computed at each span of the user's file.
pub(super) fn check_items(
    files: &[ast::File],
    user: u32,
    options: &Options,
    program: &mut Program,
    diagnostics: &mut Vec<Diagnostic>,
    observe: bool,
) -> Option<observe::Observations> {
    let user_file = &files[0];
    let file_start = Span::new(user, 0, 0);
    let Blocks {
        all,
        user_blocks,
        model,
    } = collect_blocks(files, diagnostics);

    let mut checker = Checker::new(user, all);
    if observe {
        checker.observed = Some(Vec::new());
    }
    // Names of items that did not parse are known but poisoned, so their
    // uses do not add errors to the syntax error.
    let broken = |keyword: &str| user_file.broken.iter().any(|b| b.keyword == keyword);
    for item in &user_file.broken {
        if let Some(name) = &item.name {
            checker.poisoned.insert(name.clone());
        }
    }

    declare_globals(&mut checker, user_file, options, program);

    // The loss, in a training pass and an evaluation pass.
    let loss = the_loss(&mut checker, user_file);
    if model.is_none() && !broken("model") {
        checker.report(
            Diagnostic::error(codes::MISSING_MODEL, "the program has no `model`", file_start)
                .label("expected `model name(inputs) -> type { ... }`")
                .with_help("the model is the block whose parameters are trained"),
        );
    }
    match loss {
        None if broken("loss") => {}
        None => checker.report(
            Diagnostic::error(codes::MISSING_LOSS, "the program has no `loss`", file_start)
                .label("expected a `loss` declaration")
                .with_help("e.g. `loss cross_entropy(model(data.x), data.y)`"),
        ),
        Some(loss) => check_loss(&mut checker, loss, model, options, program),
    }
    resolve_uncalled(&mut checker, &user_blocks);
    if let Some((name, inputs, output)) = checker.model_signature.take() {
        program.model = Some(ModelInfo { name, inputs, output });
    }

    check_optimizer(&mut checker, user_file, program, broken("optimizer"), file_start);
    check_sections(&mut checker, user_file, program, user, broken("train"), file_start);
    check_generation(&mut checker, diagnostics, user_file, program, model);
    check_analysis(&mut checker, user_file, program);
    check_total_size(&mut checker, model);

    program.datasets = std::mem::take(&mut checker.datasets);
    program.params = std::mem::take(&mut checker.params);
    program.states = std::mem::take(&mut checker.states);
    diagnostics.append(&mut checker.diagnostics);
    checker.observed.take()
}

/// The blocks a program can call, by name.
struct Blocks<'a> {
    /// The standard library's, then the user's (which may shadow them).
    all: HashMap<String, &'a ast::BlockDecl>,
    /// The user's alone.
    user_blocks: HashMap<&'a str, &'a ast::BlockDecl>,
    /// The user's first `model`.
    model: Option<&'a ast::BlockDecl>,
}

/// Gathers the blocks of `files`, reporting a name the user's file defines
/// twice and a second `model` (whose blocks are left out).
fn collect_blocks<'a>(files: &'a [ast::File], diagnostics: &mut Vec<Diagnostic>) -> Blocks<'a> {
    let mut blocks: HashMap<String, &ast::BlockDecl> = HashMap::new();
    for file in files.iter().skip(1) {
        for item in &file.items {
            if let Item::Block(block) = item {
                blocks.insert(block.name.name.clone(), block);
            }
        }
    }
    let mut user_blocks: HashMap<&str, &ast::BlockDecl> = HashMap::new();
    let mut model: Option<&ast::BlockDecl> = None;
    for item in &files[0].items {
        let Item::Block(block) = item else { continue };
        if let Some(previous) = user_blocks.insert(&block.name.name, block) {
            diagnostics.push(
                Diagnostic::error(
                    codes::DUPLICATE_NAME,
                    format!("`{}` is defined twice", block.name.name),
                    block.name.span,
                )
                .label("defined again here")
                .with_secondary(previous.name.span, "first defined here"),
            );
            continue;
        }
        if block.kind == BlockKind::Model {
            if let Some(first) = model {
                diagnostics.push(
                    Diagnostic::error(codes::DUPLICATE_ITEM, "a program has one `model`", block.name.span)
                        .label("second model")
                        .with_secondary(first.name.span, "the model is declared here")
                        .with_help("declare the others with `block` and call them from the model"),
                );
                continue;
            }
            model = Some(block);
        }
        blocks.insert(block.name.name.clone(), block);
    }
    Blocks {
        all: blocks,
        user_blocks,
        model,
    }
}

/// Constants, dimensions and data, in order: each a global name of the
/// user's file; the constants also in [`Program::constants`].
fn declare_globals(checker: &mut Checker, user_file: &ast::File, options: &Options, program: &mut Program) {
    let mut globals = Scope::new();
    for item in &user_file.items {
        match item {
            Item::Const(decl) => {
                let value = constant_value(checker, decl, options, &mut globals);
                define_global(checker, &decl.name, value.clone(), BindingKind::Let);
                program.constants.push((decl.name.name.clone(), value));
            }
            Item::Dim(decl) => {
                for name in &decl.names {
                    define_global(
                        checker,
                        name,
                        Value::Int(dims::Dim::symbol(&name.name)),
                        BindingKind::ShapeVar,
                    );
                }
            }
            Item::Data(decl) => {
                if let Some(dataset) = data::declare(checker, decl, options.base_dir.as_deref(), &mut globals) {
                    checker.datasets.push(dataset);
                    let index = checker.datasets.len() - 1;
                    define_global(checker, &decl.name, Value::Data(index), BindingKind::Let);
                } else {
                    define_global(checker, &decl.name, Value::Error, BindingKind::Let);
                }
            }
            _ => {}
        }
    }
}

/// A constant's value: its declaration's, or the one `--set` gives it; a
/// value that is not a number, a boolean or a string is reported.
fn constant_value(checker: &mut Checker, decl: &ast::ConstDecl, options: &Options, globals: &mut Scope) -> Value {
    let name = &decl.name.name;
    let mut value = checker.eval(&decl.value, globals);
    // The last `--set` of a name wins, as with any repeated flag.
    if let Some((_, x)) = options.overrides.iter().rfind(|(n, _)| n == name) {
        value = match value {
            Value::Int(_) if x.fract() == 0.0 => match whole_number(*x) {
                Some(n) => Value::Int(dims::Dim::constant(n)),
                None => checker.error(
                    Diagnostic::error(
                        codes::BAD_VALUE,
                        format!("`--set {name}={x:e}` is out of range for the integer constant `{name}`"),
                        decl.name.span,
                    )
                    .label(format!("an integer constant, given {x:e} by `--set`"))
                    .with_help(format!(
                        "an integer constant is between {} and {}",
                        group_thousands(i64::MIN),
                        group_thousands(i64::MAX)
                    )),
                ),
            },
            Value::Bool(_) => Value::Bool(*x != 0.0),
            _ => Value::Float(*x),
        };
    }
    match &value {
        Value::Int(_) | Value::Float(_) | Value::Bool(_) | Value::Str(_) | Value::Error => {}
        other => {
            checker.report(
                Diagnostic::error(
                    codes::WRONG_KIND,
                    format!(
                        "a constant is a number, a boolean or a string, found {}",
                        other.kind_name()
                    ),
                    decl.value.span,
                )
                .label("not a constant value"),
            );
        }
    }
    value
}

/// The first `loss`, reporting any other.
fn the_loss<'a>(checker: &mut Checker, user_file: &'a ast::File) -> Option<&'a ast::LossDecl> {
    let losses = user_file.items.iter().filter_map(|i| match i {
        Item::Loss(l) => Some((l, l.span)),
        _ => None,
    });
    let help = "add terms to combine losses: `loss mse(a, b) + 0.1 * mae(a, b)`";
    the_only(checker, losses, "loss", Some(help))
}

/// The first of the items of a kind a program has one of (`loss`,
/// `optimizer`), reporting each other one as a duplicate of it.
fn the_only<'a, T>(
    checker: &mut Checker,
    items: impl Iterator<Item = (&'a T, Span)>,
    kind: &str,
    help: Option<&str>,
) -> Option<&'a T> {
    let mut first: Option<(&'a T, Span)> = None;
    for (item, span) in items {
        let Some((_, first_span)) = first else {
            first = Some((item, span));
            continue;
        };
        let mut duplicate = Diagnostic::error(codes::DUPLICATE_ITEM, format!("a program has one `{kind}`"), span)
            .label(format!("second {kind}"))
            .with_secondary(first_span, format!("the {kind} is declared here"));
        if let Some(help) = help {
            duplicate = duplicate.with_help(help);
        }
        checker.report(duplicate);
    }
    first.map(|(item, _)| item)
}

/// The loss in a training pass ([`Program::train_trace`], the model's
/// parameters and states, the data it picks) and an evaluation pass
/// ([`Program::eval_trace`]), then the probe and the decoder if asked for.
fn check_loss(
    checker: &mut Checker,
    loss: &ast::LossDecl,
    model: Option<&ast::BlockDecl>,
    options: &Options,
    program: &mut Program,
) {
    checker.training = true;
    checker.trace = Default::default();
    let value = checker.eval(&loss.value, &mut Scope::new());
    check_loss_value(checker, &value, loss);
    program.train_trace = finish_trace(checker, &value);
    let datasets = std::mem::take(&mut checker.datasets);
    let base_dir = options.base_dir.as_deref();
    data_file::check_picks(checker, &program.train_trace, &datasets, base_dir, loss.span);
    checker.datasets = datasets;
    if let Some(model) = model {
        if !checker.instantiated_models.contains(&model.name.name) && !matches!(value, Value::Error) {
            checker.report(
                Diagnostic::error(
                    codes::MISSING_MODEL,
                    format!("the loss does not use the model `{}`", model.name.name),
                    loss.value.span,
                )
                .label("the model is not called here")
                .with_secondary(model.name.span, "the model"),
            );
        }
    }
    let params = std::mem::take(&mut checker.params);
    let states = std::mem::take(&mut checker.states);
    let signature = checker.model_signature.take();
    checker.training = false;
    checker.instantiated_models.clear();
    checker.trace = Default::default();
    let value = checker.eval(&loss.value, &mut Scope::new());
    program.eval_trace = finish_trace(checker, &value);
    if let (Some(block), Some((name, inputs, _))) = (&options.probe, &signature) {
        program.probe_trace = Some(again::probe(checker, block, name, inputs, loss.span));
    }
    if let (true, Some((name, inputs, _))) = (options.decode, &signature) {
        program.decode_trace = decode::trace(checker, name, inputs, loss.span);
    }
    checker.params = params;
    checker.states = states;
    checker.model_signature = signature;
}

/// Blocks of the user's file that nothing called: their names, at least,
/// in the file's order.
fn resolve_uncalled(checker: &mut Checker, user_blocks: &HashMap<&str, &ast::BlockDecl>) {
    let mut uncalled: Vec<&ast::BlockDecl> = user_blocks
        .values()
        .copied()
        .filter(|b| !checker.called.contains(&b.name.name))
        .collect();
    uncalled.sort_by_key(|b| b.span.start);
    for block in uncalled {
        checker.resolve_uncalled(block);
    }
}

/// The optimizer and its schedule ([`Program::optimizer`],
/// [`Program::schedule`]).
fn check_optimizer(
    checker: &mut Checker,
    user_file: &ast::File,
    program: &mut Program,
    broken: bool,
    file_start: Span,
) {
    let optimizers = user_file.items.iter().filter_map(|i| match i {
        Item::Optimizer(o) => Some((o, o.span)),
        _ => None,
    });
    match the_only(checker, optimizers, "optimizer", None) {
        None if broken => {}
        None => checker.report(
            Diagnostic::error(codes::MISSING_OPTIMIZER, "the program has no `optimizer`", file_start)
                .label("expected an `optimizer` declaration")
                .with_help("e.g. `optimizer adam(lr: 1e-3)`"),
        ),
        Some(decl) => {
            program.optimizer = config::checked_call(checker, &decl.value, schemas::OPTIMIZERS, "optimizer");
            for (i, part) in decl.schedule.iter().enumerate() {
                if let Some((config, _)) = config::checked_schedule(checker, part, i) {
                    program.schedule.push(config);
                }
            }
        }
    }
}

/// The sections, each validated against its schema
/// ([`Program::sections`]), then the sweep ([`Program::sweep`]); a program
/// needs a `train` section unless the one it has did not parse (`broken`).
fn check_sections(
    checker: &mut Checker,
    user_file: &ast::File,
    program: &mut Program,
    user: u32,
    broken: bool,
    file_start: Span,
) {
    let mut seen: HashMap<SectionKind, Span> = HashMap::new();
    let mut sweep_section = None;
    for item in &user_file.items {
        let Item::Section(section) = item else {
            continue;
        };
        if let Some(first) = seen.insert(section.kind, section.span) {
            checker.report(
                Diagnostic::error(
                    codes::DUPLICATE_ITEM,
                    format!("`{}` is given twice", section.kind.name()),
                    section.kind_span,
                )
                .label("second section")
                .with_secondary(first, "first given here")
                .with_help("merge the settings into one section"),
            );
            continue;
        }
        if section.kind == SectionKind::Sweep {
            // Checked after `eval`, whose metrics it may rank by.
            sweep_section = Some(section);
            continue;
        }
        let Some(schema) = schemas::SECTIONS.iter().find(|s| s.name == section.kind.name()) else {
            continue;
        };
        let args: Vec<config::RawArg> = section
            .settings
            .iter()
            .map(|s| config::RawArg {
                name: Some((s.name.name.as_str(), s.name.span)),
                value: &s.value,
            })
            .collect();
        if let Some(config) = config::validate(checker, schema, &args, section.span, &mut Scope::new()) {
            if section.kind == SectionKind::Train {
                check_training_length(checker, section, &config);
            }
            program.sections.insert(section.kind.name().to_string(), config);
        }
    }
    if let Some(section) = sweep_section {
        let metrics = program
            .sections
            .get("eval")
            .map(|e| e.words("metrics").to_vec())
            .unwrap_or_default();
        let text = program.sources.text(user).to_string();
        program.sweep = sweep::check(checker, section, &program.constants, &metrics, &text);
    }
    if !seen.contains_key(&SectionKind::Train) && !broken {
        checker.report(
            Diagnostic::error(codes::MISSING_SETTING, "the program has no `train` section", file_start)
                .label("expected `train { steps: ..., batch: ... }`"),
        );
    }
}

/// A `train` section says how long to train: `steps` or `epochs`, one of them.
fn check_training_length(checker: &mut Checker, section: &ast::Section, config: &config::Config) {
    match (config.int("steps"), config.int("epochs")) {
        (None, None) => checker.report(
            Diagnostic::error(
                codes::MISSING_SETTING,
                "`train` needs `steps` or `epochs`",
                section.kind_span,
            )
            .label("how long to train?")
            .with_help("e.g. `train { steps: 1000, batch: 32 }`"),
        ),
        (Some(_), Some(_)) => checker.report(
            Diagnostic::error(
                codes::BAD_VALUE,
                "`train` takes `steps` or `epochs`, not both",
                section.kind_span,
            )
            .label("both given"),
        ),
        _ => {}
    }
}

/// A `generate` section asks for generation the model must fit, from a
/// split of the data the model reads; looked at only in a program without
/// errors so far (`diagnostics` and the checker's own).
fn check_generation(
    checker: &mut Checker,
    diagnostics: &[Diagnostic],
    user_file: &ast::File,
    program: &Program,
    model: Option<&ast::BlockDecl>,
) {
    let generate = user_file.items.iter().find_map(|item| match item {
        Item::Section(section) if section.kind == SectionKind::Generate => Some(section),
        _ => None,
    });
    let clean = !diagnostics.iter().chain(&checker.diagnostics).any(Diagnostic::is_error);
    let (Some(section), true) = (generate, clean) else {
        return;
    };
    if let Err(why) = generation::fit(&checker.datasets, &program.eval_trace) {
        let mut diagnostic = Diagnostic::error(
            codes::CANNOT_GENERATE,
            "the model does not fit the generation asked for",
            section.kind_span,
        )
        .label(why)
        .with_help("remove the `generate` section, or give the model the inputs and output generation needs");
        if let Some(model) = model {
            diagnostic = diagnostic.with_secondary(model.name.span, "the model");
        }
        checker.report(diagnostic);
    }
    // `from:` picks a split of the data the model reads.
    let from = program
        .sections
        .get("generate")
        .and_then(|g| match g.values.get("from") {
            Some(config::ConfigValue::Split(index, _)) => Some(*index),
            _ => None,
        });
    if let (Some(index), Some(first)) = (from.filter(|&i| i != 0), checker.datasets.first()) {
        let setting = section.settings.iter().find(|s| s.name.name == "from");
        let named = checker.datasets.get(index).map_or("?", |d| d.name.as_str());
        checker.report(
            Diagnostic::error(
                codes::CANNOT_GENERATE,
                format!("`from:` names `{named}`, but the model reads `{}`", first.name),
                setting.map_or(section.kind_span, |s| s.span),
            )
            .label("not the model's data")
            .with_help(format!("decode `{0}.val` (the default) or `{0}.train`", first.name)),
        );
    }
}

/// The Hessian analysis asks things of the model's size.
fn check_analysis(checker: &mut Checker, user_file: &ast::File, program: &Program) {
    let analyze = user_file.items.iter().find_map(|item| match item {
        Item::Section(section) if section.kind == SectionKind::Analyze => Some(section),
        _ => None,
    });
    if let (Some(section), Some(config)) = (analyze, program.sections.get("analyze")) {
        let parameters = checker
            .params
            .iter()
            .filter_map(|p| p.ty.num_elements())
            .fold(0i64, i64::saturating_add);
        for diagnostic in hessian::check(section, config, parameters) {
            checker.report(diagnostic);
        }
    }
}

/// Each tensor fits (`eval` and `param` check it); together the model's
/// parameters and states must too.
fn check_total_size(checker: &mut Checker, model: Option<&ast::BlockDecl>) {
    let tensors = checker.params.iter().chain(&checker.states).map(|p| &p.ty);
    if let (Some(model), None) = (model, types::TensorType::total_elements(tensors)) {
        let largest = checker
            .params
            .iter()
            .chain(&checker.states)
            .max_by_key(|p| p.ty.num_elements().unwrap_or(i64::MAX));
        let mut diagnostic = Diagnostic::error(
            codes::TOO_LARGE,
            "the model's parameters and states would be too large together",
            model.name.span,
        )
        .label(format!("more than {} elements", group_thousands(types::MAX_ELEMENTS)))
        .with_help("check the constants and arguments that give the sizes");
        if let Some(largest) = largest {
            diagnostic =
                diagnostic.with_secondary(largest.span, format!("the largest, `{}`: {}", largest.path, largest.ty));
        }
        checker.report(diagnostic);
    }
}

/// `x` as an `i64` if it is a whole number in the range (not saturated, as
/// `as` would).
fn whole_number(x: f64) -> Option<i64> {
    // -2^63 and 2^63 are exact in f64; the range is [-2^63, 2^63).
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (x.fract() == 0.0 && (-LIMIT..LIMIT).contains(&x)).then_some(x as i64)
}

/// Takes the pass's trace, naming the loss as an output.
fn finish_trace(checker: &mut Checker, loss: &Value) -> trace::Trace {
    let mut trace = std::mem::take(&mut checker.trace);
    if let Value::Tensor(types::Tensor { node: Some(node), .. }) = loss {
        trace.set_output("loss", *node);
    }
    trace
}

fn define_global(checker: &mut Checker, name: &ast::Ident, value: Value, kind: BindingKind) {
    checker.observe(name.span, &value);
    if let Some(previous) = checker.globals.get(&name.name) {
        let previous = previous.span;
        checker.report(
            Diagnostic::error(
                codes::DUPLICATE_NAME,
                format!("`{}` is defined twice", name.name),
                name.span,
            )
            .label("defined again here")
            .with_secondary(previous, "first defined here"),
        );
        return;
    }
    checker.globals.insert(
        name.name.clone(),
        Binding {
            value,
            span: name.span,
            kind,
        },
    );
}

fn check_loss_value(checker: &mut Checker, value: &Value, loss: &ast::LossDecl) {
    match value {
        Value::Error => {}
        Value::Tensor(t) if t.ty.dtype.is_float() && t.ty.rank() == 0 => {}
        Value::Tensor(t) => checker.report(
            Diagnostic::error(
                codes::LOSS_NOT_SCALAR,
                format!("the loss must be a scalar f32[], found {}", t.ty),
                loss.value.span,
            )
            .label(format!("this is {}", t.ty))
            .with_help("reduce it, e.g. with `mean(...)`"),
        ),
        other => checker.report(
            Diagnostic::error(
                codes::LOSS_NOT_SCALAR,
                format!("the loss must be a scalar tensor, found {}", other.kind_name()),
                loss.value.span,
            )
            .label("not a tensor"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_in_range_only() {
        assert_eq!(whole_number(3.0), Some(3));
        assert_eq!(whole_number(i64::MIN as f64), Some(i64::MIN));
        assert_eq!(whole_number(-(i64::MIN as f64)), None);
        assert_eq!(whole_number(1e30), None);
        assert_eq!(whole_number(2.5), None);
    }
}
