//! How the checker records what it elaborates: each tensor it computes is
//! also a node of the [`Trace`](super::trace::Trace), written in primitive
//! ops. Shape rules live in `ops.rs` and `builtins/`; this file only says
//! which primitives compute the value.

use super::dims::Dim;
use super::eval::Checker;
use super::types::{Tensor, TensorType, Value};
use crate::diagnostics::Span;
use crate::prim::{self, DType, Prim};
use crate::syntax::ast;

impl Checker<'_> {
    /// Records `op` on operands; `None` if an operand has no node.
    pub fn emit(&mut self, op: Prim, ty: &TensorType, inputs: &[Option<usize>]) -> Option<usize> {
        let inputs: Option<Vec<usize>> = inputs.iter().copied().collect();
        let node = self.trace.push(op, ty.dtype, ty.shape.clone(), inputs?);
        if let Some(span) = self.user_span {
            self.trace.origins.entry(node).or_insert(span);
        }
        Some(node)
    }

    /// A tensor value from a recorded op.
    pub fn tensor_value(&mut self, op: Prim, ty: TensorType, inputs: &[Option<usize>], origin: Span) -> Value {
        let node = self.emit(op, &ty, inputs);
        Value::Tensor(Tensor { ty, origin, node })
    }

    /// A constant tensor of `shape` filled with `value`.
    pub fn constant(&mut self, value: f64, dtype: DType, shape: Vec<Dim>) -> Option<usize> {
        Some(self.trace.push(Prim::Const(value), dtype, shape, Vec::new()))
    }

    /// The node of a compile-time number or boolean as a scalar tensor.
    pub fn scalar_node(&mut self, value: &Value, dtype: DType) -> Option<usize> {
        let x = match value {
            Value::Bool(b) => f64::from(u8::from(*b)),
            other => other.as_number()?,
        };
        self.constant(x, dtype, Vec::new())
    }

    /// `t` broadcast to `shape` (its own node if the shape already matches).
    pub fn broadcast_node(&mut self, t: &Tensor, shape: &[Dim]) -> Option<usize> {
        if t.ty.shape == shape {
            return t.node;
        }
        let ty = TensorType::new(t.ty.dtype, shape.to_vec());
        self.emit(Prim::Broadcast, &ty, &[t.node])
    }

    /// `t` converted to `dtype` (its own node if it has it already).
    pub fn cast_node(&mut self, t: &Tensor, dtype: DType) -> Option<usize> {
        if t.ty.dtype == dtype {
            return t.node;
        }
        let ty = TensorType::new(dtype, t.ty.shape.clone());
        self.emit(Prim::Cast(dtype), &ty, &[t.node])
    }

    /// Element-wise `op` on operands broadcast to the result type.
    pub fn elementwise_node(
        &mut self,
        op: prim::BinaryOp,
        a: &Tensor,
        b: &Tensor,
        result: &TensorType,
    ) -> Option<usize> {
        let x = self.broadcast_node(a, &result.shape);
        let y = self.broadcast_node(b, &result.shape);
        self.emit(Prim::Binary(op), result, &[x, y])
    }

    /// `a @ b`. A matrix on the right (the usual `x @ w`) multiplies the
    /// flattened leading dimensions of `a` at once; otherwise both sides are
    /// broadcast to the common batch dimensions.
    pub fn matmul_node(&mut self, a: &Tensor, b: &Tensor, result: &TensorType) -> Option<usize> {
        let rank = result.rank();
        if b.ty.rank() == 2 && a.ty.rank() > 2 {
            let k = a.ty.shape[a.ty.rank() - 1].clone();
            let rows = a.ty.shape[..a.ty.rank() - 1]
                .iter()
                .fold(Dim::constant(1), |acc, d| acc.mul(d));
            let flat = TensorType::new(a.ty.dtype, vec![rows.clone(), k]);
            let flat_node = self.emit(Prim::Reshape, &flat, &[a.node]);
            let product = TensorType::new(a.ty.dtype, vec![rows, b.ty.shape[1].clone()]);
            let product_node = self.emit(Prim::MatMul, &product, &[flat_node, b.node]);
            return self.emit(Prim::Reshape, result, &[product_node]);
        }
        let batch = &result.shape[..rank - 2];
        let side = |t: &Tensor| {
            let mut shape = batch.to_vec();
            shape.extend_from_slice(&t.ty.shape[t.ty.rank() - 2..]);
            shape
        };
        let (a_shape, b_shape) = (side(a), side(b));
        let x = self.broadcast_node(a, &a_shape);
        let y = self.broadcast_node(b, &b_shape);
        self.emit(Prim::MatMul, result, &[x, y])
    }

    /// A fresh stream number for a random op.
    pub fn random_stream(&mut self) -> u32 {
        self.random_streams += 1;
        self.random_streams - 1
    }
}

/// The primitive for a binary operator of the language.
pub fn binary_prim(op: ast::BinaryOp) -> Option<prim::BinaryOp> {
    use prim::BinaryOp as P;
    Some(match op {
        ast::BinaryOp::Add => P::Add,
        ast::BinaryOp::Sub => P::Sub,
        ast::BinaryOp::Mul => P::Mul,
        ast::BinaryOp::Div => P::Div,
        ast::BinaryOp::Eq => P::Eq,
        ast::BinaryOp::Ne => P::Ne,
        ast::BinaryOp::Lt => P::Lt,
        ast::BinaryOp::Le => P::Le,
        ast::BinaryOp::Gt => P::Gt,
        ast::BinaryOp::Ge => P::Ge,
        ast::BinaryOp::And => P::And,
        ast::BinaryOp::Or => P::Or,
        ast::BinaryOp::MatMul | ast::BinaryOp::Range => return None,
    })
}
