//! The training step: the forward graph, its gradients, gradient clipping
//! and weight decay, and the optimizer's update, as one graph.
//!
//! Inputs the runtime feeds each step besides the data: `lr` (the learning
//! rate after the schedule) and `step` (1 for the first step); the forward
//! graph may read `progress` too (`progress()`, the share of training done,
//! 0 at the first step). Outputs:
//! `loss`, `model_output`, `grad <param>` for every parameter and
//! `new <name>` for every parameter and state (model states such as batch-norm
//! statistics, and optimizer slots such as `optimizer.m.<param>`).

use crate::check::config::Config;
use crate::check::dims::Dim;
use crate::ir::{param_name, Graph, NodeId};
use crate::prim::{BinaryOp, DType, Prim, UnaryOp};

/// Builds the whole training step from the forward (training-mode) graph.
pub fn training_step(forward: &Graph, optimizer: &Config) -> Graph {
    replicated_training_step(forward, optimizer, 1)
}

/// The training step of one of `replicas` processes that train one model
/// on their own shares of each batch (data parallelism, `mpirun`): the
/// loss, the gradients and the model states' updates are averaged over the
/// processes by one `all_reduce` before clipping and the update, so every
/// process applies the same update, the one a single process would apply
/// to the whole batch (the mean of equal shares' means is the batch's
/// mean). With one replica, [`training_step`].
pub fn replicated_training_step(forward: &Graph, optimizer: &Config, replicas: usize) -> Graph {
    let mut graph = forward.clone();
    share_means(&mut graph, replicas);
    let Some(loss) = graph.output("loss") else {
        return graph;
    };
    let params = graph.leaves(param_name);
    let ids: Vec<NodeId> = params.iter().map(|(_, id)| *id).collect();
    let mut grads = super::gradients(&mut graph, loss, &ids);
    if replicas > 1 {
        grads = average_over_replicas(&mut graph, loss, grads, replicas);
    }
    for ((path, _), &g) in params.iter().zip(&grads) {
        graph.set_output(&format!("grad {path}"), g);
    }
    // Model states: `update <path>` becomes `new <path>`.
    let updates: Vec<(String, NodeId)> = graph
        .outputs
        .iter()
        .filter_map(|(name, id)| name.strip_prefix("update ").map(|p| (p.to_string(), *id)))
        .collect();
    graph.outputs.retain(|(name, _)| !name.starts_with("update "));
    for (path, id) in updates {
        graph.set_output(&format!("new {path}"), id);
    }

    let lr = graph.add(Prim::Input("lr".into()), DType::F32, Vec::new(), &[]);
    let step = graph.add(Prim::Input("step".into()), DType::F32, Vec::new(), &[]);
    let grads = clip(&mut graph, optimizer, grads);
    for ((path, param), g) in params.iter().zip(grads) {
        let mut update = Update {
            graph: &mut graph,
            path,
            param: *param,
            lr,
            step,
        };
        let new = update.apply(optimizer, g);
        graph.set_output(&format!("new {path}"), new);
    }
    graph
}

/// The model's `sync_mean`s (batch statistics), traced as this process's
/// mean summed over the processes, become means over the whole batch: the
/// sum divided by `replicas` (the shares are equal, so the mean of their
/// means is the batch's), or for one process the share's mean alone (the
/// sum dropped, so a single process's step is what `mean` gives). The
/// gradient of the sum is the sum of the gradients, so every process's
/// share receives what the other processes' losses owe its rows.
fn share_means(graph: &mut Graph, replicas: usize) {
    for id in graph.topo_order() {
        match &graph.node(id).op {
            Prim::AllReduce => {
                let share = graph.inputs(id)[0];
                let mean = if replicas == 1 {
                    share
                } else {
                    let (dtype, shape) = (graph.dtype(id), graph.shape(id));
                    let sum = graph.add(Prim::AllReduce, dtype, shape, &[share]);
                    graph.scale(sum, 1.0 / replicas as f64)
                };
                graph.replace_uses(id, mean);
                graph.remove(id);
            }
            Prim::Scan(looped) if sums_over_processes(&looped.body) => {
                let mut looped = (**looped).clone();
                share_means(&mut looped.body, replicas);
                graph.node_mut(id).op = Prim::Scan(std::sync::Arc::new(looped));
            }
            _ => {}
        }
    }
}

fn sums_over_processes(graph: &Graph) -> bool {
    graph.graph.node_weights().any(|node| match &node.op {
        Prim::AllReduce => true,
        Prim::Scan(looped) => sums_over_processes(&looped.body),
        _ => false,
    })
}

