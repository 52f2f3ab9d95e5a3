//! One gradient rule per primitive: given `y = op(x...)` and the adjoint
//! `g = dL/dy`, the contribution to `dL/dx_i`. The math is beside each rule.

use super::differentiable;
use crate::check::dims::Dim;
use crate::ir::{Graph, NodeId};
use crate::prim::{BinaryOp, Prim, ReduceOp, UnaryOp};

/// The adjoint contribution of node `y` to its operand at `position`, or
/// `None` where no gradient flows (integer operands, comparisons, ...).
pub fn vjp(graph: &mut Graph, y: NodeId, inputs: &[NodeId], position: usize, g: NodeId) -> Option<NodeId> {
    let x = inputs[position];
    if !differentiable(graph.dtype(x)) {
        return None;
    }
    let op = graph.node(y).op.clone();
    Some(match op {
        Prim::Input(_)
        | Prim::Param(_)
        | Prim::State(_)
        | Prim::Const(_)
        | Prim::Count(_)
        | Prim::Iota { .. }
        | Prim::Random { .. }
        | Prim::Arg(_)
        | Prim::StopGrad
        | Prim::ArgMax { .. } => return None,
        // Loops are differentiated whole, before the per-op rules
        // (`autodiff::loops`).
        Prim::Scan(_) => return None,

        Prim::Unary(op) => unary(graph, op, x, y, g)?,
        Prim::Binary(op) => binary(graph, op, inputs[0], inputs[1], y, position, g)?,

        // y = c ? a : b  =>  da = c ? g : 0,  db = c ? 0 : g
        Prim::Select => {
            if position == 0 {
                return None;
            }
            let zero = graph.fill_like(g, 0.0);
            let c = inputs[0];
            if position == 1 {
                graph.select(c, g, zero)
            } else {
                graph.select(c, zero, g)
            }
        }
        // y = cast(x) between float types  =>  dx = cast(g)
        Prim::Cast(_) => {
            if !differentiable(graph.dtype(y)) {
                return None;
            }
            let dtype = graph.dtype(x);
            graph.cast(g, dtype)
        }

        // y = sum(x, axes)  =>  dx = broadcast(g)
        // y = mean(x, axes) =>  dx = broadcast(g) / count
        // y = max(x, axes)  =>  dx = broadcast(g) * (x == broadcast(y))
        Prim::Reduce { op, axes, keepdims } => {
            let x_shape = graph.shape(x);
            let kept: Vec<Dim> = x_shape
                .iter()
                .enumerate()
                .map(|(i, d)| if axes.contains(&i) { Dim::constant(1) } else { d.clone() })
                .collect();
            let _ = keepdims;
            let g_kept = graph.reshape(g, kept.clone());
            let spread = graph.broadcast(g_kept, &x_shape);
            match op {
                ReduceOp::Sum => spread,
                ReduceOp::Mean => {
                    let count = axes.iter().fold(Dim::constant(1), |acc, &a| acc.mul(&x_shape[a]));
                    let n = match count.as_const() {
                        Some(n) => graph.scalar(n as f64, graph.dtype(x)),
                        None => graph.add(Prim::Count(count), graph.dtype(x), Vec::new(), &[]),
                    };
                    graph.div(spread, n)
                }
                ReduceOp::Max => {
                    // Ties share the gradient equally (as in JAX), so a max
                    // of equal values that move together has slope 1.
                    let y_kept = graph.reshape(y, kept);
                    let y_spread = graph.broadcast(y_kept, &x_shape);
                    let hit = graph.binary(BinaryOp::Eq, x, y_spread);
                    let mask = graph.cast(hit, graph.dtype(x));
                    let ties = graph.reduce(ReduceOp::Sum, mask, axes.clone(), true);
                    let ties = graph.broadcast(ties, &x_shape);
                    let share = graph.div(mask, ties);
                    graph.mul(spread, share)
                }
            }
        }

        // y = reshape(x)  =>  dx = reshape(g)
        Prim::Reshape => {
            let shape = graph.shape(x);
            graph.reshape(g, shape)
        }
        // y = permute(x, p)  =>  dx = permute(g, p^-1)
        Prim::Permute(perm) => {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            graph.permute(g, inverse)
        }
        // y = broadcast(x)  =>  dx = sum of g over the broadcast axes
        Prim::Broadcast => {
            let shape = graph.shape(x);
            graph.sum_to_shape(g, &shape)
        }
        // y = x[start :: step] along axis  =>  dx = g spread back with zeros
        Prim::Slice { axis, start, step } => slice_adjoint(graph, x, g, axis, start, step),
        // y = concat(x_0, x_1, ...)  =>  dx_i = the matching slice of g
        Prim::Concat { axis } => {
            let offset = inputs[..position]
                .iter()
                .fold(Dim::constant(0), |acc, &i| acc.add(&graph.node(i).shape[axis]));
            let len = graph.shape(x)[axis].clone();
            graph.slice(g, axis, offset, len, 1)
        }
        // y = pad(x)  =>  dx = g without the padding
        Prim::Pad { axis, before, .. } => {
            let len = graph.shape(x)[axis].clone();
            graph.slice(g, axis, before, len, 1)
        }

        // y = table[ids]  =>  dtable = scatter-add of g into rows
        Prim::Take => {
            if position != 0 {
                return None;
            }
            let rows = graph.shape(x)[0].clone();
            let shape = graph.shape(x);
            let dtype = graph.dtype(x);
            graph.add(Prim::ScatterRows { rows }, dtype, shape, &[g, inputs[1]])
        }
        // y = scatter_rows(v, ids)  =>  dv = g[ids]
        Prim::ScatterRows { .. } => {
            if position != 0 {
                return None;
            }
            let (dtype, shape) = (graph.dtype(x), graph.shape(x));
            graph.add(Prim::Take, dtype, shape, &[g, inputs[1]])
        }
        // y = x[..., ids]  =>  dx = g placed at ids, zeros elsewhere
        Prim::Pick => {
            if position != 0 {
                return None;
            }
            let shape = graph.shape(x);
            let classes = shape[shape.len() - 1].clone();
            let dtype = graph.dtype(x);
            graph.add(Prim::Place { classes }, dtype, shape, &[g, inputs[1]])
        }
        // y = place(v, ids)  =>  dv = g[..., ids]
        Prim::Place { .. } => {
            if position != 0 {
                return None;
            }
            let (dtype, shape) = (graph.dtype(x), graph.shape(x));
            graph.add(Prim::Pick, dtype, shape, &[g, inputs[1]])
        }

        // y = a @ b  =>  da = g @ b^T,  db = a^T @ g
        Prim::MatMul => {
            if position == 0 {
                let bt = graph.transpose_last(inputs[1]);
                graph.matmul(g, bt)
            } else {
                let at = graph.transpose_last(inputs[0]);
                graph.matmul(at, g)
            }
        }
        // y = Σ_processes x  =>  dx = Σ_processes g (each process's loss
        // reads every process's x).
        Prim::AllReduce => {
            let (dtype, shape) = (graph.dtype(x), graph.shape(x));
            graph.add(Prim::AllReduce, dtype, shape, &[g])
        }
        // unfold2d and fold2d are each other's adjoints.
        Prim::Unfold2d(window) => {
            let (dtype, shape) = (graph.dtype(x), graph.shape(x));
            graph.add(Prim::Fold2d(window), dtype, shape, &[g])
        }
        Prim::Fold2d(window) => {
            let (dtype, shape) = (graph.dtype(x), graph.shape(x));
            graph.add(Prim::Unfold2d(window), dtype, shape, &[g])
        }
    })
}

