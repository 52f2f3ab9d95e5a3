//! The runtime: a checked program and its data in, a trained model out.
//! A [`Session`] holds the compiled training step and evaluation graphs, the
//! loaded data and every persistent tensor (parameters, model states,
//! optimizer slots); it runs steps, evaluates, and reports metrics.

pub mod analyze;
pub mod budget;
pub mod carry;
pub mod checkpoint;
pub mod csv;
pub mod ctc;
pub mod data;
pub mod decoding;
pub mod distributed;
pub mod embeddings;
pub mod finetune;
pub mod generate;
pub mod graphs;
pub mod hessian;
pub mod init;
pub mod metrics;
pub mod passages;
pub mod replies;
pub mod report;
pub mod run;
pub mod rundir;
pub mod schedule;
pub mod slots;
pub mod speech;
pub mod sweep;
pub mod tensorboard;
pub mod text_column;

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
    pub backend: Backend,
    /// At most this many bytes for the run (besides what the machine has).
    pub memory_limit: Option<u64>,
    /// The processes of a data-parallel run (`distributed.rs`): the batch
    /// is shared out among them and the step sums over them.
    pub collective: Option<crate::collective::Handle>,
}

pub struct Session {
    pub program: Program,
    pub data: Vec<data::Data>,
    pub step_graph: Graph,
    pub eval_graph: Graph,
    /// The model at one position with its recurrent state carried, for
    /// generating text a token at a time ([`crate::check::decode`]).
    pub decode_graph: Option<Graph>,
    /// Parameters, model states and optimizer slots, by name.
    pub tensors: BTreeMap<String, ArrayD<f64>>,
    /// Steps completed.
    pub step: u64,
    pub total_steps: u64,
    /// This process's share of each batch (the whole batch in a run of one
    /// process).
    pub batch: usize,
    /// The processes of a data-parallel run; `None` for one.
    pub collective: Option<crate::collective::Handle>,
    pub seed: u64,
    pub lr: f64,
    pub backend: Backend,
    /// The compiled step and evaluation graphs, with the JIT backend.
    jit: Option<Jit>,
    /// Each data set's order of examples for the current epoch.
    shuffles: std::sync::Mutex<Vec<data::Shuffle>>,
}

/// What runs the graphs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// The reference interpreter (f64, ndarray).
    Interp,
    /// Native code from Cranelift (f32), the whole step one function.
    #[default]
    Jit,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Interp => "interp",
            Backend::Jit => "jit",
        }
    }
}

/// The JIT's compiled graphs. The step holds the persistent tensors while
/// training; `ahead` says they are newer than `Session::tensors`.
struct Jit {
    step: crate::codegen::Compiled,
    /// Evaluation graphs (and the decoder) by batch size.
    eval: HashMap<(Model, usize), crate::codegen::Compiled>,
    /// Those of them that hold the current tensors.
    eval_loaded: std::collections::HashSet<(Model, usize)>,
    ahead: bool,
    /// The step at which `Session::tensors` last matched the JIT's.
    synced_at: u64,
}

/// Which of the session's evaluation-mode graphs runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Model {
    /// The evaluation graph: the loss and the model's output on a batch.
    Eval,
    /// The decoder: one position, the recurrent state carried
    /// ([`crate::check::decode`]).
    Decode,
}

impl Jit {
    /// The evaluation graph compiled for `n` examples (compiled on first
    /// use) and holding `tensors`.
    fn eval_graph(
        &mut self,
        graph: &Graph,
        tensors: &BTreeMap<String, ArrayD<f64>>,
        key: (Model, usize),
    ) -> Result<&mut crate::codegen::Compiled, RunError> {
        let n = key.1;
        let compiled = match self.eval.entry(key) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let dims = HashMap::from([(crate::check::data::BATCH.to_string(), n as i64)]);
                let options = crate::codegen::CompileOptions::default();
                let compiled = crate::codegen::Compiled::compile(graph, &dims, &options).map_err(RunError::Backend)?;
                entry.insert(compiled)
            }
        };
        if self.eval_loaded.insert(key) {
            for (name, value) in tensors {
                let _ = compiled.set_tensor(name, value);
            }
        }
        Ok(compiled)
    }
}

