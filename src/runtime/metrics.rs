//! Validation metrics, accumulated over batches: `loss`, `accuracy`,
//! `token_accuracy`, `exact_match`, `mae`, `mse`, `perplexity`, and
//! `label_error_rate` for CTC models (decoded by `ctc.rs`). A regression
//! target that was normalized (a `series`) has `mae` and `mse` reported in
//! its own units (`Totals::in_units`); the loss stays what the optimizer saw.

use std::collections::{BTreeMap, HashMap};

use ndarray::{ArrayD, Axis};

use super::ctc::{edit_distance, Decoder};
use super::data::Data;

/// The tensor the model's output is compared with: `y`, or `tgt_out` for
/// sequence tasks.
pub fn target_of(data: &Data, batch: &HashMap<String, ArrayD<f64>>) -> Option<ArrayD<f64>> {
    ["y", "tgt_out"]
        .iter()
        .find_map(|field| batch.get(&format!("{}.{field}", data.name)).cloned())
}

#[derive(Default, Debug)]
pub struct Totals {
    examples: f64,
    loss: f64,
    correct: f64,
    tokens: f64,
    correct_tokens: f64,
    exact: f64,
    abs_error: f64,
    sq_error: f64,
    values: f64,
    /// CTC: edits between decodings and labels, and labels in all.
    label_edits: f64,
    labels: f64,
    /// The target's unit in the model's scale (a normalized series' standard
    /// deviation): `mae` is multiplied by it and `mse` by its square.
    unit: Option<f64>,
}

impl Totals {
    /// Totals whose `mae` and `mse` are reported in the data's own units:
    /// the model's outputs and targets are in units of `unit` (the series'
    /// standard deviation when it was normalized).
    pub fn in_units(unit: Option<f64>) -> Self {
        Totals {
            unit,
            ..Totals::default()
        }
    }

    /// Adds one batch: its size, mean loss, the model's output and the target.
    pub fn add(
        &mut self,
        size: usize,
        loss: f64,
        output: Option<&ArrayD<f64>>,
        target: Option<&ArrayD<f64>>,
        pad: Option<i64>,
    ) {
        let n = size as f64;
        self.examples += n;
        self.loss += loss * n;
        let (Some(output), Some(target)) = (output, target) else {
            return;
        };
        if output.ndim() == target.ndim() + 1 {
            // Classes along the last axis of the output.
            let predicted = output.map_axis(Axis(output.ndim() - 1), |row| {
                row.iter()
                    .enumerate()
                    .fold(
                        (0usize, f64::NEG_INFINITY),
                        |best, (i, &v)| {
                            if v > best.1 {
                                (i, v)
                            } else {
                                best
                            }
                        },
                    )
                    .0 as f64
            });
            if target.ndim() == 1 {
                self.correct += predicted.iter().zip(target.iter()).filter(|(p, t)| p == t).count() as f64;
            } else {
                let pad = pad.map(|p| p as f64);
                for (p_row, t_row) in predicted.outer_iter().zip(target.outer_iter()) {
                    let mut all = true;
                    for (p, t) in p_row.iter().zip(t_row.iter()) {
                        if Some(*t) == pad {
                            continue;
                        }
                        self.tokens += 1.0;
                        if p == t {
                            self.correct_tokens += 1.0;
                        } else {
                            all = false;
                        }
                    }
                    self.exact += f64::from(u8::from(all));
                }
            }
        } else if output.shape() == target.shape() {
            for (o, t) in output.iter().zip(target.iter()) {
                self.abs_error += (o - t).abs();
                self.sq_error += (o - t).powi(2);
                self.values += 1.0;
            }
        }
    }

    /// Adds the CTC decodings of one batch (see [`transcribe`]).
    pub fn add_transcriptions(
        &mut self,
        output: &ArrayD<f64>,
        batch: &HashMap<String, ArrayD<f64>>,
        data: &str,
        blank: usize,
        decoder: Decoder,
    ) {
        for (reference, decoded) in transcribe(output, batch, data, blank, decoder) {
            self.label_edits += edit_distance(&decoded, &reference) as f64;
            self.labels += reference.len() as f64;
        }
    }

    /// Sums the totals of every process of a data-parallel run (each
    /// evaluated its share of the batches), so each holds the whole split's.
    pub fn sum_over(&mut self, collective: &dyn crate::collective::Collective) {
        let fields = [
            &mut self.examples,
            &mut self.loss,
            &mut self.correct,
            &mut self.tokens,
            &mut self.correct_tokens,
            &mut self.exact,
            &mut self.abs_error,
            &mut self.sq_error,
            &mut self.values,
            &mut self.label_edits,
            &mut self.labels,
        ];
        let mut sums: Vec<f64> = fields.iter().map(|f| **f).collect();
        collective.sum_f64(&mut sums);
        for (field, sum) in fields.into_iter().zip(sums) {
            *field = sum;
        }
    }

