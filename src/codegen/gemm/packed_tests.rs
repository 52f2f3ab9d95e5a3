//! Tests of the packed product: values against an f64 reference for every
//! instruction set this CPU has, and the same bits however a product is cut.

use super::kernel::{available, Isa, SCALAR};
use super::packed::gemm_with;

/// Numbers in [-1, 1) from a seed (a 64-bit LCG's high bits).
fn numbers(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A `rows×cols` matrix stored row-major, or transposed (column-major),
/// or with columns `gap` apart, at `offset` into `data`.
struct Mat {
    data: Vec<f32>,
    offset: usize,
    strides: (isize, isize),
}

impl Mat {
    fn new(rows: usize, cols: usize, layout: Layout, seed: u64) -> Mat {
        let offset = 3;
        let (strides, len) = match layout {
            Layout::Rows => ((cols as isize, 1), rows * cols),
            Layout::Columns => ((1, rows as isize), rows * cols),
            Layout::Gapped => ((2 * cols as isize + 1, 2), rows * (2 * cols + 1)),
        };
        Mat {
            data: numbers(offset + len, seed),
            offset,
            strides,
        }
    }
    fn at(&self, i: usize, j: usize) -> usize {
        (self.offset as isize + i as isize * self.strides.0 + j as isize * self.strides.1) as usize
    }
    fn get(&self, i: usize, j: usize) -> f32 {
        self.data[self.at(i, j)]
    }
    fn ptr(&self) -> *const f32 {
        unsafe { self.data.as_ptr().add(self.offset) }
    }
    fn ptr_mut(&mut self) -> *mut f32 {
        unsafe { self.data.as_mut_ptr().add(self.offset) }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    Rows,
    Columns,
    Gapped,
}

/// `C (+)= A @ B` of the sub-block rows `i0..i1`, columns `j0..j1` of `c`.
#[allow(clippy::too_many_arguments)]
fn product(isa: &Isa, a: &Mat, b: &Mat, c: &mut Mat, k: usize, rows: (usize, usize), cols: (usize, usize), add: bool) {
    let (a_s, b_s, c_s) = (a.strides, b.strides, c.strides);
    unsafe {
        gemm_with(
            isa,
            rows.1 - rows.0,
            k,
            cols.1 - cols.0,
            a.ptr().offset(rows.0 as isize * a_s.0),
            a_s,
            b.ptr().offset(cols.0 as isize * b_s.1),
            b_s,
            c.ptr_mut().offset(rows.0 as isize * c_s.0 + cols.0 as isize * c_s.1),
            c_s,
            add,
        )
    };
}

const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 7, 1),
    (3, 0, 5),
    (5, 3, 1),
    (1, 3, 33),
    (7, 5, 9),
    (13, 17, 33),
    (12, 256, 32),
    (25, 300, 47),
    (6, 513, 17),
    (150, 40, 70),
    (37, 260, 1030),
    (300, 9, 16),
];

/// Every element against the f64 sum of its products (plus the old `C`
/// when accumulating), within `(k + 1)·ε·(|C₀| + Σ|a||b|)`: a chain of
/// `k` roundings of relative size ε/2 each.
#[test]
fn products_match_an_f64_reference_on_every_instruction_set() {
    use Layout::*;
    let layouts = [
        (Rows, Rows, Rows),
        (Columns, Rows, Rows),
        (Rows, Columns, Rows),
        (Columns, Columns, Gapped),
        (Gapped, Gapped, Columns),
    ];
    for isa in available() {
        for (s, &(m, k, n)) in SHAPES.iter().enumerate() {
            for (l, &(la, lb, lc)) in layouts.iter().enumerate() {
                for add in [false, true] {
                    let seed = (s * 16 + l * 2 + add as usize) as u64;
                    let a = Mat::new(m, k, la, seed);
                    let b = Mat::new(k, n, lb, seed + 1000);
                    let mut c = Mat::new(m, n, lc, seed + 2000);
                    let old = c.data.clone();
                    product(&isa, &a, &b, &mut c, k, (0, m), (0, n), add);
                    for i in 0..m {
                        for j in 0..n {
                            let start = if add { old[c.at(i, j)] as f64 } else { 0.0 };
                            let (mut want, mut size) = (start, start.abs());
                            for p in 0..k {
                                let x = a.get(i, p) as f64 * b.get(p, j) as f64;
                                want += x;
                                size += x.abs();
                            }
                            let got = c.get(i, j) as f64;
                            let bound = (k + 1) as f64 * f32::EPSILON as f64 * size;
                            assert!(
                                (got - want).abs() <= bound,
                                "{}: C[{i},{j}] of {m}x{k}x{n} {la:?}/{lb:?}/{lc:?} add {add}: {got} vs {want} (bound {bound})",
                                isa.name
                            );
                        }
                    }
                    // Elements of `C`'s storage outside the matrix are kept.
                    let inside: std::collections::HashSet<usize> = (0..m)
                        .flat_map(|i| (0..n).map(move |j| (i, j)))
                        .map(|(i, j)| c.at(i, j))
                        .collect();
                    for (x, (&now, &before)) in c.data.iter().zip(&old).enumerate() {
                        if !inside.contains(&x) {
                            assert_eq!(
                                now.to_bits(),
                                before.to_bits(),
                                "{}: storage {x} outside C changed",
                                isa.name
                            );
                        }
                    }
                }
            }
        }
    }
}