/// Why a step failed.
#[derive(Debug)]
pub enum RunError {
    /// The loss or an update is NaN or infinite; `op` names the first node
    /// that produced a non-finite value.
    NotFinite {
        step: u64,
        op: String,
        note: String,
    },
    Backend(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::NotFinite { step, op, note } => {
                write!(f, "step {step}: a value became NaN or infinite at `{op}`{note}")
            }
            RunError::Backend(message) => write!(f, "{message}"),
        }
    }
}

impl Session {
    /// Compiles the program's graphs, loads its data and initializes every
    /// tensor. Data problems are diagnostics (added to `program.sources`).
    pub fn new(program: Program, base_dir: &Path, overrides: &Overrides) -> Result<Session, (Diagnostic, Program)> {
        let mut session = Session::load(program, base_dir, overrides)?;
        if let Err(message) = session.compile() {
            return Err((
                Diagnostic::error(codes::BAD_VALUE, message, Default::default()),
                session.program,
            ));
        }
        Ok(session)
    }

    /// Everything of [`Session::new`] but the native code: loads the data,
    /// builds the graphs and initializes every tensor. Nothing of the
    /// step's size is allocated yet, so its memory can be checked first
    /// (`budget.rs`); [`Session::compile`] finishes.
    pub fn load(
        mut program: Program,
        base_dir: &Path,
        overrides: &Overrides,
    ) -> Result<Session, (Diagnostic, Program)> {
        let start = std::time::Instant::now();
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
        let start = crate::timing::stage("load the data", start);
        let mut forward = crate::ir::lower::lower_loops(&program.train_trace);
        let start = crate::timing::stage("lower", start);
        crate::passes::prepare_forward(&mut forward);
        let start = crate::timing::stage("prepare_forward", start);
        let replicas = overrides.collective.as_ref().map_or(1, |c| c.0.size());
        let mut step_graph = crate::autodiff::optimizer::replicated_training_step(&forward, &optimizer, replicas);
        let start = crate::timing::stage("autodiff", start);
        crate::passes::optimize_loops(&mut step_graph);
        let start = crate::timing::stage("optimize step", start);
        let mut eval_graph = crate::ir::lower::lower_loops(&program.eval_trace);
        crate::passes::optimize_loops(&mut eval_graph);
        let decode_graph = program.decode_trace.as_ref().map(|trace| {
            let mut graph = crate::ir::lower::lower_loops(trace);
            crate::passes::optimize_loops(&mut graph);
            graph
        });
        let start = crate::timing::stage("evaluation graph", start);

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
        if !batch.is_multiple_of(replicas) {
            let diagnostic = Diagnostic::error(
                codes::BAD_VALUE,
                format!("the batch ({batch}) must divide evenly among the {replicas} processes of this run"),
                Default::default(),
            );
            return Err((diagnostic, program));
        }
        if let Some(collective) = &overrides.collective {
            distributed::draw_as_one_process(&mut step_graph, collective.0.rank(), batch / replicas);
        }

        // The host's copy of every persistent tensor is the first thing
        // allocated: checked before, as the step's plan is checked later.
        if let Err(message) = budget::check_tensors(&step_graph, overrides.memory_limit) {
            // Pointed at the largest parameter, where the model makes it.
            let largest = program
                .params
                .iter()
                .max_by_key(|p| p.ty.num_elements().unwrap_or(i64::MAX));
            let span = largest.map(|p| p.span).unwrap_or_default();
            let mut diagnostic = Diagnostic::error(codes::BAD_VALUE, message, span);
            if let Some(p) = largest {
                diagnostic = diagnostic.label(format!("the largest, `{}`, is {}", p.path, p.ty));
            }
            return Err((diagnostic, program));
        }
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
        crate::timing::stage("initialize the tensors", start);
        Ok(Session {
            program,
            data: loaded,
            step_graph,
            eval_graph,
            decode_graph,
            tensors,
            step: 0,
            total_steps,
            batch: batch / replicas,
            collective: overrides.collective.clone(),
            seed,
            lr,
            backend: overrides.backend,
            jit: None,
            shuffles: Default::default(),
        })
    }

    /// Compiles the training step with the JIT backend (allocating its
    /// arena) and hands it the tensors; nothing to do on the interpreter.
    pub fn compile(&mut self) -> Result<(), String> {
        if self.backend != Backend::Jit || self.jit.is_some() {
            return Ok(());
        }
        let start = std::time::Instant::now();
        let planned = self.plan_step()?;
        let compiled = self.compile_planned(planned, start)?;
        self.install_step(compiled);
        Ok(())
    }

