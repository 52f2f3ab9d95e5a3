//! The runtime: a checked program and its data in, a trained model out.
//! A [`Session`] holds the compiled training step and evaluation graphs, the
//! loaded data and every persistent tensor (parameters, model states,
//! optimizer slots); it runs steps, evaluates, and reports metrics.

pub mod analyze;
pub mod checkpoint;
pub mod data;
pub mod generate;
pub mod init;
pub mod metrics;
pub mod report;
pub mod run;
pub mod schedule;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ndarray::ArrayD;

use crate::check::Program;
use crate::diagnostics::{codes, Diagnostic};
use crate::interp::{self, Env};
use crate::ir::{state_name, Graph};

/// Settings of a run that override the file's.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub steps: Option<u64>,
    pub batch: Option<usize>,
    pub seed: Option<u64>,
    pub lr: Option<f64>,
    /// Which fold is the validation split, for k-fold cross-validation.
    pub fold: Option<usize>,
}

pub struct Session {
    pub program: Program,
    pub data: Vec<data::Data>,
    pub step_graph: Graph,
    pub eval_graph: Graph,
    /// Parameters, model states and optimizer slots, by name.
    pub tensors: BTreeMap<String, ArrayD<f64>>,
    /// Steps completed.
    pub step: u64,
    pub total_steps: u64,
    pub batch: usize,
    pub seed: u64,
    pub lr: f64,
}

/// Why a step failed.
#[derive(Debug)]
pub enum RunError {
    /// The loss or an update is NaN or infinite; `op` names the first node
    /// that produced a non-finite value.
    NotFinite {
        step: u64,
        op: String,
    },
    Backend(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::NotFinite { step, op } => {
                write!(f, "step {step}: a value became NaN or infinite at `{op}`")
            }
            RunError::Backend(message) => write!(f, "{message}"),
        }
    }
}

impl Session {
    /// Compiles the program's graphs, loads its data and initializes every
    /// tensor. Data problems are diagnostics (added to `program.sources`).
    pub fn new(mut program: Program, base_dir: &Path, overrides: &Overrides) -> Result<Session, (Diagnostic, Program)> {
        let mut loaded = Vec::new();
        for index in 0..program.datasets.len() {
            let dataset = program.datasets[index].clone();
            match data::load(&dataset, base_dir, &mut program.sources, overrides.fold) {
                Ok(data) => loaded.push(data),
                Err(diagnostic) => return Err((diagnostic, program)),
            }
        }
        let Some(optimizer) = program.optimizer.clone() else {
            let diagnostic = Diagnostic::error(
                codes::MISSING_OPTIMIZER,
                "the program has no optimizer",
                Default::default(),
            );
            return Err((diagnostic, program));
        };
        let forward = crate::ir::lower::lower(&program.train_trace);
        let mut step_graph = crate::autodiff::optimizer::training_step(&forward, &optimizer);
        crate::passes::optimize(&mut step_graph);
        let mut eval_graph = crate::ir::lower::lower(&program.eval_trace);
        crate::passes::optimize(&mut eval_graph);

        let train = program.sections.get("train");
        let seed = overrides
            .seed
            .or(train.and_then(|t| t.int("seed")).map(|s| s as u64))
            .unwrap_or(0);
        let batch = overrides
            .batch
            .or(train.and_then(|t| t.int("batch")).map(|b| b as usize))
            .unwrap_or(32);
        let examples = loaded.first().map_or(1, |d| d.train.len()).max(1);
        let total_steps = match (
            overrides.steps,
            train.and_then(|t| t.int("steps")),
            train.and_then(|t| t.int("epochs")),
        ) {
            (Some(steps), _, _) => steps,
            (None, Some(steps), _) => steps as u64,
            (None, None, Some(epochs)) => (epochs as u64) * (examples / batch).max(1) as u64,
            _ => 1,
        };
        let lr = overrides.lr.or(optimizer.float("lr")).unwrap_or(1e-3);

        let mut tensors = BTreeMap::new();
        for info in program.params.iter().chain(&program.states) {
            tensors.insert(info.path.clone(), init::initialize(info, seed));
        }
        // Optimizer slots start at zero, shaped like their parameter.
        for (name, id) in step_graph.leaves(state_name) {
            tensors.entry(name).or_insert_with(|| {
                let shape = interp::eval_shape(&step_graph.node(id).shape, &HashMap::new()).unwrap_or_default();
                ArrayD::zeros(shape)
            });
        }
        Ok(Session {
            program,
            data: loaded,
            step_graph,
            eval_graph,
            tensors,
            step: 0,
            total_steps,
            batch,
            seed,
            lr,
        })
    }

    /// The learning rate of the next step.
    pub fn current_lr(&self) -> f64 {
        schedule::learning_rate(self.lr, &self.program.schedule, self.step, self.total_steps)
    }

