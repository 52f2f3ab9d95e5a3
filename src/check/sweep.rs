//! The `sweep` section: its settings in, a validated [`Sweep`] out — the
//! axes to vary (constants, training settings, whole optimizers, whole
//! schedules) with the values to try, and the validation metric that ranks
//! the variants; or diagnostics at the setting, the value or the call that
//! is wrong.
//!
//! ```text
//! sweep {
//!     optimizer: [sgd(lr: 0.1), sgd(lr: 0.1, momentum: 0.9), adam(lr: 1e-3)],
//!     schedule: [constant(), [warmup(100), cosine()], step(every: 300, gamma: 0.3)],
//!     H: [16, 64],
//!     rank_by: accuracy,
//! }
//! ```
//!
//! Optimizers are checked against the same schemas as the `optimizer`
//! item; a schedule is one call or a list of calls chained as `then`
//! chains them. Each value gets a label naming it in the run directory,
//! the table and the plot: `H=16`, `sgd(lr=0.1,momentum=0.9)`,
//! `warmup(100)+cosine()`.

use super::config::{self, Config};
use super::eval::Checker;
use super::schemas;
use super::scope::{self, Scope};
use super::types::Value;
use crate::diagnostics::{codes, Diagnostic, Span};
use crate::syntax::ast::{self, Expr, ExprKind};

/// Training settings a sweep may vary besides constants.
pub const OVERRIDES: &[&str] = &["lr", "batch", "seed", "steps"];

/// What a sweep varies and how it ranks the variants.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Sweep {
    pub axes: Vec<Axis>,
    /// The validation metric that ranks the variants (`loss` by default).
    pub rank_by: String,
}

/// One setting and the values to try.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// A constant, `lr`/`batch`/`seed`/`steps`, `optimizer` or `schedule`.
    pub name: String,
    pub choices: Vec<Choice>,
}

/// One value of an axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    /// How the value is named: `H=16`, `adam(lr=0.001)`, `constant()`.
    pub label: String,
    pub value: ChoiceValue,
    /// The value as written in the list.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ChoiceValue {
    Number(f64),
    Bool(bool),
    Optimizer(Config),
    /// A chain of schedules, as `schedule a then b` gives.
    Schedule(Vec<Config>),
}

impl Sweep {
    pub fn is_empty(&self) -> bool {
        self.axes.is_empty()
    }

    /// Every combination of one choice per axis, in order (the last axis
    /// varies fastest).
    pub fn combinations(&self) -> Vec<Vec<(String, Choice)>> {
        let mut combinations: Vec<Vec<(String, Choice)>> = vec![Vec::new()];
        for axis in &self.axes {
            combinations = combinations
                .into_iter()
                .flat_map(|prefix| {
                    axis.choices.iter().map(move |choice| {
                        let mut next = prefix.clone();
                        next.push((axis.name.clone(), choice.clone()));
                        next
                    })
                })
                .collect();
        }
        combinations
    }

    /// Whether a larger value of `rank_by` is better (accuracies).
    pub fn higher_is_better(&self) -> bool {
        higher_is_better(&self.rank_by)
    }
}

/// Whether a larger value of the metric is better.
pub fn higher_is_better(metric: &str) -> bool {
    matches!(metric, "accuracy" | "token_accuracy" | "exact_match")
}

/// The label of a combination: its choices' labels joined by commas.
pub fn label(combination: &[(String, Choice)]) -> String {
    let parts: Vec<&str> = combination.iter().map(|(_, c)| c.label.as_str()).collect();
    parts.join(",")
}