    /// The training step's kernels and memory plan at the session's batch
    /// size, before any code or arena exists.
    pub fn plan_step(&self) -> Result<crate::codegen::Planned<'_>, String> {
        let dims = HashMap::from([(crate::check::data::BATCH.to_string(), self.batch as i64)]);
        crate::codegen::Planned::new(&self.step_graph, &dims)
            .map_err(|message| format!("the JIT cannot plan this program ({message}); try --backend interp"))
    }

    /// Compiles a step [`Session::plan_step`] planned (started at `start`).
    pub fn compile_planned(
        &self,
        planned: crate::codegen::Planned<'_>,
        start: std::time::Instant,
    ) -> Result<crate::codegen::Compiled, String> {
        let mut options = crate::codegen::CompileOptions {
            collective: self.collective.clone(),
            ..Default::default()
        };
        if self.collective.is_some() {
            options.threads = distributed::threads_per_process().unwrap_or(options.threads);
        }
        crate::codegen::Compiled::from_planned(planned, &options, start)
            .map_err(|message| format!("the JIT cannot compile this program ({message}); try --backend interp"))
    }

    /// The memory plan's sizes of the compiled step (JIT sessions only).
    pub fn step_memory(&self) -> Option<crate::codegen::MemorySizes> {
        self.jit.as_ref().map(|jit| jit.step.memory_sizes())
    }

    /// Makes `compiled` the session's step and hands it the tensors.
    pub fn install_step(&mut self, mut compiled: crate::codegen::Compiled) {
        if self.backend != Backend::Jit || self.jit.is_some() {
            return;
        }
        for (name, value) in &self.tensors {
            let _ = compiled.set_tensor(name, value);
        }
        self.jit = Some(Jit {
            step: compiled,
            eval: HashMap::new(),
            eval_loaded: Default::default(),
            ahead: false,
            synced_at: self.step,
        });
    }

    /// Whether any process of a data-parallel run says `yes` (this one's
    /// answer alone in a run of one). Every process must ask at the same
    /// point of its loop: it is a sum over the processes, and a barrier.
    pub fn any_process(&self, yes: bool) -> bool {
        match &self.collective {
            Some(crate::collective::Handle(collective)) => {
                let mut votes = [f64::from(u8::from(yes))];
                collective.sum_f64(&mut votes);
                votes[0] > 0.0
            }
            None => yes,
        }
    }

    /// This process's place among the processes of a data-parallel run:
    /// (rank, size); (0, 1) for a run of one.
    pub fn place(&self) -> (usize, usize) {
        self.collective.as_ref().map_or((0, 1), |c| (c.0.rank(), c.0.size()))
    }

    /// The learning rate of the next step.
    pub fn current_lr(&self) -> f64 {
        schedule::learning_rate(self.lr, &self.program.schedule, self.step, self.total_steps)
    }

    /// Everything the training step reads at step `step`: the persistent
    /// tensors, the step's batch, the learning rate, the step number and
    /// the training progress.
    pub fn step_env(&self, step: u64) -> Env {
        let mut env = self.env(step);
        env.feeds.extend(self.step_inputs(step));
        env
    }

    /// The step's batch, learning rate, step number and training progress,
    /// by input name.
    pub fn step_inputs(&self, step: u64) -> HashMap<String, ArrayD<f64>> {
        let mut env = Env::default();
        let (rank, size) = self.place();
        for (index, data) in self.data.iter().enumerate() {
            // The whole batch's rows, drawn as one process draws them; this
            // process trains on its share.
            let mut shuffles = self.shuffles.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if shuffles.len() <= index {
                shuffles.resize_with(index + 1, Default::default);
            }
            let seed = self.seed + index as u64;
            let mut rows = data::train_rows(&data.train, self.batch * size, step, seed, &mut shuffles[index]);
            drop(shuffles);
            let share = distributed::share(rows.len(), rank, size);
            let first = share.start;
            if size > 1 {
                rows = rows[share].to_vec();
            }
            env.feeds
                .extend(data::batch(data, &data.train, &rows, Some((self.seed, step, first))));
        }
        let lr = schedule::learning_rate(self.lr, &self.program.schedule, step, self.total_steps);
        env.feeds.insert("lr".into(), ArrayD::from_elem(vec![], lr));
        env.feeds
            .insert("step".into(), ArrayD::from_elem(vec![], (step + 1) as f64));
        env.feeds.insert(
            crate::check::builtins::PROGRESS.into(),
            ArrayD::from_elem(vec![], self.progress(step)),
        );
        env.feeds
    }

    /// What `progress()` reads at step `step` (0-based): the share of the
    /// run's steps done before it, in `[0, 1)` (at most 1 past the end).
    pub fn progress(&self, step: u64) -> f64 {
        (step as f64 / self.total_steps.max(1) as f64).min(1.0)
    }

    /// Runs one training step; returns the loss.
    pub fn train_step(&mut self) -> Result<f64, RunError> {
        let inputs = if self.jit.is_some() {
            Some(self.step_inputs(self.step))
        } else {
            None
        };
        if let (Some(jit), Some(inputs)) = (&mut self.jit, inputs) {
            let (seed, step) = (self.seed, self.step);
            jit.step.run(&inputs, seed, step).map_err(RunError::Backend)?;
            jit.ahead = true;
            let loss = jit
                .step
                .output("loss")
                .and_then(|l| l.first().copied())
                .unwrap_or(f64::NAN);
            if !loss.is_finite() {
                let (op, note) = self.replay_to_non_finite(self.step);
                return Err(RunError::NotFinite {
                    step: self.step + 1,
                    op,
                    note,
                });
            }
            self.step += 1;
            return Ok(loss);
        }
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
                note: String::new(),
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
            collective: self.collective.clone(),
        }
    }

    /// Runs the evaluation graph over (at most `limit` examples of) the
    /// validation split and computes the metrics.
    pub fn evaluate(&mut self, names: &[String], limit: usize) -> Result<BTreeMap<String, f64>, RunError> {
        self.evaluate_split(names, limit, false)
    }

    /// [`Session::evaluate`] over the training split (in evaluation mode:
    /// no dropout, batch norm's running statistics, no augmentation).
    pub fn evaluate_train(&mut self, names: &[String], limit: usize) -> Result<BTreeMap<String, f64>, RunError> {
        self.evaluate_split(names, limit, true)
    }

    fn evaluate_split(
        &mut self,
        names: &[String],
        limit: usize,
        train: bool,
    ) -> Result<BTreeMap<String, f64>, RunError> {
        self.sync();
        let Some(data) = self.data.first() else {
            return Ok(BTreeMap::new());
        };
        let split = if train { &data.train } else { &data.val };
        let mut totals = metrics::Totals::in_units(data.target_unit());
        // CTC datasets (a `blank` class): decode for `label_error_rate`.
        let blank = self
            .program
            .datasets
            .first()
            .and_then(|d| d.attr("blank"))
            .map(|b| b as usize);
        let decoder = ctc::Decoder::from_config(self.program.sections.get("eval").and_then(|e| e.call("decode")));
        // Under `mpirun` each process evaluates every P-th of the batches
        // one process would (of the whole batch) and the totals are summed:
        // every process ends with the whole split's.
        let (rank, processes) = self.place();
        let batches = data::eval_rows(split, self.batch * processes, limit);
        for rows in batches.into_iter().skip(rank).step_by(processes) {
            if let Some(jit) = &mut self.jit {
                let n = rows.len();
                let compiled = jit.eval_graph(&self.eval_graph, &self.tensors, (Model::Eval, n))?;
                let batch = data::batch(data, split, &rows, None);
                let target = metrics::target_of(data, &batch);
                compiled.run(&batch, self.seed, self.step).map_err(RunError::Backend)?;
                let loss = compiled
                    .output("loss")
                    .and_then(|l| l.first().copied())
                    .unwrap_or(f64::NAN);
                let output = compiled.output("model_output");
                let pad = self
                    .program
                    .datasets
                    .first()
                    .and_then(|d| d.attr("pad").or(d.attr("ignore")));
                totals.add(n, loss, output.as_ref(), target.as_ref(), pad);
                if let (Some(output), Some(blank)) = (&output, blank) {
                    totals.add_transcriptions(output, &batch, &data.name, blank, decoder);
                }
                continue;
            }
            let mut env = self.env(self.step);
            env.dims
                .insert(crate::check::data::BATCH.to_string(), rows.len() as i64);
            let batch = data::batch(data, split, &rows, None);
            let target = metrics::target_of(data, &batch);
            env.feeds.extend(batch.clone());
            let values = interp::run(&self.eval_graph, &env).map_err(|e| RunError::Backend(e.to_string()))?;
            let loss = values
                .output("loss")
                .and_then(|l| l.first().copied())
                .unwrap_or(f64::NAN);
            let output = values.output("model_output");
            let pad = self
                .program
                .datasets
                .first()
                .and_then(|d| d.attr("pad").or(d.attr("ignore")));
            totals.add(rows.len(), loss, output, target.as_ref(), pad);
            if let (Some(output), Some(blank)) = (output, blank) {
                totals.add_transcriptions(output, &batch, &data.name, blank, decoder);
            }
        }
        if let Some(crate::collective::Handle(collective)) = &self.collective {
            totals.sum_over(collective.as_ref());
        }
        Ok(totals.finish(names))
    }
}

