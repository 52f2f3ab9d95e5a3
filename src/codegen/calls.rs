//! Functions generated code calls: random normals (the interpreter's own
//! function, so both backends draw the same numbers), `sin`, `cos` and
//! `pow` (computed in f64 like the interpreter, then rounded), copies, and
//! the split of a kernel between threads.

use crate::interp::random;

/// Normal number `index` of `stream`; `table` starts with `seed, step`.
///
/// # Safety
/// `table` points to at least two `u64`.
pub unsafe extern "C" fn nnc_normal(table: *const u64, stream: u64, index: u64) -> f32 {
    let (seed, step) = unsafe { (*table, *table.add(1)) };
    random::tensor_normal(seed, step, stream, index) as f32
}

pub extern "C" fn nnc_sin(x: f32) -> f32 {
    f64::from(x).sin() as f32
}

pub extern "C" fn nnc_cos(x: f32) -> f32 {
    f64::from(x).cos() as f32
}

pub extern "C" fn nnc_pow(x: f32, y: f32) -> f32 {
    f64::from(x).powf(f64::from(y)) as f32
}

/// Copies `len` floats inside the arena.
///
/// # Safety
/// Both ranges lie inside the arena and do not overlap.
pub unsafe extern "C" fn nnc_copy(arena: *mut f32, from: i64, to: i64, len: i64) {
    unsafe { std::ptr::copy_nonoverlapping(arena.add(from as usize), arena.add(to as usize), len as usize) };
}

/// Copies `rows` rows of `len` floats inside the arena, row `r` from
/// `from + r·from_stride` to `to + r·to_stride` (a loop's step of a
/// sequence into its slot, a step's result into the stacked output).
///
/// A loop's stacks outgrow the caches at long sequences, and a step's rows
/// lie a whole sequence apart, where the hardware's prefetchers do not
/// follow. So when `from_ahead` (or `to_ahead`) is not zero, each row of
/// the step that many floats away is fetched into the cache as this row is
/// copied, for a later step's copy.
///
/// # Safety
/// Every row lies inside the arena, and no source row overlaps a target
/// row. (The rows ahead need not lie anywhere: a prefetch never faults.)
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn nnc_copy_rows(
    arena: *mut f32,
    from: i64,
    from_stride: i64,
    to: i64,
    to_stride: i64,
    rows: i64,
    len: i64,
    from_ahead: i64,
    to_ahead: i64,
) {
    for (source, target) in row_pairs(rows, (from, from_stride), (to, to_stride)) {
        if from_ahead != 0 {
            prefetch(arena.wrapping_offset((source + from_ahead) as isize), len);
        }
        if to_ahead != 0 {
            prefetch(arena.wrapping_offset((target + to_ahead) as isize), len);
        }
        unsafe { std::ptr::copy_nonoverlapping(arena.add(source as usize), arena.add(target as usize), len as usize) };
    }
}

/// Where each of `rows` rows starts on either side of a strided copy.
fn row_pairs(
    rows: i64,
    (from, from_stride): (i64, i64),
    (to, to_stride): (i64, i64),
) -> impl Iterator<Item = (i64, i64)> {
    (0..rows).map(move |r| (from + r * from_stride, to + r * to_stride))
}

