//! Checking: a parsed `.nn` file (plus the standard library) in, a
//! [`Program`] out — every name resolved, every call's arguments matched,
//! every tensor's dtype and symbolic shape inferred, the settings validated —
//! or diagnostics saying what is wrong and where.
//!
//! The checker elaborates: each block call is evaluated with its own
//! arguments, so shapes are exact (`f32[B, 64]`) and every parameter of the
//! model gets a path (`gpt.gpt_layer_1.attention.linear.w`). It runs the loss
//! twice, with `training` true and false, so both branches of a
//! train/eval conditional are checked.

mod again;
pub mod builtins;
pub mod config;
pub mod data;
mod data_file;
pub mod decode;
pub mod dims;
mod emit;
pub mod eval;
pub mod generation;
mod hessian;
pub mod observe;
pub mod ops;
mod resolve;
pub mod schemas;
pub mod scope;
pub mod sweep;
pub mod trace;
pub mod types;
pub mod variants;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub use data::Dataset;
use eval::Checker;
use scope::{Binding, BindingKind, Scope};
use types::{Initializer, TensorType, Value};

use crate::diagnostics::{codes, Diagnostic, SourceMap, Span};
use crate::syntax::ast::{self, BlockKind, Item, SectionKind};

/// A learnable parameter or a state tensor of the model.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// Dotted instance path, e.g. `mlp_classifier.linear.w`.
    pub path: String,
    pub ty: TensorType,
    pub init: Initializer,
    pub span: Span,
}

/// The model's interface, from its call in the loss.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    pub name: String,
    pub inputs: Vec<(String, TensorType)>,
    pub output: TensorType,
}

/// What the checker knows about a program. Fields are `None`/empty where the
/// program had errors; `diagnostics` says which.
pub struct Program {
    pub sources: SourceMap,
    /// The user's file (index 0) and the standard-library files.
    pub files: Vec<ast::File>,
    pub constants: Vec<(String, Value)>,
    pub datasets: Vec<Dataset>,
    pub model: Option<ModelInfo>,
    pub params: Vec<ParamInfo>,
    pub states: Vec<ParamInfo>,
    pub optimizer: Option<config::Config>,
    pub schedule: Vec<config::Config>,
    /// Validated sections by name (`train`, `eval`, `generate`, `analyze`).
    pub sections: BTreeMap<String, config::Config>,
    /// `sweep { name: [values], rank_by: metric }`: what to vary (constants,
    /// training settings, optimizers, schedules) and how to rank the variants.
    pub sweep: sweep::Sweep,
    /// The loss as primitive ops, with `training` true: outputs `loss`,
    /// `model_output` and `update <state>` for each state.
    pub train_trace: trace::Trace,
    /// The same with `training` false (evaluation).
    pub eval_trace: trace::Trace,
    /// With [`Options::probe`]: the model alone in evaluation mode, on
    /// inputs `probe.<input>`, with outputs `model_output` and `hidden`
    /// (the probed block's output at its first call), for `nnc embeddings`.
    pub probe_trace: Option<trace::Trace>,
    /// The model at a context of one position with its recurrent state
    /// carried in and out, for generating text a token at a time
    /// ([`decode`]); `None` when the model cannot run so.
    pub decode_trace: Option<trace::Trace>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Program {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn user_file(&self) -> &ast::File {
        &self.files[0]
    }

    /// The parameters' elements together (saturating; the checker rejects
    /// a program whose parameters and states exceed
    /// [`types::MAX_ELEMENTS`]).
    pub fn param_count(&self) -> i64 {
        self.params
            .iter()
            .filter_map(|p| p.ty.num_elements())
            .fold(0i64, i64::saturating_add)
    }

    /// One line about a well-formed program, for `nnc check`.
    pub fn summary(&self) -> String {
        let mut text = String::new();
        if let Some(model) = &self.model {
            let inputs: Vec<String> = model.inputs.iter().map(|(n, t)| format!("{n}: {t}")).collect();
            text.push_str(&format!(
                "model {}({}) -> {}",
                model.name,
                inputs.join(", "),
                model.output
            ));
        }
        let count = self.param_count();
        text.push_str(&format!(
            ", {} parameter{} in {} tensor{}",
            group_thousands(count),
            if count == 1 { "" } else { "s" },
            self.params.len(),
            if self.params.len() == 1 { "" } else { "s" }
        ));
        if !self.states.is_empty() {
            text.push_str(&format!(
                ", {} state tensor{}",
                self.states.len(),
                if self.states.len() == 1 { "" } else { "s" }
            ));
        }
        text
    }
}

pub fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Where the program lives, for resolving data paths. Without a directory,
/// data files are not looked at.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub base_dir: Option<PathBuf>,
    /// `--set NAME=VALUE` overrides of constants, applied at their declaration.
    pub overrides: Vec<(String, f64)>,
    /// A block whose output to record when the model runs alone
    /// ([`Program::probe_trace`]).
    pub probe: Option<String>,
    /// Trace the decoder as well ([`Program::decode_trace`]): set in the
    /// second check that makes the decoder.
    pub decode: bool,
    /// Check the file a second time for the decoder of generation (a text
    /// model with a `generate` section; [`Program::decode_trace`]). Runs
    /// ask for it ([`check_file_with`]); an editor's check of every edit
    /// does not.
    pub decoder: bool,
}

