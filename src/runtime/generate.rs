//! Generation with a trained sequence model: greedy decoding, beam search
//! (width k, scores normalized by length^penalty) and temperature / top-k
//! sampling. Text models continue a prompt; encoder–decoder models decode
//! the target of a source sequence.

use std::collections::HashMap;

use ndarray::{ArrayD, IxDyn};

use super::carry::Carried;
use super::data::{Data, Split};
use super::{RunError, Session};
use crate::check::config::Config;
use crate::check::generation::{self, Generation};
use crate::interp::random;

/// How to choose the next token.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    Greedy,
    Beam { width: usize, length_penalty: f64 },
    Sample { temperature: f64, top_k: Option<usize> },
}

impl Method {
    pub fn from_config(config: Option<&Config>) -> Method {
        match config.map(|c| c.name.as_str()) {
            Some("beam") => Method::Beam {
                width: config.and_then(|c| c.int("width")).unwrap_or(4).max(1) as usize,
                length_penalty: config.and_then(|c| c.float("length_penalty")).unwrap_or(1.0),
            },
            Some("sample") => Method::Sample {
                temperature: config.and_then(|c| c.float("temperature")).unwrap_or(1.0),
                top_k: config.and_then(|c| c.int("top_k")).map(|k| k as usize),
            },
            _ => Method::Greedy,
        }
    }

    /// The methods a `generate` section lists, in order (greedy without
    /// one).
    pub fn all(generate: Option<&Config>) -> Vec<Method> {
        let listed: Vec<Method> = generate
            .map(|g| g.calls("method").iter().map(|c| Method::from_config(Some(c))).collect())
            .unwrap_or_default();
        if listed.is_empty() {
            vec![Method::Greedy]
        } else {
            listed
        }
    }

    /// The method as a label for tables and metric names: `greedy`,
    /// `beam(width=4)` (with `,length_penalty=P` unless it is 1),
    /// `sample(temperature=0.8,top_k=20)` (`top_k` when given).
    pub fn label(&self) -> String {
        match self {
            Method::Greedy => "greedy".to_string(),
            Method::Beam { width, length_penalty } if *length_penalty == 1.0 => format!("beam(width={width})"),
            Method::Beam { width, length_penalty } => format!("beam(width={width},length_penalty={length_penalty})"),
            Method::Sample {
                temperature,
                top_k: None,
            } => format!("sample(temperature={temperature})"),
            Method::Sample {
                temperature,
                top_k: Some(k),
            } => format!("sample(temperature={temperature},top_k={k})"),
        }
    }

    /// Hypotheses kept per example: the beam's width, else 1.
    pub fn width(&self) -> usize {
        match self {
            Method::Beam { width, .. } => (*width).max(1),
            _ => 1,
        }
    }
}

const SAMPLE_STREAM: u64 = (1 << 40) + 3;

/// An error unless the session's model fits generation of `kind` (see
/// `check::generation`): the shapes below are then what the model gives.
fn require(session: &Session, kind: Generation, what: &str) -> Result<(), RunError> {
    match generation::fit(&session.program.datasets, &session.program.eval_trace) {
        Ok(found) if found == kind => Ok(()),
        Ok(_) => Err(RunError::Backend(format!(
            "the model does not fit {what}: its dataset calls for the other kind of generation"
        ))),
        Err(why) => Err(RunError::Backend(format!("the model does not fit {what}: {why}"))),
    }
}

fn log_softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = logits.iter().map(|l| (l - max).exp()).sum();
    logits.iter().map(|l| l - max - sum.ln()).collect()
}

/// Picks a token from logits by greedy choice or by sampling.
fn choose(logits: &[f64], method: &Method, seed: u64, draw: u64) -> u32 {
    match method {
        Method::Sample { temperature, top_k } => {
            let scaled: Vec<f64> = logits.iter().map(|l| l / temperature.max(1e-6)).collect();
            let mut order: Vec<usize> = (0..scaled.len()).collect();
            order.sort_by(|&a, &b| scaled[b].total_cmp(&scaled[a]));
            order.truncate(top_k.unwrap_or(order.len()).max(1));
            let kept: Vec<f64> = order.iter().map(|&i| scaled[i]).collect();
            let probabilities: Vec<f64> = log_softmax(&kept).into_iter().map(f64::exp).collect();
            let mut u = random::uniform(seed, draw, SAMPLE_STREAM, 0);
            for (i, p) in probabilities.iter().enumerate() {
                if u < *p {
                    return order[i] as u32;
                }
                u -= p;
            }
            order[order.len() - 1] as u32
        }
        _ => argmax(logits),
    }
}

