//! The gradient of a loop is a loop: a scan run the other way whose body
//! is the vector-Jacobian product of the forward body.
//!
//! Forward, step `t` computes `(carry', y_t) = f(carry, x_t, w)`. Backward,
//! from the last step to the first, with `dcarry` starting as the adjoint
//! of the final carry:
//!
//! ```text
//! (dcarry, dx_t, dw_t) = vjp f (carry before t, x_t, w) (dcarry, dy_t)
//! dw = Σ_t dw_t
//! ```
//!
//! The backward loop carries `dcarry` and one sum per captured value that
//! needs a gradient; it reads as sequences the carry before each step, the
//! forward sequences and the adjoints of the stacked results; it stacks
//! `dx_t`. Its body recomputes the forward step's cheap element-wise work
//! from the carry before it; what is dear to recompute is stored per step
//! instead (the forward loop stacks it as extra results, and the backward
//! loop reads it as sequences): the products (or the sums a product is
//! added into, `x_t @ W + h @ U`) and the values of `exp`, `tanh` and
//! `sigmoid`, whose gradients read their value alone. Of these, only what
//! the backward step reads is stored: once an LSTM's gates are stored, the
//! sum they were computed from is not.

use std::sync::Arc;

use crate::check::dims::Dim;
use std::collections::{HashMap, HashSet};

use crate::ir::loops::{inline, Loop, Piece};
use crate::ir::{Graph, NodeId};
use crate::prim::{BinaryOp, DType, Prim, UnaryOp};

/// The adjoint contribution of scan node `id` to each operand where
/// `wanted`, given the adjoint `g` of its flat value.
pub fn vjp(graph: &mut Graph, id: NodeId, inputs: &[NodeId], wanted: &[bool], g: NodeId) -> Vec<Option<NodeId>> {
    let Prim::Scan(forward) = graph.node(id).op.clone() else {
        unreachable!("vjp of a scan")
    };
    let pieces = forward.pieces().expect("a verified loop has its outputs");
    let (c, s, k) = (forward.carries, forward.sequences, forward.captured);
    let (inits, rest) = inputs.split_at(c);
    let (sequences, captured) = rest.split_at(s);
    let wanted_sequences: Vec<usize> = (0..s).filter(|&i| wanted[c + i]).collect();
    let wanted_captured: Vec<usize> = (0..k).filter(|&i| wanted[c + s + i]).collect();

    // The forward body's argument types, from the operands (the body may
    // not read every argument).
    let types: Vec<(DType, Vec<Dim>)> = inputs
        .iter()
        .enumerate()
        .map(|(i, &input)| {
            let mut shape = graph.shape(input);
            if (c..c + s).contains(&i) {
                shape.remove(1);
            }
            (graph.dtype(input), shape)
        })
        .collect();
    let (body, residuals) = backward_body_and_residuals(&forward, &types, &wanted_sequences, &wanted_captured);

    // Operands of the backward loop, as its body reads them.
    let mut operands: Vec<NodeId> = (0..c).map(|i| take(graph, g, &pieces[i])).collect();
    for &j in &wanted_captured {
        operands.push(graph.fill_like(captured[j], 0.0));
    }
    for (i, &init) in inits.iter().enumerate() {
        operands.push(carries_before(graph, id, &forward, &pieces, init, i));
    }
    operands.extend_from_slice(sequences);
    for i in 0..forward.ys {
        operands.push(take(graph, g, &pieces[c + i]));
    }
    operands.extend(stack_values(graph, id, &residuals));
    operands.extend_from_slice(captured);

    let backward = Loop {
        body,
        length: forward.length,
        reverse: !forward.reverse,
        carries: c + wanted_captured.len(),
        sequences: c + s + forward.ys + residuals.len(),
        captured: k,
        ys: wanted_sequences.len(),
    };
    let back_pieces = backward.pieces().expect("the backward body has its outputs");
    let flat = backward.flat_shape().expect("the backward body has its outputs");
    let dtype = graph.dtype(g);
    let node = graph.add(Prim::Scan(Arc::new(backward)), dtype, flat, &operands);

    let mut parts: Vec<Option<NodeId>> = vec![None; inputs.len()];
    for i in 0..c {
        if wanted[i] {
            parts[i] = Some(take(graph, node, &back_pieces[i]));
        }
    }
    for (n, &j) in wanted_captured.iter().enumerate() {
        parts[c + s + j] = Some(take(graph, node, &back_pieces[c + n]));
    }
    for (n, &i) in wanted_sequences.iter().enumerate() {
        parts[c + i] = Some(take(graph, node, &back_pieces[c + wanted_captured.len() + n]));
    }
    parts
}

