//! Tests of the entry point: how products are cut and what each part
//! computes.

use super::*;

/// `len` test values in [-0.5, 0.5), repeating every 1,013.
fn values(len: usize) -> impl Iterator<Item = f32> {
    (0..len).map(|i| ((i * 7919) % 1013) as f32 / 1013.0 - 0.5)
}

/// A row-major matrix at `offset`, rows `row` apart.
fn row_major(offset: usize, row: usize) -> Operand {
    Operand {
        offset: offset as isize,
        row: row as isize,
        col: 1,
        ..Default::default()
    }
}

/// Products cut by rows: each part writes its own rows, thread 0 alone
/// writes the first rows and only those, and together the parts give the
/// bits of the whole. Two kinds: a product 16 columns wide with few rows
/// (the first convolution's weight gradient; cut by whole vectors of 16
/// columns one of two parts was empty and one thread did all the work),
/// and a recurrence's product, a batch of 32 rows (each thread computes
/// the rows of the state its element-wise kernels own).
#[test]
fn products_cut_by_rows_write_their_own_rows() {
    for (m, k, n) in [(9, 300, 16), (32, 40, 64)] {
        let (sa, sb) = (m * k, k * n);
        let data: Vec<f32> = values(sa + sb).chain(std::iter::repeat_n(f32::NAN, m * n)).collect();
        let desc = |m, n, parts| MatMulDesc {
            m,
            k,
            n,
            batch: [1; MAX_BATCH],
            a: row_major(0, k),
            b: row_major(sa, n),
            c: row_major(sa + sb, n),
            parts,
            ..Default::default()
        };
        assert!(!by_columns(&desc(m, n, 2), 1, 2), "{m}×{n}");
        // Fewer rows, or wider, and the cut is by columns.
        assert_eq!(by_columns(&desc(9, 2 * n, 2), 1, 2), own_kernel());
        let run = |parts: usize, threads: std::ops::Range<usize>| {
            let mut arena = data.clone();
            let desc = desc(m, n, parts);
            for thread in threads {
                unsafe { nnc_matmul(&desc, arena.as_mut_ptr(), thread, parts) };
            }
            arena[sa + sb..].iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        };
        let whole = run(1, 0..1);
        assert!(whole.iter().all(|&x| !f32::from_bits(x).is_nan()));
        assert_eq!(run(2, 0..2), whole);
        let first = run(2, 0..1);
        let written = first.iter().filter(|&&x| !f32::from_bits(x).is_nan()).count();
        assert_eq!(written, m / 2 * n, "{m}×{n}: thread 0 wrote {written} of {}", m * n);
        assert_eq!(first[..m / 2 * n], whole[..m / 2 * n]);
    }
}

/// A layer's input gradient at a training batch (`dY·Wᵀ`, few rows,
/// wide, `W` stored as `B` transposed) is cut by columns: thread 0
/// alone writes only the first columns (reading only the first rows of
/// `W`), and any cut gives the bits of the uncut product, which is
/// nnc's own too.
#[test]
fn a_wide_product_with_a_transposed_b_is_cut_by_columns() {
    let (m, k, n) = (100, 260, 300);
    let (sa, sb) = (m * k, k * n);
    let data: Vec<f32> = values(sa + sb).chain(std::iter::repeat_n(f32::NAN, m * n)).collect();
    let operand = |offset: usize, row: usize, col: usize| Operand {
        offset: offset as isize,
        row: row as isize,
        col: col as isize,
        ..Default::default()
    };
    let desc = |parts| MatMulDesc {
        m,
        k,
        n,
        batch: [1; MAX_BATCH],
        a: operand(0, k, 1),
        b: operand(sa, 1, k),
        c: operand(sa + sb, n, 1),
        parts,
        ..Default::default()
    };
    let transposed = (1, k as isize);
    assert!(wide_transposed(m, k, n, transposed) && !wide_transposed(m, k, n, (n as isize, 1)));
    assert!(!wide_transposed(257, k, n, transposed) && !wide_transposed(m, k, 255, transposed));
    assert!(!wide_transposed(m, 255, n, transposed));
    assert_eq!(by_columns(&desc(2), 1, 2), own_kernel());
    let run = |parts: usize, threads: std::ops::Range<usize>| {
        let mut arena = data.clone();
        let desc = desc(parts);
        for thread in threads {
            unsafe { nnc_matmul(&desc, arena.as_mut_ptr(), thread, parts) };
        }
        arena[sa + sb..].iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    };
    let whole = run(1, 0..1);
    assert!(whole.iter().all(|&x| !f32::from_bits(x).is_nan()));
    // The product itself: a few entries against sums in f64.
    for (i, j) in [(0, 0), (37, 151), (m - 1, n - 1)] {
        let want: f64 = (0..k)
            .map(|p| data[i * k + p] as f64 * data[sa + j * k + p] as f64)
            .sum();
        let got = f32::from_bits(whole[i * n + j]) as f64;
        assert!((got - want).abs() < 1e-4, "({i}, {j}): {got} against {want}");
    }
    for parts in [2, 3] {
        assert_eq!(run(parts, 0..parts), whole, "{parts} parts");
    }
    if own_kernel() {
        // Columns 0..144 (9 vectors of 16 of the 19) are thread 0's.
        let first = run(2, 0..1);
        for i in 0..m {
            for j in 0..n {
                let written = !f32::from_bits(first[i * n + j]).is_nan();
                assert_eq!(written, j < 144, "({i}, {j})");
            }
        }
    }
}

