//! What the checker saw, for editors: with observation on, every value the
//! checker computes at a span of the user's file (each expression, each name
//! where it is bound) is recorded, in evaluation order. A span evaluated in
//! several calls (a block called with different shapes) appears once per
//! call. `describe` turns a value into the text a hover shows.

use super::types::{Callable, Value};
use super::Dataset;
use crate::diagnostics::Span;

/// Values seen at spans of the user's file.
pub type Observations = Vec<(Span, Value)>;

/// A value as an editor shows it: `f32[B, 64]`, `int = 4`, `block linear`.
pub fn describe(value: &Value, datasets: &[Dataset]) -> String {
    match value {
        Value::Tensor(t) => t.ty.to_string(),
        Value::Int(d) => format!("int = {d}"),
        Value::Float(x) => format!("float = {x}"),
        Value::Bool(b) => format!("bool = {b}"),
        Value::Str(s) => format!("str = {s:?}"),
        Value::List(items) => {
            let parts: Vec<String> = items.iter().map(|v| describe(v, datasets)).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Range(a, b) => format!("{}..{}", describe(a, datasets), describe(b, datasets)),
        Value::Fn(Callable::Block(name)) => format!("block {name}"),
        Value::Fn(c) => format!("builtin {}", c.name()),
        Value::Data(i) | Value::Split(i, _) => match datasets.get(*i) {
            Some(d) => {
                let fields: Vec<String> = d.fields.iter().map(|(n, t)| format!("{n}: {t}")).collect();
                format!("data {} {{ {} }}", d.name, fields.join(", "))
            }
            None => "data".to_string(),
        },
        Value::Init(init) => format!("initializer {init}"),
        Value::Error => "(error)".to_string(),
    }
}
