//! Matrix products for generated code: a descriptor per `MatMul` node,
//! fixed at compile time, and one `extern "C"` entry point the JIT calls
//! with the descriptor and the arena. Each single product is nnc's own
//! (the `nnc-gemm` crate in `crates/`: `packed.rs`, microkernels in
//! `kernel.rs`) when it is thin (`n` at most 32), has few rows (at most
//! 48), or is a layer's input gradient at a training batch (few rows, wide,
//! `B` transposed), the `gemm` crate's otherwise (see [`own_product`] and
//! `BENCHMARKS.md` for why), single-threaded. A large
//! product is cut into a fixed number of parts by batch entries, by rows,
//! or, when its rows are few, by columns (computed by nnc's own product,
//! whose bits do not depend on the cut); a weight's product at a training
//! batch is cut along `k` into two parts whatever the threads
//! ([`by_depth`]), so that each thread reads the rows of the weight it
//! updates. The threads that run the step share the parts out: each
//! thread calls the entry point with its own number and takes its own
//! parts, then, for a large product, any part another thread has not
//! started (so a thread the host slows down holds the step back less).
//! The parts do not depend on how many threads run them or which one
//! computes a part, so a step gives the same bits on one thread or many.

use std::sync::atomic::{AtomicUsize, Ordering};

use gemm::Parallelism;

pub use depth::{by_depth, DEPTH_PARTS};
pub use nnc_gemm::{kernel, packed};

mod depth;
#[cfg(test)]
mod packed_tests;

/// Most batch axes a product's descriptor holds.
pub const MAX_BATCH: usize = 4;

/// One (batched) product `C[b] = A[b] @ B[b]`, every operand a strided
/// view into the arena (offsets and strides in f32 elements).
#[repr(C)]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MatMulDesc {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// Sizes of the batch axes (1 for unused ones).
    pub batch: [usize; MAX_BATCH],
    pub a: Operand,
    pub b: Operand,
    pub c: Operand,
    /// Parts the product is cut into (1: not cut).
    pub parts: usize,
    /// 1: add the product to `C` instead of overwriting it.
    pub accumulate: usize,
    /// 1: the parts are slices of `k` (see [`by_depth`]): part 0 sums into
    /// `C`, each other part into its room in the claims' partial sums, and
    /// then every thread adds its rows of them to `C`, in part order.
    pub by_depth: usize,
    /// While the team runs the product: which parts are taken (bit `p`)
    /// and how many threads are done; both back to 0 when the last thread
    /// is done (see [`run_parts`]). And the partial sums of a product cut
    /// [`by_depth`].
    pub claims: Claims,
}

/// The counters of a product's parts while the team runs it: atomics, so
/// the threads change them through a shared descriptor; and, for a product
/// cut [`by_depth`], room for the partial sums of parts `1..`, `m·n` each,
/// row-major, written by the thread that computes a part and read by every
/// thread while it adds its rows, after they meet. Not part of what the
/// descriptor describes: a clone starts at zero (with room of its own),
/// and any two compare equal.
#[repr(C)]
#[derive(Default)]
pub struct Claims {
    pub taken: AtomicUsize,
    pub done: AtomicUsize,
    /// Threads done adding partial sums (a product cut [`by_depth`]).
    pub added: AtomicUsize,
    partials: std::cell::UnsafeCell<Vec<f32>>,
}

// Safety: the threads write disjoint rooms of the partial sums, then read
// them after meeting (see `depth::run_parts`).
unsafe impl Sync for Claims {}

impl Claims {
    /// Counters at zero and room for `len` partial sums.
    pub fn with_partials(len: usize) -> Claims {
        Claims {
            partials: std::cell::UnsafeCell::new(vec![0.0; len]),
            ..Claims::default()
        }
    }

    /// The partial sums' room.
    pub(super) fn partials(&self) -> *mut f32 {
        // Safety: only the pointer is taken; see `Sync` above.
        unsafe { (*self.partials.get()).as_mut_ptr() }
    }

