//! Text generation one token at a time, the recurrent state carried from
//! token to token (the decoder of [`crate::check::decode`]), instead of
//! running the whole context window again for every token: a token costs
//! one step of the recurrence, whatever the context length.
//!
//! In: a session with a decoder, and the rows' tokens. Out: the logits of
//! the next token for every row, the state moved on. Before a decoder is
//! trusted, [`Carried::start`] runs the prompt through it and compares the
//! logits with the whole-window evaluation graph's at the prompt's last
//! position: a model whose positions meet other than through its scans (or
//! whose scans start from a state of its own) does not agree, and text is
//! generated window by window as before.

use std::collections::HashMap;

use ndarray::{ArrayD, Axis, IxDyn};

use super::{Model, RunError, Session};

/// Largest difference, relative to the logits' size, at which the decoder
/// agrees with the whole-window model (both compute in f32 on the JIT).
const AGREEMENT: f64 = 1e-3;

/// A decoder's state for a batch of rows.
pub struct Carried {
    /// The decoder's token input, `decode.<model input>`.
    input: String,
    /// Its carries: the input `decode.carry.<k>` and the output `carry.<k>`.
    carries: Vec<(String, String)>,
    /// The state of every carry, `[rows, ...]`.
    state: Vec<ArrayD<f64>>,
    /// Rows the decoder is compiled for (more rows are padded to it).
    capacity: usize,
}

impl Carried {
    /// A decoder for `capacity` rows that has read `prompt` (one row), with
    /// the logits of the token after it; `None` when the session has no
    /// decoder or the decoder disagrees on the prompt with the whole-window
    /// model, whose input `input` is a window of `context` tokens (`pad`
    /// fills it after the prompt).
    pub fn start(
        session: &mut Session,
        prompt: &[u32],
        input: &str,
        context: usize,
        pad: u32,
        capacity: usize,
    ) -> Result<Option<(Carried, Vec<f64>)>, RunError> {
        let Some(graph) = &session.decode_graph else {
            return Ok(None);
        };
        let leaves = graph.leaves(crate::ir::input_name);
        let tokens: Vec<&String> = leaves
            .iter()
            .map(|(name, _)| name)
            .filter(|name| !name.starts_with("decode.carry."))
            .collect();
        let ([token_input], false) = (tokens.as_slice(), prompt.is_empty() || context == 0) else {
            return Ok(None);
        };
        let dims = HashMap::from([(crate::check::data::BATCH.to_string(), 1)]);
        let mut carries = Vec::new();
        let mut state = Vec::new();
        for (name, id) in &leaves {
            if let Some(k) = name.strip_prefix("decode.carry.") {
                let shape = crate::interp::eval_shape(&graph.node(*id).shape, &dims)
                    .map_err(|e| RunError::Backend(e.to_string()))?;
                carries.push((name.clone(), format!("carry.{k}")));
                state.push(ArrayD::zeros(shape));
            }
        }
        let mut carried = Carried {
            input: (*token_input).clone(),
            carries,
            state,
            capacity,
        };
        // The prompt's head (what one window holds) is where both models
        // can be compared.
        let head = prompt.len().min(context);
        let (mut logits, mut at_head) = (Vec::new(), Vec::new());
        for (i, &token) in prompt.iter().enumerate() {
            logits = carried.step(session, &[token])?.remove(0);
            if i + 1 == head {
                at_head = logits.clone();
            }
        }
        let mut row: Vec<f64> = prompt[..head].iter().map(|&t| f64::from(t)).collect();
        row.resize(context, f64::from(pad));
        let array = ArrayD::from_shape_vec(IxDyn(&[1, context]), row).expect("one row of the window");
        let output = session.forward(HashMap::from([(input.to_string(), array)]), 1, 1)?;
        let vocab = output.shape()[output.ndim() - 1];
        let whole: Vec<f64> = output.iter().skip((head - 1) * vocab).take(vocab).copied().collect();
        Ok(agree(&at_head, &whole).then_some((carried, logits)))
    }

    /// Reads one token per row (as many rows as the state has) and returns
    /// each row's logits for the next token.
    pub fn step(&mut self, session: &mut Session, tokens: &[u32]) -> Result<Vec<Vec<f64>>, RunError> {
        let rows = tokens.len();
        let column = tokens.iter().map(|&t| f64::from(t)).collect();
        let mut inputs = HashMap::from([(
            self.input.clone(),
            ArrayD::from_shape_vec(IxDyn(&[rows, 1]), column).expect("one token per row"),
        )]);
        for ((name, _), state) in self.carries.iter().zip(&self.state) {
            inputs.insert(name.clone(), state.clone());
        }
        let mut names = vec!["model_output"];
        names.extend(self.carries.iter().map(|(_, output)| output.as_str()));
        let mut outputs = session.run_model(Model::Decode, inputs, rows, self.capacity.max(rows), &names)?;
        self.state = outputs.split_off(1);
        let logits = outputs.remove(0);
        Ok(logits.outer_iter().map(|row| row.iter().copied().collect()).collect())
    }

    /// Keeps the rows `parents` names, in that order (beam search).
    pub fn select(&mut self, parents: &[usize]) {
        for state in &mut self.state {
            *state = state.select(Axis(0), parents);
        }
    }
}

/// Whether two logit vectors agree within [`AGREEMENT`].
fn agree(a: &[f64], b: &[f64]) -> bool {
    let size = b.iter().fold(1.0f64, |m, x| m.max(x.abs()));
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= AGREEMENT * size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_is_relative_to_the_logits_size() {
        assert!(agree(&[10.0, -20.0], &[10.01, -20.0]));
        assert!(!agree(&[10.0, -20.0], &[10.1, -20.0]));
        assert!(!agree(&[0.5], &[0.502]));
        assert!(!agree(&[0.5], &[0.5, 0.5]));
    }
}