/// A parameter's product at a training batch is cut along `k`: run by
/// one thread or two (in either order of arrival), written or
/// accumulated, twice in a row through the same descriptor, it gives
/// the same bits, within rounding of the sums in f64, and thread 0
/// reads only the first rows of `W` (the others are NaN here).
#[test]
fn a_parameters_product_cut_by_depth_has_the_same_bits_on_any_team() {
    let (m, k, n) = (40, 520, 300);
    assert!(by_depth(m, k, n, (n as isize, 1)));
    assert!(!by_depth(257, k, n, (n as isize, 1)) && !by_depth(m, 511, n, (n as isize, 1)));
    assert!(!by_depth(m, k, 255, (n as isize, 1)) && !by_depth(m, k, n, (1, k as isize)));
    let (sa, sb) = (m * k, k * n);
    let data: Vec<f32> = values(sa + sb + m * n).collect();
    let desc = |accumulate| MatMulDesc {
        m,
        k,
        n,
        batch: [1; MAX_BATCH],
        a: row_major(0, k),
        b: row_major(sa, n),
        c: row_major(sa + sb, n),
        parts: DEPTH_PARTS,
        accumulate,
        by_depth: 1,
        claims: Claims::with_partials((DEPTH_PARTS - 1) * m * n),
    };
    for accumulate in [0, 1] {
        let desc = desc(accumulate);
        let run = |arena: &mut Vec<f32>, threads: usize, reversed: bool| {
            let pointer = arena.as_mut_ptr() as usize;
            std::thread::scope(|s| {
                let order: Vec<usize> = if reversed {
                    (0..threads).rev().collect()
                } else {
                    (0..threads).collect()
                };
                for thread in order {
                    let desc = &desc;
                    s.spawn(move || unsafe { nnc_matmul(desc, pointer as *mut f32, thread, threads) });
                }
            });
            arena[sa + sb..].iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        };
        let mut one = data.clone();
        let first = run(&mut one, 1, false);
        for i in [0, 17, m - 1] {
            for j in [0, 150, n - 1] {
                let mut want: f64 = (0..k)
                    .map(|p| data[i * k + p] as f64 * data[sa + p * n + j] as f64)
                    .sum();
                want += accumulate as f64 * data[sa + sb + i * n + j] as f64;
                let got = f32::from_bits(first[i * n + j]) as f64;
                assert!((got - want).abs() < 1e-4, "({i}, {j}): {got} against {want}");
            }
        }
        for (threads, reversed) in [(2, false), (2, true)] {
            let mut arena = data.clone();
            assert_eq!(
                run(&mut arena, threads, reversed),
                first,
                "{threads} threads, accumulate {accumulate}"
            );
            // The counters were reset: the same descriptor again.
            let mut again = data.clone();
            assert_eq!(
                run(&mut again, threads, reversed),
                first,
                "again, accumulate {accumulate}"
            );
        }
    }
    // The cut is along `k`: the second part's partial sums are those of
    // rows `k/2..` of `W` (the rows the second thread updates).
    let desc = desc(0);
    let mut arena = data.clone();
    unsafe { nnc_matmul(&desc, arena.as_mut_ptr(), 0, 1) };
    let partial = unsafe { std::slice::from_raw_parts(desc.claims.partials(), m * n) };
    for (i, j) in [(0, 0), (23, 201), (m - 1, n - 1)] {
        let want: f64 = (k / 2..k)
            .map(|p| data[i * k + p] as f64 * data[sa + p * n + j] as f64)
            .sum();
        let got = partial[i * n + j] as f64;
        assert!((got - want).abs() < 1e-4, "partial ({i}, {j}): {got} against {want}");
    }
}

