//! Microkernels: one tile of `C` (at most `MR×NR` of the instruction set)
//! computed from a strip of `A` and a packed panel of `B`.
//!
//! In: a [`Tile`]: `k` steps; the strip of `A` (`rows` rows of `k`
//! elements, element `(i, p)` at `a + i·a_rs + p·a_cs`, either `a_rs` or
//! `a_cs` being 1 as the kernel's `UNIT_RS` says); the panel of `B`
//! (element `(p, j)` at `b + p·b_rs + j`, `NR` columns readable, those
//! from `cols` on ignored);
//! `C` (element `(i, j)` at `c + i·c_rs + j`) and whether to start from it.
//! Out: the `rows×cols` elements of `C`, each
//! `fma(a[i,k-1], b[k-1,j], ... fma(a[i,0], b[0,j], start))` with `start`
//! the old `C[i, j]` when `load_c`, else `0.0`: one fused multiply-add per
//! step in increasing `p`, whatever the instruction set, the tile's size or
//! the element's place in it. Every kernel here gives the same bits.

/// One microkernel call (see the module doc).
#[derive(Clone, Copy, Debug)]
pub struct Tile {
    pub k: usize,
    pub a: *const f32,
    pub a_rs: isize,
    pub a_cs: isize,
    pub b: *const f32,
    /// Distance between rows of `B`'s panel (`NR` when packed).
    pub b_rs: isize,
    pub c: *mut f32,
    pub c_rs: isize,
    pub rows: usize,
    pub cols: usize,
    pub load_c: bool,
}

/// An instruction set's microkernel and its tile.
#[derive(Clone, Copy, Debug)]
pub struct Isa {
    pub name: &'static str,
    /// Rows and columns of the largest tile (`B`'s panels are `NR` wide).
    pub mr: usize,
    pub nr: usize,
    /// Computes `tile` (with `UNIT_RS` = `tile.a_rs == 1`).
    ///
    /// # Safety
    /// The tile's pointers address what the module doc says, and the CPU
    /// has the instruction set.
    pub kernel: unsafe fn(&Tile),
}

/// Scalar `f32::mul_add`, for any CPU.
pub const SCALAR: Isa = Isa {
    name: "scalar",
    mr: 4,
    nr: 8,
    kernel: scalar,
};

/// AVX2 and FMA: 6×16 tiles, two `ymm` per row.
#[cfg(target_arch = "x86_64")]
pub const AVX2: Isa = Isa {
    name: "avx2",
    mr: 6,
    nr: 16,
    kernel: x86::avx2,
};

/// AVX-512F: 12×32 tiles, two `zmm` per row.
#[cfg(target_arch = "x86_64")]
pub const AVX512: Isa = Isa {
    name: "avx512",
    mr: 12,
    nr: 32,
    kernel: x86::avx512,
};

/// Whether to use AVX-512: the CPU has AVX-512F and `NNC_ISA` is not
/// `avx2`. `NNC_ISA=avx2` caps nnc's code at AVX2 and FMA (its own kernels
/// and the JIT's instructions), to measure on an AVX-512 host what an
/// AVX2-only one runs; decided once per process.
pub fn avx512() -> bool {
    static AVX512: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX512.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            is_x86_feature_detected!("avx512f") && std::env::var("NNC_ISA").map_or(true, |isa| isa != "avx2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

/// The instruction sets this process uses, widest first (the scalar one
/// last): those the CPU runs, AVX-512 only if [`avx512`].
pub fn available() -> Vec<Isa> {
    let mut isas = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if avx512() {
            isas.push(AVX512);
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            isas.push(AVX2);
        }
    }
    isas.push(SCALAR);
    isas
}

/// [`available`], detected once.
fn detected() -> &'static [Isa] {
    static ISAS: std::sync::OnceLock<Vec<Isa>> = std::sync::OnceLock::new();
    ISAS.get_or_init(available)
}

/// The widest instruction set of this CPU.
pub fn best() -> &'static Isa {
    &detected()[0]
}

/// The instruction set for a product `n` columns wide: the widest, but
/// for at most 16 columns the narrowest vector tile that holds them (a
/// 12×32 AVX-512 tile would compute 16 columns for nothing; the 6×16 AVX2
/// one runs the first convolution's weight gradient, `9×50176×16`, 40 %
/// faster). Every kernel gives the same bits.
pub fn for_columns(n: usize) -> &'static Isa {
    let isas = detected();
    // The narrowest vector set: the last before the scalar one.
    let narrow = &isas[isas.len().saturating_sub(2)];
    if n <= narrow.nr {
        narrow
    } else {
        best()
    }
}