fn unary(graph: &mut Graph, op: UnaryOp, x: NodeId, y: NodeId, g: NodeId) -> Option<NodeId> {
    Some(match op {
        // d(-x) = -g
        UnaryOp::Neg => graph.neg(g),
        // d exp(x) = g * exp(x)
        UnaryOp::Exp => graph.mul(g, y),
        // d log(x) = g / x
        UnaryOp::Log => graph.div(g, x),
        // d sqrt(x) = g / (2 sqrt(x))
        UnaryOp::Sqrt => {
            let twice = graph.scale(y, 2.0);
            graph.div(g, twice)
        }
        // d tanh(x) = g * (1 - tanh(x)^2)
        UnaryOp::Tanh => {
            let square = graph.mul(y, y);
            let one = graph.scalar(1.0, graph.dtype(y));
            let slope = graph.sub(one, square);
            graph.mul(g, slope)
        }
        // d sigmoid(x) = g * y * (1 - y): the value alone, so that a loop's
        // backward step can read it stored instead of recomputing it
        UnaryOp::Sigmoid => {
            let one = graph.scalar(1.0, graph.dtype(y));
            let rest = graph.sub(one, y);
            let slope = graph.mul(y, rest);
            graph.mul(g, slope)
        }
        // d sin(x) = g * cos(x)
        UnaryOp::Sin => {
            let c = graph.unary(UnaryOp::Cos, x);
            graph.mul(g, c)
        }
        // d cos(x) = -g * sin(x)
        UnaryOp::Cos => {
            let s = graph.unary(UnaryOp::Sin, x);
            let gs = graph.mul(g, s);
            graph.neg(gs)
        }
        // d |x| = g * sign(x), with sign(0) = 0
        UnaryOp::Abs => {
            let zero = graph.fill_like(x, 0.0);
            let positive = graph.binary(BinaryOp::Gt, x, zero);
            let negative = graph.binary(BinaryOp::Lt, x, zero);
            let dtype = graph.dtype(x);
            let p = graph.cast(positive, dtype);
            let n = graph.cast(negative, dtype);
            let sign = graph.sub(p, n);
            graph.mul(g, sign)
        }
        UnaryOp::Not => return None,
    })
}

