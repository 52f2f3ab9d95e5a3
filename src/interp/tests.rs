//! One test per primitive on tiny hand-built graphs with hand-computed
//! results; adjoint pairs and random numbers in `tests/adjoint.rs`; whole
//! programs and error cases in `tests/programs.rs`.

mod adjoint;
mod programs;

use ndarray::{ArrayD, IxDyn};

use super::*;
use crate::check::dims::Dim;
use crate::prim::{BinaryOp, DType, Prim, ReduceOp, UnaryOp, Window};

/// A graph under construction with the feeds for its inputs.
#[derive(Default)]
struct Case {
    graph: Graph,
    env: Env,
}

fn dims(shape: &[usize]) -> Vec<Dim> {
    shape.iter().map(|&d| Dim::constant(d as i64)).collect()
}

fn arr(shape: &[usize], data: &[f64]) -> ArrayD<f64> {
    ArrayD::from_shape_vec(IxDyn(shape), data.to_vec()).expect("data fits the shape")
}

impl Case {
    fn new() -> Case {
        Case::default()
    }

    /// An input leaf named `name`, fed `value`.
    fn input(&mut self, name: &str, dtype: DType, value: ArrayD<f64>) -> NodeId {
        let shape = dims(value.shape());
        self.env.feeds.insert(name.to_string(), value);
        self.graph.add(Prim::Input(name.to_string()), dtype, shape, &[])
    }

    fn f(&mut self, name: &str, shape: &[usize], data: &[f64]) -> NodeId {
        self.input(name, DType::F32, arr(shape, data))
    }

    fn op(&mut self, op: Prim, dtype: DType, shape: &[usize], inputs: &[NodeId]) -> NodeId {
        self.graph.add(op, dtype, dims(shape), inputs)
    }

    /// Runs the graph and returns the value of `id`.
    fn eval(&self, id: NodeId) -> ArrayD<f64> {
        match run(&self.graph, &self.env) {
            Ok(values) => values.get(id).expect("every node has a value").clone(),
            Err(e) => panic!("run failed: {e}"),
        }
    }

    fn error(&self) -> String {
        match run(&self.graph, &self.env) {
            Ok(_) => panic!("the run should have failed"),
            Err(e) => e.to_string(),
        }
    }
}

/// Exact equality of shape and values (NaN equals NaN).
#[track_caller]
fn assert_exact(actual: &ArrayD<f64>, shape: &[usize], expected: &[f64]) {
    let same = actual.shape() == shape
        && actual
            .iter()
            .zip(expected)
            .all(|(a, e)| a == e || (a.is_nan() && e.is_nan()));
    assert!(
        same && actual.len() == expected.len(),
        "expected {shape:?} {expected:?}\n     got {:?} {:?}",
        actual.shape(),
        actual.iter().collect::<Vec<_>>()
    );
}

#[test]
fn const_count_and_iota_fill_the_node_shape() {
    let mut case = Case::new();
    let c = case.op(Prim::Const(2.5), DType::F32, &[2, 2], &[]);
    let b = Dim::symbol("B");
    let count = case
        .graph
        .add(Prim::Count(b.mul(&Dim::constant(2))), DType::F32, vec![], &[]);
    let rows = case.op(Prim::Iota { axis: 0 }, DType::I32, &[2, 3], &[]);
    let cols = case.op(Prim::Iota { axis: 1 }, DType::I32, &[2, 3], &[]);
    case.env.dims.insert("B".into(), 3);
    assert_exact(&case.eval(c), &[2, 2], &[2.5; 4]);
    assert_exact(&case.eval(count), &[], &[6.0]);
    assert_exact(&case.eval(rows), &[2, 3], &[0., 0., 0., 1., 1., 1.]);
    assert_exact(&case.eval(cols), &[2, 3], &[0., 1., 2., 0., 1., 2.]);
}