impl Options {
    /// The options of a second check of the same files (a sweep's variant,
    /// the decoder): the same directory, `overrides` for the constants, no
    /// probe, the decoder traced if `decode`.
    fn again(&self, overrides: Vec<(String, f64)>, decode: bool) -> Options {
        Options {
            base_dir: self.base_dir.clone(),
            overrides,
            probe: None,
            decode,
            decoder: false,
        }
    }
}

/// Reads and checks a file. A missing or unreadable file is an `Err` with a
/// message naming the path.
pub fn check_file(path: &Path) -> Result<Program, String> {
    check_file_with(path, Vec::new())
}

/// [`check_file`] with `--set NAME=VALUE` overrides of constants.
pub fn check_file_with(path: &Path, overrides: Vec<(String, f64)>) -> Result<Program, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let options = Options {
        base_dir: Some(path.parent().map(Path::to_path_buf).unwrap_or_default()),
        overrides,
        probe: None,
        decode: false,
        decoder: true,
    };
    Ok(check_source(&path.display().to_string(), &text, &options))
}

/// Checks source text named `name`. Never panics on any input. Runs on a
/// thread with a large stack, since elaboration recurses with the program's
/// nesting (which the parser and the evaluator also bound).
pub fn check_source(name: &str, text: &str, options: &Options) -> Program {
    check_source_observing(name, text, options, false).0
}

/// [`check_source`] that also records the value the checker computed at
/// each span of the user's file ([`observe`], for editors).
pub fn check_source_observed(name: &str, text: &str, options: &Options) -> (Program, observe::Observations) {
    let (program, observed) = check_source_observing(name, text, options, true);
    (program, observed.unwrap_or_default())
}

fn check_source_observing(
    name: &str,
    text: &str,
    options: &Options,
    observe: bool,
) -> (Program, Option<observe::Observations>) {
    crate::syntax::on_deep_stack("nnc-check", || check_source_here(name, text, options, observe))
}

fn check_source_here(
    name: &str,
    text: &str,
    options: &Options,
    observe: bool,
) -> (Program, Option<observe::Observations>) {
    let mut sources = SourceMap::new();
    let user = sources.add(name, text);
    let mut files = Vec::new();
    let mut diagnostics = Vec::new();
    let (file, mut syntax) = crate::syntax::parse(user, text);
    files.push(file);
    diagnostics.append(&mut syntax);
    for (std_name, std_text) in crate::stdlib::FILES {
        let id = sources.add(*std_name, *std_text);
        let (file, mut syntax) = crate::syntax::parse(id, std_text);
        files.push(file);
        diagnostics.append(&mut syntax);
    }
    let mut program = Program::empty(sources);
    let start = std::time::Instant::now();
    let observed = check_items(&files, user, options, &mut program, &mut diagnostics, observe);
    let start = crate::timing::stage("check", start);
    if !diagnostics.iter().any(Diagnostic::is_error) {
        again::check_variants(&files, user, options, &mut program, &mut diagnostics);
        let start = crate::timing::stage("check the sweep's variants", start);
        if options.decoder {
            again::check_decoder(&files, user, options, &mut program);
            crate::timing::stage("check the decoder", start);
        }
    }
    program.files = files;
    program.diagnostics = diagnostics;
    (program, observed)
}

