//! Generation after training with every method the `generate` section
//! lists (greedy without one). In: the trained session, the dataset and the
//! methods. Out: for a sequence task, the validation split decoded with
//! each method — exact match, token accuracy and time per sequence as a
//! `decode` event per method, a table when there are several, and the
//! run's summary metrics (`decoded_exact_match`, ... for the first method,
//! `decoded_exact_match[beam(width=4)]`, ... for each when several); for a
//! text model, one continuation of the prompt per method.

use std::time::Instant;

use serde_json::{json, Map, Value};

use super::data::Data;
use super::generate::{self, Method, Translation};
use super::report::Reporter;
use super::{RunError, Session};
use crate::check::generation;

/// Validation examples decoded (the first ones of the split).
pub const EXAMPLES: usize = 200;

/// How one method's decodings compare with their targets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scores {
    /// The share of decodings equal to their target.
    pub exact_match: f64,
    /// The share of target positions, each target's end included, where
    /// the decoding has the same token (or ends there too).
    pub token_accuracy: f64,
}

impl Scores {
    pub fn of(decoded: &[Translation]) -> Scores {
        let exact = decoded.iter().filter(|t| t.output == t.target).count();
        let (mut right, mut positions) = (0usize, 0usize);
        // A sequence's token at `i`, its end (`Some(None)`) just after its
        // last token, nothing beyond.
        let at = |tokens: &[u32], i: usize| match i.cmp(&tokens.len()) {
            std::cmp::Ordering::Less => Some(Some(tokens[i])),
            std::cmp::Ordering::Equal => Some(None),
            std::cmp::Ordering::Greater => None,
        };
        for t in decoded {
            for i in 0..=t.target.len() {
                right += usize::from(at(&t.output, i) == at(&t.target, i));
            }
            positions += t.target.len() + 1;
        }
        Scores {
            exact_match: exact as f64 / decoded.len().max(1) as f64,
            token_accuracy: right as f64 / positions.max(1) as f64,
        }
    }
}

/// One method's results on the validation examples.
struct Outcome {
    label: String,
    scores: Scores,
    ms_per_sequence: f64,
}

/// Decodes the first examples of `data.val` (the validation split, or
/// the one `generate { from: }` names, called `split`) with each
/// method, prints `samples` of them per method and the scores, and adds
/// the scores to `extra` (the summary's metrics).
pub fn sequences(
    session: &mut Session,
    data: &Data,
    split: &str,
    methods: &[Method],
    samples: usize,
    reporter: &mut Reporter,
    extra: &mut Map<String, Value>,
) -> Result<(), RunError> {
    let vocab = session
        .program
        .datasets
        .first()
        .and_then(|d| d.attr("pad"))
        .unwrap_or(10) as u32;
    let rows: Vec<usize> = (0..data.val.len().min(EXAMPLES)).collect();
    let target_in = format!("{}.tgt_in", data.name);
    let one_pass = !generation::reads(&session.program.eval_trace, &target_in);
    let several = methods.len() > 1;
    let text = |tokens: &[u32]| {
        if data.words.is_empty() {
            generate::tokens_text(tokens, vocab)
        } else {
            let word = |&t: &u32| data.words.get(t as usize).map_or("?", String::as_str);
            tokens.iter().map(word).collect::<Vec<_>>().join(" ")
        }
    };
    let mut outcomes = Vec::new();
    for method in methods {
        let label = method.label();
        let decoded = generate::translate(session, data, &rows, method)?;
        // The decoding time per sequence: the fastest of three more
        // decodings of the same examples (the first compiled the forward
        // passes; the fastest is the least disturbed by whatever else the
        // machine runs). Sampling draws the same numbers each time.
        let mut fastest = f64::INFINITY;
        for _ in 0..3 {
            let started = Instant::now();
            generate::translate(session, data, &rows, method)?;
            fastest = fastest.min(started.elapsed().as_secs_f64());
        }
        let ms_per_sequence = fastest * 1e3 / rows.len().max(1) as f64;
        let scores = Scores::of(&decoded);
        reporter.event(json!({
            "event": "decode", "method": label, "examples": decoded.len(),
            "exact_match": scores.exact_match, "token_accuracy": scores.token_accuracy,
            "ms_per_sequence": ms_per_sequence, "one_pass": one_pass,
        }));
        if several {
            reporter.say(&format!("{label}:"));
        }
        for t in decoded.iter().take(samples) {
            let line = format!(
                "{} -> {} (target {}){}",
                text(&t.source),
                text(&t.output),
                text(&t.target),
                if t.output == t.target { "" } else { "  ✗" }
            );
            if several {
                reporter.event(json!({"event": "sample", "method": label, "text": format!("{label}: {line}")}));
                reporter.say(&format!("  {line}"));
            } else {
                reporter.event(json!({"event": "sample", "method": label, "text": line}));
                reporter.say(&line);
            }
        }
        outcomes.push(Outcome {
            label,
            scores,
            ms_per_sequence,
        });
    }
    let passes = if one_pass {
        "one forward pass for all positions"
    } else {
        "one forward pass per output token"
    };
    if let Some(first) = outcomes.first() {
        extra.insert("decoded_exact_match".into(), json!(first.scores.exact_match));
        extra.insert("decoded_token_accuracy".into(), json!(first.scores.token_accuracy));
        extra.insert("decode_ms_per_sequence".into(), json!(first.ms_per_sequence));
    }
    if let [only] = outcomes.as_slice() {
        reporter.say(&format!(
            "decoded exact match on {} {split} examples: {:.3} (token accuracy {:.3})",
            rows.len(),
            only.scores.exact_match,
            only.scores.token_accuracy
        ));
        reporter.say(&format!(
            "decoding time: {:.3} ms per sequence ({passes}, {} method, batches of up to 64 rows)",
            only.ms_per_sequence, only.label
        ));
        return Ok(());
    }
    for outcome in &outcomes {
        let label = &outcome.label;
        extra.insert(
            format!("decoded_exact_match[{label}]"),
            json!(outcome.scores.exact_match),
        );
        extra.insert(
            format!("decoded_token_accuracy[{label}]"),
            json!(outcome.scores.token_accuracy),
        );
        extra.insert(
            format!("decode_ms_per_sequence[{label}]"),
            json!(outcome.ms_per_sequence),
        );
    }
    reporter.say(&format!(
        "decoded {} {split} examples with each method ({passes}, batches of up to 64 rows):",
        rows.len()
    ));
    reporter.say(table(&outcomes).trim_end());
    Ok(())
}