#[test]
fn unary_ops() {
    let mut case = Case::new();
    let data = [-1.0, 0.0, 0.5, 4.0];
    let x = case.f("x", &[4], &data);
    let flags = case.input("p", DType::Bool, arr(&[3], &[0., 1., 0.]));
    let cases: Vec<(UnaryOp, NodeId)> = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Abs,
    ]
    .into_iter()
    .map(|op| (op, case.op(Prim::Unary(op), DType::F32, &[4], &[x])))
    .collect();
    let not = case.op(Prim::Unary(UnaryOp::Not), DType::Bool, &[3], &[flags]);
    let e = std::f64::consts::E;
    for (op, id) in cases {
        let expected: Vec<f64> = match op {
            UnaryOp::Neg => vec![1.0, -0.0, -0.5, -4.0],
            UnaryOp::Exp => vec![1.0 / e, 1.0, e.sqrt(), e.powi(4)],
            UnaryOp::Log => vec![f64::NAN, f64::NEG_INFINITY, -(2f64.ln()), 2.0 * 2f64.ln()],
            UnaryOp::Sqrt => vec![f64::NAN, 0.0, 0.5f64.sqrt(), 2.0],
            UnaryOp::Tanh => data.iter().map(|v| v.tanh()).collect(),
            UnaryOp::Sigmoid => data.iter().map(|v| 0.5 + 0.5 * (v / 2.0).tanh()).collect(),
            UnaryOp::Sin => data.iter().map(|v| v.sin()).collect(),
            UnaryOp::Cos => data.iter().map(|v| v.cos()).collect(),
            UnaryOp::Abs => vec![1.0, 0.0, 0.5, 4.0],
            UnaryOp::Not => unreachable!(),
        };
        let actual = case.eval(id);
        // Finite values within 1e-14 relative (the closed forms of exp and
        // log may differ in the last bits); NaN and infinities exactly.
        for (i, (&a, &ex)) in actual.iter().zip(&expected).enumerate() {
            let ok = if ex.is_finite() {
                (a - ex).abs() <= 1e-14 * ex.abs().max(1.0)
            } else {
                a == ex || (a.is_nan() && ex.is_nan())
            };
            assert!(ok, "{} of {}: expected {ex}, got {a}", op.name(), data[i]);
        }
    }
    assert_exact(&case.eval(not), &[3], &[1., 0., 1.]);
}

#[test]
fn binary_ops() {
    let mut case = Case::new();
    let a = case.f("a", &[4], &[1., 2., 3., 4.]);
    let b = case.f("b", &[4], &[2., 2., 1., 5.]);
    let table: [(BinaryOp, [f64; 4]); 13] = [
        (BinaryOp::Add, [3., 4., 4., 9.]),
        (BinaryOp::Sub, [-1., 0., 2., -1.]),
        (BinaryOp::Mul, [2., 4., 3., 20.]),
        (BinaryOp::Div, [0.5, 1., 3., 0.8]),
        (BinaryOp::Max, [2., 2., 3., 5.]),
        (BinaryOp::Min, [1., 2., 1., 4.]),
        (BinaryOp::Pow, [1., 4., 3., 1024.]),
        (BinaryOp::Eq, [0., 1., 0., 0.]),
        (BinaryOp::Ne, [1., 0., 1., 1.]),
        (BinaryOp::Lt, [1., 0., 0., 1.]),
        (BinaryOp::Le, [1., 1., 0., 1.]),
        (BinaryOp::Gt, [0., 0., 1., 0.]),
        (BinaryOp::Ge, [0., 1., 1., 0.]),
    ];
    let ids: Vec<NodeId> = table
        .iter()
        .map(|(op, _)| {
            let dtype = if op.is_predicate() { DType::Bool } else { DType::F32 };
            case.op(Prim::Binary(*op), dtype, &[4], &[a, b])
        })
        .collect();
    let p = case.input("p", DType::Bool, arr(&[4], &[0., 1., 1., 0.]));
    let q = case.input("q", DType::Bool, arr(&[4], &[0., 0., 1., 1.]));
    let and = case.op(Prim::Binary(BinaryOp::And), DType::Bool, &[4], &[p, q]);
    let or = case.op(Prim::Binary(BinaryOp::Or), DType::Bool, &[4], &[p, q]);
    // i32 division truncates toward zero.
    let n = case.input("n", DType::I32, arr(&[2], &[7., -7.]));
    let d = case.input("d", DType::I32, arr(&[2], &[2., 2.]));
    let quotient = case.op(Prim::Binary(BinaryOp::Div), DType::I32, &[2], &[n, d]);
    for ((op, expected), id) in table.iter().zip(ids) {
        let actual = case.eval(id);
        assert!(
            actual.iter().eq(expected.iter()),
            "{}: expected {expected:?}, got {actual}",
            op.name()
        );
    }
    assert_exact(&case.eval(and), &[4], &[0., 0., 1., 0.]);
    assert_exact(&case.eval(or), &[4], &[0., 1., 1., 1.]);
    assert_exact(&case.eval(quotient), &[2], &[3., -3.]);
}