fn argmax(values: &[f64]) -> u32 {
    values
        .iter()
        .enumerate()
        .fold(
            (0, f64::NEG_INFINITY),
            |best, (i, &v)| if v > best.1 { (i, v) } else { best },
        )
        .0 as u32
}

/// A hypothesis of beam search.
#[derive(Clone, Debug)]
struct Beam {
    tokens: Vec<u32>,
    log_prob: f64,
    done: bool,
}

fn score(beam: &Beam, penalty: f64) -> f64 {
    beam.log_prob / (beam.tokens.len().max(1) as f64).powf(penalty)
}

/// Extends every live beam by its best tokens and keeps the best `width`.
fn beam_step(beams: Vec<Beam>, logits: &[Vec<f64>], width: usize, penalty: f64, end: Option<u32>) -> Vec<Beam> {
    let mut candidates = Vec::new();
    let mut live = 0;
    for beam in beams {
        if beam.done {
            candidates.push(beam);
            continue;
        }
        let logp = log_softmax(&logits[live]);
        live += 1;
        let mut order: Vec<usize> = (0..logp.len()).collect();
        order.sort_by(|&a, &b| logp[b].total_cmp(&logp[a]));
        for &token in order.iter().take(width) {
            let mut next = beam.clone();
            next.tokens.push(token as u32);
            next.log_prob += logp[token];
            next.done = Some(token as u32) == end;
            candidates.push(next);
        }
    }
    candidates.sort_by(|a, b| score(b, penalty).total_cmp(&score(a, penalty)));
    candidates.truncate(width);
    candidates
}

/// Continues `prompt` by `length` characters with a text model whose input
/// is a window of `context` ids (the prompt right-aligned, spaces before).
pub fn continue_text(
    session: &mut Session,
    data: &Data,
    prompt: &str,
    length: usize,
    method: &Method,
) -> Result<String, RunError> {
    require(session, Generation::Text, "text generation")?;
    let Split::Stream { context, .. } = &data.val else {
        return Ok(String::new());
    };
    let context = *context;
    let other = (data.vocab.len() - 1) as u32;
    let id_of = |c: char| data.vocab.iter().position(|&v| v == c).map_or(other, |i| i as u32);
    let space = id_of(' ');
    let mut ids: Vec<u32> = prompt.chars().map(id_of).collect();
    let prompt_len = ids.len();
    let window = |ids: &[u32]| -> Vec<f64> {
        let tail = &ids[ids.len().saturating_sub(context)..];
        let mut w = vec![f64::from(space); context - tail.len()];
        w.extend(tail.iter().map(|&i| f64::from(i)));
        w
    };
    let input = format!("{}.x", data.name);
    if let Some((carried, logits)) = Carried::start(session, &ids, &input, context, space, method.width())? {
        let ids = continue_carried(session, carried, logits, ids, length, method)?;
        return Ok(text_after(&ids, prompt_len, data));
    }
    match method {
        Method::Beam { width, length_penalty } => {
            let mut beams = vec![Beam {
                tokens: ids.clone(),
                log_prob: 0.0,
                done: false,
            }];
            for _ in 0..length {
                let rows: Vec<Vec<f64>> = beams.iter().map(|b| window(&b.tokens)).collect();
                let logits = last_logits(session, &input, &rows, *width, context)?;
                beams = beam_step(beams, &logits, *width, *length_penalty, None);
            }
            ids = beams.into_iter().next().map(|b| b.tokens).unwrap_or(ids);
        }
        _ => {
            for i in 0..length {
                let logits = last_logits(session, &input, &[window(&ids)], 1, context)?;
                ids.push(choose(&logits[0], method, session.seed, i as u64));
            }
        }
    }
    Ok(text_after(&ids, prompt_len, data))
}

/// The characters of `ids` after the prompt's `prompt_len`.
fn text_after(ids: &[u32], prompt_len: usize, data: &Data) -> String {
    ids[prompt_len..]
        .iter()
        .map(|&i| data.vocab.get(i as usize).copied().unwrap_or('?'))
        .collect()
}