fn binary(
    graph: &mut Graph,
    op: BinaryOp,
    a: NodeId,
    b: NodeId,
    y: NodeId,
    position: usize,
    g: NodeId,
) -> Option<NodeId> {
    let first = position == 0;
    let dtype = graph.dtype(a);
    Some(match op {
        // d(a + b) = g, g
        BinaryOp::Add => g,
        // d(a - b) = g, -g
        BinaryOp::Sub if first => g,
        BinaryOp::Sub => graph.neg(g),
        // d(a * b) = g b, g a
        BinaryOp::Mul => graph.mul(g, if first { b } else { a }),
        // d(a / b) = g / b, -g a / b^2 = -g y / b
        BinaryOp::Div if first => graph.div(g, b),
        BinaryOp::Div => {
            let gy = graph.mul(g, y);
            let q = graph.div(gy, b);
            graph.neg(q)
        }
        // d max(a, b) = g ([a > b] + [a == b] / 2),  g ([a < b] + [a == b] / 2)
        // d min(a, b) = g ([a < b] + [a == b] / 2),  g ([a > b] + [a == b] / 2)
        // (ties split evenly, as in JAX: relu(x) = max(x, 0) has slope 1/2 at 0)
        BinaryOp::Max | BinaryOp::Min => {
            let wins = match (op, first) {
                (BinaryOp::Max, true) | (BinaryOp::Min, false) => BinaryOp::Gt,
                _ => BinaryOp::Lt,
            };
            let chosen = graph.binary(wins, a, b);
            let tied = graph.binary(BinaryOp::Eq, a, b);
            let chosen = graph.cast(chosen, dtype);
            let tied = graph.cast(tied, dtype);
            let half = graph.scale(tied, 0.5);
            let mask = graph.add_nodes(chosen, half);
            graph.mul(g, mask)
        }
        // d a^b = g b a^(b-1),  g a^b log(a)
        BinaryOp::Pow if first => {
            let one = graph.scalar(1.0, dtype);
            let b_minus_one = graph.sub(b, one);
            let power = graph.binary(BinaryOp::Pow, a, b_minus_one);
            let slope = graph.mul(b, power);
            graph.mul(g, slope)
        }
        BinaryOp::Pow => {
            let log_a = graph.unary(UnaryOp::Log, a);
            let slope = graph.mul(y, log_a);
            graph.mul(g, slope)
        }
        BinaryOp::Eq
        | BinaryOp::Ne
        | BinaryOp::Lt
        | BinaryOp::Le
        | BinaryOp::Gt
        | BinaryOp::Ge
        | BinaryOp::And
        | BinaryOp::Or => return None,
    })
}

/// The adjoint of `y = x[start :: step]` along `axis`: `g` with `step - 1`
/// zeros after each element, shifted by `start` and padded (or cut) to the
/// size of `x`.
fn slice_adjoint(graph: &mut Graph, x: NodeId, g: NodeId, axis: usize, start: Dim, step: i64) -> NodeId {
    let x_size = graph.shape(x)[axis].clone();
    let mut spread = g;
    let mut len = graph.shape(g)[axis].clone();
    // A slice that takes one of every `step` elements of an axis `step`
    // times as long is one column of `[.., len, step, ..]`: its adjoint
    // pads that column and reshapes back, so the adjoints of the `step`
    // slices sum to a concatenation (`passes/pads.rs`) instead of a sum of
    // `step` masked terms.
    if let Some(first) = start.as_const().filter(|&s| step > 1 && s >= 0 && s < step) {
        if len.mul(&Dim::constant(step)) == x_size {
            let mut shape = graph.shape(g);
            shape.insert(axis + 1, Dim::constant(1));
            let column = graph.reshape(g, shape);
            let padded = graph.pad(column, axis + 1, Dim::constant(first), Dim::constant(step - 1 - first));
            return graph.reshape(padded, graph.shape(x));
        }
    }
    if step > 1 {
        // [.., len, ..] -> [.., len, 1, ..] -> pad to [.., len, step, ..] -> [.., len*step, ..]
        let mut shape = graph.shape(g);
        shape.insert(axis + 1, Dim::constant(1));
        let column = graph.reshape(g, shape);
        let padded = graph.pad(column, axis + 1, Dim::constant(0), Dim::constant(step - 1));
        len = len.mul(&Dim::constant(step));
        let mut merged = graph.shape(g);
        merged[axis] = len.clone();
        spread = graph.reshape(padded, merged);
    }
    // Cut trailing zeros that run past the end, then pad to the full size.
    let room = x_size.sub(&start);
    if let (Some(l), Some(r)) = (len.as_const(), room.as_const()) {
        if l > r {
            spread = graph.slice(spread, axis, Dim::constant(0), Dim::constant(r), 1);
            len = Dim::constant(r);
        }
    }
    let after = x_size.sub(&start).sub(&len);
    graph.pad(spread, axis, start, after)
}
