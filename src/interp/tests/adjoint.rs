//! Gathers against their adjoints (`<f(x), g> == <x, f*(g)>` on random data)
//! and the random-number streams.

use ndarray::ArrayD;

use super::{arr, dims, Case};
use crate::check::dims::Dim;
use crate::interp::{random, run};
use crate::prim::{DType, Distribution, Prim, Window};

/// Standard normals of `shape`, reproducible by `salt`.
fn noise(shape: &[usize], salt: u64) -> ArrayD<f64> {
    let count: usize = shape.iter().product();
    let data: Vec<f64> = (0..count as u64).map(|i| random::normal(7, 0, salt, i)).collect();
    arr(shape, &data)
}

fn dot(a: &ArrayD<f64>, b: &ArrayD<f64>) -> (f64, f64) {
    assert_eq!(a.shape(), b.shape(), "inner product of different shapes");
    let sum = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let scale = a.iter().zip(b).map(|(x, y)| (x * y).abs()).sum();
    (sum, scale)
}

/// `<forward, g> == <x, adjoint>` to a relative 1e-12 of the sum of
/// absolute products.
#[track_caller]
fn assert_adjoint(name: &str, x: &ArrayD<f64>, forward: &ArrayD<f64>, g: &ArrayD<f64>, adjoint: &ArrayD<f64>) {
    let (left, scale_left) = dot(forward, g);
    let (right, scale_right) = dot(x, adjoint);
    let tolerance = 1e-12 * scale_left.max(scale_right).max(1.0);
    assert!(
        (left - right).abs() <= tolerance,
        "{name}: <f(x), g> = {left} but <x, f*(g)> = {right} (tolerance {tolerance})"
    );
    // The check means something only if the products are not all zero.
    assert!(scale_left > 1.0, "{name}: degenerate data ({scale_left})");
}

#[test]
fn scatter_rows_is_the_adjoint_of_take() {
    let mut case = Case::new();
    let table = case.input("table", DType::F32, noise(&[5, 3], 1));
    // Repeated ids, and two out of range.
    let id_data = [0., 4., 4., 2., -1., 5., 1., 0.];
    let ids = case.input("ids", DType::I32, arr(&[2, 4], &id_data));
    let g = case.input("g", DType::F32, noise(&[2, 4, 3], 2));
    let taken = case.op(Prim::Take, DType::F32, &[2, 4, 3], &[table, ids]);
    let rows = Dim::constant(5);
    let scattered = case.op(Prim::ScatterRows { rows }, DType::F32, &[5, 3], &[g, ids]);
    let feeds = &case.env.feeds;
    assert_adjoint(
        "take",
        &feeds["table"],
        &case.eval(taken),
        &feeds["g"],
        &case.eval(scattered),
    );
}

#[test]
fn place_is_the_adjoint_of_pick() {
    let mut case = Case::new();
    let x = case.input("x", DType::F32, noise(&[3, 4, 5], 3));
    // Five classes: 5, 6 and -1 are out of range.
    let id_data = [0., 4., 2., 5., -1., 3., 1., 1., 0., 4., 6., 2.];
    let ids = case.input("ids", DType::I32, arr(&[3, 4], &id_data));
    let g = case.input("g", DType::F32, noise(&[3, 4], 4));
    let picked = case.op(Prim::Pick, DType::F32, &[3, 4], &[x, ids]);
    let classes = Dim::constant(5);
    let placed = case.op(Prim::Place { classes }, DType::F32, &[3, 4, 5], &[g, ids]);
    let feeds = &case.env.feeds;
    assert_adjoint("pick", &feeds["x"], &case.eval(picked), &feeds["g"], &case.eval(placed));
}

