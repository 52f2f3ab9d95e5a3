//! Hessian analysis (`analyze { hessian: true }`, `nnc analyze`): a
//! session's parameters and training data in; the curvature of the training
//! loss at those parameters out — the gradient norm, the Hessian's
//! eigenvalues (all of them from the dense Hessian, or the extreme ones by
//! Lanczos), the minimum ratio (the share of positive eigenvalues) and a
//! verdict: `local_minimum`, `saddle_point` (with the direction of the most
//! negative eigenvalue and the loss one step along it) or `not_critical`.
//!
//! The loss analyzed is the evaluation-mode loss (no dropout, so it is one
//! deterministic function) averaged over the first `examples` examples of
//! the training split. Hessian-vector products come from autodiff applied
//! twice ([`product_graph`]): the gradient graph `g(w)` is extended with
//! `s = Σ g·v` for a direction `v` fed as an input, and the gradient of `s`
//! is `H v` (reverse over reverse). That graph runs on the interpreter, in
//! f64: the models analyzed are small, and eigenvalues near zero need the
//! precision the f32 JIT does not have.

pub mod eigen;

use std::collections::HashMap;
use std::fmt::Write;

use ndarray::{ArrayD, IxDyn};
use serde_json::{json, Map, Value};

use super::{data, Session};
use crate::check::config::Config;
use crate::check::schemas::HESSIAN_DENSE_MAX;
use crate::interp::{self, Env};
use crate::ir::{param_name, Graph, NodeId};
use crate::prim::Prim;

/// Eigenvalues within this share of the largest magnitude count as zero
/// (flat directions): neither positive for the minimum ratio nor negative
/// for a saddle.
pub const ZERO_BAND: f64 = 1e-6;

/// Halvings of `saddle_step` tried until a step along the most negative
/// direction lowers the loss.
const STEP_HALVINGS: usize = 30;

/// The loss graph `forward` (a `loss` output over `Param` leaves) extended
/// to output `loss`, `grad <path>` and `hvp <path>` (the Hessian times the
/// direction fed as the inputs `direction <path>`), optimized.
pub fn product_graph(forward: &Graph) -> Result<Graph, String> {
    let mut graph = forward.clone();
    let loss = graph.output("loss").ok_or("the program has no loss")?;
    let params = graph.leaves(param_name);
    let ids: Vec<NodeId> = params.iter().map(|(_, id)| *id).collect();
    let grads = crate::autodiff::gradients(&mut graph, loss, &ids);
    let mut dot = None;
    for ((path, param), &g) in params.iter().zip(&grads) {
        let node = graph.node(*param).clone();
        let v = graph.add(Prim::Input(direction_name(path)), node.dtype, node.shape, &[]);
        let gv = graph.mul(g, v);
        let s = graph.sum_all(gv);
        dot = Some(match dot {
            None => s,
            Some(acc) => graph.add_nodes(acc, s),
        });
    }
    let hvps = match dot {
        Some(dot) => crate::autodiff::gradients(&mut graph, dot, &ids),
        None => Vec::new(),
    };
    graph.outputs.clear();
    graph.set_output("loss", loss);
    for (((path, _), g), h) in params.iter().zip(grads).zip(hvps) {
        graph.set_output(&format!("grad {path}"), g);
        graph.set_output(&format!("hvp {path}"), h);
    }
    crate::passes::optimize(&mut graph);
    Ok(graph)
}

fn direction_name(path: &str) -> String {
    format!("direction {path}")
}

/// Loss, gradient and Hessian-vector products of a session's loss over a
/// fixed set of training examples, as functions of the flattened
/// parameters (the program's parameters in order, each in row-major order).
pub struct Products {
    graph: Graph,
    /// Parameter paths and shapes, in the flat vector's order.
    params: Vec<(String, Vec<usize>)>,
    /// The data, model states and sizes; parameters are added per run.
    env: Env,
    pub examples: usize,
}

/// One evaluation: the loss, the gradient and (for a direction) `H v`.
struct Evaluation {
    loss: f64,
    gradient: Vec<f64>,
    product: Vec<f64>,
}

