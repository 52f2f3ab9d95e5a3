//! The IR verifier: every node's operand count, dtypes and shape agree with
//! its op's rule. Runs between passes in debug builds and tests; failures
//! are printed under the offending node.

use super::{Graph, NodeId};
use crate::check::dims::{format_shape, Dim};
use crate::prim::{DType, Prim, ReduceOp, UnaryOp};

/// Checks the whole graph; returns the problems, each at its node.
pub fn verify(graph: &Graph) -> Vec<(NodeId, String)> {
    let mut problems = Vec::new();
    let order = graph.topo_order();
    if order.len() != graph.len() {
        if let Some(id) = graph.graph.node_indices().find(|id| !order.contains(id)) {
            problems.push((id, "the graph has a cycle through this node".to_string()));
        }
        return problems;
    }
    for id in order {
        if let Err(message) = check_node(graph, id) {
            problems.push((id, message));
        }
    }
    for (name, id) in &graph.outputs {
        if !graph.graph.contains_node(*id) {
            problems.push((*id, format!("output `{name}` names a removed node")));
        }
    }
    problems
}

/// Panics with the printed graph and its problems if the graph is invalid.
/// For tests and debug builds.
pub fn assert_valid(graph: &Graph, stage: &str) {
    let problems = verify(graph);
    if !problems.is_empty() {
        panic!(
            "invalid IR after {stage}:\n{}",
            super::print::print_with_notes(graph, &problems)
        );
    }
}

fn product(dims: &[Dim]) -> Dim {
    dims.iter().fold(Dim::constant(1), |acc, d| acc.mul(d))
}