impl Session {
    /// The model's output for a batch of `rows` examples in evaluation
    /// mode. Inputs of the evaluation graph not given (targets) are zeros.
    /// The batch runs as `capacity` rows (the first row of every input
    /// repeated; the output keeps the first `rows`): with the JIT backend
    /// the evaluation graph is compiled once per batch size, so callers
    /// whose batch shrinks (finished hypotheses) keep one size.
    pub fn forward(
        &mut self,
        inputs: HashMap<String, ArrayD<f64>>,
        rows: usize,
        capacity: usize,
    ) -> Result<ArrayD<f64>, RunError> {
        let mut outputs = self.run_model(Model::Eval, inputs, rows, capacity, &["model_output"])?;
        Ok(outputs.remove(0))
    }

    /// [`Session::forward`] of `model`, with the outputs named (each an
    /// error if the graph lacks it).
    pub fn run_model(
        &mut self,
        model: Model,
        inputs: HashMap<String, ArrayD<f64>>,
        rows: usize,
        capacity: usize,
        names: &[&str],
    ) -> Result<Vec<ArrayD<f64>>, RunError> {
        self.sync();
        let graph = match model {
            Model::Eval => &self.eval_graph,
            Model::Decode => self
                .decode_graph
                .as_ref()
                .ok_or_else(|| RunError::Backend("the model has no decoder".into()))?,
        };
        let batch = capacity.max(rows);
        let dims = HashMap::from([(crate::check::data::BATCH.to_string(), batch as i64)]);
        let mut feeds: HashMap<String, ArrayD<f64>> = inputs
            .into_iter()
            .map(|(name, value)| (name, pad_rows(value, batch)))
            .collect();
        for (name, id) in graph.leaves(crate::ir::input_name) {
            if let std::collections::hash_map::Entry::Vacant(entry) = feeds.entry(name) {
                let shape =
                    interp::eval_shape(&graph.node(id).shape, &dims).map_err(|e| RunError::Backend(e.to_string()))?;
                entry.insert(ArrayD::zeros(shape));
            }
        }
        let missing = |name: &str| RunError::Backend(format!("the evaluation graph has no output `{name}`"));
        let outputs: Vec<ArrayD<f64>> = if let Some(jit) = &mut self.jit {
            let compiled = jit.eval_graph(graph, &self.tensors, (model, batch))?;
            compiled.run(&feeds, self.seed, self.step).map_err(RunError::Backend)?;
            names
                .iter()
                .map(|name| compiled.output(name).ok_or_else(|| missing(name)))
                .collect::<Result<_, _>>()?
        } else {
            let mut env = self.env(self.step);
            env.dims = dims;
            env.feeds.extend(feeds);
            let values = interp::run(graph, &env).map_err(|e| RunError::Backend(e.to_string()))?;
            names
                .iter()
                .map(|name| values.output(name).cloned().ok_or_else(|| missing(name)))
                .collect::<Result<_, _>>()?
        };
        Ok(outputs
            .into_iter()
            .map(|output| {
                output
                    .slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..rows))
                    .to_owned()
            })
            .collect())
    }
}

