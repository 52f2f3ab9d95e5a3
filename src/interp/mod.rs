//! The reference interpreter. In: an IR [`Graph`] and an [`Env`] (sizes for
//! its symbols, host tensors for its inputs, parameters and states, a seed
//! and a step). Out: every node's value as an `ndarray` f64 tensor
//! ([`Values`]), read by node or by output name.
//!
//! It is the oracle that gradients (finite differences) and compiled code
//! are checked against, so each [`Prim`] has one plain kernel that follows
//! its documentation in `prim.rs`, and every result is checked against the
//! node's shape. Bad input (a missing feed, a wrong shape, an unbound size,
//! an ill-formed graph) is an [`InterpError`], never a panic.
//!
//! Every value is an `ArrayD<f64>` whatever its dtype: `i32` values are
//! integral floats (each `i32` result is truncated toward zero, so `i32`
//! division truncates like a machine would), bools are `0.0`/`1.0` (any
//! non-zero is true). `f32` is computed in `f64`.

mod gather;
mod kernels;
mod layout;
pub mod random;
mod scan;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use ndarray::ArrayD;

use crate::check::dims::{format_shape, Dim};
use crate::ir::{Graph, NodeId};
use crate::prim::{DType, Prim};

/// What a run needs besides the graph.
#[derive(Clone, Debug, Default)]
pub struct Env {
    /// Values of symbolic sizes: `"B" -> 64`.
    pub dims: HashMap<String, i64>,
    /// Values of leaves by name: `Input(name)`, `Param(path)` and
    /// `State(path)` all read `feeds[name]`.
    pub feeds: HashMap<String, ArrayD<f64>>,
    /// Seed and step of the random numbers ([`random`]).
    pub seed: u64,
    pub step: u64,
    /// The processes `all_reduce` sums over; `None` for one process.
    pub collective: Option<crate::collective::Handle>,
}

/// Why a run failed; `node` is the node at fault, if there is one, and the
/// message names it as the printer does (`%12 = matmul: ...`).
#[derive(Clone, Debug, PartialEq)]
pub struct InterpError {
    pub node: Option<NodeId>,
    pub message: String,
}