fn check_node(graph: &Graph, id: NodeId) -> Result<(), String> {
    let node = graph.node(id);
    let inputs: Vec<_> = graph.inputs(id).into_iter().map(|i| graph.node(i)).collect();
    let arity = |n: usize| -> Result<(), String> {
        if inputs.len() == n {
            Ok(())
        } else {
            Err(format!("{} takes {n} operand(s), found {}", node.op, inputs.len()))
        }
    };
    let same_shape = |i: usize| -> Result<(), String> {
        if inputs[i].shape == node.shape {
            Ok(())
        } else {
            Err(format!(
                "operand {i} is {}, but the result is {}",
                format_shape(&inputs[i].shape),
                format_shape(&node.shape)
            ))
        }
    };
    let expect = |ok: bool, message: &str| -> Result<(), String> {
        if ok {
            Ok(())
        } else {
            Err(message.to_string())
        }
    };
    let shape = &node.shape;
    match &node.op {
        Prim::Input(_) | Prim::Param(_) | Prim::State(_) | Prim::Const(_) | Prim::Arg(_) => arity(0),
        Prim::Scan(looped) => check_scan(looped, node, &inputs),
        Prim::Count(_) => {
            arity(0)?;
            expect(shape.is_empty() && node.dtype.is_float(), "count is a float scalar")
        }
        Prim::Iota { axis } => {
            arity(0)?;
            expect(*axis < shape.len(), "iota axis out of range")
        }
        Prim::Random { .. } => {
            arity(0)?;
            expect(node.dtype.is_float(), "random numbers are floats")
        }
        Prim::Unary(op) => {
            arity(1)?;
            same_shape(0)?;
            let bool_op = *op == UnaryOp::Not;
            expect(
                (inputs[0].dtype == DType::Bool) == bool_op && node.dtype == inputs[0].dtype,
                "operand and result dtypes do not fit the op",
            )
        }
        Prim::Binary(op) => {
            arity(2)?;
            same_shape(0)?;
            same_shape(1)?;
            expect(inputs[0].dtype == inputs[1].dtype, "operands have different dtypes")?;
            let dtype = if op.is_predicate() {
                DType::Bool
            } else {
                inputs[0].dtype
            };
            expect(node.dtype == dtype, "wrong result dtype")
        }
        Prim::Select => {
            arity(3)?;
            (0..3).try_for_each(same_shape)?;
            expect(inputs[0].dtype == DType::Bool, "the condition must be bool")?;
            expect(
                inputs[1].dtype == node.dtype && inputs[2].dtype == node.dtype,
                "branches must have the result's dtype",
            )
        }
        Prim::Cast(dtype) => {
            arity(1)?;
            same_shape(0)?;
            expect(node.dtype == *dtype, "cast result has the wrong dtype")
        }
        Prim::StopGrad => {
            arity(1)?;
            same_shape(0)
        }
        Prim::AllReduce => {
            arity(1)?;
            same_shape(0)?;
            expect(
                node.dtype == inputs[0].dtype && node.dtype.is_float(),
                "all_reduce sums floats into their own dtype",
            )
        }
        Prim::Reduce { op, axes, keepdims } => {
            arity(1)?;
            let input = &inputs[0].shape;
            expect(axes.iter().all(|&a| a < input.len()), "reduced axis out of range")?;
            let expected: Vec<Dim> = input
                .iter()
                .enumerate()
                .filter_map(|(i, d)| match (axes.contains(&i), keepdims) {
                    (false, _) => Some(d.clone()),
                    (true, true) => Some(Dim::constant(1)),
                    (true, false) => None,
                })
                .collect();
            expect(*shape == expected, "reduced shape is wrong")?;
            expect(
                *op == ReduceOp::Max || node.dtype.is_float(),
                "sum and mean are computed in floats",
            )
        }
        Prim::ArgMax { axis } => {
            arity(1)?;
            let mut expected = inputs[0].shape.clone();
            expect(*axis < expected.len(), "axis out of range")?;
            expected.remove(*axis);
            expect(
                *shape == expected && node.dtype == DType::I32,
                "argmax gives i32 without the axis",
            )
        }
        Prim::Reshape => {
            arity(1)?;
            expect(
                product(&inputs[0].shape) == product(shape),
                "reshape changes the number of elements",
            )
        }
        Prim::Permute(perm) => {
            arity(1)?;
            let mut sorted = perm.clone();
            sorted.sort();
            expect(
                sorted == (0..inputs[0].shape.len()).collect::<Vec<_>>(),
                "not a permutation",
            )?;
            let expected: Vec<Dim> = perm.iter().map(|&i| inputs[0].shape[i].clone()).collect();
            expect(*shape == expected, "permuted shape is wrong")
        }
        Prim::Broadcast => {
            arity(1)?;
            let input = &inputs[0].shape;
            expect(input.len() <= shape.len(), "broadcast cannot drop dimensions")?;
            let offset = shape.len() - input.len();
            let ok = input
                .iter()
                .enumerate()
                .all(|(i, d)| *d == shape[i + offset] || d.as_const() == Some(1));
            expect(ok, "sizes must be equal or 1")
        }
        Prim::Slice { axis, step, .. } => {
            arity(1)?;
            let input = &inputs[0].shape;
            expect(
                *axis < input.len() && input.len() == shape.len() && *step >= 1,
                "bad slice",
            )?;
            let others = (0..shape.len()).all(|i| i == *axis || shape[i] == input[i]);
            expect(others, "a slice keeps the other axes")
        }
        Prim::Concat { axis } => {
            expect(!inputs.is_empty(), "concat of nothing")?;
            let mut total = Dim::constant(0);
            for input in &inputs {
                expect(input.shape.len() == shape.len() && *axis < shape.len(), "ranks differ")?;
                let others = (0..shape.len()).all(|i| i == *axis || shape[i] == input.shape[i]);
                expect(others, "concatenated tensors differ off the axis")?;
                total = total.add(&input.shape[*axis]);
            }
            expect(total == shape[*axis], "concatenated size is wrong")
        }
        Prim::Pad {
            axis, before, after, ..
        } => {
            arity(1)?;
            let mut expected = inputs[0].shape.clone();
            expect(*axis < expected.len(), "axis out of range")?;
            expected[*axis] = expected[*axis].add(before).add(after);
            expect(*shape == expected, "padded shape is wrong")
        }
        Prim::Take => {
            arity(2)?;
            expect(inputs[1].dtype == DType::I32, "ids must be i32")?;
            let mut expected = inputs[1].shape.clone();
            expected.extend_from_slice(inputs[0].shape.get(1..).unwrap_or(&[]));
            expect(*shape == expected, "take's shape is ids + table rows")
        }
        Prim::ScatterRows { rows } => {
            arity(2)?;
            expect(inputs[1].dtype == DType::I32, "ids must be i32")?;
            let ids = inputs[1].shape.len();
            let mut expected = vec![rows.clone()];
            expected.extend_from_slice(inputs[0].shape.get(ids..).unwrap_or(&[]));
            expect(*shape == expected, "scatter_rows gives [rows, ...]")
        }
        Prim::Pick => {
            arity(2)?;
            let x = &inputs[0].shape;
            expect(
                !x.is_empty() && x[..x.len() - 1] == inputs[1].shape[..],
                "ids must match values without the last axis",
            )?;
            expect(*shape == inputs[1].shape, "pick gives the ids' shape")
        }
        Prim::Place { classes } => {
            arity(2)?;
            let mut expected = inputs[1].shape.clone();
            expected.push(classes.clone());
            expect(
                inputs[0].shape == inputs[1].shape && *shape == expected,
                "place gives [ids..., classes]",
            )
        }
        Prim::MatMul => {
            arity(2)?;
            let (a, b) = (&inputs[0].shape, &inputs[1].shape);
            expect(
                a.len() >= 2 && a.len() == b.len(),
                "matmul needs equal ranks of at least 2",
            )?;
            let r = a.len();
            expect(a[..r - 2] == b[..r - 2], "batch dimensions differ")?;
            expect(a[r - 1] == b[r - 2], "inner dimensions differ")?;
            let mut expected = a[..r - 1].to_vec();
            expected.push(b[r - 1].clone());
            expect(*shape == expected, "matmul shape is wrong")
        }
        Prim::Unfold2d(window) => {
            arity(1)?;
            let x = &inputs[0].shape;
            expect(
                x.len() == 4 && shape.len() == 4,
                "unfold2d maps [N, C, H, W] to [N, OH, OW, k*k*C]",
            )?;
            let size = |d: &Dim| d.as_const().map(|n| window.out_size(n as usize) as i64);
            let ok = shape[0] == x[0]
                && size(&x[2]) == shape[1].as_const()
                && size(&x[3]) == shape[2].as_const()
                && shape[3] == x[1].mul(&Dim::constant((window.kernel * window.kernel) as i64));
            expect(ok, "unfold2d shape is wrong")
        }
        Prim::Fold2d(window) => {
            arity(1)?;
            let p = &inputs[0].shape;
            expect(
                p.len() == 4 && shape.len() == 4,
                "fold2d maps [N, OH, OW, k*k*C] to [N, C, H, W]",
            )?;
            let size = |d: &Dim| d.as_const().map(|n| window.out_size(n as usize) as i64);
            let ok = shape[0] == p[0]
                && size(&shape[2]) == p[1].as_const()
                && size(&shape[3]) == p[2].as_const()
                && p[3] == shape[1].mul(&Dim::constant((window.kernel * window.kernel) as i64));
            expect(ok, "fold2d shape is wrong")
        }
    }
}