impl Products {
    /// The products of `session`'s evaluation-mode loss over the first
    /// `examples` examples of each dataset's training split.
    pub fn new(session: &Session, examples: usize) -> Result<Products, String> {
        let forward = crate::ir::lower::lower(&session.program.eval_trace);
        let graph = product_graph(&forward)?;
        let available = session.data.iter().map(|d| d.train.len()).min().unwrap_or(examples);
        let n = examples.min(available).max(1);
        let mut env = Env {
            dims: HashMap::from([(crate::check::data::BATCH.to_string(), n as i64)]),
            feeds: HashMap::new(),
            seed: session.seed,
            step: session.step,
            collective: None,
        };
        for data in &session.data {
            let rows = data::eval_rows(&data.train, n, n)
                .into_iter()
                .next()
                .unwrap_or_default();
            env.feeds.extend(data::batch(data, &data.train, &rows, None));
        }
        for state in &session.program.states {
            if let Some(value) = session.tensors.get(&state.path) {
                env.feeds.insert(state.path.clone(), value.clone());
            }
        }
        let mut params = Vec::new();
        for info in &session.program.params {
            let value = session
                .tensors
                .get(&info.path)
                .ok_or_else(|| format!("the parameter `{}` has no value", info.path))?;
            params.push((info.path.clone(), value.shape().to_vec()));
        }
        Ok(Products {
            graph,
            params,
            env,
            examples: n,
        })
    }

    /// The number of parameters (the Hessian is this square).
    pub fn dimension(&self) -> usize {
        self.params.iter().map(|(_, s)| s.iter().product::<usize>()).sum()
    }

    /// Parameter paths and element counts, in the flat vector's order.
    pub fn layout(&self) -> Vec<(String, usize)> {
        self.params
            .iter()
            .map(|(p, s)| (p.clone(), s.iter().product()))
            .collect()
    }

    /// `session`'s parameters as one flat vector.
    pub fn point(&self, session: &Session) -> Vec<f64> {
        let mut flat = Vec::with_capacity(self.dimension());
        for (path, _) in &self.params {
            if let Some(value) = session.tensors.get(path) {
                flat.extend(value.iter());
            }
        }
        flat
    }

    /// Splits a flat vector into one tensor per parameter, fed under
    /// `name(path)`.
    fn feed(&self, feeds: &mut HashMap<String, ArrayD<f64>>, flat: &[f64], name: impl Fn(&str) -> String) {
        let mut offset = 0;
        for (path, shape) in &self.params {
            let count: usize = shape.iter().product();
            let values = flat[offset..offset + count].to_vec();
            offset += count;
            let array = ArrayD::from_shape_vec(IxDyn(shape), values).expect("the layout's sizes");
            feeds.insert(name(path), array);
        }
    }

    /// Flattens the outputs `<prefix> <path>` (zeros for a parameter the
    /// loss does not use).
    fn gather(&self, outputs: &std::collections::BTreeMap<String, ArrayD<f64>>, prefix: &str) -> Vec<f64> {
        let mut flat = Vec::with_capacity(self.dimension());
        for (path, shape) in &self.params {
            match outputs.get(&format!("{prefix} {path}")) {
                Some(value) => flat.extend(value.iter()),
                None => flat.extend(std::iter::repeat_n(0.0, shape.iter().product())),
            }
        }
        flat
    }

    fn evaluate(&self, w: &[f64], v: &[f64]) -> Result<Evaluation, String> {
        let mut env = self.env.clone();
        self.feed(&mut env.feeds, w, str::to_string);
        self.feed(&mut env.feeds, v, direction_name);
        let outputs = interp::run_outputs(&self.graph, &env).map_err(|e| e.to_string())?;
        let loss = outputs.get("loss").and_then(|l| l.first().copied()).unwrap_or(f64::NAN);
        Ok(Evaluation {
            loss,
            gradient: self.gather(&outputs, "grad"),
            product: self.gather(&outputs, "hvp"),
        })
    }