#[test]
fn fold2d_is_the_adjoint_of_unfold2d() {
    let window = Window {
        kernel: 3,
        stride: 2,
        padding: 1,
    };
    let mut case = Case::new();
    // 5x6 images: (5 + 2 - 3) / 2 + 1 = 3 and (6 + 2 - 3) / 2 + 1 = 3 windows.
    let x = case.input("x", DType::F32, noise(&[2, 3, 5, 6], 5));
    let g = case.input("g", DType::F32, noise(&[2, 3, 3, 27], 6));
    let unfolded = case.op(Prim::Unfold2d(window), DType::F32, &[2, 3, 3, 27], &[x]);
    let folded = case.op(Prim::Fold2d(window), DType::F32, &[2, 3, 5, 6], &[g]);
    let feeds = &case.env.feeds;
    assert_adjoint(
        "unfold2d",
        &feeds["x"],
        &case.eval(unfolded),
        &feeds["g"],
        &case.eval(folded),
    );
}

fn draws(dist: Distribution, stream: u32, seed: u64, step: u64, count: usize) -> Vec<f64> {
    draws_from(dist, stream, (seed, step), 0, count)
}

fn draws_from(dist: Distribution, stream: u32, (seed, step): (u64, u64), offset: u64, count: usize) -> Vec<f64> {
    let mut case = Case::new();
    let id = case
        .graph
        .add(Prim::Random { dist, stream, offset }, DType::F32, dims(&[count]), &[]);
    case.env.seed = seed;
    case.env.step = step;
    case.eval(id).iter().copied().collect()
}

#[test]
fn random_numbers_are_deterministic_per_seed_step_and_stream() {
    let base = draws(Distribution::Uniform, 0, 1, 1, 64);
    assert_eq!(base, draws(Distribution::Uniform, 0, 1, 1, 64), "same counters");
    assert_ne!(base, draws(Distribution::Uniform, 1, 1, 1, 64), "another stream");
    assert_ne!(base, draws(Distribution::Uniform, 0, 1, 2, 64), "another step");
    assert_ne!(base, draws(Distribution::Uniform, 0, 2, 1, 64), "another seed");
    // Element i is draw i of the stream, whatever the shape; from an
    // offset, draw offset + i.
    assert_eq!(base[..8], draws(Distribution::Uniform, 0, 1, 1, 8)[..]);
    assert_eq!(base[40..], draws_from(Distribution::Uniform, 0, (1, 1), 40, 24)[..]);
    assert_eq!(base[5], random::tensor_uniform(1, 1, 0, 5));
    let normals = draws(Distribution::Normal, 3, 1, 1, 16);
    assert_eq!(normals[9], random::tensor_normal(1, 1, 3, 9));
    // Two nodes with the same stream in one graph draw the same numbers.
    let mut case = Case::new();
    let uniform = Prim::Random {
        dist: Distribution::Uniform,
        stream: 2,
        offset: 0,
    };
    let a = case.op(uniform.clone(), DType::F32, &[4], &[]);
    let b = case.op(uniform, DType::F32, &[2, 2], &[]);
    let values = run(&case.graph, &case.env).expect("runs");
    let (a, b) = (&values.get(a).unwrap(), &values.get(b).unwrap());
    assert!(a.iter().eq(b.iter()), "{a} vs {b}");
}

#[test]
fn uniform_and_normal_have_the_right_moments() {
    let n = 10_000;
    let uniform = draws(Distribution::Uniform, 0, 3, 7, n);
    assert!(uniform.iter().all(|u| (0.0..1.0).contains(u)), "outside [0, 1)");
    let mean = uniform.iter().sum::<f64>() / n as f64;
    assert!((mean - 0.5).abs() < 0.02, "uniform mean {mean}, want 0.5 ± 0.02");
    let normal = draws(Distribution::Normal, 0, 3, 7, n);
    let mean = normal.iter().sum::<f64>() / n as f64;
    let std = (normal.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    assert!(mean.abs() < 0.05, "normal mean {mean}, want 0 ± 0.05");
    assert!((std - 1.0).abs() < 0.05, "normal std {std}, want 1 ± 0.05");
}
