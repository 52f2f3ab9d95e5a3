//! Every variant of a sweep, checked before any runs. A swept constant's
//! value can make the program wrong where the file's own value does not: a
//! size that is no longer whole, a branch of `if` naming an unknown block,
//! fewer `classes` than the data's labels need. So the checker checks the
//! file again with each variant's constants (as `--set` would give them).
//!
//! In: the checked [`Sweep`] and a way to check the file with other
//! constants. Out: one diagnostic per distinct error, at the swept values of
//! the first variant that has it (the values that differ from the first
//! variant's), with the error's own labels as secondary labels and the
//! other variants that have it in the help.
//!
//! Training settings, optimizers and schedules are validated where they
//! are listed and do not change what checks, so only the constants' lists
//! are combined. The checker checks at most [`MAX_CHECKED`] variants: every
//! combination when there are that few, else the first and each other
//! value once; `nnc run` checks every combination before it trains the
//! first variant when the checker did not (`runtime/sweep.rs`).

use super::sweep::{self, Axis, Choice, ChoiceValue, Sweep, OVERRIDES};
use crate::diagnostics::{Diagnostic, Span};

/// Variants checked by the checker at most.
pub const MAX_CHECKED: usize = 32;

/// One value of each swept constant: (name, value).
pub type Variant = Vec<(String, Choice)>;

/// The lists of constants.
fn constant_axes(sweep: &Sweep) -> Vec<Axis> {
    sweep
        .axes
        .iter()
        .filter(|a| !OVERRIDES.contains(&a.name.as_str()) && a.name != "optimizer" && a.name != "schedule")
        .cloned()
        .collect()
}

/// Every combination of the swept constants' values (the last list varies
/// fastest); none when no constant is swept.
pub fn every(sweep: &Sweep) -> Vec<Variant> {
    let axes = constant_axes(sweep);
    if axes.is_empty() {
        return Vec::new();
    }
    Sweep {
        axes,
        rank_by: String::new(),
    }
    .combinations()
}

/// The variants the checker checks, and whether they are all of them:
/// every combination when there are at most [`MAX_CHECKED`], else the first
/// combination and, in it, each other value of each list once (the first
/// [`MAX_CHECKED`] of those).
pub fn selection(sweep: &Sweep) -> (Vec<Variant>, bool) {
    let axes = constant_axes(sweep);
    let count = axes
        .iter()
        .try_fold(1usize, |count, axis| count.checked_mul(axis.choices.len()));
    if count.is_some_and(|n| n <= MAX_CHECKED) {
        return (every(sweep), true);
    }
    let first: Variant = axes.iter().map(|a| (a.name.clone(), a.choices[0].clone())).collect();
    let mut chosen = vec![first.clone()];
    for (i, axis) in axes.iter().enumerate() {
        for choice in &axis.choices[1..] {
            let mut variant = first.clone();
            variant[i].1 = choice.clone();
            chosen.push(variant);
        }
    }
    chosen.truncate(MAX_CHECKED);
    (chosen, false)
}

/// A variant's constants as `--set` gives them (booleans as 1 and 0).
pub fn constants(variant: &[(String, Choice)]) -> Vec<(String, f64)> {
    variant
        .iter()
        .filter_map(|(name, choice)| {
            let value = match choice.value {
                ChoiceValue::Number(x) => x,
                ChoiceValue::Bool(b) => f64::from(u8::from(b)),
                _ => return None,
            };
            Some((name.clone(), value))
        })
        .collect()
}

/// The first error among a variant's `diagnostics`, reported at the
/// variant's swept values: those that differ from `first`'s (all of them
/// for the first variant itself), with the error's labels beside them.
pub fn problem(
    variant: &[(String, Choice)],
    first: &[(String, Choice)],
    diagnostics: &[Diagnostic],
) -> Option<Diagnostic> {
    let error = diagnostics.iter().find(|d| d.is_error())?;
    let mut values: Vec<Span> = variant
        .iter()
        .zip(first)
        .filter(|((_, choice), (_, base))| choice.label != base.label)
        .map(|((_, choice), _)| choice.span)
        .collect();
    if values.is_empty() {
        values = variant.iter().map(|(_, choice)| choice.span).collect();
    }
    let (&primary, others) = values.split_first()?;
    let mut diagnostic = Diagnostic::error(
        error.code,
        format!(
            "the sweep's variant `{}` does not check: {}",
            sweep::label(variant),
            error.message
        ),
        primary,
    )
    .label("with this value");
    for &span in others {
        diagnostic = diagnostic.with_secondary(span, "and this value");
    }
    let here = match error.primary.message.as_str() {
        "" => "here, with the variant's values".to_string(),
        label => label.to_string(),
    };
    diagnostic = diagnostic.with_secondary(error.primary.span, here);
    diagnostic.secondary.extend(error.secondary.iter().cloned());
    diagnostic.help = error.help.clone();
    Some(diagnostic)
}