impl InterpError {
    fn new(message: impl Into<String>) -> InterpError {
        InterpError {
            node: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for InterpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InterpError {}

/// The value of every node of a run.
#[derive(Clone, Debug)]
pub struct Values {
    /// By node index (`NodeId::index`); `None` for indices the graph does
    /// not use.
    values: Vec<Option<ArrayD<f64>>>,
    outputs: Vec<(String, NodeId)>,
}

impl Values {
    pub fn get(&self, id: NodeId) -> Option<&ArrayD<f64>> {
        self.values.get(id.index()).and_then(Option::as_ref)
    }

    /// The value of a named output of the graph.
    pub fn output(&self, name: &str) -> Option<&ArrayD<f64>> {
        let (_, id) = self.outputs.iter().find(|(n, _)| n == name)?;
        self.get(*id)
    }

    /// The named outputs, in the graph's order.
    pub fn outputs(&self) -> impl Iterator<Item = (&str, &ArrayD<f64>)> + '_ {
        self.outputs
            .iter()
            .filter_map(|(name, id)| Some((name.as_str(), self.get(*id)?)))
    }

    /// The named outputs, moved out of the run.
    pub fn into_outputs(self) -> BTreeMap<String, ArrayD<f64>> {
        let Values { mut values, outputs } = self;
        let mut named: BTreeMap<String, ArrayD<f64>> = BTreeMap::new();
        // Two outputs may name one node: move it the first time, clone after.
        let mut first_name: HashMap<NodeId, String> = HashMap::new();
        for (name, id) in outputs {
            let value = match first_name.get(&id) {
                Some(first) => named[first].clone(),
                None => match values.get_mut(id.index()).and_then(Option::take) {
                    Some(value) => value,
                    None => continue,
                },
            };
            first_name.entry(id).or_insert_with(|| name.clone());
            named.insert(name, value);
        }
        named
    }
}

/// Runs every node of the graph in topological order.
pub fn run(graph: &Graph, env: &Env) -> Result<Values, InterpError> {
    run_with_args(graph, env, &[])
}

/// [`run`] for a loop body: `Arg(i)` reads `args[i]`.
fn run_with_args(graph: &Graph, env: &Env, args: &[&ArrayD<f64>]) -> Result<Values, InterpError> {
    let order = graph.topo_order();
    if order.len() != graph.len() {
        let stuck = graph.graph.node_indices().find(|id| !order.contains(id));
        return Err(InterpError {
            node: stuck,
            message: "the graph has a cycle".to_string(),
        });
    }
    let mut values: Vec<Option<ArrayD<f64>>> = vec![None; order.iter().map(|id| id.index() + 1).max().unwrap_or(0)];
    for (number, &id) in order.iter().enumerate() {
        let value = eval_node(graph, env, id, &values, args).map_err(|message| InterpError {
            node: Some(id),
            message: format!("%{number} = {}: {message}", graph.node(id).op),
        })?;
        values[id.index()] = Some(value);
    }
    for (name, id) in &graph.outputs {
        if values.get(id.index()).is_none_or(Option::is_none) {
            return Err(InterpError {
                node: Some(*id),
                message: format!("output `{name}` names a node that is not in the graph"),
            });
        }
    }
    Ok(Values {
        values,
        outputs: graph.outputs.clone(),
    })
}

/// An environment for the unit tests of the stages that rewrite graphs:
/// inputs named and shaped as given, the `k`-th filled with a pattern of
/// its own (values in [-1.5, 1.5], exact in f32), no symbolic sizes.
#[cfg(test)]
pub(crate) fn patterned_env(inputs: &[(&str, &[usize])]) -> Env {
    let values = |sizes: &[usize], seed: usize| {
        let count: usize = sizes.iter().product();
        let data = (0..count).map(|i| ((i * 7 + seed) % 13) as f64 / 4.0 - 1.5).collect();
        ArrayD::from_shape_vec(sizes.to_vec(), data).expect("the sizes' product")
    };
    Env {
        dims: Default::default(),
        feeds: inputs
            .iter()
            .enumerate()
            .map(|(k, (name, shape))| (name.to_string(), values(shape, k + 1)))
            .collect(),
        seed: 0,
        step: 0,
        collective: None,
    }
}

/// Runs the graph and returns its named outputs.
pub fn run_outputs(graph: &Graph, env: &Env) -> Result<BTreeMap<String, ArrayD<f64>>, InterpError> {
    Ok(run(graph, env)?.into_outputs())
}

/// A symbolic size (or offset) with the symbols bound by `dims`.
pub fn eval_dim(dim: &Dim, dims: &HashMap<String, i64>) -> Result<i64, InterpError> {
    dim.evaluate(&|symbol| dims.get(symbol).copied()).ok_or_else(|| {
        let mut bound: Vec<&str> = dims.keys().map(String::as_str).collect();
        bound.sort_unstable();
        InterpError::new(format!(
            "cannot evaluate `{dim}`: a size is not bound (bound: [{}])",
            bound.join(", ")
        ))
    })
}

/// Most elements a tensor may have: its bytes must fit in an `isize`.
const MAX_ELEMENTS: usize = isize::MAX as usize / std::mem::size_of::<f64>();

/// A shape with the symbols bound by `dims`. Negative sizes and shapes of
/// more than `isize::MAX` bytes are errors.
pub fn eval_shape(shape: &[Dim], dims: &HashMap<String, i64>) -> Result<Vec<usize>, InterpError> {
    let sizes = shape
        .iter()
        .map(|dim| {
            let value = eval_dim(dim, dims)?;
            usize::try_from(value).map_err(|_| InterpError::new(format!("size `{dim}` is {value}, below zero")))
        })
        .collect::<Result<Vec<usize>, InterpError>>()?;
    sizes
        .iter()
        .try_fold(1usize, |count, &size| count.checked_mul(size))
        .filter(|&count| count <= MAX_ELEMENTS)
        .ok_or_else(|| InterpError::new(format!("the shape {sizes:?} is too large")))?;
    Ok(sizes)
}

/// Operand count of each op; `None` for any number of at least one.
fn arity(op: &Prim) -> Option<usize> {
    Some(match op {
        Prim::Input(_)
        | Prim::Param(_)
        | Prim::State(_)
        | Prim::Const(_)
        | Prim::Count(_)
        | Prim::Iota { .. }
        | Prim::Arg(_)
        | Prim::Random { .. } => 0,
        Prim::Unary(_)
        | Prim::Cast(_)
        | Prim::StopGrad
        | Prim::AllReduce
        | Prim::Reduce { .. }
        | Prim::ArgMax { .. }
        | Prim::Reshape
        | Prim::Permute(_)
        | Prim::Broadcast
        | Prim::Slice { .. }
        | Prim::Pad { .. }
        | Prim::Unfold2d(_)
        | Prim::Fold2d(_) => 1,
        Prim::Binary(_) | Prim::Take | Prim::ScatterRows { .. } | Prim::Pick | Prim::Place { .. } | Prim::MatMul => 2,
        Prim::Select => 3,
        Prim::Concat { .. } | Prim::Scan(_) => return None,
    })
}

fn eval_node(
    graph: &Graph,
    env: &Env,
    id: NodeId,
    values: &[Option<ArrayD<f64>>],
    args: &[&ArrayD<f64>],
) -> Result<ArrayD<f64>, String> {
    let node = graph.node(id);
    let shape = eval_shape(&node.shape, &env.dims).map_err(|e| e.message)?;
    let operands = graph.inputs(id);
    let mut inputs: Vec<&ArrayD<f64>> = Vec::with_capacity(operands.len());
    for operand in &operands {
        let value = values.get(operand.index()).and_then(Option::as_ref);
        inputs.push(value.ok_or("an operand has no value (the graph is not in order)")?);
    }
    match arity(&node.op) {
        Some(n) if inputs.len() != n => {
            return Err(format!("takes {n} operand(s), found {}", inputs.len()));
        }
        None if inputs.is_empty() => return Err("takes at least one operand".to_string()),
        _ => {}
    }
    let size = |dim: &Dim| eval_dim(dim, &env.dims).map_err(|e| e.message);
    let mut value = match &node.op {
        Prim::Input(name) | Prim::Param(name) | Prim::State(name) => {
            return feed(env, name, &shape, node);
        }
        Prim::Const(value) => kernels::fill(&shape, *value),
        Prim::Count(dim) => kernels::fill(&shape, size(dim)? as f64),
        Prim::Iota { axis } => kernels::iota(&shape, *axis)?,
        Prim::Random { dist, stream, offset } => {
            kernels::random(&shape, *dist, (env.seed, env.step), u64::from(*stream), *offset)
        }
        Prim::Arg(i) => (*args
            .get(*i)
            .ok_or_else(|| format!("no argument {i} (the body of a scan has {})", args.len()))?)
        .clone(),
        Prim::Scan(looped) => scan::scan(looped, env, &inputs)?,
        Prim::Unary(op) => kernels::unary(*op, inputs[0]),
        Prim::Binary(op) => kernels::binary(*op, inputs[0], inputs[1])?,
        Prim::Select => kernels::select(inputs[0], inputs[1], inputs[2])?,
        // The dtype conversion below is the cast.
        Prim::Cast(_) | Prim::StopGrad => inputs[0].clone(),
        Prim::AllReduce => {
            let mut sum = inputs[0].as_standard_layout().into_owned();
            if let Some(crate::collective::Handle(collective)) = &env.collective {
                collective.sum_f64(sum.as_slice_mut().expect("a standard layout"));
            }
            sum
        }
        Prim::Reduce { op, axes, keepdims } => kernels::reduce(*op, axes, *keepdims, inputs[0])?,
        Prim::ArgMax { axis } => kernels::argmax(*axis, inputs[0])?,
        Prim::MatMul => kernels::matmul(inputs[0], inputs[1], &shape)?,
        Prim::Reshape => layout::reshape(inputs[0], &shape)?,
        Prim::Permute(perm) => layout::permute(inputs[0], perm)?,
        Prim::Broadcast => layout::broadcast(inputs[0], &shape)?,
        Prim::Slice { axis, start, step } => {
            let count = shape.get(*axis).copied().ok_or("axis out of range")?;
            layout::slice(inputs[0], *axis, size(start)?, *step, count)?
        }
        Prim::Concat { axis } => layout::concat(*axis, &inputs)?,
        Prim::Pad {
            axis,
            before,
            after,
            value,
        } => layout::pad(inputs[0], *axis, size(before)?, size(after)?, *value, &shape)?,
        Prim::Take => gather::take(inputs[0], inputs[1])?,
        Prim::ScatterRows { rows } => {
            let rows = usize::try_from(size(rows)?).map_err(|_| "negative row count")?;
            gather::scatter_rows(inputs[0], inputs[1], rows, &shape)?
        }
        Prim::Pick => gather::pick(inputs[0], inputs[1])?,
        Prim::Place { classes } => {
            let classes = usize::try_from(size(classes)?).map_err(|_| "negative class count")?;
            gather::place(inputs[0], inputs[1], classes, &shape)?
        }
        Prim::Unfold2d(window) => gather::unfold2d(inputs[0], *window, &shape)?,
        Prim::Fold2d(window) => gather::fold2d(inputs[0], *window, &shape)?,
    };
    if value.shape() != shape.as_slice() {
        return Err(format!(
            "the result is {:?}, but the node is {} = {:?}",
            value.shape(),
            format_shape(&node.shape),
            shape
        ));
    }
    conform(&mut value, node.dtype);
    Ok(value)
}

/// Rounds a result to its dtype: `i32` truncates toward zero, `bool` is
/// `x != 0`; floats stay as they are.
fn conform(value: &mut ArrayD<f64>, dtype: DType) {
    match dtype {
        DType::I32 => value.mapv_inplace(f64::trunc),
        DType::Bool => value.mapv_inplace(|x| f64::from(u8::from(x != 0.0))),
        DType::F32 | DType::F64 => {}
    }
}

/// A leaf's value: the feed of its name, of the node's shape, holding
/// values of the node's dtype.
fn feed(env: &Env, name: &str, shape: &[usize], node: &crate::ir::Node) -> Result<ArrayD<f64>, String> {
    let value = env.feeds.get(name).ok_or_else(|| format!("no feed named `{name}`"))?;
    if value.shape() != shape {
        return Err(format!(
            "the feed `{name}` is {:?}, but the node is {} = {:?}",
            value.shape(),
            format_shape(&node.shape),
            shape
        ));
    }
    let bad = match node.dtype {
        DType::I32 => value.iter().find(|x| x.fract() != 0.0 || !x.is_finite()),
        DType::Bool => value.iter().find(|x| **x != 0.0 && **x != 1.0),
        DType::F32 | DType::F64 => None,
    };
    if let Some(bad) = bad {
        return Err(format!(
            "the feed `{name}` holds {bad}, which is not a {}",
            node.dtype.name()
        ));
    }
    Ok(value.clone())
}
