//! Products of a weight at a training batch cut along `k`
//! ([`by_depth`]): each thread sums its slice of `k` (the rows of the
//! weight it updates), then adds its rows of the other parts' partial sums
//! to the result.

use std::sync::atomic::Ordering;

use super::{MatMul, MatMulDesc};

/// Parts a product cut [`by_depth`] has, however many threads run the
/// step (so that its bits do not depend on them).
pub const DEPTH_PARTS: usize = 2;

/// Whether a product `C = A @ W` of a parameter `W` (`[k, n]`, row-major,
/// strides `b`) is cut along `k` into [`DEPTH_PARTS`]: few rows (at most
/// 256: a training batch) and a large `W` (`k` at least 512, `n` at least
/// 256). Each thread then reads only the rows of `W` that its share of the
/// weight gradient (cut by rows) and of the optimizer's update write, as
/// the input gradient `dY·Wᵀ` does cut by columns
/// ([`super::wide_transposed`]); cut by columns, every row of `W` is read
/// by both threads, and each line the update then writes has to be taken
/// back from the other core's cache (`BENCHMARKS.md`, "Which core reads a
/// weight"). The price: the partial sums, `m·n` per part after the first,
/// written and added once.
pub fn by_depth(m: usize, k: usize, n: usize, (b_row, b_col): (isize, isize)) -> bool {
    m <= 256 && k >= 512 && n >= 256 && b_col == 1 && b_row >= n as isize
}

/// [`super::run_parts`] for a product cut [`by_depth`]: this thread's
/// slices of `k`, then, once every thread has done its parts, its rows of
/// `C` plus the partial sums in part order (the bits do not depend on the
/// threads).
///
/// # Safety
/// As [`super::nnc_matmul`].
pub(super) unsafe fn run_parts(d: &MatMulDesc, arena: *mut f32, thread: usize, threads: usize, product: MatMul) {
    let (m, n, parts, threads) = (d.m, d.n, d.parts.max(1), threads.max(1));
    let partials = d.claims.partials();
    for p in (thread..parts).step_by(threads) {
        let (k0, k1) = (d.k * p / parts, d.k * (p + 1) / parts);
        unsafe {
            let a = arena.offset(d.a.offset + k0 as isize * d.a.col);
            let b = arena.offset(d.b.offset + k0 as isize * d.b.row);
            let (a_s, b_s) = ((d.a.row, d.a.col), (d.b.row, d.b.col));
            if p == 0 {
                let c = arena.offset(d.c.offset);
                product(m, k1 - k0, n, a, a_s, b, b_s, c, (d.c.row, d.c.col), d.accumulate != 0);
            } else {
                let room = partials.add((p - 1) * m * n);
                product(m, k1 - k0, n, a, a_s, b, b_s, room, (n as isize, 1), false);
            }
        }
    }
    let (done, added) = (&d.claims.done, &d.claims.added);
    done.fetch_add(1, Ordering::AcqRel);
    crate::codegen::team::spin_until(|| done.load(Ordering::Acquire) >= threads);
    let (i0, i1) = (m * thread / threads, m * (thread + 1) / threads);
    for i in i0..i1 {
        let row = unsafe { arena.offset(d.c.offset + i as isize * d.c.row) };
        for p in 1..parts {
            let partial = unsafe { std::slice::from_raw_parts(partials.add((p - 1) * m * n + i * n), n) };
            if d.c.col == 1 {
                let row = unsafe { std::slice::from_raw_parts_mut(row, n) };
                row.iter_mut().zip(partial).for_each(|(c, &x)| *c += x);
            } else {
                for (j, &x) in partial.iter().enumerate() {
                    unsafe { *row.offset(j as isize * d.c.col) += x };
                }
            }
        }
    }
    // The last thread out resets the counters for the next call (after a
    // barrier every thread passes once done here).
    if added.fetch_add(1, Ordering::AcqRel) + 1 == threads {
        done.store(0, Ordering::Relaxed);
        added.store(0, Ordering::Relaxed);
    }
}