/// Checks `variants` with `check` (the diagnostics of the file checked
/// with the given constants): one diagnostic per distinct first error,
/// naming in its help the other variants that have it.
pub fn check_all(variants: &[Variant], mut check: impl FnMut(&[(String, f64)]) -> Vec<Diagnostic>) -> Vec<Diagnostic> {
    let Some(first) = variants.first() else {
        return Vec::new();
    };
    // Per distinct error (its code, message and place): the report and the
    // other variants that have it.
    type Key = (&'static str, String, Span);
    let mut found: Vec<(Key, Diagnostic, Vec<String>)> = Vec::new();
    for variant in variants {
        let diagnostics = check(&constants(variant));
        let Some(error) = diagnostics.iter().find(|d| d.is_error()) else {
            continue;
        };
        let key = (error.code, error.message.clone(), error.primary.span);
        if let Some((_, _, also)) = found.iter_mut().find(|(k, ..)| *k == key) {
            also.push(sweep::label(variant));
        } else if let Some(report) = problem(variant, first, &diagnostics) {
            found.push((key, report, Vec::new()));
        }
    }
    found
        .into_iter()
        .map(|(_, mut report, also)| {
            if !also.is_empty() {
                let note = format!(
                    "the same error in {} more variant{}: `{}`",
                    also.len(),
                    if also.len() == 1 { "" } else { "s" },
                    also.join("`, `")
                );
                report.help = Some(match report.help.take() {
                    Some(help) => format!("{help}\n{note}"),
                    None => note,
                });
            }
            report
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(name: &str, values: &[f64]) -> Axis {
        Axis {
            name: name.into(),
            choices: values
                .iter()
                .enumerate()
                .map(|(i, &x)| Choice {
                    label: format!("{name}={x}"),
                    value: ChoiceValue::Number(x),
                    span: Span::new(0, i, i + 1),
                })
                .collect(),
        }
    }

    #[test]
    fn few_variants_are_all_checked_and_many_one_value_at_a_time() {
        let small = Sweep {
            axes: vec![
                axis("A", &[1.0, 2.0]),
                axis("lr", &[0.1, 0.2]),
                axis("B", &[3.0, 4.0, 5.0]),
            ],
            rank_by: "loss".into(),
        };
        let (variants, all) = selection(&small);
        assert!(all);
        // The learning rate does not change what checks.
        assert_eq!(variants.len(), 6);
        assert_eq!(
            constants(&variants[1]),
            [("A".to_string(), 1.0), ("B".to_string(), 4.0)]
        );
        let values: Vec<f64> = (0..40).map(f64::from).collect();
        let large = Sweep {
            axes: vec![axis("A", &values[..10]), axis("B", &values[..10])],
            rank_by: "loss".into(),
        };
        let (variants, all) = selection(&large);
        assert!(!all);
        // The first combination, then 9 other values of each list.
        assert_eq!(variants.len(), 19);
        assert_eq!(every(&large).len(), 100);
        let huge = Sweep {
            axes: vec![axis("A", &values)],
            rank_by: "loss".into(),
        };
        assert_eq!(selection(&huge).0.len(), MAX_CHECKED);
    }

    #[test]
    fn an_error_is_reported_once_at_the_value_that_makes_it() {
        let sweep = Sweep {
            axes: vec![axis("A", &[1.0, 2.0]), axis("B", &[3.0, 4.0])],
            rank_by: "loss".into(),
        };
        let (variants, _) = selection(&sweep);
        let place = Span::new(0, 50, 55);
        let reports = check_all(&variants, |constants| {
            if constants[0].1 == 2.0 {
                vec![Diagnostic::error("E0307", "a size must be whole", place).label("not whole")]
            } else {
                Vec::new()
            }
        });
        assert_eq!(reports.len(), 1, "{reports:?}");
        let report = &reports[0];
        assert_eq!(
            report.message,
            "the sweep's variant `A=2,B=3` does not check: a size must be whole"
        );
        assert_eq!(report.code, "E0307");
        // At the value 2 of A (its second), with the error's own label.
        assert_eq!(report.primary.span, Span::new(0, 1, 2));
        assert_eq!(report.secondary[0].span, place);
        assert_eq!(report.secondary[0].message, "not whole");
        assert_eq!(
            report.help.as_deref(),
            Some("the same error in 1 more variant: `A=2,B=4`")
        );
    }
}
