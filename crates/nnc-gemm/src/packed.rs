//! nnc's own matrix product: `C = A @ B` or `C += A @ B` for strided f32
//! matrices, blocked and packed as in BLIS/GotoBLAS around the
//! microkernels of [`super::kernel`].
//!
//! In: sizes `m, k, n`, each operand as a pointer and `(row, col)` strides
//! (any, transposed views included), and whether to accumulate. Out: `C`.
//!
//! Loops: columns of `C` in blocks of `NC`, the inner dimension in blocks of
//! `KC` (`B`'s block packed into `KC×NR` panels, zero-padded on the right;
//! a row-major `B` is read in place when `C` has at most `DIRECT_ROWS`
//! rows, but for a ragged last panel),
//! rows in blocks of `MC` (`A`'s block packed into `MR×KC` panels when it
//! has no unit stride, or more than `DIRECT_ROWS` rows and is read by more
//! than one panel of `B`; else the microkernel reads `A` in place), then
//! one microkernel call per `MR×NR` tile. The packing buffers are each
//! thread's own and reused.
//!
//! **Sum order.** Every `C[i, j]` is one chain of fused multiply-adds over
//! `p = 0, 1, .., k-1` in increasing order, starting from `0.0`, or from
//! the old `C[i, j]` when accumulating (`C += A @ B` is the chain started
//! at `C`, not the product added to `C` afterwards). A block of `KC` after
//! the first continues the chain from the partial sums stored in `C`. So an
//! element's bits depend only on row `i` of `A`, column `j` of `B` and the
//! old `C[i, j]`: not on `m` or `n`, on how a product is cut into parts by
//! rows or by columns, on which thread runs a part, or on the instruction
//! set (the AVX-512, AVX2 and scalar kernels give the same bits).

use super::kernel::{self, Isa, Tile};
use std::cell::RefCell;

/// Inner-dimension block: a `KC×NR` panel of `B` and an `MR×KC` panel of
/// `A` stay in L1 while a tile is computed.
const KC: usize = 256;
/// Row block: `MC×KC` of packed `A` stays in L2 over the panels of `B`.
const MC: usize = 144;
/// Column block: a `KC×NC` block of packed `B` (1 MiB).
const NC: usize = 1024;
/// Products of at most this many rows read a row-major `B` in place, and
/// `A` in place when one of its strides is 1.
const DIRECT_ROWS: usize = 48;

/// `C = A @ B` (or `C += A @ B`) with this CPU's microkernel for `n`
/// columns ([`kernel::for_columns`]).
///
/// # Safety
/// Every pointer with its strides addresses valid memory of the given
/// sizes, `C`'s elements are distinct and no operand overlaps `C`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm(
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
    unsafe { gemm_with(kernel::for_columns(n), m, k, n, a, a_s, b, b_s, c, c_s, accumulate) }
}

/// 64-byte aligned scratch that grows and is kept.
#[derive(Default)]
struct Buffer(Vec<f32>);

impl Buffer {
    fn get(&mut self, len: usize) -> *mut f32 {
        if self.0.len() < len + 16 {
            self.0.resize(len + 16, 0.0);
        }
        let p = self.0.as_mut_ptr();
        unsafe { p.add(p.align_offset(64)) }
    }
}

thread_local! {
    /// Each thread's packed `A`, packed `B` and a tile of `C` (for a `C`
    /// whose columns are not contiguous).
    static BUFFERS: RefCell<[Buffer; 3]> = RefCell::new(Default::default());
}