/// [`nnc_copy_rows`] with stores that go around the caches (a result
/// stacked over a sequence too long for them, read back only after the
/// loop): no line is read before it is written, and the lines do not push
/// out what the loop reads again. Ends with a store fence, so the rows are
/// in memory before the thread meets the others.
///
/// # Safety
/// As [`nnc_copy_rows`].
pub unsafe extern "C" fn nnc_stream_rows(
    arena: *mut f32,
    from: i64,
    from_stride: i64,
    to: i64,
    to_stride: i64,
    rows: i64,
    len: i64,
) {
    for (source, target) in row_pairs(rows, (from, from_stride), (to, to_stride)) {
        unsafe { stream(arena.add(source as usize), arena.add(target as usize), len as usize) };
    }
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

/// Copies `len` floats from `from` to `to`, streaming the 16-byte aligned
/// middle.
///
/// # Safety
/// Both ranges are valid and do not overlap.
unsafe fn stream(from: *const f32, to: *mut f32, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_loadu_ps, _mm_stream_ps};
        let head = (to.align_offset(16)).min(len);
        unsafe { std::ptr::copy_nonoverlapping(from, to, head) };
        let mut i = head;
        while i + 4 <= len {
            // Safety: `to + i` is 16-byte aligned and both lie in range.
            unsafe { _mm_stream_ps(to.add(i), _mm_loadu_ps(from.add(i))) };
            i += 4;
        }
        unsafe { std::ptr::copy_nonoverlapping(from.add(i), to.add(i), len - i) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    unsafe {
        std::ptr::copy_nonoverlapping(from, to, len)
    };
}

/// Fetches the cache lines of `len` floats at `at` into every level of
/// the cache (`prefetcht0`; the hint for writing, `prefetchw`, would need
/// the instruction enabled at build time and is not used).
fn prefetch(at: *const f32, len: i64) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let mut line = 0;
        while line < len {
            // Safety: a prefetch is a hint; it reads nothing and never faults.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(at.wrapping_offset(line as isize) as *const i8) };
            line += 16;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (at, len);
}

/// Sums the `len` floats at `offset` of the arena over the processes of a
/// data-parallel run, in place (`all_reduce`, `crate::collective`); with no
/// collective (one process) the sum is the buffer itself.
///
/// # Safety
/// `collective` is null or points to a live handle; the range lies inside
/// the arena.
pub unsafe extern "C" fn nnc_all_reduce(
    collective: *const crate::collective::Handle,
    arena: *mut f32,
    offset: i64,
    len: i64,
) {
    if let Some(handle) = unsafe { collective.as_ref() } {
        let values = unsafe { std::slice::from_raw_parts_mut(arena.add(offset as usize), len as usize) };
        handle.0.sum_f32(values);
    }
}

/// Zeroes `rows` rows of `len` floats inside the arena, row `r` at `to +
/// r·to_stride` (a loop's step that lies before or after the steps of a
/// shifted sequence).
///
/// # Safety
/// Every row lies inside the arena.
pub unsafe extern "C" fn nnc_zero_rows(arena: *mut f32, to: i64, to_stride: i64, rows: i64, len: i64) {
    for r in 0..rows {
        unsafe { std::ptr::write_bytes(arena.add((to + r * to_stride) as usize), 0, len as usize) };
    }
}

/// `$portable` (an `#[inline(always)]` loop the compiler vectorizes)
/// compiled for each vector instruction set, `$avx512` and `$avx2`, and
/// `$on_cpu`, which runs the widest the CPU has (AVX-512 as
/// `nnc_gemm::kernel::avx512` decides, so `NNC_ISA=avx2` caps it), else
/// the portable build. Same arguments, same safety contract as `$portable`.
macro_rules! per_instruction_set {
    ($on_cpu:ident, $avx512:ident, $avx2:ident, $portable:ident($($arg:ident: $ty:ty),* $(,)?)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        unsafe fn $avx512($($arg: $ty),*) {
            unsafe { $portable($($arg),*) }
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $avx2($($arg: $ty),*) {
            unsafe { $portable($($arg),*) }
        }

        unsafe fn $on_cpu($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                if nnc_gemm::kernel::avx512() {
                    // SAFETY: the CPU has AVX-512F; the rest is the caller's.
                    return unsafe { $avx512($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: as above, with AVX2.
                    return unsafe { $avx2($($arg),*) };
                }
            }
            unsafe { $portable($($arg),*) }
        }
    };
}

/// Sums `columns` columns of `rows` rows, `stride` floats apart, from `x`
/// into `out`: each column's sum in row order (the order of every other
/// path of a reduction over leading axes, so the same bits), blocks of 64
/// columns kept in vector registers through all the rows.
///
/// # Safety
/// Every element named lies in its allocation; `out` does not overlap `x`.
pub unsafe extern "C" fn nnc_column_sums(x: *const f32, rows: i64, stride: i64, out: *mut f32, columns: i64) {
    let (rows, stride, columns) = (rows as usize, stride as isize, columns as usize);
    // SAFETY: the ranges are the caller's.
    unsafe { column_sums_on_cpu(x, rows, stride, out, columns) }
}

per_instruction_set!(
    column_sums_on_cpu,
    column_sums_avx512,
    column_sums_avx2,
    column_sums(x: *const f32, rows: usize, stride: isize, out: *mut f32, columns: usize)
);

#[inline(always)]
unsafe fn column_sums(x: *const f32, rows: usize, stride: isize, out: *mut f32, columns: usize) {
    let mut first = 0;
    while columns - first >= 64 {
        unsafe { column_block::<64>(x.add(first), rows, stride, out.add(first), 64) };
        first += 64;
    }
    for width in [32, 16, 8] {
        if columns - first >= width {
            unsafe {
                match width {
                    32 => column_block::<32>(x.add(first), rows, stride, out.add(first), 32),
                    16 => column_block::<16>(x.add(first), rows, stride, out.add(first), 16),
                    _ => column_block::<8>(x.add(first), rows, stride, out.add(first), 8),
                }
            };
            first += width;
        }
    }
    if first < columns {
        unsafe { column_block::<8>(x.add(first), rows, stride, out.add(first), columns - first) };
    }
}

/// The sums of `width ≤ W` columns, kept in `W` lanes through the rows.
#[inline(always)]
unsafe fn column_block<const W: usize>(x: *const f32, rows: usize, stride: isize, out: *mut f32, width: usize) {
    let mut sums = [0.0f32; W];
    for r in 0..rows {
        let row = unsafe { std::slice::from_raw_parts(x.offset(r as isize * stride), width) };
        for (sum, &value) in sums.iter_mut().zip(row) {
            *sum += value;
        }
    }
    unsafe { std::ptr::copy_nonoverlapping(sums.as_ptr(), out, width) };
}

/// Adds row `i` of `values` (`count` rows of `width` floats, dense) into
/// row `ids[i]` of `out` (`rows` rows of `width`), for each `i` in order;
/// an id (stored as a float, as the arena holds integers) is truncated, and
/// one outside `0..rows` (or NaN) adds nothing — as the generated scatter
/// does, so the same bits.
///
/// # Safety
/// Every element named lies in its allocation; `out` does not overlap
/// `values` or `ids`.
pub unsafe extern "C" fn nnc_scatter_rows(
    values: *const f32,
    ids: *const f32,
    count: i64,
    width: i64,
    out: *mut f32,
    rows: i64,
) {
    let (count, width, rows) = (count as usize, width as usize, rows as usize);
    // SAFETY: the ranges are the caller's.
    unsafe { scatter_rows_on_cpu(values, ids, count, width, out, rows) }
}

per_instruction_set!(
    scatter_rows_on_cpu,
    scatter_rows_avx512,
    scatter_rows_avx2,
    scatter_rows(values: *const f32, ids: *const f32, count: usize, width: usize, out: *mut f32, rows: usize)
);

#[inline(always)]
unsafe fn scatter_rows(values: *const f32, ids: *const f32, count: usize, width: usize, out: *mut f32, rows: usize) {
    for i in 0..count {
        let id = unsafe { *ids.add(i) }.trunc();
        if !(id >= 0.0 && id < rows as f32) {
            continue;
        }
        // SAFETY: the caller's ranges; `id` is a row of `out`.
        let (from, to) = unsafe {
            (
                std::slice::from_raw_parts(values.add(i * width), width),
                std::slice::from_raw_parts_mut(out.add(id as usize * width), width),
            )
        };
        for (to, &from) in to.iter_mut().zip(from) {
            *to += from;
        }
    }
}

/// A kernel function: `(arena, random table, start, end) -> status`.
pub type KernelFn = unsafe extern "C" fn(*mut f32, *const u64, i64, i64) -> i32;

/// The random table of a step: `seed, step`, then per stream slot the
/// stream's key (draw `index` is `random::lane(key, index)`).
pub fn random_table(seed: u64, step: u64, streams: &super::emit::Streams) -> Vec<u64> {
    let mut table = vec![0u64; streams.len() + 2];
    fill_random_table(&mut table, seed, step, streams);
    table
}

/// [`random_table`] into an existing table of the right length.
pub fn fill_random_table(table: &mut [u64], seed: u64, step: u64, streams: &super::emit::Streams) {
    table[0] = seed;
    table[1] = step;
    for (&stream, &slot) in streams {
        table[slot] = random::stream_key(seed, step, u64::from(stream));
    }
}

/// Per-kernel time, when a step is compiled with `NNC_PROFILE` set: the
/// step calls this after each kernel with the kernel's number (and with
/// -1 when it starts).
pub extern "C" fn nnc_tick(kernel: i64) {
    PROFILE.with(|p| {
        let mut p = p.borrow_mut();
        let now = std::time::Instant::now();
        let since = now - p.last;
        p.last = now;
        if kernel >= 0 {
            add_kernel_time(&mut p.totals, kernel as usize, since);
        }
    });
}

/// Adds `time` to kernel `k`'s total in `totals`, growing it as needed.
pub fn add_kernel_time(totals: &mut Vec<std::time::Duration>, k: usize, time: std::time::Duration) {
    if totals.len() <= k {
        totals.resize(k + 1, std::time::Duration::ZERO);
    }
    totals[k] += time;
}

struct Profile {
    last: std::time::Instant,
    totals: Vec<std::time::Duration>,
}

thread_local! {
    static PROFILE: std::cell::RefCell<Profile> = std::cell::RefCell::new(Profile {
        last: std::time::Instant::now(),
        totals: Vec::new(),
    });
}

/// Total time per kernel so far on this thread (see [`nnc_tick`]), and
/// resets the totals.
pub fn take_profile() -> Vec<std::time::Duration> {
    PROFILE.with(|p| std::mem::take(&mut p.borrow_mut().totals))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows copied with rows ahead fetched, or streamed, land where a plain
    /// copy puts them and touch nothing else: rows of every length from
    /// one float to past a cache line, at targets of every alignment (the
    /// streamed copy's unaligned head and tail), rows ahead inside the
    /// arena, past its end and before its start.
    #[test]
    fn copied_and_streamed_rows_land_where_a_plain_copy_puts_them() {
        for len in [1usize, 3, 4, 5, 15, 16, 17, 64, 100] {
            for shift in 0..4 {
                let (rows, from, from_stride) = (5usize, 3usize, len + 2);
                let (to, to_stride) = (from + rows * from_stride + shift, len + 5);
                let size = to + rows * to_stride + 8;
                let start: Vec<f32> = (0..size).map(|i| i as f32 * 0.5 - 7.0).collect();
                let mut want = start.clone();
                for r in 0..rows {
                    for i in 0..len {
                        want[to + r * to_stride + i] = start[from + r * from_stride + i];
                    }
                }
                let args = |arena: &mut Vec<f32>| {
                    let a = [from, from_stride, to, to_stride, rows, len].map(|v| v as i64);
                    (arena.as_mut_ptr(), a)
                };
                for ahead in [
                    (0i64, 0i64),
                    (2, 7),
                    (1 << 40, -(1 << 40)),
                    (-(size as i64), size as i64),
                ] {
                    let mut arena = start.clone();
                    let (p, a) = args(&mut arena);
                    unsafe { nnc_copy_rows(p, a[0], a[1], a[2], a[3], a[4], a[5], ahead.0, ahead.1) };
                    assert_eq!(
                        arena, want,
                        "copied: {len} floats a row, target shifted {shift}, ahead {ahead:?}"
                    );
                }
                let mut arena = start.clone();
                let (p, a) = args(&mut arena);
                unsafe { nnc_stream_rows(p, a[0], a[1], a[2], a[3], a[4], a[5]) };
                assert_eq!(arena, want, "streamed: {len} floats a row, target shifted {shift}");
            }
        }
    }

    /// Every instruction set's column sums give the bits of each column
    /// summed in row order, for widths that take every block (64, 32, 16,
    /// 8 and a ragged rest) and rows `stride` apart: a host with AVX-512
    /// would otherwise never run the AVX2 path the AVX2-only hosts take.
    #[test]
    fn column_sums_are_row_order_sums_on_every_instruction_set() {
        for columns in [1usize, 7, 8, 16, 29, 64, 100, 125] {
            let (rows, stride) = (9usize, columns + 3);
            let x: Vec<f32> = (0..rows * stride)
                .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.37 + (i % 3) as f32 * 1e5)
                .collect();
            let want: Vec<u32> = (0..columns)
                .map(|c| {
                    let mut sum = 0.0f32;
                    for r in 0..rows {
                        sum += x[r * stride + c];
                    }
                    sum.to_bits()
                })
                .collect();
            let run = |f: &dyn Fn(*mut f32)| {
                let mut out = vec![f32::NAN; columns + 1];
                f(out.as_mut_ptr());
                assert!(out[columns].is_nan(), "{columns} columns: wrote past the end");
                out[..columns].iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
            };
            let (p, s) = (x.as_ptr(), stride as isize);
            let scalar = run(&|out| unsafe { column_sums(p, rows, s, out, columns) });
            assert_eq!(scalar, want, "scalar, {columns} columns");
            let dispatched = run(&|out| unsafe { nnc_column_sums(p, rows as i64, stride as i64, out, columns as i64) });
            assert_eq!(dispatched, want, "dispatched, {columns} columns");
            #[cfg(target_arch = "x86_64")]
            {
                if std::is_x86_feature_detected!("avx2") {
                    let avx2 = run(&|out| unsafe { column_sums_avx2(p, rows, s, out, columns) });
                    assert_eq!(avx2, want, "AVX2, {columns} columns");
                }
                if std::is_x86_feature_detected!("avx512f") {
                    let avx512 = run(&|out| unsafe { column_sums_avx512(p, rows, s, out, columns) });
                    assert_eq!(avx512, want, "AVX-512, {columns} columns");
                }
            }
        }
    }

    /// Rows added into the rows their ids name, in id order, ids outside
    /// the table (negative, too large, NaN) dropped and fractions
    /// truncated: the same bits on every instruction set as one add at a
    /// time, and nothing written past the table.
    #[test]
    fn scattered_rows_are_added_in_id_order_on_every_instruction_set() {
        let ids: Vec<f32> = vec![2.0, 0.0, 2.7, -1.0, 5.0, f32::NAN, 1.0, 2.0, 4.9, -0.5];
        let rows = 5;
        for width in [1usize, 7, 16, 33, 512] {
            let values: Vec<f32> = (0..ids.len() * width)
                .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.37 + (i % 3) as f32 * 1e5)
                .collect();
            let start: Vec<f32> = (0..rows * width).map(|i| (i % 11) as f32 * 0.25).collect();
            let mut want = start.clone();
            for (i, &id) in ids.iter().enumerate() {
                let row = match id.trunc() {
                    r if r >= 0.0 && r < rows as f32 => r as usize,
                    _ => continue,
                };
                for c in 0..width {
                    want[row * width + c] += values[i * width + c];
                }
            }
            // -0.5 truncates to row 0; the -1, 5 and NaN ids add nothing.
            assert_ne!(want, start);
            let run = |f: &dyn Fn(*mut f32)| {
                let mut out = start.clone();
                out.push(f32::NAN);
                f(out.as_mut_ptr());
                assert!(out[rows * width].is_nan(), "width {width}: wrote past the end");
                out[..rows * width].iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
            };
            let want: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
            let (v, i, n) = (values.as_ptr(), ids.as_ptr(), ids.len());
            assert_eq!(run(&|out| unsafe { scatter_rows(v, i, n, width, out, rows) }), want);
            let dispatched = run(&|out| unsafe { nnc_scatter_rows(v, i, n as i64, width as i64, out, rows as i64) });
            assert_eq!(dispatched, want, "dispatched, width {width}");
            #[cfg(target_arch = "x86_64")]
            {
                if std::is_x86_feature_detected!("avx2") {
                    let avx2 = run(&|out| unsafe { scatter_rows_avx2(v, i, n, width, out, rows) });
                    assert_eq!(avx2, want, "AVX2, width {width}");
                }
                if std::is_x86_feature_detected!("avx512f") {
                    let avx512 = run(&|out| unsafe { scatter_rows_avx512(v, i, n, width, out, rows) });
                    assert_eq!(avx512, want, "AVX-512, width {width}");
                }
            }
        }
    }
}