/// The methods' scores, one row each.
fn table(outcomes: &[Outcome]) -> String {
    let width = outcomes.iter().map(|o| o.label.len()).max().unwrap_or(6).max(6);
    let mut out = format!(
        "{:<width$}  {:>11}  {:>14}  {:>15}\n",
        "method", "exact match", "token accuracy", "ms per sequence"
    );
    for o in outcomes {
        out.push_str(&format!(
            "{:<width$}  {:>11.3}  {:>14.3}  {:>15.3}\n",
            o.label, o.scores.exact_match, o.scores.token_accuracy, o.ms_per_sequence
        ));
    }
    out
}

/// Continues `prompt` by `length` characters once per method and prints
/// each continuation.
pub fn text(
    session: &mut Session,
    data: &Data,
    methods: &[Method],
    prompt: &str,
    length: usize,
    reporter: &mut Reporter,
) -> Result<(), RunError> {
    for method in methods {
        let label = method.label();
        let start = Instant::now();
        let text = generate::continue_text(session, data, prompt, length, method)?;
        let ms_per_char = start.elapsed().as_secs_f64() * 1e3 / length.max(1) as f64;
        if methods.len() > 1 {
            let title = format!("sample ({label})");
            reporter.event(json!({"event": "sample", "method": label, "title": title, "prompt": prompt, "text": text, "ms_per_char": ms_per_char}));
            reporter.say(&format!("{title}:\n{prompt}{text}\n"));
        } else {
            reporter.event(
                json!({"event": "sample", "method": label, "prompt": prompt, "text": text, "ms_per_char": ms_per_char}),
            );
            reporter.say(&format!("sample:\n{prompt}{text}\n"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translation(target: &[u32], output: &[u32]) -> Translation {
        Translation {
            source: Vec::new(),
            target: target.to_vec(),
            output: output.to_vec(),
        }
    }

    #[test]
    fn scores_count_sequences_and_positions_with_the_end() {
        let decoded = [
            translation(&[1, 2, 3], &[1, 2, 3]), // 4 of 4 positions
            translation(&[1, 2, 3], &[1, 5, 3]), // 3 of 4
            translation(&[1, 2], &[1, 2, 7]),    // 2 of 3: no end after 2
            translation(&[4], &[]),              // 0 of 2
        ];
        let scores = Scores::of(&decoded);
        assert_eq!(scores.exact_match, 0.25);
        assert_eq!(scores.token_accuracy, 9.0 / 13.0);
        let table = table(&[Outcome {
            label: "beam(width=4)".into(),
            scores,
            ms_per_sequence: 1.5,
        }]);
        assert_eq!(
            table,
            "method         exact match  token accuracy  ms per sequence\n\
             beam(width=4)        0.250           0.692            1.500\n"
        );
    }
}