/// [`gemm`] with the microkernel of `isa` (which the CPU must have).
///
/// # Safety
/// As [`gemm`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_with(
    isa: &Isa,
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    (a_rs, a_cs): (isize, isize),
    b: *const f32,
    (b_rs, b_cs): (isize, isize),
    c: *mut f32,
    (c_rs, c_cs): (isize, isize),
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    unsafe { *c.offset(i as isize * c_rs + j as isize * c_cs) = 0.0 };
                }
            }
        }
        return;
    }
    let (mr, nr) = (isa.mr, isa.nr);
    // A few rows of `A` stay in L1 across the panels of `B`: read in place
    // (packing them cost the LSTM's steps 3 %, see `BENCHMARKS.md`).
    let pack_a = (n > 2 * nr && m > DIRECT_ROWS) || (a_rs != 1 && a_cs != 1);
    // Few rows read each panel of `B` a few times only: the kernel reads a
    // row-major `B` in place (but for a ragged last panel).
    let direct_b = b_cs == 1 && m <= DIRECT_ROWS;
    BUFFERS.with(|buffers| {
        let mut buffers = buffers.borrow_mut();
        let [pa, pb, pc] = &mut *buffers;
        let pa = pa.get(MC.next_multiple_of(mr) * KC);
        let pb = pb.get(KC * NC.next_multiple_of(nr));
        let tile_c = pc.get(mr * nr);
        for jc in (0..n).step_by(NC) {
            let nb = NC.min(n - jc);
            for pc in (0..k).step_by(KC) {
                let kb = KC.min(k - pc);
                let b_block = unsafe { b.offset(pc as isize * b_rs + jc as isize * b_cs) };
                let full = if direct_b { nb / nr * nr } else { 0 };
                unsafe { pack_b(kb, nb - full, b_block.add(full), (b_rs, b_cs), nr, pb) };
                let load_c = accumulate || pc > 0;
                for ic in (0..m).step_by(MC) {
                    let mb = MC.min(m - ic);
                    let a_block = unsafe { a.offset(ic as isize * a_rs + pc as isize * a_cs) };
                    if pack_a {
                        unsafe { pack_a_block(mb, kb, a_block, (a_rs, a_cs), mr, pa) };
                    }
                    for jr in (0..nb).step_by(nr) {
                        let cols = nr.min(nb - jr);
                        let (b_panel, b_panel_rs) = if jr < full {
                            (unsafe { b_block.add(jr) }, b_rs)
                        } else {
                            (unsafe { pb.add((jr - full) * kb) } as *const f32, nr as isize)
                        };
                        for ir in (0..mb).step_by(mr) {
                            let rows = mr.min(mb - ir);
                            let (a, a_rs, a_cs) = if pack_a {
                                (unsafe { pa.add(ir * kb) } as *const f32, 1, mr as isize)
                            } else {
                                (unsafe { a_block.offset(ir as isize * a_rs) }, a_rs, a_cs)
                            };
                            let c = unsafe { c.offset((ic + ir) as isize * c_rs + (jc + jr) as isize * c_cs) };
                            let tile = Tile {
                                k: kb,
                                a,
                                a_rs,
                                a_cs,
                                b: b_panel,
                                b_rs: b_panel_rs,
                                c,
                                c_rs,
                                rows,
                                cols,
                                load_c,
                            };
                            if c_cs == 1 {
                                unsafe { (isa.kernel)(&tile) };
                            } else {
                                unsafe { strided_tile(isa, tile, c_cs, tile_c) };
                            }
                        }
                    }
                }
            }
        }
    });
}

/// A tile of a `C` whose columns are `c_cs` apart, through the contiguous
/// `scratch` (`MR×NR`).
unsafe fn strided_tile(isa: &Isa, tile: Tile, c_cs: isize, scratch: *mut f32) {
    let at = |i: usize, j: usize| unsafe { tile.c.offset(i as isize * tile.c_rs + j as isize * c_cs) };
    let inner = |i: usize, j: usize| unsafe { scratch.add(i * isa.nr + j) };
    if tile.load_c {
        for i in 0..tile.rows {
            for j in 0..tile.cols {
                unsafe { *inner(i, j) = *at(i, j) };
            }
        }
    }
    unsafe {
        (isa.kernel)(&Tile {
            c: scratch,
            c_rs: isa.nr as isize,
            ..tile
        })
    };
    for i in 0..tile.rows {
        for j in 0..tile.cols {
            unsafe { *at(i, j) = *inner(i, j) };
        }
    }
}

/// Packs `B`'s `kb×nb` block into panels of `nr` columns: element `(p, j)`
/// at `(j / nr)·kb·nr + p·nr + j % nr`, the last panel zero-padded.
unsafe fn pack_b(kb: usize, nb: usize, b: *const f32, (b_rs, b_cs): (isize, isize), nr: usize, to: *mut f32) {
    for jp in (0..nb).step_by(nr) {
        let cols = nr.min(nb - jp);
        let panel = unsafe { std::slice::from_raw_parts_mut(to.add(jp * kb), kb * nr) };
        let src = unsafe { b.offset(jp as isize * b_cs) };
        if b_cs == 1 {
            for (p, row) in panel.chunks_exact_mut(nr).enumerate() {
                let from = unsafe { std::slice::from_raw_parts(src.offset(p as isize * b_rs), cols) };
                row[..cols].copy_from_slice(from);
                row[cols..].fill(0.0);
            }
        } else if b_rs == 1 {
            // Columns of `B` are rows in memory.
            unsafe { transpose(src, b_cs, cols, kb, panel.as_mut_ptr(), nr) };
        } else {
            for j in 0..cols {
                let column = unsafe { src.offset(j as isize * b_cs) };
                for p in 0..kb {
                    panel[p * nr + j] = unsafe { *column.offset(p as isize * b_rs) };
                }
            }
        }
        if b_cs != 1 && cols < nr {
            for row in panel.chunks_exact_mut(nr) {
                row[cols..].fill(0.0);
            }
        }
    }
}

