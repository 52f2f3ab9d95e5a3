//! `require`: a condition on hyper-parameters checked when compiling.

use super::Args;
use crate::check::eval::Checker;
use crate::check::types::Value;
use crate::diagnostics::{codes, Diagnostic};

/// `require(condition, message)`: a check of hyper-parameters when
/// compiling. A false condition is error E0501 with `message` at the call
/// (in a library block: at the user's call of it); the result is the
/// condition, so a block can bind it (`ok = require(blank >= 0, "...")`).
pub(super) fn require(checker: &mut Checker, a: &Args) -> Value {
    let message = match a.value(1) {
        Value::Str(message) => message,
        other => {
            checker.report(
                Diagnostic::error(
                    codes::WRONG_KIND,
                    format!("the message of `require` must be a string, found {}", other.kind_name()),
                    a.span(1),
                )
                .label("not a string"),
            );
            return Value::Error;
        }
    };
    match a.value(0) {
        Value::Bool(true) => Value::Bool(true),
        Value::Bool(false) => {
            checker.unmet_requirements += 1;
            checker.error(Diagnostic::error(codes::BAD_VALUE, message, a.span).label("this requirement does not hold"))
        }
        other => {
            checker.report(
                Diagnostic::error(
                    codes::NOT_CONSTANT,
                    format!(
                        "the condition of `require` must be known when compiling, found {}",
                        other.kind_name()
                    ),
                    a.span(0),
                )
                .label("not a constant boolean")
                .with_help("compare hyper-parameters or sizes, e.g. `blank >= 0`"),
            );
            Value::Error
        }
    }
}