    /// The loss and its gradient at `w`.
    pub fn gradient(&self, w: &[f64]) -> Result<(f64, Vec<f64>), String> {
        let zero = vec![0.0; w.len()];
        let e = self.evaluate(w, &zero)?;
        Ok((e.loss, e.gradient))
    }

    /// The Hessian at `w` times `v`.
    pub fn product(&self, w: &[f64], v: &[f64]) -> Result<Vec<f64>, String> {
        Ok(self.evaluate(w, v)?.product)
    }
}

/// The verdict on a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CriticalPoint {
    LocalMinimum,
    SaddlePoint,
    NotCritical,
}

impl CriticalPoint {
    pub fn name(self) -> &'static str {
        match self {
            CriticalPoint::LocalMinimum => "local_minimum",
            CriticalPoint::SaddlePoint => "saddle_point",
            CriticalPoint::NotCritical => "not_critical",
        }
    }
}

/// How the eigenvalues are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// The dense Hessian (one product per parameter), every eigenvalue.
    Dense,
    /// Lanczos iteration with this many steps: the extreme eigenvalues.
    Lanczos(usize),
}

/// What the section asks for, with the defaults for `parameters`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub method: Method,
    pub examples: usize,
    pub gradient_tolerance: f64,
    pub saddle_step: f64,
}

impl Settings {
    /// From a validated `analyze` section; `None` unless `hessian: true`.
    pub fn from_config(config: &Config, parameters: usize) -> Option<Settings> {
        if config.bool("hessian") != Some(true) {
            return None;
        }
        Some(Settings::of(Some(config), parameters))
    }

    /// For `nnc analyze`, which analyzes the Hessian whether the section
    /// asks or not: the section's settings, or the defaults.
    pub fn for_command(program: &crate::check::Program) -> Settings {
        let parameters = program.param_count().max(0) as usize;
        Settings::of(program.sections.get("analyze"), parameters)
    }

    fn of(config: Option<&Config>, parameters: usize) -> Settings {
        let method = match config.and_then(|c| c.call("eigenvalues")) {
            Some(c) if c.name == "lanczos" => Method::Lanczos(c.int("steps").unwrap_or(50).max(2) as usize),
            Some(_) => Method::Dense,
            None if parameters <= HESSIAN_DENSE_MAX => Method::Dense,
            None => Method::Lanczos(50),
        };
        Settings {
            method,
            examples: config.and_then(|c| c.int("examples")).unwrap_or(1000).max(1) as usize,
            gradient_tolerance: config.and_then(|c| c.float("gradient_tolerance")).unwrap_or(1e-3),
            saddle_step: config.and_then(|c| c.float("saddle_step")).unwrap_or(0.1),
        }
    }
}

/// Sets `session`'s parameters (and model states) from a checkpoint, for
/// `nnc analyze --checkpoint`. Every parameter must be in it with its
/// shape; otherwise the error says which matched and which did not. The
/// code is the exit code: 2 for an unreadable file, 1 for one that does
/// not fit the program.
pub fn load_checkpoint(session: &mut Session, path: &std::path::Path) -> Result<(), (String, u8)> {
    let saved = super::checkpoint::load(path).map_err(|e| (e, 2))?;
    let (mut matched, mut wrong) = (Vec::new(), Vec::new());
    for info in session.program.params.iter().chain(&session.program.states) {
        let expected = session.tensors.get(&info.path).map(|t| t.shape().to_vec());
        match saved.tensors.get(&info.path) {
            Some(value) if Some(value.shape()) == expected.as_deref() => matched.push(info.path.clone()),
            Some(value) => wrong.push(format!(
                "{} is {:?} in the checkpoint, {:?} in the model",
                info.path,
                value.shape(),
                expected.unwrap_or_default()
            )),
            None => wrong.push(format!("{} is not in the checkpoint", info.path)),
        }
    }
    if !wrong.is_empty() {
        return Err((
            format!(
                "the checkpoint `{}` does not fit the program: {}; matched: {}",
                path.display(),
                wrong.join("; "),
                if matched.is_empty() {
                    "none".to_string()
                } else {
                    matched.join(", ")
                }
            ),
            1,
        ));
    }
    for name in matched {
        if let Some(value) = saved.tensors.get(&name) {
            session.tensors.insert(name, value.clone());
        }
    }
    session.step = saved.step;
    session.push();
    Ok(())
}