    /// Everything the training step reads at step `step`: the persistent
    /// tensors, the step's batch, the learning rate and the step number.
    pub fn step_env(&self, step: u64) -> Env {
        let mut env = self.env(step);
        for (index, data) in self.data.iter().enumerate() {
            let rows = data::train_rows(&data.train, self.batch, step, self.seed + index as u64);
            env.feeds
                .extend(data::batch(data, &data.train, &rows, Some((self.seed, step))));
        }
        let lr = schedule::learning_rate(self.lr, &self.program.schedule, step, self.total_steps);
        env.feeds.insert("lr".into(), ArrayD::from_elem(vec![], lr));
        env.feeds
            .insert("step".into(), ArrayD::from_elem(vec![], (step + 1) as f64));
        env
    }

    /// Runs one training step; returns the loss.
    pub fn train_step(&mut self) -> Result<f64, RunError> {
        let env = self.step_env(self.step);
        let values = interp::run(&self.step_graph, &env).map_err(|e| RunError::Backend(e.to_string()))?;
        let loss = values
            .output("loss")
            .and_then(|l| l.first().copied())
            .unwrap_or(f64::NAN);
        let mut updates = Vec::new();
        for (name, value) in values.outputs() {
            if let Some(target) = name.strip_prefix("new ") {
                updates.push((target.to_string(), value.clone()));
            }
        }
        if !loss.is_finite() || updates.iter().any(|(_, v)| v.iter().any(|x| !x.is_finite())) {
            return Err(RunError::NotFinite {
                step: self.step + 1,
                op: first_non_finite(&self.step_graph, &values),
            });
        }
        for (name, value) in updates {
            self.tensors.insert(name, value);
        }
        self.step += 1;
        Ok(loss)
    }

    /// Leaves' values and sizes for a run over a batch of `self.batch`.
    fn env(&self, step: u64) -> Env {
        Env {
            dims: HashMap::from([(crate::check::data::BATCH.to_string(), self.batch as i64)]),
            feeds: self.tensors.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            seed: self.seed,
            step,
        }
    }

    /// Runs the evaluation graph over (at most `limit` examples of) the
    /// validation split and computes the metrics.
    pub fn evaluate(&self, names: &[String], limit: usize) -> Result<BTreeMap<String, f64>, RunError> {
        let Some(data) = self.data.first() else {
            return Ok(BTreeMap::new());
        };
        let mut totals = metrics::Totals::default();
        for rows in data::eval_rows(&data.val, self.batch, limit) {
            let mut env = self.env(self.step);
            env.dims
                .insert(crate::check::data::BATCH.to_string(), rows.len() as i64);
            let batch = data::batch(data, &data.val, &rows, None);
            let target = metrics::target_of(data, &batch);
            env.feeds.extend(batch);
            let values = interp::run(&self.eval_graph, &env).map_err(|e| RunError::Backend(e.to_string()))?;
            let loss = values
                .output("loss")
                .and_then(|l| l.first().copied())
                .unwrap_or(f64::NAN);
            let output = values.output("model_output");
            let pad = self.program.datasets.first().and_then(|d| d.attr("pad"));
            totals.add(rows.len(), loss, output, target.as_ref(), pad);
        }
        Ok(totals.finish(names))
    }
}

impl Session {
    /// The model's output for a batch of `batch` examples in evaluation
    /// mode. Inputs of the evaluation graph not given (targets) are zeros.
    pub fn forward(&self, inputs: HashMap<String, ArrayD<f64>>, batch: usize) -> Result<ArrayD<f64>, RunError> {
        let mut env = self.env(self.step);
        env.dims.insert(crate::check::data::BATCH.to_string(), batch as i64);
        for (name, id) in self.eval_graph.leaves(crate::ir::input_name) {
            if !inputs.contains_key(&name) {
                let shape = interp::eval_shape(&self.eval_graph.node(id).shape, &env.dims)
                    .map_err(|e| RunError::Backend(e.to_string()))?;
                env.feeds.insert(name, ArrayD::zeros(shape));
            }
        }
        env.feeds.extend(inputs);
        let values = interp::run(&self.eval_graph, &env).map_err(|e| RunError::Backend(e.to_string()))?;
        values
            .output("model_output")
            .cloned()
            .ok_or_else(|| RunError::Backend("the evaluation graph has no model output".into()))
    }
}

/// The first node, in order, whose value has a NaN or infinity.
fn first_non_finite(graph: &Graph, values: &interp::Values) -> String {
    let names = crate::ir::print::numbering(graph);
    for id in graph.topo_order() {
        if let Some(value) = values.get(id) {
            if value.iter().any(|x| !x.is_finite()) {
                let node = graph.node(id);
                let name = names.get(&node.serial).cloned().unwrap_or_default();
                return format!("{name} = {}", node.op);
            }
        }
    }
    "an input".to_string()
}
