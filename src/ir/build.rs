//! Small constructors on [`Graph`] for the stages that write IR (autodiff,
//! the optimizer update, passes): each infers the result's dtype and shape
//! from its operands the way the verifier expects.

use super::{Graph, NodeId};
use crate::check::dims::Dim;
use crate::prim::{BinaryOp, DType, Prim, ReduceOp, UnaryOp};

impl Graph {
    pub fn shape(&self, id: NodeId) -> Vec<Dim> {
        self.node(id).shape.clone()
    }

    pub fn dtype(&self, id: NodeId) -> DType {
        self.node(id).dtype
    }

    /// A scalar constant.
    pub fn scalar(&mut self, value: f64, dtype: DType) -> NodeId {
        self.add(Prim::Const(value), dtype, Vec::new(), &[])
    }

    /// A constant of `x`'s dtype and shape.
    pub fn fill_like(&mut self, x: NodeId, value: f64) -> NodeId {
        let (dtype, shape) = (self.dtype(x), self.shape(x));
        self.add(Prim::Const(value), dtype, shape, &[])
    }

    /// `x` broadcast to `shape`, or `x` itself if it has that shape.
    pub fn broadcast(&mut self, x: NodeId, shape: &[Dim]) -> NodeId {
        if self.node(x).shape == shape {
            return x;
        }
        let dtype = self.dtype(x);
        self.add(Prim::Broadcast, dtype, shape.to_vec(), &[x])
    }

    pub fn unary(&mut self, op: UnaryOp, x: NodeId) -> NodeId {
        let (dtype, shape) = (self.dtype(x), self.shape(x));
        self.add(Prim::Unary(op), dtype, shape, &[x])
    }

    /// `op` on two operands; a scalar operand is broadcast to the other's shape.
    pub fn binary(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> NodeId {
        let (sa, sb) = (self.shape(a), self.shape(b));
        let shape = if sa.len() >= sb.len() { sa } else { sb };
        let a = self.broadcast(a, &shape);
        let b = self.broadcast(b, &shape);
        let dtype = if op.is_predicate() { DType::Bool } else { self.dtype(a) };
        self.add(Prim::Binary(op), dtype, shape, &[a, b])
    }

    pub fn add_nodes(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.binary(BinaryOp::Add, a, b)
    }

    pub fn sub(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.binary(BinaryOp::Sub, a, b)
    }

    pub fn mul(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.binary(BinaryOp::Mul, a, b)
    }

    pub fn div(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.binary(BinaryOp::Div, a, b)
    }

    pub fn neg(&mut self, x: NodeId) -> NodeId {
        self.unary(UnaryOp::Neg, x)
    }

    /// `x * value` for a constant.
    pub fn scale(&mut self, x: NodeId, value: f64) -> NodeId {
        let c = self.scalar(value, self.dtype(x));
        self.mul(x, c)
    }

    pub fn cast(&mut self, x: NodeId, dtype: DType) -> NodeId {
        if self.dtype(x) == dtype {
            return x;
        }
        let shape = self.shape(x);
        self.add(Prim::Cast(dtype), dtype, shape, &[x])
    }

    pub fn select(&mut self, condition: NodeId, a: NodeId, b: NodeId) -> NodeId {
        let (dtype, shape) = (self.dtype(a), self.shape(a));
        self.add(Prim::Select, dtype, shape, &[condition, a, b])
    }

    pub fn reshape(&mut self, x: NodeId, shape: Vec<Dim>) -> NodeId {
        if self.node(x).shape == shape {
            return x;
        }
        let dtype = self.dtype(x);
        self.add(Prim::Reshape, dtype, shape, &[x])
    }

    pub fn permute(&mut self, x: NodeId, perm: Vec<usize>) -> NodeId {
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return x;
        }
        let input = self.shape(x);
        let shape = perm.iter().map(|&i| input[i].clone()).collect();
        let dtype = self.dtype(x);
        self.add(Prim::Permute(perm), dtype, shape, &[x])
    }

    /// Swaps the last two axes.
    pub fn transpose_last(&mut self, x: NodeId) -> NodeId {
        let rank = self.shape(x).len();
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(rank - 2, rank - 1);
        self.permute(x, perm)
    }

    pub fn reduce(&mut self, op: ReduceOp, x: NodeId, axes: Vec<usize>, keepdims: bool) -> NodeId {
        if axes.is_empty() {
            return x;
        }
        let input = self.shape(x);
        let shape = input
            .iter()
            .enumerate()
            .filter_map(|(i, d)| match (axes.contains(&i), keepdims) {
                (false, _) => Some(d.clone()),
                (true, true) => Some(Dim::constant(1)),
                (true, false) => None,
            })
            .collect();
        let dtype = self.dtype(x);
        self.add(Prim::Reduce { op, axes, keepdims }, dtype, shape, &[x])
    }

    pub fn sum_all(&mut self, x: NodeId) -> NodeId {
        let rank = self.shape(x).len();
        self.reduce(ReduceOp::Sum, x, (0..rank).collect(), false)
    }

    pub fn matmul(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let (sa, sb) = (self.shape(a), self.shape(b));
        let mut shape = sa[..sa.len() - 1].to_vec();
        shape.push(sb[sb.len() - 1].clone());
        let dtype = self.dtype(a);
        self.add(Prim::MatMul, dtype, shape, &[a, b])
    }

    pub fn slice(&mut self, x: NodeId, axis: usize, start: Dim, len: Dim, step: i64) -> NodeId {
        let mut shape = self.shape(x);
        if start.as_const() == Some(0) && step == 1 && shape[axis] == len {
            return x;
        }
        shape[axis] = len;
        let dtype = self.dtype(x);
        self.add(Prim::Slice { axis, start, step }, dtype, shape, &[x])
    }

    pub fn pad(&mut self, x: NodeId, axis: usize, before: Dim, after: Dim) -> NodeId {
        if before.as_const() == Some(0) && after.as_const() == Some(0) {
            return x;
        }
        let mut shape = self.shape(x);
        shape[axis] = shape[axis].add(&before).add(&after);
        let dtype = self.dtype(x);
        self.add(
            Prim::Pad {
                axis,
                before,
                after,
                value: 0.0,
            },
            dtype,
            shape,
            &[x],
        )
    }

    /// Sums `g` down to `shape`, undoing a NumPy broadcast: leading axes
    /// are summed away, axes of size 1 in `shape` are summed and kept.
    pub fn sum_to_shape(&mut self, g: NodeId, shape: &[Dim]) -> NodeId {
        let from = self.shape(g);
        if from == shape {
            return g;
        }
        let extra = from.len() - shape.len();
        let mut axes: Vec<usize> = (0..extra).collect();
        for (i, d) in shape.iter().enumerate() {
            if d.as_const() == Some(1) && from[i + extra].as_const() != Some(1) {
                axes.push(i + extra);
            }
        }
        let summed = self.reduce(ReduceOp::Sum, g, axes, true);
        self.reshape(summed, shape.to_vec())
    }
}