/// `value` with its first row repeated until it has `rows` rows.
fn pad_rows(value: ArrayD<f64>, rows: usize) -> ArrayD<f64> {
    let have = value.shape().first().copied().unwrap_or(0);
    if have == 0 || have >= rows {
        return value;
    }
    let first = value.index_axis(ndarray::Axis(0), 0).to_owned();
    let mut padded = value;
    for _ in have..rows {
        padded.push(ndarray::Axis(0), first.view()).expect("rows of one shape");
    }
    padded
}

impl Session {
    /// Brings `tensors` up to date with the JIT's (before checkpoints,
    /// evaluation and generation).
    pub fn sync(&mut self) {
        let Some(jit) = &mut self.jit else { return };
        if !jit.ahead {
            return;
        }
        for (name, value) in self.tensors.iter_mut() {
            if let Some(current) = jit.step.tensor(name) {
                *value = current;
            }
        }
        jit.eval_loaded.clear();
        jit.ahead = false;
        jit.synced_at = self.step;
    }

    /// After the JIT's step `failed` went non-finite: replays the steps since
    /// the host's copy of the tensors on the interpreter to name the first
    /// op that produced a NaN or infinity.
    fn replay_to_non_finite(&self, failed: u64) -> (String, String) {
        let start = self.jit.as_ref().map_or(failed, |j| j.synced_at);
        let mut tensors = self.tensors.clone();
        // The first value of the replay too large for f32, if any.
        let mut beyond = None;
        for step in start..=failed {
            let mut env = self.env(step);
            env.feeds = tensors.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            env.feeds.extend(self.step_inputs(step));
            let Ok(values) = interp::run(&self.step_graph, &env) else {
                break;
            };
            let op = first_non_finite(&self.step_graph, &values);
            if op != "an input" {
                let note = if step == failed {
                    " (found by replaying the step on the interpreter)".to_string()
                } else {
                    format!(
                        " (the interpreter's replay went non-finite earlier, at step {})",
                        step + 1
                    )
                };
                return (op, note);
            }
            if beyond.is_none() {
                beyond = beyond_f32(&self.step_graph, &values);
            }
            for (name, value) in values.outputs() {
                if let Some(target) = name.strip_prefix("new ") {
                    tensors.insert(target.to_string(), value.clone());
                }
            }
        }
        let note = match beyond {
            Some((op, x)) => format!(
                " (the interpreter's f64 replay stayed finite, but `{op}` reached {x:.3e}, beyond the range of f32)"
            ),
            None => " (the interpreter's f64 replay stayed finite and within the range of f32: the compiled step \
                     disagrees with it, a bug of nnc; please report it with the program)"
                .to_string(),
        };
        ("the compiled step".to_string(), note)
    }