#[test]
fn select_cast_and_stop_grad() {
    let mut case = Case::new();
    let c = case.input("c", DType::Bool, arr(&[3], &[1., 0., 1.]));
    let a = case.f("a", &[3], &[1., 2., 3.]);
    let b = case.f("b", &[3], &[10., 20., 30.]);
    let chosen = case.op(Prim::Select, DType::F32, &[3], &[c, a, b]);
    let x = case.f("x", &[4], &[1.7, -1.7, 0.0, 0.2]);
    let to_int = case.op(Prim::Cast(DType::I32), DType::I32, &[4], &[x]);
    let to_bool = case.op(Prim::Cast(DType::Bool), DType::Bool, &[4], &[x]);
    let back = case.op(Prim::Cast(DType::F32), DType::F32, &[3], &[c]);
    let same = case.op(Prim::StopGrad, DType::F32, &[4], &[x]);
    assert_exact(&case.eval(chosen), &[3], &[1., 20., 3.]);
    assert_exact(&case.eval(to_int), &[4], &[1., -1., 0., 0.]);
    assert_exact(&case.eval(to_bool), &[4], &[1., 1., 0., 1.]);
    assert_exact(&case.eval(back), &[3], &[1., 0., 1.]);
    assert_exact(&case.eval(same), &[4], &[1.7, -1.7, 0.0, 0.2]);
}

#[test]
fn reductions() {
    let mut case = Case::new();
    let x = case.f("x", &[2, 3], &[1., 5., 3., 4., 2., 6.]);
    let reduce = |op, axes: Vec<usize>, keepdims| Prim::Reduce { op, axes, keepdims };
    let rows = case.op(reduce(ReduceOp::Sum, vec![1], false), DType::F32, &[2], &[x]);
    let all = case.op(reduce(ReduceOp::Sum, vec![0, 1], false), DType::F32, &[], &[x]);
    let max = case.op(reduce(ReduceOp::Max, vec![1], true), DType::F32, &[2, 1], &[x]);
    let none = case.op(reduce(ReduceOp::Mean, vec![], false), DType::F32, &[2, 3], &[x]);
    let cube: Vec<f64> = (1..=8).map(f64::from).collect();
    let y = case.f("y", &[2, 2, 2], &cube);
    // Axes in any order: mean over axes 0 and 2 of 1..8 in [2, 2, 2].
    let mean = case.op(reduce(ReduceOp::Mean, vec![2, 0], false), DType::F32, &[2], &[y]);
    let mean_kept = case.op(reduce(ReduceOp::Mean, vec![0, 2], true), DType::F32, &[1, 2, 1], &[y]);
    assert_exact(&case.eval(rows), &[2], &[9., 12.]);
    assert_exact(&case.eval(all), &[], &[21.]);
    assert_exact(&case.eval(max), &[2, 1], &[5., 6.]);
    assert_exact(&case.eval(none), &[2, 3], &[1., 5., 3., 4., 2., 6.]);
    // (1 + 2 + 5 + 6) / 4 and (3 + 4 + 7 + 8) / 4
    assert_exact(&case.eval(mean), &[2], &[3.5, 5.5]);
    assert_exact(&case.eval(mean_kept), &[1, 2, 1], &[3.5, 5.5]);
}