/// One piece of a loop's flat value, in its shape.
fn take(graph: &mut Graph, flat: NodeId, piece: &Piece) -> NodeId {
    let size = piece.size();
    let sliced = graph.slice(flat, 0, piece.offset.clone(), size, 1);
    graph.reshape(sliced, piece.shape.clone())
}

/// Carry `i` before each step, stacked `[N, T, ...]` in time order. When
/// the body stacks that carry as a result (a `scan` stacks every carry), it
/// is the stacked results shifted by one step, the initial value first;
/// otherwise the forward loop is made to stack it.
fn carries_before(graph: &mut Graph, id: NodeId, forward: &Loop, pieces: &[Piece], init: NodeId, i: usize) -> NodeId {
    let carry = forward.carry_output(i);
    let stacked_as = (0..forward.ys).find(|&k| forward.y_output(k) == carry);
    let Some(k) = stacked_as else {
        return stack_carry(graph, id, i);
    };
    let ys = take(graph, id, &pieces[forward.carries + k]);
    let mut first = graph.shape(init);
    first.insert(1, Dim::constant(1));
    let init = graph.reshape(init, first);
    let length = forward.length as i64;
    if length == 1 {
        return init;
    }
    let steps = Dim::constant(length - 1);
    let (start, parts) = if forward.reverse {
        (Dim::constant(1), [None, Some(init)])
    } else {
        (Dim::constant(0), [Some(init), None])
    };
    let shifted = graph.slice(ys, 1, start, steps, 1);
    let parts: Vec<NodeId> = parts.iter().map(|p| p.unwrap_or(shifted)).collect();
    let shape = graph.shape(ys);
    let dtype = graph.dtype(ys);
    graph.add(Prim::Concat { axis: 1 }, dtype, shape, &parts)
}

/// Makes scan `id` also stack carry `i` as it is before each step (its
/// argument), and returns that stack.
fn stack_carry(graph: &mut Graph, id: NodeId, i: usize) -> NodeId {
    let Prim::Scan(looped) = graph.node(id).op.clone() else {
        unreachable!("a scan")
    };
    let body = &looped.body;
    let arg = match body.graph.node_indices().find(|&n| body.node(n).op == Prim::Arg(i)) {
        Some(arg) => arg,
        None => {
            let mut looped = Arc::unwrap_or_clone(looped);
            let carry = looped.carry_output(i).expect("a verified loop has its carries");
            let node = looped.body.node(carry);
            let (dtype, shape) = (node.dtype, node.shape.clone());
            let arg = looped.body.add(Prim::Arg(i), dtype, shape, &[]);
            graph.node_mut(id).op = Prim::Scan(Arc::new(looped));
            arg
        }
    };
    stack_values(graph, id, &[arg])[0]
}

/// The stacks of body values `nodes` over the steps of scan `id`: a value
/// the scan stacks already (an RNN's new state) is read from its stack;
/// the scan is made to stack the others too (as new last results, so the
/// scan's users read what they read before).
fn stack_values(graph: &mut Graph, id: NodeId, nodes: &[NodeId]) -> Vec<NodeId> {
    if nodes.is_empty() {
        return Vec::new();
    }
    let Prim::Scan(looped) = graph.node(id).op.clone() else {
        unreachable!("a scan")
    };
    let mut looped = Arc::unwrap_or_clone(looped);
    let results: Vec<usize> = nodes
        .iter()
        .map(|&n| {
            (0..looped.ys)
                .find(|&k| looped.y_output(k) == Some(n))
                .unwrap_or_else(|| {
                    looped.body.set_output(&format!("y {}", looped.ys), n);
                    looped.ys += 1;
                    looped.ys - 1
                })
        })
        .collect();
    let pieces = looped.pieces().expect("a verified loop has its outputs");
    let flat = looped.flat_shape().expect("a verified loop has its outputs");
    let carries = looped.carries;
    let node = graph.node_mut(id);
    node.op = Prim::Scan(Arc::new(looped));
    node.shape = flat;
    results.iter().map(|&k| take(graph, id, &pieces[carries + k])).collect()
}

