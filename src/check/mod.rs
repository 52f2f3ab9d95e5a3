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
//!
//! Here: the [`Program`] and the entry points, which parse the user's file
//! and the standard library; `items.rs` checks the items in their order.

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
mod items;
pub mod observe;
pub mod ops;
mod resolve;
pub mod schemas;
pub mod scope;
pub mod sweep;
pub mod trace;
pub mod types;
pub mod variants;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use data::Dataset;
use types::{Initializer, TensorType, Value};

use crate::diagnostics::{Diagnostic, SourceMap, Span};
use crate::syntax::ast;

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
    let observed = items::check_items(&files, user, options, &mut program, &mut diagnostics, observe);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(8970), "8,970");
        assert_eq!(group_thousands(123), "123");
        assert_eq!(group_thousands(1234567), "1,234,567");
        assert_eq!(group_thousands(i64::MIN), "-9,223,372,036,854,775,808");
    }
}
