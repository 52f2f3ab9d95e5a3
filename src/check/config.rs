//! Settings written as calls or sections — `adam(lr: 1e-3)`,
//! `warmup(100) then cosine()`, `csv("digits.csv", ...)`, `train { ... }` —
//! checked against a schema of named, typed, range-checked parameters and
//! turned into a [`Config`] with every default filled in.

use std::collections::BTreeMap;
use std::fmt;

use super::eval::Checker;
use super::scope::{suggest, Scope};
use super::types::{SplitKind, Value};
use crate::diagnostics::{codes, Diagnostic, Span};
use crate::syntax::ast::{Expr, ExprKind};

/// What a parameter accepts.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A constant integer in `[min, max]`.
    Int {
        min: i64,
        max: i64,
    },
    /// A number in `[min, max]`; with `open_min`, strictly above `min`.
    Float {
        min: f64,
        max: f64,
        open_min: bool,
    },
    Bool,
    Str,
    /// One or more names from a fixed set: `[loss, accuracy]`.
    Words(&'static [&'static str]),
    /// Column names: `"views"`, `["a", "b"]` or `"p0".."p63"`.
    Columns,
    /// `4..12`: inclusive integer bounds.
    IntRange,
    /// `[1, 8, 8]`
    Shape,
    /// A nested call from a fixed set: `beam(width: 4)`.
    Call(&'static [Schema]),
    /// Nested calls, in a list: `[flip, shift(1)]`.
    Calls(&'static [Schema]),
    /// One nested call, or a non-empty list of different ones:
    /// `[greedy, beam(width: 4)]` (an entry equal to an earlier one once
    /// defaults are filled in is an error).
    CallSet(&'static [Schema]),
    /// A split of a dataset: `pairs.val`.
    Split,
}

#[derive(Clone, Copy, Debug)]
pub enum Default {
    Required,
    /// Optional with no value.
    Absent,
    Int(i64),
    Float(f64),
    Bool(bool),
    /// An integer range `low..high`.
    Range(i64, i64),
}

#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub default: Default,
    /// One line for `--help`-style listings and the language reference.
    pub doc: &'static str,
}

#[derive(Clone, Copy, Debug)]
pub struct Schema {
    pub name: &'static str,
    pub params: &'static [Param],
    pub doc: &'static str,
}

pub const fn p(name: &'static str, kind: Kind, default: Default, doc: &'static str) -> Param {
    Param {
        name,
        kind,
        default,
        doc,
    }
}

pub const fn int(min: i64) -> Kind {
    Kind::Int { min, max: i64::MAX }
}

/// A constant integer in `[min, max]`.
pub const fn int_in(min: i64, max: i64) -> Kind {
    Kind::Int { min, max }
}

pub const fn float(min: f64, max: f64) -> Kind {
    Kind::Float {
        min,
        max,
        open_min: false,
    }
}

pub const fn positive() -> Kind {
    Kind::Float {
        min: 0.0,
        max: f64::INFINITY,
        open_min: true,
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ConfigValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Words(Vec<String>),
    Range(i64, i64),
    Shape(Vec<i64>),
    Call(Config),
    Calls(Vec<Config>),
    Split(usize, SplitKind),
}

/// A validated call or section: its name and every parameter's value.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub name: String,
    pub span: Span,
    pub values: BTreeMap<String, ConfigValue>,
}

impl Config {
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.values.get(key) {
            Some(ConfigValue::Int(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn float(&self, key: &str) -> Option<f64> {
        match self.values.get(key) {
            Some(ConfigValue::Float(x)) => Some(*x),
            Some(ConfigValue::Int(n)) => Some(*n as f64),
            _ => None,
        }
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.values.get(key) {
            Some(ConfigValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        match self.values.get(key) {
            Some(ConfigValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn words(&self, key: &str) -> &[String] {
        match self.values.get(key) {
            Some(ConfigValue::Words(w)) => w,
            _ => &[],
        }
    }

    pub fn range(&self, key: &str) -> Option<(i64, i64)> {
        match self.values.get(key) {
            Some(ConfigValue::Range(a, b)) => Some((*a, *b)),
            _ => None,
        }
    }

    pub fn shape(&self, key: &str) -> Option<&[i64]> {
        match self.values.get(key) {
            Some(ConfigValue::Shape(s)) => Some(s),
            _ => None,
        }
    }

    pub fn call(&self, key: &str) -> Option<&Config> {
        match self.values.get(key) {
            Some(ConfigValue::Call(c)) => Some(c),
            _ => None,
        }
    }

    pub fn calls(&self, key: &str) -> &[Config] {
        match self.values.get(key) {
            Some(ConfigValue::Calls(c)) => c,
            _ => &[],
        }
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.name)?;
        for (i, (key, value)) in self.values.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{key}: ")?;
            match value {
                ConfigValue::Int(n) => write!(f, "{n}")?,
                ConfigValue::Float(x) => write!(f, "{x}")?,
                ConfigValue::Bool(b) => write!(f, "{b}")?,
                ConfigValue::Str(s) => write!(f, "{s:?}")?,
                ConfigValue::Words(w) => write!(f, "[{}]", w.join(", "))?,
                ConfigValue::Range(a, b) => write!(f, "{a}..{b}")?,
                ConfigValue::Shape(s) => write!(f, "{s:?}")?,
                ConfigValue::Call(c) => write!(f, "{c}")?,
                ConfigValue::Calls(cs) => {
                    let parts: Vec<String> = cs.iter().map(|c| c.to_string()).collect();
                    write!(f, "[{}]", parts.join(", "))?
                }
                ConfigValue::Split(i, kind) => write!(f, "data#{i}.{kind:?}")?,
            }
        }
        write!(f, ")")
    }
}

/// An argument as written: optional name, value expression, whole span.
pub struct RawArg<'e> {
    pub name: Option<(&'e str, Span)>,
    pub value: &'e Expr,
}

/// Finds the schema named by `name` or reports it with a suggestion.
pub fn find_schema(
    checker: &mut Checker,
    schemas: &'static [Schema],
    name: &str,
    span: Span,
    what: &str,
) -> Option<&'static Schema> {
    if let Some(schema) = schemas.iter().find(|s| s.name == name) {
        return Some(schema);
    }
    let names: Vec<&str> = schemas.iter().map(|s| s.name).collect();
    let mut diagnostic = Diagnostic::error(codes::UNKNOWN_NAME, format!("unknown {what} `{name}`"), span)
        .label(format!("not a known {what}"));
    diagnostic = match suggest(name, names.iter().copied()) {
        Some(close) => diagnostic.with_help(format!("did you mean `{close}`?")),
        None => diagnostic.with_help(format!("known: {}", names.join(", "))),
    };
    checker.report(diagnostic);
    None
}

/// `expr` as a call of one of `schemas` (an optimizer, a schedule),
/// checked, or a diagnostic: "expected a {what} such as `...(...)`".
pub fn checked_call(checker: &mut Checker, expr: &Expr, schemas: &'static [Schema], what: &str) -> Option<Config> {
    let Some((name, span, args)) = as_call(expr) else {
        checker.report(
            Diagnostic::error(
                codes::WRONG_KIND,
                format!("expected a {what} such as `{}(...)`", schemas[0].name),
                expr.span,
            )
            .label(format!("not a {what}")),
        );
        return None;
    };
    let schema = find_schema(checker, schemas, name, span, what)?;
    validate(checker, schema, &args, expr.span, &mut Scope::new())
}

/// Part `i` of a schedule chain, checked; with whether it may stand there
/// (`warmup` only first; a diagnostic says so otherwise).
pub fn checked_schedule(checker: &mut Checker, part: &Expr, i: usize) -> Option<(Config, bool)> {
    let config = checked_call(checker, part, super::schemas::SCHEDULES, "schedule")?;
    let in_order = config.name != "warmup" || i == 0;
    if !in_order {
        checker.report(
            Diagnostic::error(codes::BAD_VALUE, "`warmup` must come first in a schedule", part.span)
                .label("warm-up after another schedule"),
        );
    }
    Some((config, in_order))
}

/// A call expression `name(args)` or a bare `name`, as (name, span, args).
pub fn as_call(expr: &Expr) -> Option<(&str, Span, Vec<RawArg<'_>>)> {
    match &expr.kind {
        ExprKind::Name(name) => Some((name, expr.span, Vec::new())),
        ExprKind::Call { callee, args } => {
            let ExprKind::Name(name) = &callee.kind else {
                return None;
            };
            let raw = args
                .iter()
                .map(|a| RawArg {
                    name: a.name.as_ref().map(|n| (n.name.as_str(), n.span)),
                    value: &a.value,
                })
                .collect();
            Some((name, callee.span, raw))
        }
        _ => None,
    }
}

/// Checks arguments against a schema: positional in order, then named;
/// unknown, duplicate and missing parameters and bad values are reported.
pub fn validate(
    checker: &mut Checker,
    schema: &Schema,
    args: &[RawArg],
    span: Span,
    scope: &mut Scope,
) -> Option<Config> {
    let mut given: Vec<Option<&RawArg>> = vec![None; schema.params.len()];
    let mut ok = true;
    let mut position = 0;
    for arg in args {
        let index = match arg.name {
            None => {
                if position >= schema.params.len() {
                    checker.report(
                        Diagnostic::error(
                            codes::TOO_MANY_ARGUMENTS,
                            format!(
                                "`{}` takes at most {} argument{}",
                                schema.name,
                                schema.params.len(),
                                super::eval::plural(schema.params.len())
                            ),
                            arg.value.span,
                        )
                        .label("unexpected argument"),
                    );
                    ok = false;
                    continue;
                }
                position += 1;
                position - 1
            }
            Some((name, name_span)) => match schema.params.iter().position(|p| p.name == name) {
                Some(i) => i,
                None => {
                    let names: Vec<&str> = schema.params.iter().map(|p| p.name).collect();
                    let mut diagnostic = Diagnostic::error(
                        codes::UNKNOWN_SETTING,
                        format!("`{}` has no setting named `{name}`", schema.name),
                        name_span,
                    )
                    .label("unknown setting");
                    diagnostic = match suggest(name, names.iter().copied()) {
                        Some(close) => diagnostic.with_help(format!("did you mean `{close}`?")),
                        None if names.is_empty() => {
                            diagnostic.with_help(format!("`{}` takes no settings", schema.name))
                        }
                        None => diagnostic.with_help(format!("its settings are: {}", names.join(", "))),
                    };
                    checker.report(diagnostic);
                    ok = false;
                    continue;
                }
            },
        };
        if let Some(previous) = given[index] {
            checker.report(
                Diagnostic::error(
                    codes::DUPLICATE_ARGUMENT,
                    format!("`{}` is given twice", schema.params[index].name),
                    arg.value.span,
                )
                .label("given again here")
                .with_secondary(previous.value.span, "first given here"),
            );
            ok = false;
            continue;
        }
        given[index] = Some(arg);
    }
    let mut values = BTreeMap::new();
    for (param, arg) in schema.params.iter().zip(&given) {
        match arg {
            Some(arg) => match value(checker, schema, param, arg.value, scope) {
                Some(v) => {
                    values.insert(param.name.to_string(), v);
                }
                None => ok = false,
            },
            None => match param.default {
                Default::Required => {
                    checker.report(
                        Diagnostic::error(
                            codes::MISSING_SETTING,
                            format!("`{}` needs `{}`", schema.name, param.name),
                            span,
                        )
                        .label(format!("`{}` is missing", param.name))
                        .with_help(format!("`{}`: {}", param.name, param.doc)),
                    );
                    ok = false;
                }
                Default::Absent => {}
                Default::Int(n) => {
                    values.insert(param.name.to_string(), ConfigValue::Int(n));
                }
                Default::Float(x) => {
                    values.insert(param.name.to_string(), ConfigValue::Float(x));
                }
                Default::Bool(b) => {
                    values.insert(param.name.to_string(), ConfigValue::Bool(b));
                }
                Default::Range(low, high) => {
                    values.insert(param.name.to_string(), ConfigValue::Range(low, high));
                }
            },
        }
    }
    ok.then(|| Config {
        name: schema.name.to_string(),
        span,
        values,
    })
}

fn bad_value(
    checker: &mut Checker,
    schema: &Schema,
    param: &Param,
    span: Span,
    message: String,
    label: &str,
) -> Option<ConfigValue> {
    checker.report(
        Diagnostic::error(codes::BAD_VALUE, message, span)
            .label(label)
            .with_help(format!("`{}` of `{}`: {}", param.name, schema.name, param.doc)),
    );
    None
}

fn value(checker: &mut Checker, schema: &Schema, param: &Param, expr: &Expr, scope: &mut Scope) -> Option<ConfigValue> {
    let name = param.name;
    match param.kind {
        Kind::Words(allowed) => {
            let items: Vec<&Expr> = match &expr.kind {
                ExprKind::List(items) => items.iter().collect(),
                _ => vec![expr],
            };
            let mut words = Vec::new();
            for item in items {
                let ExprKind::Name(word) = &item.kind else {
                    return bad_value(
                        checker,
                        schema,
                        param,
                        item.span,
                        format!("`{name}` takes names such as `{}`", allowed[0]),
                        "not a name",
                    );
                };
                if !allowed.contains(&word.as_str()) {
                    let mut diagnostic = Diagnostic::error(
                        codes::BAD_VALUE,
                        format!("`{word}` is not one of the known {name}"),
                        item.span,
                    )
                    .label(format!("not in `{name}`"));
                    diagnostic = match suggest(word, allowed.iter().copied()) {
                        Some(close) => diagnostic.with_help(format!("did you mean `{close}`?")),
                        None => diagnostic.with_help(format!("known: {}", allowed.join(", "))),
                    };
                    checker.report(diagnostic);
                    return None;
                }
                words.push(word.clone());
            }
            Some(ConfigValue::Words(words))
        }
        Kind::Call(schemas) => {
            let Some((callee, callee_span, args)) = as_call(expr) else {
                let names: Vec<&str> = schemas.iter().map(|s| s.name).collect();
                return bad_value(
                    checker,
                    schema,
                    param,
                    expr.span,
                    format!("`{name}` takes one of: {}", names.join(", ")),
                    "not a call",
                );
            };
            let nested = find_schema(checker, schemas, callee, callee_span, name)?;
            validate(checker, nested, &args, expr.span, scope).map(ConfigValue::Call)
        }
        Kind::Calls(schemas) => calls(checker, schema, param, schemas, expr, scope, false),
        Kind::CallSet(schemas) => calls(checker, schema, param, schemas, expr, scope, true),
        _ => {
            let v = checker.eval(expr, scope);
            if matches!(v, Value::Error) {
                return None;
            }
            typed_value(checker, schema, param, v, expr.span)
        }
    }
}

/// A call or a list of calls from `schemas`, every entry checked (each bad
/// one reported at its span). With `distinct`, as a set: an empty list and
/// an entry equal to an earlier one (defaults filled in) are errors.
fn calls(
    checker: &mut Checker,
    schema: &Schema,
    param: &Param,
    schemas: &'static [Schema],
    expr: &Expr,
    scope: &mut Scope,
    distinct: bool,
) -> Option<ConfigValue> {
    let name = param.name;
    let items: Vec<&Expr> = match &expr.kind {
        ExprKind::List(items) => items.iter().collect(),
        _ => vec![expr],
    };
    let names: Vec<&str> = schemas.iter().map(|s| s.name).collect();
    if distinct && items.is_empty() {
        return bad_value(
            checker,
            schema,
            param,
            expr.span,
            format!("`{name}` needs at least one of: {}", names.join(", ")),
            "empty list",
        );
    }
    let mut out: Vec<Config> = Vec::new();
    let mut ok = true;
    for item in items {
        let Some((callee, callee_span, args)) = as_call(item) else {
            bad_value(
                checker,
                schema,
                param,
                item.span,
                format!("`{name}` takes a list of: {}", names.join(", ")),
                "not a call",
            );
            ok = false;
            continue;
        };
        let Some(nested) = find_schema(checker, schemas, callee, callee_span, name) else {
            ok = false;
            continue;
        };
        let Some(config) = validate(checker, nested, &args, item.span, scope) else {
            ok = false;
            continue;
        };
        let earlier = out
            .iter()
            .find(|c| distinct && c.name == config.name && c.values == config.values);
        if let Some(earlier) = earlier {
            checker.report(
                Diagnostic::error(codes::BAD_VALUE, format!("`{name}` lists `{config}` twice"), item.span)
                    .label("the same as an earlier entry")
                    .with_secondary(earlier.span, "first listed here")
                    .with_help("settings left out take their defaults; list each one once"),
            );
            ok = false;
            continue;
        }
        out.push(config);
    }
    ok.then_some(ConfigValue::Calls(out))
}

fn typed_value(checker: &mut Checker, schema: &Schema, param: &Param, v: Value, span: Span) -> Option<ConfigValue> {
    let name = param.name;
    let found = v.kind_name();
    match param.kind {
        Kind::Int { min, max } => match v.as_const_int() {
            Some(n) if (min..=max).contains(&n) => Some(ConfigValue::Int(n)),
            Some(n) => {
                let range = if max == i64::MAX {
                    format!("at least {min}")
                } else {
                    format!("between {min} and {max}")
                };
                bad_value(
                    checker,
                    schema,
                    param,
                    span,
                    format!("`{name}` must be {range}, found {n}"),
                    "out of range",
                )
            }
            None => bad_value(
                checker,
                schema,
                param,
                span,
                format!("`{name}` must be a constant integer, found {found}"),
                "not an integer",
            ),
        },
        Kind::Float { min, max, open_min } => match v.as_number() {
            Some(x) if x.is_finite() && (x > min || (!open_min && x == min)) && x <= max => Some(ConfigValue::Float(x)),
            Some(x) => {
                let range = match (open_min, max.is_finite()) {
                    (true, false) if min == 0.0 => "positive".to_string(),
                    (true, false) => format!("above {min}"),
                    (false, false) => format!("at least {min}"),
                    (true, true) => format!("above {min} and at most {max}"),
                    (false, true) => format!("between {min} and {max}"),
                };
                let what = if name == "lr" {
                    "the learning rate".to_string()
                } else {
                    format!("`{name}`")
                };
                bad_value(
                    checker,
                    schema,
                    param,
                    span,
                    format!("{what} must be {range}, found {x}"),
                    "out of range",
                )
            }
            None => bad_value(
                checker,
                schema,
                param,
                span,
                format!("`{name}` must be a number, found {found}"),
                "not a number",
            ),
        },
        Kind::Bool => match v {
            Value::Bool(b) => Some(ConfigValue::Bool(b)),
            _ => bad_value(
                checker,
                schema,
                param,
                span,
                format!("`{name}` must be `true` or `false`, found {found}"),
                "not a boolean",
            ),
        },
        Kind::Str => match v {
            Value::Str(s) => Some(ConfigValue::Str(s)),
            _ => bad_value(
                checker,
                schema,
                param,
                span,
                format!("`{name}` must be a string, found {found}"),
                "not a string",
            ),
        },
        Kind::Columns => match columns(&v) {
            Ok(list) => Some(ConfigValue::Words(list)),
            Err(message) => bad_value(checker, schema, param, span, message, "not a column list"),
        },
        Kind::IntRange => match &v {
            Value::Range(a, b) => match (a.as_const_int(), b.as_const_int()) {
                (Some(a), Some(b)) if 1 <= a && a <= b => Some(ConfigValue::Range(a, b)),
                (Some(a), Some(b)) => bad_value(
                    checker,
                    schema,
                    param,
                    span,
                    format!("`{name}` must satisfy 1 <= low <= high, found {a}..{b}"),
                    "empty range",
                ),
                _ => bad_value(
                    checker,
                    schema,
                    param,
                    span,
                    format!("`{name}` needs integer bounds"),
                    "not integers",
                ),
            },
            _ => match v.as_const_int() {
                Some(n) if n >= 1 => Some(ConfigValue::Range(n, n)),
                _ => bad_value(
                    checker,
                    schema,
                    param,
                    span,
                    format!("`{name}` must be a range such as `4..12`, found {found}"),
                    "not a range",
                ),
            },
        },
        Kind::Shape => match &v {
            Value::List(items) => {
                let dims: Option<Vec<i64>> = items.iter().map(|i| i.as_const_int().filter(|n| *n >= 1)).collect();
                match dims {
                    Some(dims) => Some(ConfigValue::Shape(dims)),
                    None => bad_value(
                        checker,
                        schema,
                        param,
                        span,
                        format!("`{name}` must list positive sizes"),
                        "not a shape",
                    ),
                }
            }
            _ => bad_value(
                checker,
                schema,
                param,
                span,
                format!("`{name}` must be a shape such as `[1, 8, 8]`, found {found}"),
                "not a shape",
            ),
        },
        Kind::Split => match v {
            Value::Split(index, kind) => Some(ConfigValue::Split(index, kind)),
            _ => bad_value(
                checker,
                schema,
                param,
                span,
                format!("`{name}` must be a dataset split such as `data.val`, found {found}"),
                "not a split",
            ),
        },
        Kind::Words(_) | Kind::Call(_) | Kind::Calls(_) | Kind::CallSet(_) => None,
    }
}

/// `"views"`, `["a", "b"]`, or `"p0".."p63"` (a shared prefix and a numbered range).
fn columns(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::Str(s) => Ok(vec![s.clone()]),
        Value::List(items) => items
            .iter()
            .map(|i| match i {
                Value::Str(s) => Ok(s.clone()),
                other => Err(format!("column names are strings, found {}", other.kind_name())),
            })
            .collect(),
        Value::Range(a, b) => {
            let (Value::Str(a), Value::Str(b)) = (a.as_ref(), b.as_ref()) else {
                return Err("a column range joins two names, as in \"p0\"..\"p63\"".to_string());
            };
            let split = |s: &str| {
                let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
                let (prefix, number) = s.split_at(s.len() - digits);
                (prefix.to_string(), number.parse::<u64>().ok())
            };
            match (split(a), split(b)) {
                ((pa, Some(x)), (pb, Some(y))) if pa == pb && x <= y && y - x < 100_000 => {
                    Ok((x..=y).map(|n| format!("{pa}{n}")).collect())
                }
                _ => Err(format!(
                    "\"{a}\"..\"{b}\" is not a column range: both ends need the same prefix and increasing numbers"
                )),
            }
        }
        other => Err(format!(
            "columns are a name, a list of names or a range, found {}",
            other.kind_name()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_ranges_expand() {
        let range = Value::Range(Box::new(Value::Str("p0".into())), Box::new(Value::Str("p3".into())));
        assert_eq!(columns(&range).unwrap(), vec!["p0", "p1", "p2", "p3"]);
        let bad = Value::Range(Box::new(Value::Str("a1".into())), Box::new(Value::Str("b3".into())));
        assert!(columns(&bad).is_err());
    }
}
