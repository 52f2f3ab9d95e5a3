//! The Hessian settings of the `analyze` section checked against the model.
//! In: the section as written, its validated [`Config`] and the model's
//! parameter count. Out: diagnostics at the settings at fault — a Hessian
//! setting without `hessian: true`, and `eigenvalues: all` (the dense path)
//! asked of a model with more than [`HESSIAN_DENSE_MAX`] parameters.

use super::config::Config;
use super::schemas::HESSIAN_DENSE_MAX;
use crate::diagnostics::{codes, Diagnostic};
use crate::syntax::ast::Section;

/// Settings that only mean something with `hessian: true`.
const HESSIAN_SETTINGS: &[&str] = &["eigenvalues", "examples", "gradient_tolerance", "saddle_step"];

/// The diagnostics of `section`'s Hessian settings for a model of
/// `parameters` parameters.
pub fn check(section: &Section, config: &Config, parameters: i64) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let setting = |name: &str| section.settings.iter().find(|s| s.name.name == name);
    if config.bool("hessian") != Some(true) {
        for name in HESSIAN_SETTINGS {
            if let Some(s) = setting(name) {
                out.push(
                    Diagnostic::error(
                        codes::BAD_VALUE,
                        format!("`{name}` is a setting of the Hessian analysis, which is off"),
                        s.name.span,
                    )
                    .label("has no effect")
                    .with_help("add `hessian: true` to the section, or remove the setting"),
                );
            }
        }
        return out;
    }
    let dense = config.call("eigenvalues").is_some_and(|c| c.name == "all");
    if dense && parameters > HESSIAN_DENSE_MAX as i64 {
        let span = setting("eigenvalues").map_or(section.kind_span, |s| s.value.span);
        out.push(
            Diagnostic::error(
                codes::BAD_VALUE,
                format!(
                    "`eigenvalues: all` builds the dense Hessian, which takes at most {} parameters; the model has {}",
                    super::group_thousands(HESSIAN_DENSE_MAX as i64),
                    super::group_thousands(parameters)
                ),
                span,
            )
            .label("too many parameters for the dense Hessian")
            .with_help("use `eigenvalues: lanczos(steps: 50)` for the extreme eigenvalues"),
        );
    }
    out
}