/// Replaces the loss output, `grads` and the model states' updates with
/// their means over `replicas` processes: every value flattened into one
/// vector (a concatenation the gradients are computed into), summed by one
/// `all_reduce`, scaled, and sliced back. Returns the averaged gradients.
fn average_over_replicas(graph: &mut Graph, loss: NodeId, grads: Vec<NodeId>, replicas: usize) -> Vec<NodeId> {
    let updates: Vec<(String, NodeId)> = graph
        .outputs
        .iter()
        .filter(|(name, _)| name.starts_with("update "))
        .cloned()
        .collect();
    let mut values = vec![loss];
    values.extend(&grads);
    values.extend(updates.iter().map(|(_, id)| *id));
    let mut sizes = Vec::with_capacity(values.len());
    let mut flat = Vec::with_capacity(values.len());
    for &value in &values {
        let size = crate::ir::loops::element_count(&graph.shape(value));
        flat.push(graph.reshape(value, vec![size.clone()]));
        sizes.push(size);
    }
    let total = sizes.iter().fold(Dim::constant(0), |total, size| total.add(size));
    let all = graph.add(Prim::Concat { axis: 0 }, DType::F32, vec![total.clone()], &flat);
    let sum = graph.add(Prim::AllReduce, DType::F32, vec![total], &[all]);
    let mean = graph.scale(sum, 1.0 / replicas as f64);
    let mut start = Dim::constant(0);
    let mut averaged = Vec::with_capacity(values.len());
    for (&value, size) in values.iter().zip(sizes) {
        let piece = graph.slice(mean, 0, start.clone(), size.clone(), 1);
        averaged.push(graph.reshape(piece, graph.shape(value)));
        start = start.add(&size);
    }
    graph.set_output("loss", averaged[0]);
    for ((name, _), &value) in updates.iter().zip(&averaged[1 + grads.len()..]) {
        graph.set_output(name, value);
    }
    averaged[1..=grads.len()].to_vec()
}

/// Clipping by global norm (`clip_norm`), then by value (`clip_value`).
fn clip(graph: &mut Graph, config: &Config, grads: Vec<NodeId>) -> Vec<NodeId> {
    let mut grads = grads;
    if let Some(limit) = config.float("clip_norm").filter(|c| c.is_finite()) {
        // scale = min(1, limit / (||g|| + 1e-6)),  ||g||^2 = sum over all parameters
        let squares: Vec<NodeId> = grads
            .iter()
            .map(|&g| {
                let s = graph.mul(g, g);
                graph.sum_all(s)
            })
            .collect();
        let total = squares.into_iter().reduce(|a, b| graph.add_nodes(a, b));
        if let Some(total) = total {
            let norm = graph.unary(UnaryOp::Sqrt, total);
            let eps = graph.scalar(1e-6, DType::F32);
            let denominator = graph.add_nodes(norm, eps);
            let limit = graph.scalar(limit, DType::F32);
            let ratio = graph.div(limit, denominator);
            let one = graph.scalar(1.0, DType::F32);
            let scale = graph.binary(BinaryOp::Min, ratio, one);
            grads = grads.into_iter().map(|g| graph.mul(g, scale)).collect();
        }
    }
    if let Some(limit) = config.float("clip_value").filter(|c| c.is_finite()) {
        grads = grads
            .into_iter()
            .map(|g| {
                let high = graph.scalar(limit, DType::F32);
                let low = graph.scalar(-limit, DType::F32);
                let capped = graph.binary(BinaryOp::Min, g, high);
                graph.binary(BinaryOp::Max, capped, low)
            })
            .collect();
    }
    grads
}

/// The update of one parameter.
struct Update<'g> {
    graph: &'g mut Graph,
    path: &'g str,
    param: NodeId,
    lr: NodeId,
    step: NodeId,
}