#[test]
fn argmax_takes_the_first_largest() {
    let mut case = Case::new();
    let x = case.f("x", &[3, 3], &[1., 3., 3., 5., 0., 5., -1., -2., -3.]);
    let by_row = case.op(Prim::ArgMax { axis: 1 }, DType::I32, &[3], &[x]);
    let by_column = case.op(Prim::ArgMax { axis: 0 }, DType::I32, &[3], &[x]);
    assert_exact(&case.eval(by_row), &[3], &[1., 0., 0.]);
    assert_exact(&case.eval(by_column), &[3], &[1., 0., 1.]);
}

#[test]
fn reshape_and_permute() {
    let mut case = Case::new();
    let x = case.f("x", &[2, 3], &[0., 1., 2., 3., 4., 5.]);
    let r = case.op(Prim::Reshape, DType::F32, &[3, 1, 2], &[x]);
    let y = case.f("y", &[2, 1, 3], &[0., 1., 2., 3., 4., 5.]);
    // out[i, j, 0] = y[j, 0, i]
    let p = case.op(Prim::Permute(vec![2, 0, 1]), DType::F32, &[3, 2, 1], &[y]);
    // A permuted value feeds a reshape: row-major order of the permuted view.
    let flat = case.op(Prim::Reshape, DType::F32, &[6], &[p]);
    let data: Vec<f64> = (0..24)
        .map(|i| f64::from(100 * (i / 12) + 10 * ((i / 4) % 3) + i % 4))
        .collect();
    let z = case.f("z", &[2, 3, 4], &data);
    let q = case.op(Prim::Permute(vec![1, 2, 0]), DType::F32, &[3, 4, 2], &[z]);
    assert_exact(&case.eval(r), &[3, 1, 2], &[0., 1., 2., 3., 4., 5.]);
    assert_exact(&case.eval(p), &[3, 2, 1], &[0., 3., 1., 4., 2., 5.]);
    assert_exact(&case.eval(flat), &[6], &[0., 3., 1., 4., 2., 5.]);
    // q[b, c, a] = z[a, b, c] = 100a + 10b + c
    let expected: Vec<f64> = (0..24)
        .map(|i| {
            let (b, c, a) = (i / 8, (i / 2) % 4, i % 2);
            f64::from(100 * a + 10 * b + c)
        })
        .collect();
    assert_exact(&case.eval(q), &[3, 4, 2], &expected);
}

#[test]
fn broadcast_aligns_right_and_stretches_ones() {
    let mut case = Case::new();
    let column = case.f("column", &[3, 1], &[1., 2., 3.]);
    let cube = case.op(Prim::Broadcast, DType::F32, &[2, 3, 4], &[column]);
    let row = case.f("row", &[1, 2], &[7., 8.]);
    let rows = case.op(Prim::Broadcast, DType::F32, &[3, 2], &[row]);
    let scalar = case.f("scalar", &[], &[5.]);
    let filled = case.op(Prim::Broadcast, DType::F32, &[2], &[scalar]);
    let one = [1.; 4];
    let block: Vec<f64> = [one, one.map(|v| v * 2.), one.map(|v| v * 3.)].concat();
    assert_exact(&case.eval(cube), &[2, 3, 4], &[block.clone(), block].concat());
    assert_exact(&case.eval(rows), &[3, 2], &[7., 8., 7., 8., 7., 8.]);
    assert_exact(&case.eval(filled), &[2], &[5., 5.]);
}