/// A scan's operands have its body's argument types (a sequence one step
/// of it, `length` steps long), its value every result laid end to end,
/// and its body is valid.
fn check_scan(looped: &crate::ir::loops::Loop, node: &super::Node, inputs: &[&super::Node]) -> Result<(), String> {
    if inputs.len() != looped.operands() {
        return Err(format!(
            "scan takes {} operand(s), found {}",
            looped.operands(),
            inputs.len()
        ));
    }
    for (i, (arg, input)) in crate::ir::loops::argument_types(looped).iter().zip(inputs).enumerate() {
        let Some((dtype, shape)) = arg else {
            continue;
        };
        let mut expected = shape.clone();
        let sequence = (looped.carries..looped.carries + looped.sequences).contains(&i);
        if sequence {
            expected.insert(1.min(expected.len()), Dim::constant(looped.length as i64));
        }
        if *dtype != input.dtype || expected != input.shape {
            return Err(format!(
                "operand {i} is {}{}, but the body reads {}{}{}",
                input.dtype.name(),
                format_shape(&input.shape),
                dtype.name(),
                format_shape(shape),
                if sequence { " a step" } else { "" }
            ));
        }
    }
    let body = verify(&looped.body);
    if let Some((_, problem)) = body.first() {
        return Err(format!("the body is invalid: {problem}"));
    }
    match looped.flat_shape() {
        None => Err("the body lacks a carry or result output".to_string()),
        Some(shape) if shape != node.shape => Err(format!(
            "the value is {}, but the results laid end to end are {}",
            format_shape(&node.shape),
            format_shape(&shape)
        )),
        Some(_) => Ok(()),
    }
}