impl Update<'_> {
    /// A state slot of this parameter (zeros at the start), and its output.
    fn slot(&mut self, name: &str) -> (NodeId, String) {
        let full = format!("optimizer.{name}.{}", self.path);
        let (dtype, shape) = (self.graph.dtype(self.param), self.graph.shape(self.param));
        let id = self.graph.add(Prim::State(full.clone()), dtype, shape, &[]);
        (id, format!("new {full}"))
    }

    /// `decay * old + (1 - decay) * value`
    fn average(&mut self, old: NodeId, value: NodeId, decay: f64) -> NodeId {
        let kept = self.graph.scale(old, decay);
        let fresh = self.graph.scale(value, 1.0 - decay);
        self.graph.add_nodes(kept, fresh)
    }

    /// `param - lr * direction`
    fn descend(&mut self, direction: NodeId) -> NodeId {
        let stepped = self.graph.mul(direction, self.lr);
        self.graph.sub(self.param, stepped)
    }

    /// `g / (sqrt(s) + eps)`
    fn normalized(&mut self, g: NodeId, s: NodeId, eps: f64) -> NodeId {
        let root = self.graph.unary(UnaryOp::Sqrt, s);
        let eps = self.graph.scalar(eps, DType::F32);
        let denominator = self.graph.add_nodes(root, eps);
        self.graph.div(g, denominator)
    }

    fn apply(&mut self, config: &Config, g: NodeId) -> NodeId {
        let weight_decay = config.float("weight_decay").unwrap_or(0.0);
        let decoupled = config.name == "adamw";
        let mut g = g;
        if weight_decay > 0.0 && !decoupled {
            // L2 penalty: g += wd * p
            let penalty = self.graph.scale(self.param, weight_decay);
            g = self.graph.add_nodes(g, penalty);
        }
        let eps = config.float("eps").unwrap_or(1e-8);
        match config.name.as_str() {
            "sgd" | "momentum" => {
                let mu = config.float("momentum").unwrap_or(0.0);
                if mu == 0.0 {
                    return self.descend(g);
                }
                // v = mu v + g;  p -= lr (nesterov ? g + mu v : v)
                let (v, output) = self.slot("velocity");
                let kept = self.graph.scale(v, mu);
                let v_next = self.graph.add_nodes(kept, g);
                self.graph.set_output(&output, v_next);
                let direction = if config.bool("nesterov") == Some(true) {
                    let ahead = self.graph.scale(v_next, mu);
                    self.graph.add_nodes(g, ahead)
                } else {
                    v_next
                };
                self.descend(direction)
            }
            "adagrad" => {
                // s += g^2;  p -= lr g / (sqrt(s) + eps)
                let (s, output) = self.slot("sum_sq");
                let square = self.graph.mul(g, g);
                let s_next = self.graph.add_nodes(s, square);
                self.graph.set_output(&output, s_next);
                let direction = self.normalized(g, s_next, eps);
                self.descend(direction)
            }
            "rmsprop" => {
                // s = d s + (1 - d) g^2;  p -= lr g / (sqrt(s) + eps)
                let decay = config.float("decay").unwrap_or(0.99);
                let (s, output) = self.slot("mean_sq");
                let square = self.graph.mul(g, g);
                let s_next = self.average(s, square, decay);
                self.graph.set_output(&output, s_next);
                let direction = self.normalized(g, s_next, eps);
                self.descend(direction)
            }
            _ => {
                // Adam: m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
                // p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)  [+ lr wd p for adamw]
                let beta1 = config.float("beta1").unwrap_or(0.9);
                let beta2 = config.float("beta2").unwrap_or(0.999);
                let (m, m_out) = self.slot("m");
                let (v, v_out) = self.slot("v");
                let m_next = self.average(m, g, beta1);
                let square = self.graph.mul(g, g);
                let v_next = self.average(v, square, beta2);
                self.graph.set_output(&m_out, m_next);
                self.graph.set_output(&v_out, v_next);
                let m_hat = self.unbias(m_next, beta1);
                let v_hat = self.unbias(v_next, beta2);
                let mut direction = self.normalized(m_hat, v_hat, eps);
                if decoupled && weight_decay > 0.0 {
                    let decay = self.graph.scale(self.param, weight_decay);
                    direction = self.graph.add_nodes(direction, decay);
                }
                self.descend(direction)
            }
        }
    }

    /// `x / (1 - beta^step)`, as `x · (1 / (1 - beta^step))`: the scalar
    /// is inverted once, and each element costs a product instead of a
    /// division (Adam's update had three divisions per element; their
    /// throughput bounds it when the parameters are in cache).
    fn unbias(&mut self, x: NodeId, beta: f64) -> NodeId {
        let base = self.graph.scalar(beta, DType::F32);
        let power = self.graph.binary(BinaryOp::Pow, base, self.step);
        let one = self.graph.scalar(1.0, DType::F32);
        let correction = self.graph.sub(one, power);
        let inverse = self.graph.div(one, correction);
        self.graph.mul(x, inverse)
    }
}