    fn partials_len(&self) -> usize {
        // Safety: the length is never changed after construction.
        unsafe { (*self.partials.get()).len() }
    }
}

impl Clone for Claims {
    fn clone(&self) -> Claims {
        Claims::with_partials(self.partials_len())
    }
}

impl PartialEq for Claims {
    fn eq(&self, _: &Claims) -> bool {
        true
    }
}

impl Eq for Claims {}

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Claims {{ taken: {:#b}, done: {}, added: {}, partial sums: {} }}",
            self.taken.load(Ordering::Relaxed),
            self.done.load(Ordering::Relaxed),
            self.added.load(Ordering::Relaxed),
            self.partials_len()
        )
    }
}

/// A strided matrix: element `(b0, b1, .., i, j)` is at
/// `offset + Σ b_x·batch[x] + i·row + j·col`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Operand {
    pub offset: isize,
    pub batch: [isize; MAX_BATCH],
    pub row: isize,
    pub col: isize,
}

impl Operand {
    /// The offset of batch entry `entry` (row-major over `sizes`).
    pub(crate) fn at(&self, sizes: &[usize; MAX_BATCH], mut entry: usize) -> isize {
        let mut offset = self.offset;
        for axis in (0..MAX_BATCH).rev() {
            let size = sizes[axis].max(1);
            offset += (entry % size) as isize * self.batch[axis];
            entry /= size;
        }
        offset
    }
}

/// Products with fewer multiply-adds than this run on one thread: below it
/// the split costs more than it saves (measured, see `BENCHMARKS.md`).
pub const PARALLEL_MIN_FLOPS: usize = 1 << 16;

/// Parts of fewer multiply-adds than this (about 0.1 ms on one core) are
/// not taken over by another thread: a thread that arrives a microsecond
/// late would find its part gone and the other doing twice the work.
const STEAL_MIN: usize = 1 << 22;

/// Parts to cut an `m×k×n` product into when `available` threads may run
/// the step.
pub fn parts_for(m: usize, k: usize, n: usize, available: usize) -> usize {
    if m * k * n >= PARALLEL_MIN_FLOPS && available > 1 {
        available
    } else {
        1
    }
}

/// The entry point generated code calls: the parts `thread`,
/// `thread + threads`, ... of the product, for thread `thread` of
/// `threads`, and of a large product also the parts the other threads have
/// not started (see [`run_parts`]).
///
/// # Safety
/// `desc` points to a live descriptor whose views lie inside the arena at
/// `arena` (the memory plan guarantees it), no other thread writes what
/// the product reads or writes, every thread of the team calls it once
/// for this product, and the threads meet at a barrier before any of them
/// calls it for this descriptor again.
pub unsafe extern "C" fn nnc_matmul(desc: *const MatMulDesc, arena: *mut f32, thread: usize, threads: usize) {
    unsafe { run_parts(desc, arena, thread, threads, matmul, true) }
}

/// The signature of [`matmul`].
pub type MatMul = unsafe fn(
    usize,
    usize,
    usize,
    *const f32,
    (isize, isize),
    *const f32,
    (isize, isize),
    *mut f32,
    (isize, isize),
    bool,
);

/// Columns a cut by columns keeps together: a part takes whole vectors of
/// this many.
const COLUMN_VECTOR: usize = 16;

/// Rows a part of a product cut by rows has at least (else it is cut by
/// columns, see [`by_columns`]). A recurrence's products have the batch's
/// rows (32 for the char LSTM): cut by rows, each thread computes the rows
/// of the state that its share of the cell's element-wise kernels computes
/// and reads, so the state stays in its core's cache from step to step.
/// Cut by columns, each thread read the whole state every step, half of it
/// from the other core: the same step in the minutes the host places the
/// two vCPUs near, 4–9 % slower when it places them far (`BENCHMARKS.md`,
/// "Which core reads a weight").
pub const MIN_PART_ROWS: usize = 16;