    /// Hands `tensors` to the JIT after they were changed on the host
    /// (resuming, loading parameters).
    pub fn push(&mut self) {
        let Some(jit) = &mut self.jit else { return };
        for (name, value) in &self.tensors {
            let _ = jit.step.set_tensor(name, value);
        }
        jit.eval_loaded.clear();
        jit.ahead = false;
        jit.synced_at = self.step;
    }
}

/// The first node, in order, with a finite value beyond the range of f32
/// (which the JIT, computing in f32, cannot hold), and that value.
pub fn beyond_f32(graph: &Graph, values: &interp::Values) -> Option<(String, f64)> {
    first_value(graph, values, |x| x.is_finite() && x.abs() > f64::from(f32::MAX))
}

/// The first node, in order, whose value has a NaN or infinity.
fn first_non_finite(graph: &Graph, values: &interp::Values) -> String {
    first_value(graph, values, |x| !x.is_finite()).map_or_else(|| "an input".to_string(), |(op, _)| op)
}

/// The first node, in order, with a value that is `wanted` (as `%N = op`),
/// and that value.
fn first_value(graph: &Graph, values: &interp::Values, wanted: impl Fn(f64) -> bool) -> Option<(String, f64)> {
    let names = crate::ir::print::numbering(graph);
    for id in graph.topo_order() {
        let Some(value) = values.get(id) else { continue };
        if let Some(&x) = value.iter().find(|&&x| wanted(x)) {
            let node = graph.node(id);
            let name = names.get(&node.serial).cloned().unwrap_or_default();
            return Some((format!("{name} = {}", node.op), x));
        }
    }
    None
}