/// [`continue_text`] with a decoder that has read the prompt `ids` and
/// gave `logits` for the next token: one step of the recurrence per token.
fn continue_carried(
    session: &mut Session,
    mut carried: Carried,
    logits: Vec<f64>,
    ids: Vec<u32>,
    length: usize,
    method: &Method,
) -> Result<Vec<u32>, RunError> {
    if let Method::Beam { width, length_penalty } = method {
        let mut beams = vec![Beam {
            tokens: ids.clone(),
            log_prob: 0.0,
            done: false,
        }];
        let mut logits = vec![logits];
        for i in 0..length {
            let next = beam_step(beams.clone(), &logits, *width, *length_penalty, None);
            if i + 1 < length {
                // Every hypothesis extends one of the last step's by a token.
                let parents: Vec<usize> = next
                    .iter()
                    .map(|b| {
                        let before = &b.tokens[..b.tokens.len() - 1];
                        beams.iter().position(|p| p.tokens == before).unwrap_or(0)
                    })
                    .collect();
                carried.select(&parents);
                let tokens: Vec<u32> = next.iter().map(|b| b.tokens[b.tokens.len() - 1]).collect();
                logits = carried.step(session, &tokens)?;
            }
            beams = next;
        }
        return Ok(beams.into_iter().next().map_or(ids, |b| b.tokens));
    }
    let (mut ids, mut logits) = (ids, logits);
    for i in 0..length {
        let token = choose(&logits, method, session.seed, i as u64);
        ids.push(token);
        if i + 1 < length {
            logits = carried.step(session, &[token])?.remove(0);
        }
    }
    Ok(ids)
}

/// Logits at the last position for each row of a `[rows, context]` batch,
/// run as a batch of `capacity` rows (see `Session::forward`).
fn last_logits(
    session: &mut Session,
    input: &str,
    rows: &[Vec<f64>],
    capacity: usize,
    context: usize,
) -> Result<Vec<Vec<f64>>, RunError> {
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    let array = ArrayD::from_shape_vec(IxDyn(&[rows.len(), context]), flat).expect("rows have the context length");
    let output = session.forward(HashMap::from([(input.to_string(), array)]), rows.len(), capacity)?;
    let vocab = output.shape()[output.ndim() - 1];
    let flat = output.as_standard_layout().into_owned().into_raw_vec_and_offset().0;
    Ok((0..rows.len())
        .map(|r| {
            let start = ((r + 1) * context - 1) * vocab;
            flat[start..start + vocab].to_vec()
        })
        .collect())
}

/// A decoded example of an encoder–decoder task.
#[derive(Clone, Debug, PartialEq)]
pub struct Translation {
    pub source: Vec<u32>,
    pub target: Vec<u32>,
    pub output: Vec<u32>,
}