/// Whether a product cut into `parts` is cut by columns: it has fewer rows
/// than [`MIN_PART_ROWS`] and two of the widest microkernel's tiles per
/// part, or is a [`wide_transposed`] one, has at least one
/// `COLUMN_VECTOR` per part (a product one vector wide cut by columns left
/// one part empty), and is not cut by batch entries. Its parts are then
/// computed by [`packed::gemm`].
pub fn by_columns(d: &MatMulDesc, entries: usize, parts: usize) -> bool {
    let few_rows = d.m < MIN_PART_ROWS.min(2 * kernel::best().mr) * parts;
    parts > 1
        && entries < parts
        && (few_rows || wide_transposed(d.m, d.k, d.n, (d.b.row, d.b.col)))
        && d.n.div_ceil(COLUMN_VECTOR) >= parts
        && own_kernel()
}

/// Whether a product that is not [`by_columns`] is still cut by columns,
/// each part by the `gemm` crate: one matrix with few rows (at most 256)
/// and a wide, row-major `B` (at least 256 columns, so each part is at
/// least 128 wide). Cut by rows, every thread would pack all of `B` (a
/// layer's weight, 3-4 MB for mlp-wide) for its few rows; by columns each
/// packs its share (mlp-wide's forward products: 15 % less time, see
/// `BENCHMARKS.md`). A transposed `B` keeps the row cut: its product goes
/// through a transposed result, which is slower cut by columns.
fn crate_columns(d: &MatMulDesc, entries: usize, parts: usize) -> bool {
    parts > 1 && entries == 1 && d.b.col == 1 && d.m <= 256 && d.n >= 256
}

/// [`nnc_matmul`] with the single products computed by `product` (and by
/// [`packed::gemm`] when the parts are columns, if `columns` allows it).
///
/// # Safety
/// As [`nnc_matmul`].
pub unsafe fn run_parts(
    desc: *const MatMulDesc,
    arena: *mut f32,
    thread: usize,
    threads: usize,
    product: MatMul,
    columns: bool,
) {
    let d = unsafe { &*desc };
    if d.by_depth != 0 {
        return unsafe { depth::run_parts(d, arena, thread, threads, product) };
    }
    let arena = arena as usize;
    let entries: usize = d.batch.iter().product();
    // One part: batch entries `b0..b1`, rows `i0..i1` of each.
    let part = |(b0, b1, i0, i1): (usize, usize, usize, usize)| {
        let arena = arena as *mut f32;
        for b in b0..b1 {
            let at = |o: &Operand, rows: usize| o.at(&d.batch, b) + rows as isize * o.row;
            unsafe {
                product(
                    i1 - i0,
                    d.k,
                    d.n,
                    arena.offset(at(&d.a, i0)),
                    (d.a.row, d.a.col),
                    arena.offset(at(&d.b, 0)),
                    (d.b.row, d.b.col),
                    arena.offset(at(&d.c, i0)),
                    (d.c.row, d.c.col),
                    d.accumulate != 0,
                );
            }
        }
    };
    let parts = d.parts.max(1);
    // Cut by columns: nnc's own product when `by_columns`, else the `gemm`
    // crate's (through `product`) when `crate_columns`.
    let own_columns = columns && by_columns(d, entries, parts);
    let columns = own_columns || crate_columns(d, entries, parts);
    let column_product: MatMul = if own_columns { packed::gemm } else { product };
    let run = |p: usize| {
        let split = |n: usize| (n * p / parts, n * (p + 1) / parts);
        if columns {
            // Columns `j0..j1` of every entry, in whole vectors.
            let vectors = d.n.div_ceil(COLUMN_VECTOR);
            let (j0, j1) = split(vectors);
            let (j0, j1) = (COLUMN_VECTOR * j0, (COLUMN_VECTOR * j1).min(d.n));
            for b in 0..entries {
                let at = |o: &Operand, cols: usize| o.at(&d.batch, b) + cols as isize * o.col;
                let arena = arena as *mut f32;
                unsafe {
                    column_product(
                        d.m,
                        d.k,
                        j1 - j0,
                        arena.offset(at(&d.a, 0)),
                        (d.a.row, d.a.col),
                        arena.offset(at(&d.b, j0)),
                        (d.b.row, d.b.col),
                        arena.offset(at(&d.c, j0)),
                        (d.c.row, d.c.col),
                        d.accumulate != 0,
                    );
                }
            }
        } else if entries >= parts {
            let (b0, b1) = split(entries);
            part((b0, b1, 0, d.m));
        } else {
            let (i0, i1) = split(d.m);
            part((0, entries, i0, i1));
        }
    };
    let part_size = d.m * d.k * d.n * entries / parts;
    if threads <= 1 || parts <= 1 || parts > usize::BITS as usize || part_size < STEAL_MIN {
        (thread..parts).step_by(threads.max(1)).for_each(run);
        return;
    }
    let (taken, done) = (&d.claims.taken, &d.claims.done);
    // This thread's own parts first (the rows the next kernel's share of
    // this thread reads), then any part another thread has not started:
    // a thread the machine has slowed leaves its parts to the others.
    // Which thread computes a part does not change its bits.
    let own = (thread..parts).step_by(threads);
    let others = (0..parts).rev().filter(|p| p % threads != thread);
    for p in own.chain(others) {
        let bit = 1usize << p;
        if taken.load(Ordering::Relaxed) & bit == 0 && taken.fetch_or(bit, Ordering::Relaxed) & bit == 0 {
            run(p);
        }
    }
    // The last thread out resets the claims for the next call, which comes
    // after a barrier every thread passes once done here.
    if done.fetch_add(1, Ordering::AcqRel) + 1 == threads {
        taken.store(0, Ordering::Relaxed);
        done.store(0, Ordering::Relaxed);
    }
}