/// The syntax trees are dropped on a thread with a deep stack, as they were
/// made: dropping recurses as deep as the longest expression, deeper than
/// the main thread's stack allows.
impl Drop for Program {
    fn drop(&mut self) {
        let files = std::mem::take(&mut self.files);
        if !files.is_empty() {
            crate::syntax::on_deep_stack("nnc-drop", move || drop(files));
        }
    }
}

impl Program {
    /// A program of `sources` with nothing checked yet.
    fn empty(sources: SourceMap) -> Program {
        Program {
            sources,
            files: Vec::new(),
            constants: Vec::new(),
            datasets: Vec::new(),
            model: None,
            params: Vec::new(),
            states: Vec::new(),
            optimizer: None,
            schedule: Vec::new(),
            sections: BTreeMap::new(),
            sweep: Default::default(),
            train_trace: Default::default(),
            eval_trace: Default::default(),
            probe_trace: None,
            decode_trace: None,
            diagnostics: Vec::new(),
        }
    }
}

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
    // Blocks: the standard library, then the user's (which may shadow it).
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
    for item in &user_file.items {
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

    let mut checker = Checker::new(user, blocks);
    if observe {
        checker.observed = Some(Vec::new());
    }
    let mut globals = Scope::new();
    // Names of items that did not parse are known but poisoned, so their
    // uses do not add errors to the syntax error.
    let broken = |keyword: &str| user_file.broken.iter().any(|b| b.keyword == keyword);
    for item in &user_file.broken {
        if let Some(name) = &item.name {
            checker.poisoned.insert(name.clone());
        }
    }

    // Constants, dimensions and data, in order.
    for item in &user_file.items {
        match item {
            Item::Const(decl) => {
                let name = &decl.name.name;
                let mut value = checker.eval(&decl.value, &mut globals);
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
                define_global(&mut checker, &decl.name, value.clone(), BindingKind::Let);
                program.constants.push((name.clone(), value));
            }
            Item::Dim(decl) => {
                for name in &decl.names {
                    define_global(
                        &mut checker,
                        name,
                        Value::Int(dims::Dim::symbol(&name.name)),
                        BindingKind::ShapeVar,
                    );
                }
            }
            Item::Data(decl) => {
                if let Some(dataset) = data::declare(&mut checker, decl, options.base_dir.as_deref(), &mut globals) {
                    checker.datasets.push(dataset);
                    let index = checker.datasets.len() - 1;
                    define_global(&mut checker, &decl.name, Value::Data(index), BindingKind::Let);
                } else {
                    define_global(&mut checker, &decl.name, Value::Error, BindingKind::Let);
                }
            }
            _ => {}
        }
    }

    // The loss, in a training pass and an evaluation pass.
    let losses: Vec<&ast::LossDecl> = user_file
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Loss(l) => Some(l),
            _ => None,
        })
        .collect();
    for extra in losses.iter().skip(1) {
        checker.report(
            Diagnostic::error(codes::DUPLICATE_ITEM, "a program has one `loss`", extra.span)
                .label("second loss")
                .with_secondary(losses[0].span, "the loss is declared here")
                .with_help("add terms to combine losses: `loss mse(a, b) + 0.1 * mae(a, b)`"),
        );
    }
    if model.is_none() && !broken("model") {
        checker.report(
            Diagnostic::error(codes::MISSING_MODEL, "the program has no `model`", file_start)
                .label("expected `model name(inputs) -> type { ... }`")
                .with_help("the model is the block whose parameters are trained"),
        );
    }
    match losses.first() {
        None if broken("loss") => {}
        None => checker.report(
            Diagnostic::error(codes::MISSING_LOSS, "the program has no `loss`", file_start)
                .label("expected a `loss` declaration")
                .with_help("e.g. `loss cross_entropy(model(data.x), data.y)`"),
        ),
        Some(loss) => {
            checker.training = true;
            checker.trace = Default::default();
            let value = checker.eval(&loss.value, &mut Scope::new());
            check_loss_value(&mut checker, &value, loss);
            program.train_trace = finish_trace(&mut checker, &value);
            let datasets = std::mem::take(&mut checker.datasets);
            let base_dir = options.base_dir.as_deref();
            data_file::check_picks(&mut checker, &program.train_trace, &datasets, base_dir, loss.span);
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
            program.eval_trace = finish_trace(&mut checker, &value);
            if let (Some(block), Some((name, inputs, _))) = (&options.probe, &signature) {
                program.probe_trace = Some(again::probe(&mut checker, block, name, inputs, loss.span));
            }
            if let (true, Some((name, inputs, _))) = (options.decode, &signature) {
                program.decode_trace = decode::trace(&mut checker, name, inputs, loss.span);
            }
            checker.params = params;
            checker.states = states;
            checker.model_signature = signature;
        }
    }
    // Blocks of the user's file that nothing called: their names, at least.
    let mut uncalled: Vec<&ast::BlockDecl> = user_blocks
        .values()
        .copied()
        .filter(|b| !checker.called.contains(&b.name.name))
        .collect();
    uncalled.sort_by_key(|b| b.span.start);
    for block in uncalled {
        checker.resolve_uncalled(block);
    }
    if let Some((name, inputs, output)) = checker.model_signature.take() {
        program.model = Some(ModelInfo { name, inputs, output });
    }

    // Optimizer and schedule.
    let optimizers: Vec<&ast::OptimizerDecl> = user_file
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Optimizer(o) => Some(o),
            _ => None,
        })
        .collect();
    for extra in optimizers.iter().skip(1) {
        checker.report(
            Diagnostic::error(codes::DUPLICATE_ITEM, "a program has one `optimizer`", extra.span)
                .label("second optimizer")
                .with_secondary(optimizers[0].span, "the optimizer is declared here"),
        );
    }
    match optimizers.first() {
        None if broken("optimizer") => {}
        None => checker.report(
            Diagnostic::error(codes::MISSING_OPTIMIZER, "the program has no `optimizer`", file_start)
                .label("expected an `optimizer` declaration")
                .with_help("e.g. `optimizer adam(lr: 1e-3)`"),
        ),
        Some(decl) => {
            program.optimizer = config::checked_call(&mut checker, &decl.value, schemas::OPTIMIZERS, "optimizer");
            for (i, part) in decl.schedule.iter().enumerate() {
                if let Some((config, _)) = config::checked_schedule(&mut checker, part, i) {
                    program.schedule.push(config);
                }
            }
        }
    }

    // Sections.
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
        if let Some(config) = config::validate(&mut checker, schema, &args, section.span, &mut Scope::new()) {
            if section.kind == SectionKind::Train {
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
        program.sweep = sweep::check(&mut checker, section, &program.constants, &metrics, &text);
    }
    if !seen.contains_key(&SectionKind::Train) && !broken("train") {
        checker.report(
            Diagnostic::error(codes::MISSING_SETTING, "the program has no `train` section", file_start)
                .label("expected `train { steps: ..., batch: ... }`"),
        );
    }

    // A `generate` section asks for generation the model must fit.
    let generate = user_file.items.iter().find_map(|item| match item {
        Item::Section(section) if section.kind == SectionKind::Generate => Some(section),
        _ => None,
    });
    let clean = !diagnostics.iter().chain(&checker.diagnostics).any(Diagnostic::is_error);
    if let (Some(section), true) = (generate, clean) {
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

    // The Hessian analysis asks things of the model's size.
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

    // Each tensor fits (`eval` and `param` check it); together they must too.
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

    program.datasets = std::mem::take(&mut checker.datasets);
    program.params = std::mem::take(&mut checker.params);
    program.states = std::mem::take(&mut checker.states);
    diagnostics.append(&mut checker.diagnostics);
    checker.observed.take()
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

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(8970), "8,970");
        assert_eq!(group_thousands(123), "123");
        assert_eq!(group_thousands(1234567), "1,234,567");
        assert_eq!(group_thousands(i64::MIN), "-9,223,372,036,854,775,808");
    }
}