/// Decodes validation examples `rows` token by token (BOS first, until EOS);
/// a model that does not read the target decoded so far is run once per
/// group of examples.
pub fn translate(
    session: &mut Session,
    data: &Data,
    rows: &[usize],
    method: &Method,
) -> Result<Vec<Translation>, RunError> {
    require(session, Generation::Decode, "decoding")?;
    let dataset = session.program.datasets.iter().find(|d| d.name == data.name);
    let attr = |name: &str| dataset.and_then(|d| d.attr(name)).unwrap_or(0) as u32;
    let (pad, bos, eos) = (attr("pad"), attr("bos"), attr("eos"));
    let Split::Table { fields, .. } = &data.val else {
        return Ok(Vec::new());
    };
    let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, a)| a);
    let (Some(src), Some(tgt_out)) = (field("src"), field("tgt_out")) else {
        return Ok(Vec::new());
    };
    let src_len = src.shape()[1];
    let tgt_len = tgt_out.shape()[1];
    let row_of = |a: &ArrayD<f64>, r: usize| -> Vec<u32> {
        a.index_axis(ndarray::Axis(0), r).iter().map(|&v| v as u32).collect()
    };
    let strip = |tokens: Vec<u32>| -> Vec<u32> {
        tokens
            .into_iter()
            .take_while(|&t| t != eos)
            .filter(|&t| t != pad && t != bos)
            .collect()
    };
    let (width, penalty) = match method {
        Method::Beam { width, length_penalty } => (*width, *length_penalty),
        _ => (1, 0.0),
    };
    // Examples are decoded together: one forward pass per position for all
    // live hypotheses of a group of examples.
    let group = (64 / width).max(1);
    // A model that does not read `tgt_in` (non-autoregressive) scores every
    // position from the source alone: one forward pass per group, whose
    // scores every position's step reads.
    let one_pass = !generation::reads(&session.program.eval_trace, &format!("{}.tgt_in", data.name));
    let mut out = Vec::new();
    for chunk in rows.chunks(group) {
        let sources: Vec<Vec<u32>> = chunk.iter().map(|&r| row_of(src, r)).collect();
        let whole = if one_pass {
            let n = chunk.len();
            let src_rows = sources.iter().flatten().map(|&t| f64::from(t)).collect();
            let feeds = HashMap::from([(
                format!("{}.src", data.name),
                ArrayD::from_shape_vec(IxDyn(&[n, src_len]), src_rows).expect("sizes"),
            )]);
            Some(session.forward(feeds, n, group * width)?)
        } else {
            None
        };
        let mut beams: Vec<Vec<Beam>> = chunk
            .iter()
            .map(|_| {
                vec![Beam {
                    tokens: Vec::new(),
                    log_prob: 0.0,
                    done: false,
                }]
            })
            .collect();
        for position in 0..tgt_len {
            if let Some(whole) = &whole {
                let vocab = whole.shape()[2];
                let scores = |example: usize| (0..vocab).map(|v| whole[[example, position, v]]).collect::<Vec<f64>>();
                let logits: Vec<Vec<Vec<f64>>> = beams
                    .iter()
                    .enumerate()
                    .map(|(example, hypotheses)| {
                        hypotheses.iter().filter(|b| !b.done).map(|_| scores(example)).collect()
                    })
                    .collect();
                step_beams(
                    &mut beams,
                    &logits,
                    method,
                    (width, penalty, eos),
                    session.seed,
                    |example| (chunk[example] * tgt_len + position) as u64,
                );
                continue;
            }
            let mut src_rows = Vec::new();
            let mut tgt_rows = Vec::new();
            let mut owners = Vec::new();
            for (example, hypotheses) in beams.iter().enumerate() {
                for beam in hypotheses.iter().filter(|b| !b.done) {
                    src_rows.extend(sources[example].iter().map(|&t| f64::from(t)));
                    let mut tgt = vec![f64::from(pad); tgt_len];
                    tgt[0] = f64::from(bos);
                    for (i, &t) in beam.tokens.iter().enumerate().take(tgt_len - 1) {
                        tgt[i + 1] = f64::from(t);
                    }
                    tgt_rows.extend(tgt);
                    owners.push(example);
                }
            }
            let n = owners.len();
            if n == 0 {
                break;
            }
            let feeds = HashMap::from([
                (
                    format!("{}.src", data.name),
                    ArrayD::from_shape_vec(IxDyn(&[n, src_len]), src_rows).expect("sizes"),
                ),
                (
                    format!("{}.tgt_in", data.name),
                    ArrayD::from_shape_vec(IxDyn(&[n, tgt_len]), tgt_rows).expect("sizes"),
                ),
            ]);
            // One batch size however many hypotheses are still alive.
            let output = session.forward(feeds, n, chunk.len() * width)?;
            let vocab = output.shape()[2];
            let mut logits: Vec<Vec<Vec<f64>>> = vec![Vec::new(); beams.len()];
            for (b, &example) in owners.iter().enumerate() {
                logits[example].push((0..vocab).map(|v| output[[b, position, v]]).collect());
            }
            step_beams(
                &mut beams,
                &logits,
                method,
                (width, penalty, eos),
                session.seed,
                |example| (chunk[example] * tgt_len + position) as u64,
            );
        }
        for (example, hypotheses) in beams.into_iter().enumerate() {
            let best = hypotheses.into_iter().next().map(|b| b.tokens).unwrap_or_default();
            out.push(Translation {
                source: strip(sources[example].clone()),
                target: strip(row_of(tgt_out, chunk[example])),
                output: strip(best),
            });
        }
    }
    Ok(out)
}

/// One decoding step of every example's hypotheses, given the scores of
/// the next token for each live hypothesis of each example (`logits`, in
/// the hypotheses' order) with beam width, length penalty and EOS; `draw`
/// numbers an example's random draw for sampling.
fn step_beams(
    beams: &mut [Vec<Beam>],
    logits: &[Vec<Vec<f64>>],
    method: &Method,
    (width, penalty, eos): (usize, f64, u32),
    seed: u64,
    draw: impl Fn(usize) -> u64,
) {
    for (example, hypotheses) in beams.iter_mut().enumerate() {
        if logits[example].is_empty() {
            continue;
        }
        let current = std::mem::take(hypotheses);
        *hypotheses = match method {
            Method::Beam { .. } => beam_step(current, &logits[example], width, penalty, Some(eos)),
            _ => {
                let mut beam = current.into_iter().next().expect("one hypothesis");
                let token = choose(&logits[example][0], method, seed, draw(example));
                beam.tokens.push(token);
                beam.done = token == eos;
                vec![beam]
            }
        };
    }
}