/// A product with few rows cut into 2 or 3 parts (by columns) gives
/// the same bits as uncut, written and accumulated, plain and batched.
#[test]
fn parts_by_columns_have_the_bits_of_the_whole() {
    if !own_kernel() {
        return;
    }
    let (m, k, n, entries) = (20, 70, 100, 3);
    let (sa, sb, sc) = (m * k * entries, k * n * entries, m * n * entries);
    let data: Vec<f32> = values(sa + sb + sc).collect();
    for (batched, accumulate) in [(false, 0), (true, 1)] {
        let run = |parts: usize| {
            let mut arena = data.clone();
            let operand = |offset: usize, size: usize, row: usize| Operand {
                offset: offset as isize,
                batch: [0, 0, 0, if batched { size as isize } else { 0 }],
                row: row as isize,
                col: 1,
            };
            let desc = MatMulDesc {
                m,
                k,
                n,
                batch: [1, 1, 1, if batched { entries } else { 1 }],
                a: operand(0, m * k, k),
                b: operand(sa, k * n, n),
                c: operand(sa + sb, m * n, n),
                parts,
                accumulate,
                ..Default::default()
            };
            assert_eq!(
                by_columns(&desc, desc.batch[3], parts),
                parts > 1 && !(batched && parts <= entries)
            );
            for thread in 0..parts {
                unsafe { nnc_matmul(&desc, arena.as_mut_ptr(), thread, parts) };
            }
            arena.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        };
        let whole = run(1);
        assert_ne!(
            whole[sa + sb..],
            data[sa + sb..].iter().map(|x| x.to_bits()).collect::<Vec<_>>()[..]
        );
        for parts in [2, 3, 5] {
            assert_eq!(run(parts), whole, "{parts} parts, batched {batched}");
        }
    }
}

/// A product with few rows and a wide `B`, cut by columns between
/// the threads and computed by the `gemm` crate (`crate_columns`),
/// gives the bits of the uncut product, written and accumulated.
#[test]
fn crate_parts_by_columns_have_the_bits_of_the_whole() {
    let (m, k, n) = (200, 700, 600);
    let (sa, sb, sc) = (m * k, k * n, m * n);
    let data: Vec<f32> = values(sa + sb + sc).collect();
    for accumulate in [0, 1] {
        let run = |parts: usize| {
            let mut arena = data.clone();
            let operand = |offset: usize, row: usize| Operand {
                offset: offset as isize,
                batch: [0; MAX_BATCH],
                row: row as isize,
                col: 1,
            };
            let desc = MatMulDesc {
                m,
                k,
                n,
                batch: [1; MAX_BATCH],
                a: operand(0, k),
                b: operand(sa, n),
                c: operand(sa + sb, n),
                parts,
                accumulate,
                ..Default::default()
            };
            assert!(!by_columns(&desc, 1, parts) && crate_columns(&desc, 1, parts) == (parts > 1));
            for thread in 0..parts {
                unsafe { nnc_matmul(&desc, arena.as_mut_ptr(), thread, parts) };
            }
            arena.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        };
        let whole = run(1);
        for parts in [2, 3] {
            assert_eq!(run(parts), whole, "{parts} parts, accumulate {accumulate}");
        }
    }
}

/// `C = A @ B` with B stored transposed (every layer's input
/// gradient), against the definition, directly and through a
/// transposed result (64x600x130), written and accumulated.
#[test]
fn transposed_right_operands_multiply_correctly() {
    for &(m, k, n) in &[(3, 5, 7), (64, 70, 65), (130, 33, 129), (64, 600, 130)] {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
        // B stored as Bᵀ: element (p, j) at j·k + p.
        let bt: Vec<f32> = (0..k * n).map(|i| ((i * 17) % 7) as f32 - 3.0).collect();
        let mut c = vec![0f32; m * n];
        for (accumulate, times) in [(false, 1.0), (true, 2.0)] {
            unsafe {
                matmul(
                    m,
                    k,
                    n,
                    a.as_ptr(),
                    (k as isize, 1),
                    bt.as_ptr(),
                    (1, k as isize),
                    c.as_mut_ptr(),
                    (n as isize, 1),
                    accumulate,
                )
            };
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = (0..k).map(|p| a[i * k + p] * bt[j * k + p]).sum();
                    assert_eq!(
                        c[i * n + j],
                        times * want,
                        "C[{i}, {j}] of {m}x{k}x{n}, accumulate {accumulate}"
                    );
                }
            }
        }
    }
}