/// The backward body, and the forward body's values it reads stored (in
/// the order of its arguments): of the values dear to recompute
/// ([`dear_values`]), those the backward step still reads
/// once they are all stored.
fn backward_body_and_residuals(
    forward: &Loop,
    types: &[(DType, Vec<Dim>)],
    wanted_sequences: &[usize],
    wanted_captured: &[usize],
) -> (Graph, Vec<NodeId>) {
    let candidates = dear_values(forward);
    let (body, stored) = backward_body(forward, types, &candidates, wanted_sequences, wanted_captured);
    let live = live_nodes(&body);
    let residuals: Vec<NodeId> = (candidates.iter().zip(&stored))
        .filter(|&(_, arg)| live.contains(arg))
        .map(|(&r, _)| r)
        .collect();
    if residuals.len() == candidates.len() {
        return (body, residuals);
    }
    let (body, _) = backward_body(forward, types, &residuals, wanted_sequences, wanted_captured);
    (body, residuals)
}

/// The nodes of `body` that its outputs depend on.
fn live_nodes(body: &Graph) -> HashSet<NodeId> {
    let mut live: HashSet<NodeId> = HashSet::new();
    let mut stack: Vec<NodeId> = body.outputs.iter().map(|&(_, n)| n).collect();
    while let Some(n) = stack.pop() {
        if live.insert(n) {
            stack.extend(body.inputs(n));
        }
    }
    live
}

/// The forward body's values dear to recompute that change from step to
/// step: products, and the values of `exp`, `tanh` and `sigmoid` that a
/// product reaches through no other activation (their gradients read their
/// value alone, so that stored, the backward step computes none of them
/// again). In place of a product whose one use adds
/// it to (or subtracts it from) values that do not depend on the carries,
/// that sum: the input projection plus `h @ U` of a recurrent cell, so
/// that the backward loop reads neither the product nor the sequence it
/// was added to.
fn dear_values(forward: &Loop) -> Vec<NodeId> {
    let body = &forward.body;
    let mut varies: HashMap<NodeId, bool> = HashMap::with_capacity(body.len());
    let mut carried: HashMap<NodeId, bool> = HashMap::with_capacity(body.len());
    // Whether a product reaches the value through no activation.
    let mut after_product: HashMap<NodeId, bool> = HashMap::with_capacity(body.len());
    let (mut products, mut activations) = (Vec::new(), Vec::new());
    for n in body.topo_order() {
        let node = body.node(n);
        let (v, k) = match node.op {
            Prim::Arg(i) => (i < forward.carries + forward.sequences, i < forward.carries),
            _ => (
                body.inputs(n).iter().any(|i| varies[i]),
                body.inputs(n).iter().any(|i| carried[i]),
            ),
        };
        varies.insert(n, v);
        carried.insert(n, k);
        let fed = body.inputs(n).iter().any(|i| after_product[i]);
        let activation = matches!(node.op, Prim::Unary(UnaryOp::Exp | UnaryOp::Tanh | UnaryOp::Sigmoid));
        after_product.insert(n, matches!(node.op, Prim::MatMul) || (fed && !activation));
        match node.op {
            Prim::MatMul if v => products.push(n),
            // An activation of values made element-wise from other
            // activations and the carries (an LSTM's `tanh(c_t)`) is
            // recomputed: they are stored or read anyway, and storing it
            // would cost a write and a read of memory per step.
            _ if activation && v && fed => activations.push(n),
            _ => {}
        }
    }
    let mut found: Vec<NodeId> = products
        .into_iter()
        .map(|mut n| {
            loop {
                let users = body.users(n);
                let [user] = users[..] else { break };
                let others_fixed = body.inputs(user).iter().all(|&i| i == n || !carried[&i]);
                if body.is_output(n)
                    || !matches!(body.node(user).op, Prim::Binary(BinaryOp::Add | BinaryOp::Sub))
                    || !others_fixed
                {
                    break;
                }
                n = user;
            }
            n
        })
        .collect();
    // A product's sum is an addition, never an activation.
    found.extend(activations);
    found
}