/// `C = A @ B` (or `C += A @ B` when `accumulate`) for one matrix,
/// strides as `(row, col)`: nnc's own product when [`own_product`] says so
/// and the CPU has a vector microkernel, else the `gemm` crate's.
///
/// # Safety
/// Every pointer with its strides addresses valid, non-overlapping
/// (for `c`) memory of the given sizes.
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul(
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
    if own_kernel() && own_product(m, k, n, b_s) {
        unsafe { packed::gemm(m, k, n, a, a_s, b, b_s, c, c_s, accumulate) }
    } else {
        unsafe { crate_matmul(m, k, n, a, a_s, b, b_s, c, c_s, accumulate) }
    }
}

/// Whether this CPU has a vector microkernel for [`packed::gemm`] (AVX2 or
/// AVX-512; on others every product goes to the `gemm` crate).
pub fn own_kernel() -> bool {
    kernel::best().mr > kernel::SCALAR.mr
}

/// Whether cutting the product of `desc` into any number of parts gives
/// the bits of the uncut product: its parts are whole batch entries, or it
/// and every piece of it go to nnc's own product (whose sums do not depend
/// on the cut; rows and columns only ever shrink, so a piece of an own
/// product is one too).
pub fn cut_keeps_bits(desc: &MatMulDesc) -> bool {
    let entries: usize = desc.batch.iter().product();
    desc.by_depth != 0
        || entries >= desc.parts
        || (own_kernel() && own_product(desc.m, desc.k, desc.n, (desc.b.row, desc.b.col)))
}