#[test]
fn slices_with_steps_and_symbolic_starts() {
    let mut case = Case::new();
    let data: Vec<f64> = (0..10).map(f64::from).collect();
    let x = case.f("x", &[2, 5], &data);
    let slice = |start, step| Prim::Slice { axis: 1, start, step };
    let odd = case.op(slice(Dim::symbol("S"), 2), DType::F32, &[2, 2], &[x]);
    let even = case.op(slice(Dim::constant(0), 2), DType::F32, &[2, 3], &[x]);
    let tail = case.op(slice(Dim::constant(3), 1), DType::F32, &[2, 2], &[x]);
    let none = case.op(slice(Dim::constant(5), 1), DType::F32, &[2, 0], &[x]);
    case.env.dims.insert("S".into(), 1);
    assert_exact(&case.eval(odd), &[2, 2], &[1., 3., 6., 8.]);
    assert_exact(&case.eval(even), &[2, 3], &[0., 2., 4., 5., 7., 9.]);
    assert_exact(&case.eval(tail), &[2, 2], &[3., 4., 8., 9.]);
    assert_exact(&case.eval(none), &[2, 0], &[]);
    // Three elements from 1 by 2 would need index 5 of 5.
    let mut bad = Case::new();
    let x = bad.f("x", &[2, 5], &data);
    bad.op(slice(Dim::constant(1), 2), DType::F32, &[2, 3], &[x]);
    let message = bad.error();
    assert!(message.contains("%1 = slice"), "{message}");
}

#[test]
fn concat_and_pad() {
    let mut case = Case::new();
    let a = case.f("a", &[2, 1], &[1., 2.]);
    let b = case.f("b", &[2, 2], &[3., 4., 5., 6.]);
    let side = case.op(Prim::Concat { axis: 1 }, DType::F32, &[2, 3], &[a, b]);
    let c = case.f("c", &[1, 1], &[9.]);
    let down = case.op(Prim::Concat { axis: 0 }, DType::F32, &[5, 1], &[a, c, a]);
    let pad = Prim::Pad {
        axis: 1,
        before: Dim::constant(1),
        after: Dim::constant(2),
        value: -1.0,
    };
    let padded = case.op(pad, DType::F32, &[2, 5], &[b]);
    assert_exact(&case.eval(side), &[2, 3], &[1., 3., 4., 2., 5., 6.]);
    assert_exact(&case.eval(down), &[5, 1], &[1., 2., 9., 1., 2.]);
    assert_exact(
        &case.eval(padded),
        &[2, 5],
        &[-1., 3., 4., -1., -1., -1., 5., 6., -1., -1.],
    );
}

#[test]
fn take_and_scatter_rows() {
    let mut case = Case::new();
    let table = case.f("table", &[3, 2], &[1., 2., 3., 4., 5., 6.]);
    let ids = case.input("ids", DType::I32, arr(&[2, 2], &[2., 0., 3., -1.]));
    let taken = case.op(Prim::Take, DType::F32, &[2, 2, 2], &[table, ids]);
    let rows = case.input("rows", DType::I32, arr(&[4], &[0., 2., 0., 5.]));
    let values = case.f("values", &[4, 2], &[1., 2., 3., 4., 5., 6., 7., 8.]);
    let scatter = Prim::ScatterRows { rows: Dim::constant(3) };
    let scattered = case.op(scatter, DType::F32, &[3, 2], &[values, rows]);
    assert_exact(&case.eval(taken), &[2, 2, 2], &[5., 6., 1., 2., 0., 0., 0., 0.]);
    // Rows 0 and 2 of `values` add into row 0; id 5 is out of range.
    assert_exact(&case.eval(scattered), &[3, 2], &[6., 8., 0., 0., 3., 4.]);
}