/// The backward body: arguments `dcarry` (one per forward carry), the sums
/// of the wanted captured values' gradients, then the carries before the
/// step, the forward step's sequences, the adjoints of its results, the
/// stored `residuals`, then the forward captured values. Outputs: the
/// adjoints of the carries before the step and the sums (carries), the
/// wanted sequences' adjoints (results). Returned with the arguments that
/// stand for the residuals.
fn backward_body(
    forward: &Loop,
    types: &[(DType, Vec<Dim>)],
    residuals: &[NodeId],
    wanted_sequences: &[usize],
    wanted_captured: &[usize],
) -> (Graph, Vec<NodeId>) {
    let (c, s, k) = (forward.carries, forward.sequences, forward.captured);
    let mut body = Graph::new();
    let arg = |body: &mut Graph, index: usize, like: usize| -> NodeId {
        let (dtype, shape) = types[like].clone();
        body.add(Prim::Arg(index), dtype, shape, &[])
    };
    let mut next = 0;
    let dcarries: Vec<NodeId> = (0..c).map(|i| arg(&mut body, next + i, i)).collect();
    next += c;
    let sums: Vec<NodeId> = wanted_captured
        .iter()
        .enumerate()
        .map(|(n, &j)| arg(&mut body, next + n, c + s + j))
        .collect();
    next += wanted_captured.len();
    let mut forward_args: Vec<NodeId> = (0..c).map(|i| arg(&mut body, next + i, i)).collect();
    next += c;
    forward_args.extend((0..s).map(|i| arg(&mut body, next + i, c + i)));
    next += s;
    let dys: Vec<NodeId> = (0..forward.ys)
        .map(|n| {
            let y = forward.y_output(n).expect("a verified loop has its results");
            let node = forward.body.node(y);
            body.add(Prim::Arg(next + n), node.dtype, node.shape.clone(), &[])
        })
        .collect();
    next += forward.ys;
    let stored: Vec<NodeId> = residuals
        .iter()
        .enumerate()
        .map(|(n, &r)| {
            let node = forward.body.node(r);
            body.add(Prim::Arg(next + n), node.dtype, node.shape.clone(), &[])
        })
        .collect();
    next += residuals.len();
    forward_args.extend((0..k).map(|j| arg(&mut body, next + j, c + s + j)));

    let copies = inline(&mut body, &forward.body, &forward_args).expect("the forward body reads its arguments");
    let mut seeds: Vec<(NodeId, NodeId)> = Vec::new();
    for (i, &dcarry) in dcarries.iter().enumerate() {
        seeds.push((copies[&forward.carry_output(i).expect("a carry")], dcarry));
    }
    for (n, &dy) in dys.iter().enumerate() {
        seeds.push((copies[&forward.y_output(n).expect("a result")], dy));
    }
    let mut wrt: Vec<NodeId> = forward_args[..c].to_vec();
    wrt.extend(wanted_captured.iter().map(|&j| forward_args[c + s + j]));
    wrt.extend(wanted_sequences.iter().map(|&i| forward_args[c + i]));
    let grads = super::seeded_gradients(&mut body, &seeds, &wrt);
    // The stored values stand for their recomputation (which stays only
    // as the structure the gradients were taken through).
    for (r, &value) in residuals.iter().zip(&stored) {
        body.replace_uses(copies[r], value);
    }
    for (i, &grad) in grads[..c].iter().enumerate() {
        body.set_output(&format!("carry {i}"), grad);
    }
    for (n, (&grad, &sum)) in grads[c..c + sums.len()].iter().zip(&sums).enumerate() {
        let total = body.add_nodes(sum, grad);
        body.set_output(&format!("carry {}", c + n), total);
    }
    for (n, &grad) in grads[c + sums.len()..].iter().enumerate() {
        body.set_output(&format!("y {n}"), grad);
    }
    (body, stored)
}