/// Packs `A`'s `mb×kb` block into panels of `mr` rows: element `(i, p)` at
/// `(i / mr)·kb·mr + p·mr + i % mr` (rows past `mb` are not read).
unsafe fn pack_a_block(mb: usize, kb: usize, a: *const f32, (a_rs, a_cs): (isize, isize), mr: usize, to: *mut f32) {
    for ip in (0..mb).step_by(mr) {
        let rows = mr.min(mb - ip);
        let panel = unsafe { std::slice::from_raw_parts_mut(to.add(ip * kb), kb * mr) };
        let src = unsafe { a.offset(ip as isize * a_rs) };
        if a_rs == 1 {
            for (p, column) in panel.chunks_exact_mut(mr).enumerate() {
                let from = unsafe { std::slice::from_raw_parts(src.offset(p as isize * a_cs), rows) };
                column[..rows].copy_from_slice(from);
            }
        } else if a_cs == 1 {
            unsafe { transpose(src, a_rs, rows, kb, panel.as_mut_ptr(), mr) };
        } else {
            for i in 0..rows {
                let row = unsafe { src.offset(i as isize * a_rs) };
                for p in 0..kb {
                    panel[p * mr + i] = unsafe { *row.offset(p as isize * a_cs) };
                }
            }
        }
    }
}

/// `to[p·width + r] = from[r·ld + p]` for `r < rows`, `p < len`: blocks of
/// 8×8 with AVX when the CPU has it, the rest one by one.
///
/// # Safety
/// Every element named lies in its allocation, and the two ranges do not
/// overlap.
pub unsafe fn transpose(from: *const f32, ld: isize, rows: usize, len: usize, to: *mut f32, width: usize) {
    let mut done = (0, 0);
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx") {
        done = (rows / 8 * 8, len / 8 * 8);
        for r in (0..done.0).step_by(8) {
            for p in (0..done.1).step_by(8) {
                unsafe { transpose8(from.offset(r as isize * ld + p as isize), ld, to.add(p * width + r), width) };
            }
        }
    }
    for r in 0..rows {
        let row = unsafe { from.offset(r as isize * ld) };
        let first = if r < done.0 { done.1 } else { 0 };
        for p in first..len {
            unsafe { *to.add(p * width + r) = *row.add(p) };
        }
    }
}

/// One 8×8 block of [`transpose`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn transpose8(from: *const f32, ld: isize, to: *mut f32, width: usize) {
    use std::arch::x86_64::*;
    unsafe {
        let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(from.offset(i as isize * ld)));
        let t: [__m256; 8] = std::array::from_fn(|i| {
            let (x, y) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
            if i % 2 == 0 {
                _mm256_unpacklo_ps(x, y)
            } else {
                _mm256_unpackhi_ps(x, y)
            }
        });
        // s[q] for q in 0..4 holds columns q and q + 4 of rows 0-3, s[q + 4]
        // of rows 4-7.
        let s: [__m256; 8] = std::array::from_fn(|q| {
            let base = q / 4 * 4;
            let (x, y) = (t[base + (q % 4) / 2], t[base + (q % 4) / 2 + 2]);
            if q % 2 == 0 {
                _mm256_shuffle_ps::<0x44>(x, y)
            } else {
                _mm256_shuffle_ps::<0xEE>(x, y)
            }
        });
        for q in 0..4 {
            _mm256_storeu_ps(to.add(q * width), _mm256_permute2f128_ps::<0x20>(s[q], s[q + 4]));
            _mm256_storeu_ps(to.add((q + 4) * width), _mm256_permute2f128_ps::<0x31>(s[q], s[q + 4]));
        }
    }
}