/// A product computed whole, cut into row ranges, cut into column ranges,
/// or on another instruction set gives the same bits, written or
/// accumulated (shapes with ragged edges, `k` across several blocks).
#[test]
fn products_have_the_same_bits_however_they_are_cut() {
    use Layout::*;
    for &(m, k, n, la, lb) in &[
        (29, 300, 75, Rows, Rows),
        (37, 530, 41, Columns, Rows),
        (16, 128, 97, Rows, Columns),
        (50, 7, 1100, Rows, Rows),
        (9, 33, 10, Columns, Columns),
    ] {
        let a = Mat::new(m, k, la, 1);
        let b = Mat::new(k, n, lb, 2);
        for add in [false, true] {
            let whole = |isa: &Isa| {
                let mut c = Mat::new(m, n, Rows, 3);
                product(isa, &a, &b, &mut c, k, (0, m), (0, n), add);
                c.data
            };
            let reference = whole(&SCALAR);
            for isa in available() {
                assert_eq!(
                    bits(&whole(&isa)),
                    bits(&reference),
                    "{} against scalar, {m}x{k}x{n}",
                    isa.name
                );
                for cuts in [[0, 1, m / 3, m / 2 + 1, m], [0, 5, 12, 13, m].map(|x| x.min(m))] {
                    let mut by_rows = Mat::new(m, n, Rows, 3);
                    for w in cuts.windows(2) {
                        product(&isa, &a, &b, &mut by_rows, k, (w[0], w[1]), (0, n), add);
                    }
                    assert_eq!(
                        bits(&by_rows.data),
                        bits(&reference),
                        "{} by rows {cuts:?}, {m}x{k}x{n}",
                        isa.name
                    );
                }
                for cuts in [[0, 1, n / 3, n / 2 + 1, n], [0, 7, 16, 17, n].map(|x| x.min(n))] {
                    let mut by_columns = Mat::new(m, n, Rows, 3);
                    for w in cuts.windows(2) {
                        product(&isa, &a, &b, &mut by_columns, k, (0, m), (w[0], w[1]), add);
                    }
                    assert_eq!(
                        bits(&by_columns.data),
                        bits(&reference),
                        "{} by columns {cuts:?}, {m}x{k}x{n}",
                        isa.name
                    );
                }
            }
        }
    }
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|x| x.to_bits()).collect()
}

/// The chain starts at 0.0 (or the old `C`) and adds one product per step
/// in order: a sum whose order matters, checked exactly.
#[test]
fn each_element_is_one_chain_in_increasing_order() {
    // 1e8 + 1 - 1e8 ... in f32: the order of the steps decides the result.
    let k = 5;
    let a = [1e8f32, 1.0, -1e8, 1.0, 1.0];
    let b = [1.0f32; 5];
    for isa in available() {
        for (add, start) in [(false, 0.0f32), (true, 0.5)] {
            let mut c = [start];
            unsafe {
                gemm_with(
                    &isa,
                    1,
                    k,
                    1,
                    a.as_ptr(),
                    (k as isize, 1),
                    b.as_ptr(),
                    (1, 1),
                    c.as_mut_ptr(),
                    (1, 1),
                    add,
                )
            };
            let want = a.iter().zip(&b).fold(start, |s, (&x, &y)| x.mul_add(y, s));
            assert_eq!(c[0].to_bits(), want.to_bits(), "{}: add {add}", isa.name);
            assert_eq!(c[0], 2.0, "{}", isa.name);
        }
    }
}