/// Checks the `sweep` section. `metrics` are the `eval` section's (the
/// ranking metric must be one of them, or `loss`).
pub fn check(
    checker: &mut Checker,
    section: &ast::Section,
    constants: &[(String, Value)],
    metrics: &[String],
    text: &str,
) -> Sweep {
    let mut sweep = Sweep {
        axes: Vec::new(),
        rank_by: "loss".into(),
    };
    let mut seen: Vec<(&str, Span)> = Vec::new();
    for setting in &section.settings {
        let name = setting.name.name.as_str();
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
            checker.report(
                Diagnostic::error(
                    codes::DUPLICATE_ITEM,
                    format!("`{name}` is swept twice"),
                    setting.name.span,
                )
                .label("second list")
                .with_secondary(*first, "first given here")
                .with_help("put every value in one list"),
            );
            continue;
        }
        seen.push((name, setting.name.span));
        if name == "rank_by" {
            if let Some(metric) = rank_by(checker, &setting.value, metrics) {
                sweep.rank_by = metric;
            }
            continue;
        }
        let constant = constants.iter().find(|(c, _)| c == name).map(|(_, v)| v);
        let kind = match (name, constant) {
            ("optimizer", _) => Kind::Optimizer,
            ("schedule", _) => Kind::Schedule,
            (_, Some(Value::Bool(_))) => Kind::Bool,
            (_, Some(_)) => Kind::Number,
            ("lr", None) => Kind::Rate,
            ("batch" | "steps", None) => Kind::Count(1),
            ("seed", None) => Kind::Count(0),
            _ => {
                let mut candidates: Vec<&str> = constants.iter().map(|(c, _)| c.as_str()).collect();
                candidates.extend(OVERRIDES);
                candidates.extend(["optimizer", "schedule", "rank_by"]);
                let mut diagnostic = Diagnostic::error(
                    codes::UNKNOWN_SETTING,
                    format!("cannot sweep `{name}`"),
                    setting.name.span,
                )
                .label("not a constant, a training setting, `optimizer` or `schedule`");
                if let Some(close) = scope::suggest(name, candidates.iter().copied()) {
                    diagnostic = diagnostic.with_help(format!("did you mean `{close}`?"));
                }
                checker.report(diagnostic);
                continue;
            }
        };
        let ExprKind::List(items) = &setting.value.kind else {
            checker.report(
                Diagnostic::error(
                    codes::BAD_VALUE,
                    format!("`{name}` needs a list of {} to try", kind.plural()),
                    setting.value.span,
                )
                .label("not a list")
                .with_help(format!("e.g. `{name}: {}`", kind.example())),
            );
            continue;
        };
        if items.is_empty() {
            checker.report(
                Diagnostic::error(
                    codes::BAD_VALUE,
                    format!("`{name}` needs at least one value to try"),
                    setting.value.span,
                )
                .label("an empty list"),
            );
            continue;
        }
        let mut choices = Vec::new();
        for item in items {
            if let Some(choice) = choice(checker, name, kind, item, text) {
                if choices.iter().any(|c: &Choice| c.label == choice.label) {
                    checker.report(
                        Diagnostic::error(
                            codes::BAD_VALUE,
                            format!("`{}` is listed twice", choice.label),
                            item.span,
                        )
                        .label("the same value again"),
                    );
                    continue;
                }
                choices.push(choice);
            }
        }
        if choices.len() == items.len() {
            sweep.axes.push(Axis {
                name: name.to_string(),
                choices,
            });
        }
    }
    sweep
}

#[derive(Clone, Copy)]
enum Kind {
    Optimizer,
    Schedule,
    Bool,
    Number,
    /// A learning rate: a positive number.
    Rate,
    /// A whole number at least this.
    Count(i64),
}

impl Kind {
    fn plural(self) -> &'static str {
        match self {
            Kind::Optimizer => "optimizers",
            Kind::Schedule => "schedules",
            Kind::Bool => "booleans",
            Kind::Number | Kind::Rate => "numbers",
            Kind::Count(_) => "whole numbers",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Kind::Optimizer => "[sgd(lr: 0.1), adam(lr: 1e-3)]",
            Kind::Schedule => "[constant(), [warmup(100), cosine()]]",
            Kind::Bool => "[true, false]",
            Kind::Number | Kind::Count(_) => "[16, 64]",
            Kind::Rate => "[1e-3, 3e-3]",
        }
    }
}