    pub fn finish(&self, names: &[String]) -> BTreeMap<String, f64> {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        let loss = ratio(self.loss, self.examples);
        let unit = self.unit.unwrap_or(1.0);
        names
            .iter()
            .map(|name| {
                let value = match name.as_str() {
                    "loss" => loss,
                    "perplexity" => loss.exp(),
                    "accuracy" if self.tokens > 0.0 => ratio(self.correct_tokens, self.tokens),
                    "accuracy" => ratio(self.correct, self.examples),
                    "token_accuracy" => ratio(self.correct_tokens, self.tokens),
                    "exact_match" => ratio(self.exact, self.examples),
                    "mae" => ratio(self.abs_error, self.values) * unit,
                    "mse" => ratio(self.sq_error, self.values) * unit * unit,
                    "label_error_rate" => ratio(self.label_edits, self.labels),
                    _ => f64::NAN,
                };
                (name.clone(), value)
            })
            .collect()
    }
}

/// The CTC decodings of one batch: `output` holds per-frame class scores
/// `[N, T, C]`; the batch of dataset `data` gives each example's
/// `input_lengths` (frames decoded), `labels` and `label_lengths`. Out:
/// (reference labels, decoded labels) per example; nothing for a batch
/// without those fields.
pub fn transcribe(
    output: &ArrayD<f64>,
    batch: &HashMap<String, ArrayD<f64>>,
    data: &str,
    blank: usize,
    decoder: Decoder,
) -> Vec<(Vec<usize>, Vec<usize>)> {
    let field = |name: &str| batch.get(&format!("{data}.{name}"));
    let (Some(frames), Some(labels), Some(lengths)) = (field("input_lengths"), field("labels"), field("label_lengths"))
    else {
        return Vec::new();
    };
    let &[n, t, classes] = output.shape() else {
        return Vec::new();
    };
    let scores = output.as_standard_layout();
    let Some(scores) = scores.as_slice() else {
        return Vec::new();
    };
    (0..n.min(labels.shape()[0]))
        .map(|e| {
            let length = (frames[e].max(0.0) as usize).min(t);
            let decoded = decoder.decode(&scores[e * t * classes..(e * t + length) * classes], classes, blank);
            let count = (lengths[e].max(0.0) as usize).min(labels.shape()[1]);
            let reference = (0..count).map(|i| labels[[e, i]] as usize).collect();
            (reference, decoded)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores whose best class per frame is `best` (one example per row).
    fn scores(best: &[&[usize]], classes: usize) -> ArrayD<f64> {
        let frames = best[0].len();
        let values = best
            .iter()
            .flat_map(|row| {
                row.iter()
                    .flat_map(|&b| (0..classes).map(move |c| f64::from(u8::from(c == b))))
            })
            .collect();
        ArrayD::from_shape_vec(ndarray::IxDyn(&[best.len(), frames, classes]), values).unwrap()
    }

    #[test]
    fn label_error_rate_is_edits_over_reference_labels() {
        // Decodings over the first input_lengths frames: [1, 2] and [2, 2, 1].
        let output = scores(&[&[1, 1, 0, 2, 3, 3], &[2, 0, 2, 1, 1, 0]], 4);
        let batch = HashMap::from([
            (
                "d.input_lengths".to_string(),
                ArrayD::from_shape_vec(ndarray::IxDyn(&[2]), vec![4.0, 6.0]).unwrap(),
            ),
            (
                "d.labels".to_string(),
                ArrayD::from_shape_vec(ndarray::IxDyn(&[2, 3]), vec![1.0, 2.0, 0.0, 2.0, 1.0, 0.0]).unwrap(),
            ),
            (
                "d.label_lengths".to_string(),
                ArrayD::from_shape_vec(ndarray::IxDyn(&[2]), vec![2.0, 2.0]).unwrap(),
            ),
        ]);
        let decoded = transcribe(&output, &batch, "d", 0, Decoder::Greedy);
        assert_eq!(decoded, vec![(vec![1, 2], vec![1, 2]), (vec![2, 1], vec![2, 2, 1])]);
        let mut totals = Totals::default();
        totals.add_transcriptions(&output, &batch, "d", 0, Decoder::Greedy);
        // One insertion over four reference labels.
        let rate = totals.finish(&["label_error_rate".to_string()])["label_error_rate"];
        assert_eq!(rate, 0.25);
    }
}