#[test]
fn pick_and_place() {
    let mut case = Case::new();
    let x = case.f("x", &[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let ids = case.input("ids", DType::I32, arr(&[2], &[2., 7.]));
    let picked = case.op(Prim::Pick, DType::F32, &[2], &[x, ids]);
    let v = case.f("v", &[2], &[1.5, 2.5]);
    let at = case.input("at", DType::I32, arr(&[2], &[1., -1.]));
    let place = Prim::Place {
        classes: Dim::constant(3),
    };
    let placed = case.op(place, DType::F32, &[2, 3], &[v, at]);
    assert_exact(&case.eval(picked), &[2], &[3., 0.]);
    assert_exact(&case.eval(placed), &[2, 3], &[0., 1.5, 0., 0., 0., 0.]);
}

#[test]
fn matmul_loops_over_batch_dimensions() {
    let mut case = Case::new();
    let a = case.f("a", &[2, 2, 3], &[1., 2., 3., 4., 5., 6., 1., 0., 0., 0., 1., 0.]);
    let b = case.f("b", &[2, 3, 1], &[1., 1., 1., 7., 8., 9.]);
    let ab = case.op(Prim::MatMul, DType::F32, &[2, 2, 1], &[a, b]);
    let m = case.f("m", &[2, 2], &[1., 2., 3., 4.]);
    let n = case.f("n", &[2, 2], &[5., 6., 7., 8.]);
    let mn = case.op(Prim::MatMul, DType::F32, &[2, 2], &[m, n]);
    // [1 2 3; 4 5 6] @ [1; 1; 1] = [6; 15], [1 0 0; 0 1 0] @ [7; 8; 9] = [7; 8]
    assert_exact(&case.eval(ab), &[2, 2, 1], &[6., 15., 7., 8.]);
    assert_exact(&case.eval(mn), &[2, 2], &[19., 22., 43., 50.]);
}

#[test]
fn unfold2d_is_tap_major_with_zero_padding() {
    let mut case = Case::new();
    let data: Vec<f64> = (1..=18).map(f64::from).collect();
    let x = case.f("x", &[1, 2, 3, 3], &data);
    let window = |kernel, stride, padding| Window {
        kernel,
        stride,
        padding,
    };
    let patches = case.op(Prim::Unfold2d(window(2, 1, 0)), DType::F32, &[1, 2, 2, 8], &[x]);
    let small = case.f("small", &[1, 1, 2, 2], &[1., 2., 3., 4.]);
    let padded = case.op(Prim::Unfold2d(window(3, 1, 1)), DType::F32, &[1, 2, 2, 9], &[small]);
    let ones = case.f("ones", &[1, 1, 3, 3], &[1.; 9]);
    let windows = case.op(Prim::Unfold2d(window(2, 1, 0)), DType::F32, &[1, 2, 2, 4], &[ones]);
    let counts = case.op(Prim::Fold2d(window(2, 1, 0)), DType::F32, &[1, 1, 3, 3], &[windows]);
    #[rustfmt::skip]
    let expected = [
        1., 10., 2., 11., 4., 13., 5., 14.,   2., 11., 3., 12., 5., 14., 6., 15.,
        4., 13., 5., 14., 7., 16., 8., 17.,   5., 14., 6., 15., 8., 17., 9., 18.,
    ];
    assert_exact(&case.eval(patches), &[1, 2, 2, 8], &expected);
    #[rustfmt::skip]
    let expected = [
        0., 0., 0., 0., 1., 2., 0., 3., 4.,   0., 0., 0., 1., 2., 0., 3., 4., 0.,
        0., 1., 2., 0., 3., 4., 0., 0., 0.,   1., 2., 0., 3., 4., 0., 0., 0., 0.,
    ];
    assert_exact(&case.eval(padded), &[1, 2, 2, 9], &expected);
    // Folding the patches of ones counts the windows over each pixel.
    assert_exact(&case.eval(counts), &[1, 1, 3, 3], &[1., 2., 1., 2., 4., 2., 1., 2., 1.]);
}

#[test]
fn results_are_checked_against_the_node_shape() {
    let mut case = Case::new();
    let a = case.f("a", &[2, 3], &[0.; 6]);
    // A sum over axis 1 is [2], not [3].
    let reduce = Prim::Reduce {
        op: ReduceOp::Sum,
        axes: vec![1],
        keepdims: false,
    };
    case.op(reduce, DType::F32, &[3], &[a]);
    let message = case.error();
    assert!(
        message.contains("%1 = reduce_sum axes=[1]") && message.contains("[2]"),
        "{message}"
    );
}