/// Whether an `m×k×n` product (`B`'s strides `b`) runs faster as nnc's
/// own than in the `gemm` crate on an AVX-512 Xeon (measured, see
/// `BENCHMARKS.md`): thin ones (one panel of `B`, `n ≤ 32`: the crate's
/// blocking costs more there), those with few rows (`m ≤ 48`: `B` read in
/// place, a transposed `B` packed by 8×8 blocks), and the
/// [`wide_transposed`] ones. The crate stays ahead on the large
/// square-ish ones.
pub fn own_product(m: usize, k: usize, n: usize, b: (isize, isize)) -> bool {
    n <= 32 || m <= 48 || wide_transposed(m, k, n, b)
}

/// Whether `C = A @ Bᵀ` has few rows (at most 256) and is wide (at least
/// 256 columns and 256 deep), `B` stored transposed: a layer's input
/// gradient `dY·Wᵀ` at a training batch, `W` at least 256 KB. Cut by
/// columns, each thread reads only its rows of `W` — the rows its share of
/// the weight gradient and of the optimizer's update write — where cut by
/// rows both threads read all of `W`, and every line the update then
/// writes is taken from the other core's cache (the wide MLP's
/// second-layer update ran 0.8 ms on two threads against 0.47 on one;
/// `BENCHMARKS.md`, "Which core reads a weight"). Such a product is nnc's
/// own whether cut or not, so the cut keeps its bits.
pub fn wide_transposed(m: usize, k: usize, n: usize, (b_row, b_col): (isize, isize)) -> bool {
    m <= 256 && k >= 256 && n >= 256 && b_row == 1 && b_col != 1
}

/// [`matmul`] through the `gemm` crate.
///
/// # Safety
/// As [`matmul`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn crate_matmul(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    (a_row, a_col): (isize, isize),
    b: *const f32,
    (b_row, b_col): (isize, isize),
    c: *mut f32,
    (c_row, c_col): (isize, isize),
    accumulate: bool,
) {
    if m == 0 || n == 0 || k == 0 {
        // Nothing to multiply: `C` is zeroed or kept, as nnc's own does it.
        let (a_s, b_s, c_s) = ((a_row, a_col), (b_row, b_col), (c_row, c_col));
        return unsafe { packed::gemm(m, k, n, a, a_s, b, b_s, c, c_s, accumulate) };
    }
    if b_row == 1 && b_col != 1 && c_col == 1 && through_transposed_result(m, k, n) {
        return SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            if scratch.len() < m * n {
                scratch.resize(m * n, 0.0);
            }
            let t = scratch.as_mut_ptr();
            // Cᵀ into the scratch (element (i, j) at j·m + i), then C from it:
            // transposed in blocks of 8×8 when written, added one by one.
            unsafe { crate_matmul(m, k, n, a, (a_row, a_col), b, (b_row, b_col), t, (1, m as isize), false) };
            if !accumulate {
                return unsafe { nnc_gemm::packed::transpose(t, m as isize, n, m, c, c_row as usize) };
            }
            for i in 0..m {
                let row = unsafe { c.offset(i as isize * c_row) };
                for j in 0..n {
                    let value = unsafe { *t.add(j * m + i) };
                    unsafe { *row.add(j) += value };
                }
            }
        });
    }
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            c_col,
            c_row,
            accumulate,
            a,
            a_col,
            a_row,
            b,
            b_col,
            b_row,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// Whether `C = A @ Bᵀ` (the right operand stored transposed, every
/// layer's input gradient) is faster computed as `Cᵀ` into a scratch and
/// copied: the `gemm` crate runs that layout at 2-4x the rate of a
/// row-major `C` when the left operand has few rows and the inner size is
/// large (measured alone, see `BENCHMARKS.md`: 64x1024x1024 3.45 -> 0.87
/// ms; 128x128x512 and 1024x512x128 are slower that way; 32x512x128 was
/// faster alone but made the LSTM's step slower, cut in parts of 16 rows).
fn through_transposed_result(m: usize, k: usize, n: usize) -> bool {
    (64..=256).contains(&m) && k >= 512 && n >= 128 && (m <= 128 || k >= 1024)
}

thread_local! {
    /// Each thread's room for a transposed result.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests;
