//! Contextual embeddings (`nnc embeddings`): a program checked with a probe
//! (the model alone, recording one block's output as `hidden`), a
//! checkpoint and a few texts in; the hidden vector at a marked character
//! of each text (or the mean over the text) and the cosine similarity of
//! every pair out. The same character in two contexts gets two vectors;
//! how alike they are is what the similarity says.
//!
//! A text fills the model's first token input from position 0 (characters
//! mapped by the dataset's vocabulary, the rest of the context filled with
//! spaces); other inputs (segment ids) are zeros. `[c]` marks the character
//! `c` whose vector is taken. The graph runs on the interpreter, in f64.

use std::collections::HashMap;

use ndarray::{ArrayD, Axis, IxDyn};
use serde_json::{json, Value};

use super::Session;
use crate::interp::{self, Env};

/// One text: its characters and the marked position, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub text: String,
    pub chars: Vec<char>,
    pub at: Option<usize>,
}

/// Parses `th[e] king`: the text without the brackets, and the position of
/// the bracketed character. A text without `[c]` has no position.
pub fn parse(input: &str) -> Result<Probe, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut at = None;
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '[' && i + 2 < chars.len() && chars[i + 2] == ']' {
            if at.is_some() {
                return Err(format!("`{input}` marks two characters; mark one, as in `th[e]`"));
            }
            at = Some(out.len());
            out.push(chars[i + 1]);
            i += 3;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    if out.is_empty() {
        return Err("an empty text has no characters to embed".into());
    }
    Ok(Probe {
        text: input.to_string(),
        chars: out,
        at,
    })
}

/// The hidden vectors and their similarities.
#[derive(Clone, Debug)]
pub struct Embeddings {
    pub block: String,
    pub probes: Vec<Probe>,
    pub vectors: Vec<Vec<f64>>,
    pub similarity: Vec<Vec<f64>>,
}

pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b)).max(1e-300)
}

/// Runs the probe graph of `session.program` on the texts.
pub fn embed(session: &Session, block: &str, probes: Vec<Probe>) -> Result<Embeddings, String> {
    let program = &session.program;
    let trace = program
        .probe_trace
        .as_ref()
        .ok_or("the program has no model to probe")?;
    if !trace.outputs.iter().any(|(name, _)| name == "hidden") {
        return Err(format!(
            "the model does not call the block `{block}`: give --block the name of a block the model calls"
        ));
    }
    let model = program.model.as_ref().ok_or("the program has no model")?;
    // The text goes to the first input of token ids: i32[B, T].
    let (input, ty) = model
        .inputs
        .iter()
        .find(|(_, ty)| ty.dtype == crate::prim::DType::I32 && ty.shape.len() == 2)
        .ok_or("the model has no input of token ids (i32[B, T])")?;
    let context = ty.shape[1]
        .as_const()
        .ok_or("the model's token input has no constant length")? as usize;
    let data = session.data.first().ok_or("the program has no dataset")?;
    if data.vocab.is_empty() {
        return Err(format!(
            "dataset `{}` has no vocabulary of characters (a `text` or `passages` source)",
            data.name
        ));
    }
    let id = super::passages::encoder(&data.vocab);
    let n = probes.len();
    let mut tokens = Vec::with_capacity(n * context);
    for probe in &probes {
        if probe.chars.len() > context {
            return Err(format!(
                "`{}` has {} characters; the model reads {context}",
                probe.text,
                probe.chars.len()
            ));
        }
        tokens.extend(probe.chars.iter().map(|&c| id(c)));
        tokens.extend(std::iter::repeat_n(id(' '), context - probe.chars.len()));
    }
    let mut graph = crate::ir::lower::lower(trace);
    crate::passes::optimize(&mut graph);
    let dims = HashMap::from([(crate::check::data::BATCH.to_string(), n as i64)]);
    let mut feeds: HashMap<String, ArrayD<f64>> = session.tensors.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    feeds.insert(
        format!("probe.{input}"),
        ArrayD::from_shape_vec(IxDyn(&[n, context]), tokens).map_err(|e| e.to_string())?,
    );
    for (name, id) in graph.leaves(crate::ir::input_name) {
        if let std::collections::hash_map::Entry::Vacant(entry) = feeds.entry(name) {
            let shape = interp::eval_shape(&graph.node(id).shape, &dims).map_err(|e| e.to_string())?;
            entry.insert(ArrayD::zeros(shape));
        }
    }
    let env = Env {
        dims,
        feeds,
        seed: session.seed,
        step: session.step,
        collective: None,
    };
    let values = interp::run(&graph, &env).map_err(|e| e.to_string())?;
    let hidden = values.output("hidden").ok_or("the probe has no hidden output")?;
    let mut vectors = Vec::with_capacity(n);
    for (k, probe) in probes.iter().enumerate() {
        let row = hidden.index_axis(Axis(0), k);
        let vector: Vec<f64> = match (row.ndim(), probe.at) {
            (1, _) => row.iter().copied().collect(),
            (2, Some(at)) => row.index_axis(Axis(0), at).iter().copied().collect(),
            (2, None) => {
                let used = row.slice_axis(Axis(0), ndarray::Slice::from(0..probe.chars.len()));
                used.mean_axis(Axis(0)).ok_or("an empty text")?.iter().copied().collect()
            }
            _ => {
                return Err(format!(
                    "the output of `{block}` is {:?} per example; a vector per position ([T, D]) or per example ([D]) is needed",
                    row.shape()
                ))
            }
        };
        vectors.push(vector);
    }
    let similarity = vectors
        .iter()
        .map(|a| vectors.iter().map(|b| cosine(a, b)).collect())
        .collect();
    Ok(Embeddings {
        block: block.to_string(),
        probes,
        vectors,
        similarity,
    })
}

impl Embeddings {
    pub fn text(&self) -> String {
        let width = self.vectors.first().map_or(0, Vec::len);
        let mut out = format!(
            "hidden vectors of `{}` ({width} values each), at the marked character (else the mean over the text):\n",
            self.block
        );
        for (k, probe) in self.probes.iter().enumerate() {
            out += &format!("  {:>2}  {}\n", k + 1, probe.text);
        }
        out += "cosine similarity:\n     ";
        for k in 0..self.probes.len() {
            out += &format!("{:>8}", k + 1);
        }
        out += "\n";
        for (k, row) in self.similarity.iter().enumerate() {
            out += &format!("  {:>2} ", k + 1);
            for value in row {
                out += &format!("{value:>8.4}");
            }
            out += "\n";
        }
        out
    }

    pub fn to_json(&self) -> Value {
        json!({
            "event": "embeddings",
            "block": self.block,
            "texts": self.probes.iter().map(|p| p.text.clone()).collect::<Vec<_>>(),
            "positions": self.probes.iter().map(|p| p.at).collect::<Vec<_>>(),
            "similarity": self.similarity,
            "vectors": self.vectors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bracketed_character_is_the_position() {
        let probe = parse("the [k]ing").unwrap();
        assert_eq!(probe.chars.iter().collect::<String>(), "the king");
        assert_eq!(probe.at, Some(4));
        assert_eq!(parse("no mark").unwrap().at, None);
        assert!(parse("[a] and [b]").is_err());
        // A bracket that does not enclose one character is text.
        assert_eq!(parse("[ab]").unwrap().chars.len(), 4);
    }

    #[test]
    fn cosine_of_vectors() {
        assert!((cosine(&[1.0, 0.0], &[0.0, 2.0])).abs() < 1e-12);
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-12);
        assert!((cosine(&[1.0, 0.0], &[-3.0, 0.0]) + 1.0).abs() < 1e-12);
    }
}