/// An empty inner size through the crate's path: `C` is zeroed when
/// written and kept when accumulated.
#[test]
fn an_empty_inner_size_zeroes_or_keeps_the_result() {
    let (m, n) = (3, 4);
    let mut c = vec![7f32; m * n];
    let (a, b) = ([0f32; 0], [0f32; 0]);
    let product = |c: &mut [f32], accumulate: bool| unsafe {
        crate_matmul(
            m,
            0,
            n,
            a.as_ptr(),
            (0, 1),
            b.as_ptr(),
            (n as isize, 1),
            c.as_mut_ptr(),
            (n as isize, 1),
            accumulate,
        )
    };
    product(&mut c, true);
    assert_eq!(c, vec![7.0; m * n]);
    product(&mut c, false);
    assert_eq!(c, vec![0.0; m * n]);
}

thread_local! {
    /// Whether this thread is the team's caller (thread 0).
    static CALLER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}
static ON_CALLER: AtomicUsize = AtomicUsize::new(0);

/// [`matmul`], counting the parts the caller's thread computes.
#[allow(clippy::too_many_arguments)]
unsafe fn counted(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    a_s: (isize, isize),
    b: *const f32,
    b_s: (isize, isize),
    c: *mut f32,
    c_s: (isize, isize),
    accumulate: bool,
) {
    if CALLER.get() {
        ON_CALLER.fetch_add(1, Ordering::Relaxed);
    }
    unsafe { matmul(m, k, n, a, a_s, b, b_s, c, c_s, accumulate) }
}

/// A thread that comes late to a large product finds its part taken
/// by the other, and the result has the bits of the product on one
/// thread; the claims are back to zero after every call, so the next
/// call is shared afresh.
#[test]
fn a_late_threads_part_is_taken_by_the_other_with_the_same_bits() {
    let (m, k, n) = (512, 256, 64);
    assert!(m * k * n / 2 >= STEAL_MIN);
    let (sa, sb) = (m * k, k * n);
    let data: Vec<f32> = (0..sa + sb + m * n)
        .map(|i| ((i * 29) % 13) as f32 * 0.25 - 1.5)
        .collect();
    let desc = MatMulDesc {
        m,
        k,
        n,
        batch: [1; MAX_BATCH],
        a: Operand {
            offset: 0,
            batch: [0; MAX_BATCH],
            row: k as isize,
            col: 1,
        },
        b: Operand {
            offset: sa as isize,
            batch: [0; MAX_BATCH],
            row: n as isize,
            col: 1,
        },
        c: Operand {
            offset: (sa + sb) as isize,
            batch: [0; MAX_BATCH],
            row: n as isize,
            col: 1,
        },
        parts: 2,
        ..Default::default()
    };
    let mut alone = data.clone();
    unsafe { run_parts(&desc, alone.as_mut_ptr(), 0, 1, matmul, true) };
    let team = crate::codegen::team::Team::new(2);
    for late in [None, Some(1), Some(0)] {
        let mut arena = data.clone();
        let pointer = arena.as_mut_ptr() as usize;
        ON_CALLER.store(0, Ordering::Relaxed);
        team.run(2, &|thread| {
            CALLER.set(thread == 0);
            team.barrier(thread);
            if late == Some(thread) {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            unsafe { run_parts(&desc, pointer as *mut f32, thread, 2, counted, true) };
        });
        assert_eq!(arena, alone, "late thread {late:?}");
        let claims = [&desc.claims.taken, &desc.claims.done].map(|c| c.load(Ordering::Relaxed));
        assert_eq!(claims, [0, 0], "late thread {late:?}");
        // With neither late, who computes what depends on the host's
        // load; a thread 300 ms late always finds both parts taken.
        if let Some(late) = late {
            let expected = if late == 1 { 2 } else { 0 };
            assert_eq!(ON_CALLER.load(Ordering::Relaxed), expected, "late thread {late}");
        }
    }
}
