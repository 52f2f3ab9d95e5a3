//! Gathers by i32 ids: `take` (rows of a table), `pick` (one value along
//! the last axis) and `one_hot`.

use super::args::{int_arg, tensor};
use super::{Args, Out};
use crate::check::dims::Dim;
use crate::check::eval::Checker;
use crate::check::types::{Tensor, TensorType};
use crate::diagnostics::{codes, Diagnostic};
use crate::prim::{BinaryOp, Prim};
use crate::syntax::ast::DType;

fn ids(checker: &mut Checker, a: &Args, i: usize) -> Option<Tensor> {
    let t = tensor(checker, a, i)?;
    if t.ty.dtype != DType::I32 {
        checker.report(
            Diagnostic::error(
                codes::DTYPE_MISMATCH,
                format!("`{}` needs i32 ids, found {}", a.name, t.ty),
                a.span(i),
            )
            .label(format!("this is {}", t.ty))
            .with_help("convert with `i32(...)`"),
        );
        return None;
    }
    Some(t)
}

/// `take(table, ids)`: rows of `table[V, ...]` at `ids[...]`.
pub(super) fn take(checker: &mut Checker, a: &Args) -> Out {
    let table = tensor(checker, a, 0)?;
    let ids = ids(checker, a, 1)?;
    if table.ty.rank() == 0 {
        checker.report(
            Diagnostic::error(
                codes::RANK_MISMATCH,
                "`take` needs a table with at least one dimension",
                a.span(0),
            )
            .label("a scalar"),
        );
        return None;
    }
    let mut shape = ids.ty.shape.clone();
    shape.extend_from_slice(&table.ty.shape[1..]);
    let ty = TensorType::new(table.ty.dtype, shape);
    let node = checker.emit(Prim::Take, &ty, &[table.node, ids.node]);
    Some((ty, node))
}

/// `pick(x, ids)`: `x[..., C]` at `ids[...]` along the last axis.
pub(super) fn pick(checker: &mut Checker, a: &Args) -> Out {
    let x = tensor(checker, a, 0)?;
    let ids = ids(checker, a, 1)?;
    let rank = x.ty.rank();
    if rank == 0 || x.ty.shape[..rank - 1] != ids.ty.shape[..] {
        checker.report(
            Diagnostic::error(
                codes::SHAPE_MISMATCH,
                format!(
                    "`pick` needs ids shaped like the values without their last axis: {} against {}",
                    ids.ty, x.ty
                ),
                a.span,
            )
            .label("shapes do not line up")
            .with_secondary(a.span(0), format!("values are {}", x.ty))
            .with_secondary(a.span(1), format!("ids are {}", ids.ty)),
        );
        return None;
    }
    let ty = TensorType::new(x.ty.dtype, ids.ty.shape.clone());
    let node = checker.emit(Prim::Pick, &ty, &[x.node, ids.node]);
    Some((ty, node))
}

pub(super) fn one_hot(checker: &mut Checker, a: &Args) -> Out {
    let ids = ids(checker, a, 0)?;
    let classes = int_arg(checker, a, 1)?;
    // one_hot(ids, n) = f32(iota == ids[..., newaxis])
    let mut shape = ids.ty.shape.clone();
    shape.push(Dim::constant(1));
    let column = checker.emit(Prim::Reshape, &TensorType::new(DType::I32, shape), &[ids.node]);
    let mut shape = ids.ty.shape.clone();
    shape.push(classes);
    let wide = TensorType::new(DType::I32, shape.clone());
    let spread = checker.emit(Prim::Broadcast, &wide, &[column]);
    let iota = checker.emit(Prim::Iota { axis: shape.len() - 1 }, &wide, &[]);
    let mask = TensorType::new(DType::Bool, shape.clone());
    let equal = checker.emit(Prim::Binary(BinaryOp::Eq), &mask, &[spread, iota]);
    let ty = TensorType::new(DType::F32, shape);
    let node = checker.emit(Prim::Cast(DType::F32), &ty, &[equal]);
    Some((ty, node))
}