unsafe fn scalar(t: &Tile) {
    const MR: usize = SCALAR.mr;
    const NR: usize = SCALAR.nr;
    let mut acc = [[0f32; NR]; MR];
    for (i, row) in acc.iter_mut().enumerate().take(t.rows) {
        for (j, x) in row.iter_mut().enumerate().take(t.cols) {
            if t.load_c {
                *x = unsafe { *t.c.offset(i as isize * t.c_rs + j as isize) };
            }
        }
    }
    for p in 0..t.k {
        let b = unsafe { std::slice::from_raw_parts(t.b.offset(p as isize * t.b_rs), NR) };
        for (i, row) in acc.iter_mut().enumerate().take(t.rows) {
            let a = unsafe { *t.a.offset(i as isize * t.a_rs + p as isize * t.a_cs) };
            for (x, &b) in row.iter_mut().zip(b) {
                *x = a.mul_add(b, *x);
            }
        }
    }
    for (i, row) in acc.iter().enumerate().take(t.rows) {
        for (j, &x) in row.iter().enumerate().take(t.cols) {
            unsafe { *t.c.offset(i as isize * t.c_rs + j as isize) = x };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Tile;
    use std::arch::x86_64::*;

    /// Calls `$f::<rows, V, UNIT_RS>` for the tile's rows (1..=`$max`).
    macro_rules! by_rows {
        ($f:ident, $t:expr, $v:literal, $u:literal, $($r:literal)*) => {
            match $t.rows {
                $($r => $f::<$r, $v, $u>($t),)*
                _ => unreachable!("a tile of {} rows", $t.rows),
            }
        };
    }

    /// The AVX-512 kernel: one `zmm` per row when the tile has at most 16
    /// columns, else two.
    ///
    /// # Safety
    /// As [`super::Isa::kernel`], on a CPU with AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512(t: &Tile) {
        unsafe {
            match (t.cols > 16, t.a_rs == 1) {
                (false, false) => by_rows!(tile512, t, 1, false, 1 2 3 4 5 6 7 8 9 10 11 12),
                (false, true) => by_rows!(tile512, t, 1, true, 1 2 3 4 5 6 7 8 9 10 11 12),
                (true, false) => by_rows!(tile512, t, 2, false, 1 2 3 4 5 6 7 8 9 10 11 12),
                (true, true) => by_rows!(tile512, t, 2, true, 1 2 3 4 5 6 7 8 9 10 11 12),
            }
        }
    }

    /// `R` rows of `16·V` columns (masked to `t.cols`).
    #[target_feature(enable = "avx512f")]
    unsafe fn tile512<const R: usize, const V: usize, const UNIT_RS: bool>(t: &Tile) {
        // Lanes of vector `v` that hold columns below `t.cols`.
        let masks: [__mmask16; 2] = std::array::from_fn(|v| {
            let valid = t.cols.saturating_sub(16 * v).min(16);
            ((1u32 << valid) - 1) as __mmask16
        });
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        unsafe {
            if t.load_c {
                for (i, row) in acc.iter_mut().enumerate() {
                    let c = t.c.offset(i as isize * t.c_rs);
                    for (v, x) in row.iter_mut().enumerate() {
                        *x = _mm512_maskz_loadu_ps(masks[v], c.add(16 * v));
                    }
                }
            }
            let (mut a, mut b) = (t.a, t.b);
            let a_rs = if UNIT_RS { 1 } else { t.a_rs };
            for _ in 0..t.k {
                let bv: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(b.add(16 * v)));
                for (i, row) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*a.offset(i as isize * a_rs));
                    for (v, y) in row.iter_mut().enumerate() {
                        *y = _mm512_fmadd_ps(x, bv[v], *y);
                    }
                }
                a = a.offset(t.a_cs);
                b = b.offset(t.b_rs);
            }
            for (i, row) in acc.iter().enumerate() {
                let c = t.c.offset(i as isize * t.c_rs);
                for (v, &x) in row.iter().enumerate() {
                    _mm512_mask_storeu_ps(c.add(16 * v), masks[v], x);
                }
            }
        }
    }

    /// The AVX2 kernel: one `ymm` per row when the tile has at most 8
    /// columns, else two.
    ///
    /// # Safety
    /// As [`super::Isa::kernel`], on a CPU with AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2(t: &Tile) {
        unsafe {
            match (t.cols > 8, t.a_rs == 1) {
                (false, false) => by_rows!(tile256, t, 1, false, 1 2 3 4 5 6),
                (false, true) => by_rows!(tile256, t, 1, true, 1 2 3 4 5 6),
                (true, false) => by_rows!(tile256, t, 2, false, 1 2 3 4 5 6),
                (true, true) => by_rows!(tile256, t, 2, true, 1 2 3 4 5 6),
            }
        }
    }

    /// `R` rows of `8·V` columns (masked to `t.cols`).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile256<const R: usize, const V: usize, const UNIT_RS: bool>(t: &Tile) {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let masks: [__m256i; 2] = std::array::from_fn(|v| {
            let valid = t.cols.saturating_sub(8 * v).min(8) as i32;
            _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), lanes)
        });
        let mut acc = [[_mm256_setzero_ps(); V]; R];
        unsafe {
            if t.load_c {
                for (i, row) in acc.iter_mut().enumerate() {
                    let c = t.c.offset(i as isize * t.c_rs);
                    for (v, x) in row.iter_mut().enumerate() {
                        *x = _mm256_maskload_ps(c.add(8 * v), masks[v]);
                    }
                }
            }
            let (mut a, mut b) = (t.a, t.b);
            let a_rs = if UNIT_RS { 1 } else { t.a_rs };
            for _ in 0..t.k {
                let bv: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(b.add(8 * v)));
                for (i, row) in acc.iter_mut().enumerate() {
                    let x = _mm256_set1_ps(*a.offset(i as isize * a_rs));
                    for (v, y) in row.iter_mut().enumerate() {
                        *y = _mm256_fmadd_ps(x, bv[v], *y);
                    }
                }
                a = a.offset(t.a_cs);
                b = b.offset(t.b_rs);
            }
            for (i, row) in acc.iter().enumerate() {
                let c = t.c.offset(i as isize * t.c_rs);
                for (v, &x) in row.iter().enumerate() {
                    _mm256_maskstore_ps(c.add(8 * v), masks[v], x);
                }
            }
        }
    }
}