/// One listed value, checked against its axis's kind.
fn choice(checker: &mut Checker, name: &str, kind: Kind, item: &Expr, text: &str) -> Option<Choice> {
    match kind {
        Kind::Optimizer => {
            let config = config::checked_call(checker, item, schemas::OPTIMIZERS, "optimizer")?;
            Some(Choice {
                label: call_label(item, text),
                value: ChoiceValue::Optimizer(config),
                span: item.span,
            })
        }
        Kind::Schedule => {
            let parts: Vec<&Expr> = match &item.kind {
                ExprKind::List(parts) if !parts.is_empty() => parts.iter().collect(),
                ExprKind::List(_) => {
                    checker.report(
                        Diagnostic::error(codes::BAD_VALUE, "an empty schedule", item.span)
                            .label("no schedule in this chain")
                            .with_help("write `constant()` for a constant rate"),
                    );
                    return None;
                }
                _ => vec![item],
            };
            let mut chain = Vec::new();
            for (i, part) in parts.iter().enumerate() {
                let (config, in_order) = config::checked_schedule(checker, part, i)?;
                if !in_order {
                    return None;
                }
                chain.push(config);
            }
            let labels: Vec<String> = parts.iter().map(|p| call_label(p, text)).collect();
            Some(Choice {
                label: labels.join("+"),
                value: ChoiceValue::Schedule(chain),
                span: item.span,
            })
        }
        Kind::Bool => match checker.eval(item, &mut Scope::new()) {
            Value::Bool(b) => Some(Choice {
                label: format!("{name}={b}"),
                value: ChoiceValue::Bool(b),
                span: item.span,
            }),
            Value::Error => None,
            other => {
                checker.report(
                    Diagnostic::error(
                        codes::BAD_VALUE,
                        format!("`{name}` is a boolean constant: sweep it over `true` and `false`"),
                        item.span,
                    )
                    .label(format!("found {}", other.kind_name())),
                );
                None
            }
        },
        Kind::Number | Kind::Rate | Kind::Count(_) => {
            let value = checker.eval(item, &mut Scope::new());
            let number = match &value {
                Value::Error => return None,
                other => other.as_number(),
            };
            let problem = match (kind, number) {
                (_, None) => Some(format!("found {}", value.kind_name())),
                (Kind::Rate, Some(x)) if !(x > 0.0 && x.is_finite()) => Some("a learning rate is positive".into()),
                (Kind::Count(min), Some(x)) if x.fract() != 0.0 || x < min as f64 => {
                    Some(format!("`{name}` is a whole number, at least {min}"))
                }
                _ => None,
            };
            if let Some(label) = problem {
                checker.report(
                    Diagnostic::error(
                        codes::BAD_VALUE,
                        format!("`{name}` needs {} to try", kind.plural()),
                        item.span,
                    )
                    .label(label),
                );
                return None;
            }
            let x = number?;
            Some(Choice {
                label: format!("{name}={x}"),
                value: ChoiceValue::Number(x),
                span: item.span,
            })
        }
    }
}

/// A call as written, without spaces and with `=` for `:`, so that it can
/// name a directory: `sgd(lr: 0.1, momentum: 0.9)` → `sgd(lr=0.1,momentum=0.9)`;
/// a bare name gets its parentheses (`constant` → `constant()`).
fn call_label(expr: &Expr, text: &str) -> String {
    let source = text.get(expr.span.start as usize..expr.span.end as usize).unwrap_or("");
    let mut label: String = source
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            ':' => '=',
            '/' => '÷',
            c => c,
        })
        .collect();
    if matches!(expr.kind, ExprKind::Name(_)) {
        label.push_str("()");
    }
    label
}

/// `rank_by: accuracy`: a metric the `eval` section computes (or `loss`).
fn rank_by(checker: &mut Checker, value: &Expr, metrics: &[String]) -> Option<String> {
    let ExprKind::Name(metric) = &value.kind else {
        checker.report(
            Diagnostic::error(codes::BAD_VALUE, "`rank_by` names a validation metric", value.span)
                .label("not a metric name")
                .with_help("e.g. `rank_by: accuracy`"),
        );
        return None;
    };
    if metric == "loss" || metrics.iter().any(|m| m == metric) {
        return Some(metric.clone());
    }
    let known = schemas::METRICS.contains(&metric.as_str());
    let mut diagnostic = Diagnostic::error(
        codes::BAD_VALUE,
        if known {
            format!("the sweep ranks by `{metric}`, which `eval` does not compute")
        } else {
            format!("unknown metric `{metric}`")
        },
        value.span,
    )
    .label(if known {
        "not in `eval { metrics: [...] }`"
    } else {
        "not a metric"
    });
    diagnostic = if known {
        diagnostic.with_help(format!("add `{metric}` to the `eval` section's metrics"))
    } else if let Some(close) = scope::suggest(metric, schemas::METRICS.iter().copied()) {
        diagnostic.with_help(format!("did you mean `{close}`?"))
    } else {
        diagnostic.with_help(format!("known: {}", schemas::METRICS.join(", ")))
    };
    checker.report(diagnostic);
    None
}