/// The step along the most negative direction.
#[derive(Clone, Debug)]
pub struct Descent {
    pub eigenvalue: f64,
    /// Unit length, signed so the gradient does not point along it.
    pub direction: Vec<f64>,
    pub step: f64,
    /// The loss at `w + step * direction`.
    pub loss: f64,
}

/// The result of the analysis.
#[derive(Clone, Debug)]
pub struct Analysis {
    pub step: u64,
    pub examples: usize,
    /// Parameter paths and element counts, in the vectors' order.
    pub layout: Vec<(String, usize)>,
    pub method: Method,
    pub loss: f64,
    pub gradient_norm: f64,
    pub gradient_tolerance: f64,
    /// Ascending: every eigenvalue (dense), or the Ritz values (Lanczos).
    pub eigenvalues: Vec<f64>,
    pub minimum_ratio: f64,
    /// With Lanczos: the Ritz value nearest zero and its quadrature weight
    /// (the share of the estimate that rests on one near-zero value).
    pub nearest_zero: Option<(f64, f64)>,
    pub critical_point: CriticalPoint,
    /// For a saddle point: the way down.
    pub descent: Option<Descent>,
}

/// Analyzes the Hessian of `session`'s loss at its current parameters.
pub fn analyze(session: &mut Session, settings: &Settings) -> Result<Analysis, String> {
    session.sync();
    let products = Products::new(session, settings.examples)?;
    let w = products.point(session);
    let n = w.len();
    if n == 0 {
        return Err("the model has no parameters to analyze".into());
    }
    let (loss, gradient) = products.gradient(&w)?;
    let gradient_norm = norm(&gradient);
    if !loss.is_finite() || !gradient_norm.is_finite() {
        return Err(format!(
            "the loss ({loss}) or its gradient is not finite at these parameters"
        ));
    }
    let product = |v: &[f64]| products.product(&w, v);
    let spectrum = match settings.method {
        Method::Dense => {
            let mut matrix = Vec::with_capacity(n * n);
            let mut unit = vec![0.0; n];
            for i in 0..n {
                unit[i] = 1.0;
                matrix.extend(product(&unit)?);
                unit[i] = 0.0;
            }
            eigen::dense(n, &matrix)?
        }
        Method::Lanczos(steps) => {
            let start = eigen::start_vector(n, session.seed);
            eigen::lanczos(&start, steps, product)?
        }
    };
    let largest = spectrum.values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let band = ZERO_BAND * largest;
    let minimum_ratio = spectrum
        .values
        .iter()
        .zip(&spectrum.weights)
        .filter(|(v, _)| **v > band)
        .map(|(_, w)| w)
        .sum::<f64>()
        .clamp(0.0, 1.0);
    // Lanczos lumps eigenvalues near zero into one Ritz value, whose sign
    // decides the whole cluster's share: reported beside the estimate.
    let nearest_zero = match settings.method {
        Method::Dense => None,
        Method::Lanczos(_) => spectrum
            .values
            .iter()
            .zip(&spectrum.weights)
            .min_by(|a, b| a.0.abs().total_cmp(&b.0.abs()))
            .map(|(v, w)| (*v, *w)),
    };
    let lowest = spectrum.values.first().copied().unwrap_or(0.0);
    let critical_point = if gradient_norm > settings.gradient_tolerance {
        CriticalPoint::NotCritical
    } else if lowest < -band {
        CriticalPoint::SaddlePoint
    } else {
        CriticalPoint::LocalMinimum
    };
    let descent = if critical_point == CriticalPoint::SaddlePoint {
        // Signed so the gradient does not point along it (at an exact
        // critical point: so its largest component is positive).
        let mut direction = spectrum.lowest.clone();
        let slope = dot(&direction, &gradient);
        let largest = direction
            .iter()
            .copied()
            .fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
        if slope > 0.0 || (slope == 0.0 && largest < 0.0) {
            direction.iter_mut().for_each(|x| *x = -*x);
        }
        let mut step = settings.saddle_step;
        let mut along = f64::NAN;
        for _ in 0..STEP_HALVINGS {
            let moved: Vec<f64> = w.iter().zip(&direction).map(|(a, d)| a + step * d).collect();
            along = products.gradient(&moved)?.0;
            if along < loss {
                break;
            }
            step /= 2.0;
        }
        Some(Descent {
            eigenvalue: lowest,
            direction,
            step,
            loss: along,
        })
    } else {
        None
    };
    Ok(Analysis {
        step: session.step,
        examples: products.examples,
        layout: products.layout(),
        method: settings.method,
        loss,
        gradient_norm,
        gradient_tolerance: settings.gradient_tolerance,
        eigenvalues: spectrum.values,
        minimum_ratio,
        nearest_zero,
        critical_point,
        descent,
    })
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// Directions of at most this many parameters are printed and written
/// whole; larger ones by each tensor's share.
const DIRECTION_IN_FULL: usize = 64;

impl Analysis {
    pub fn parameters(&self) -> usize {
        self.layout.iter().map(|(_, c)| c).sum()
    }

    /// A flat vector cut into the parameters' parts.
    fn parts<'a>(&'a self, flat: &'a [f64]) -> impl Iterator<Item = (&'a str, &'a [f64])> + 'a {
        let mut offset = 0;
        self.layout.iter().map(move |(path, count)| {
            let part = &flat[offset..offset + count];
            offset += count;
            (path.as_str(), part)
        })
    }

    /// The `hessian` event.
    pub fn to_json(&self) -> Value {
        let mut event = json!({
            "event": "hessian",
            "step": self.step,
            "parameters": self.parameters(),
            "examples": self.examples,
            "loss": self.loss,
            "gradient_norm": self.gradient_norm,
            "eigenvalues": self.eigenvalues,
            "minimum_ratio": self.minimum_ratio,
            "critical_point": self.critical_point.name(),
        });
        match self.method {
            Method::Dense => event["method"] = json!("all"),
            Method::Lanczos(steps) => {
                event["method"] = json!("lanczos");
                event["lanczos_steps"] = json!(steps);
                if let Some((value, weight)) = self.nearest_zero {
                    event["nearest_zero"] = json!({"ritz_value": value, "weight": weight});
                }
            }
        }
        if let Some(descent) = &self.descent {
            let mut saddle = Map::new();
            saddle.insert("eigenvalue".into(), json!(descent.eigenvalue));
            let shares: Map<String, Value> = self
                .parts(&descent.direction)
                .map(|(path, part)| (path.to_string(), json!(dot(part, part))))
                .collect();
            saddle.insert("direction_shares".into(), Value::Object(shares));
            if self.parameters() <= DIRECTION_IN_FULL {
                let whole: Map<String, Value> = self
                    .parts(&descent.direction)
                    .map(|(path, part)| (path.to_string(), json!(part)))
                    .collect();
                saddle.insert("direction".into(), Value::Object(whole));
            }
            saddle.insert("step".into(), json!(descent.step));
            saddle.insert("loss_along".into(), json!(descent.loss));
            event["saddle"] = Value::Object(saddle);
        }
        event
    }

    /// The analysis for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let n = self.parameters();
        let method = match self.method {
            Method::Dense => "every eigenvalue, dense".to_string(),
            Method::Lanczos(steps) => format!("extreme eigenvalues, Lanczos with {steps} steps"),
        };
        let _ = writeln!(
            out,
            "Hessian of the training loss at step {} ({n} parameter{}, {} example{}; {method}):",
            self.step,
            if n == 1 { "" } else { "s" },
            self.examples,
            if self.examples == 1 { "" } else { "s" },
        );
        let _ = writeln!(
            out,
            "  loss {}, gradient norm {} (critical below {})",
            number(self.loss),
            number(self.gradient_norm),
            number(self.gradient_tolerance)
        );
        let values = &self.eigenvalues;
        let shown: Vec<String> = if values.len() <= 12 {
            values.iter().map(|&v| number(v)).collect()
        } else {
            let mut shown: Vec<String> = values[..6].iter().map(|&v| number(v)).collect();
            shown.push(format!("… ({} more) …", values.len() - 12));
            shown.extend(values[values.len() - 6..].iter().map(|&v| number(v)));
            shown
        };
        let label = match self.method {
            Method::Dense => "eigenvalues",
            Method::Lanczos(_) => "Ritz values",
        };
        let _ = writeln!(out, "  {label}: {}", shown.join(", "));
        let detail = match self.method {
            Method::Dense => {
                let band = ZERO_BAND * values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                let positive = values.iter().filter(|&&v| v > band).count();
                let negative = values.iter().filter(|&&v| v < -band).count();
                format!(
                    "{positive} positive, {negative} negative, {} within {} of zero",
                    values.len() - positive - negative,
                    number(band)
                )
            }
            Method::Lanczos(_) => match self.nearest_zero {
                Some((value, weight)) => format!(
                    "estimated from the Lanczos quadrature, one random probe; {:.0}% of the weight is on the Ritz value nearest zero, {}",
                    weight * 100.0,
                    number(value)
                ),
                None => "estimated from the Lanczos quadrature".to_string(),
            },
        };
        let _ = writeln!(
            out,
            "  minimum ratio {:.4} (share of positive eigenvalues: {detail})",
            self.minimum_ratio
        );
        let _ = writeln!(out, "  critical point: {}", self.critical_point.name());
        if let Some(descent) = &self.descent {
            let _ = writeln!(
                out,
                "  most negative eigenvalue {} along (unit length):",
                number(descent.eigenvalue)
            );
            if n <= DIRECTION_IN_FULL {
                for (path, part) in self.parts(&descent.direction) {
                    let values: Vec<String> = part.iter().map(|&v| format!("{v:.4}")).collect();
                    let _ = writeln!(out, "    {path:<32} [{}]", values.join(", "));
                }
            } else {
                let mut shares: Vec<(&str, f64)> = self
                    .parts(&descent.direction)
                    .map(|(p, part)| (p, dot(part, part)))
                    .collect();
                shares.sort_by(|a, b| b.1.total_cmp(&a.1));
                for (path, share) in shares.iter().take(5) {
                    let _ = writeln!(out, "    {path:<32} {:.1}% of it", share * 100.0);
                }
            }
            let verdict = if descent.loss < self.loss {
                "lowers"
            } else {
                "does not lower"
            };
            let _ = writeln!(
                out,
                "  a step of {} along it {verdict} the loss: {} -> {}",
                number(descent.step),
                number(self.loss),
                number(descent.loss)
            );
        }
        out
    }
}

/// A number in at most 6 significant digits, without noise like
/// `-2.0000000000000004` (and `0` for magnitudes below 1e-12).
fn number(x: f64) -> String {
    if x.abs() < 1e-12 {
        return "0".into();
    }
    if !(1e-4..1e6).contains(&x.abs()) {
        let text = format!("{x:.5e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        return format!("{mantissa}e{exponent}");
    }
    let text = format!("{:.*}", (5 - x.abs().log10().floor() as i64).max(0) as usize, x);
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn numbers_are_short_and_exact_values_stay_exact() {
        assert_eq!(number(-2.0000000000000004), "-2");
        assert_eq!(number(0.990025), "0.990025");
        assert_eq!(number(1e-17), "0");
        assert_eq!(number(1234.5678), "1234.57");
        assert_eq!(number(2.5e-7), "2.5e-7");
        assert_eq!(number(-2.30812345e-5), "-2.30812e-5");
        assert_eq!(number(3e8), "3e8");
    }
}