/// Tokens as text: digits for small vocabularies, numbers otherwise.
pub fn tokens_text(tokens: &[u32], vocab: u32) -> String {
    if vocab <= 10 {
        tokens.iter().map(|t| char::from_digit(*t, 10).unwrap_or('+')).collect()
    } else {
        tokens.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beam_search_prefers_the_likelier_path() {
        let beams = vec![Beam {
            tokens: vec![],
            log_prob: 0.0,
            done: false,
        }];
        let step = beam_step(beams, &[vec![1.0, 3.0, 2.0]], 2, 1.0, None);
        assert_eq!(step.iter().map(|b| b.tokens[0]).collect::<Vec<_>>(), vec![1, 2]);
    }

    /// Decodes `examples` sequences of up to `length` tokens with `method`
    /// as `translate` does, the next token's scores a fixed function of
    /// the example and the tokens so far (a stand-in for a model).
    fn decode_fake(method: &Method, examples: usize, length: usize, vocab: u64, eos: u32) -> Vec<Vec<u32>> {
        let penalty = match method {
            Method::Beam { length_penalty, .. } => *length_penalty,
            _ => 0.0,
        };
        let scores = |example: usize, prefix: &[u32]| -> Vec<f64> {
            let key = prefix
                .iter()
                .fold(17u64, |h, &t| h.wrapping_mul(31).wrapping_add(u64::from(t) + 1));
            (0..vocab)
                .map(|v| 6.0 * random::uniform(example as u64, key, 5, v))
                .collect()
        };
        let start = Beam {
            tokens: Vec::new(),
            log_prob: 0.0,
            done: false,
        };
        let mut beams = vec![vec![start]; examples];
        for position in 0..length {
            let logits: Vec<Vec<Vec<f64>>> = beams
                .iter()
                .enumerate()
                .map(|(e, hs)| hs.iter().filter(|b| !b.done).map(|b| scores(e, &b.tokens)).collect())
                .collect();
            step_beams(&mut beams, &logits, method, (method.width(), penalty, eos), 0, |e| {
                (e * length + position) as u64
            });
        }
        beams
            .into_iter()
            .map(|h| h.into_iter().next().unwrap().tokens)
            .collect()
    }

    #[test]
    fn beam_search_of_width_one_is_greedy_decoding() {
        let greedy = decode_fake(&Method::Greedy, 200, 12, 9, 8);
        // Some decodings stop at EOS early, some run to the full length.
        assert!(
            greedy.iter().any(|t| t.len() < 12 && t.last() == Some(&8)),
            "{greedy:?}"
        );
        assert!(greedy.iter().any(|t| t.len() == 12), "{greedy:?}");
        for length_penalty in [0.0, 1.0, 2.5] {
            let beam = Method::Beam {
                width: 1,
                length_penalty,
            };
            assert_eq!(
                decode_fake(&beam, 200, 12, 9, 8),
                greedy,
                "length penalty {length_penalty}"
            );
        }
        // A wider beam keeps other hypotheses and finds other sequences.
        let wide = Method::Beam {
            width: 4,
            length_penalty: 1.0,
        };
        assert_ne!(decode_fake(&wide, 200, 12, 9, 8), greedy);
    }

    #[test]
    fn methods_have_labels_and_widths() {
        let beam = Method::Beam {
            width: 4,
            length_penalty: 1.0,
        };
        assert_eq!((beam.label(), beam.width()), ("beam(width=4)".to_string(), 4));
        let beam = Method::Beam {
            width: 2,
            length_penalty: 0.5,
        };
        assert_eq!(beam.label(), "beam(width=2,length_penalty=0.5)");
        let sample = Method::Sample {
            temperature: 0.8,
            top_k: Some(20),
        };
        assert_eq!(
            (sample.label(), sample.width()),
            ("sample(temperature=0.8,top_k=20)".to_string(), 1)
        );
        assert_eq!(Method::Greedy.label(), "greedy");
        assert_eq!(Method::all(None), vec![Method::Greedy]);
    }

    #[test]
    fn sampling_respects_top_k() {
        let logits = [0.0, 5.0, 4.9, -3.0];
        for draw in 0..50 {
            let token = choose(
                &logits,
                &Method::Sample {
                    temperature: 1.0,
                    top_k: Some(2),
                },
                1,
                draw,
            );
            assert!(token == 1 || token == 2, "{token}");
        }
        assert_eq!(choose(&logits, &Method::Greedy, 0, 0), 1);
    }
}
