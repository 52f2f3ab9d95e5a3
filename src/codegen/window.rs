//! Native kernels for the image windows: `unfold2d` (im2col) and its
//! adjoint `fold2d` (col2im), called from generated code with a descriptor
//! fixed at compile time, like the matrix products.
//!
//! As generated loops these are gathers: each output element divides its
//! feature index by `C` and `k` and loads from a place its neighbour does
//! not, four lanes at a time (measured at 27 % of a 28×28 CNN's step, see
//! `BENCHMARKS.md`). Here the loops nest in the order that keeps the
//! written side contiguous and the read side in cache: `unfold` writes each
//! patch row in order, reading the few image rows it covers; `fold` reads
//! each patch row in order, adding into one image that stays in L1/L2.
//! Features are tap-major (`(ki·k + kj)·C + c`), so from a channels-last
//! image each tap is one contiguous run of `C` elements on both sides.
//!
//! Both take their operands as strided views (offset and one stride per
//! axis, in elements), so a permuted buffer (a pooled `NHWC` map seen as
//! `NCHW`) is read where it lies. Work is cut by images into parts fixed at
//! compile time; each image is done by one thread in one order, so a step
//! gives the same bits on one thread or many.

/// One `unfold2d` or `fold2d`: `image` is `[N, C, H, W]`, `patches` is
/// `[N, OH, OW, k·k·C]` (tap-major features), both strided views into the
/// arena.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowDesc {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    /// Offset, then strides of `n, c, y, x`.
    pub image: [isize; 5],
    /// Offset, then strides of `n, oy, ox, feature`.
    pub patches: [isize; 5],
    /// Parts the images are cut into (1: not cut).
    pub parts: usize,
}

/// Element visits (patch elements) from which a window kernel is cut into
/// parts for the threads.
pub const PARALLEL_MIN_WORK: usize = 1 << 14;

impl WindowDesc {
    /// Patch elements per image.
    pub fn work(&self) -> usize {
        self.oh * self.ow * self.c * self.kernel * self.kernel
    }

    /// The images of part `p`.
    fn images(&self, p: usize) -> std::ops::Range<usize> {
        let parts = self.parts.max(1);
        self.n * p / parts..self.n * (p + 1) / parts
    }

    /// The lowest and highest element (inclusive) each view touches, to
    /// check against the buffers at compile time.
    pub fn extents(&self) -> [(isize, isize); 2] {
        let span = |view: &[isize; 5], sizes: [usize; 4]| {
            let (mut lo, mut hi) = (view[0], view[0]);
            for (axis, &size) in sizes.iter().enumerate() {
                let reach = view[axis + 1] * (size.max(1) as isize - 1);
                if reach < 0 {
                    lo += reach;
                } else {
                    hi += reach;
                }
            }
            (lo, hi)
        };
        let features = self.c * self.kernel * self.kernel;
        [
            span(&self.image, [self.n, self.c, self.h, self.w]),
            span(&self.patches, [self.n, self.oh, self.ow, features]),
        ]
    }
}

/// Walks the patches of the parts `thread`, `thread + threads`, ... in
/// memory order, one call per tap (kernel position) of each patch:
/// `image` gets each image's offset before its patches, `tap` the offset of
/// the tap's channel-0 patch element (channel `c` is `c` features further)
/// and of its pixel's channel 0 in the image, or `None` in the padding.
/// Where each tap lands is worked out once per patch, not per element, and
/// each image element receives its patches in the same order on any number
/// of threads.
fn walk(
    d: &WindowDesc,
    thread: usize,
    threads: usize,
    mut image: impl FnMut(isize),
    mut tap: impl FnMut(isize, Option<isize>),
) {
    let (k, s, p) = (d.kernel as isize, d.stride as isize, d.padding as isize);
    let c = d.c as isize;
    let [i0, i_n, _, i_y, i_x] = d.image;
    let [p0, p_n, p_y, p_x, p_f] = d.patches;
    for part in (thread..d.parts.max(1)).step_by(threads.max(1)) {
        for n in d.images(part) {
            let base = i0 + n as isize * i_n;
            image(base);
            for oy in 0..d.oh as isize {
                for ox in 0..d.ow as isize {
                    let at = p0 + n as isize * p_n + oy * p_y + ox * p_x;
                    for q in 0..k * k {
                        let (y, x) = (oy * s + q / k - p, ox * s + q % k - p);
                        let inside = (0..d.h as isize).contains(&y) && (0..d.w as isize).contains(&x);
                        tap(at + q * c * p_f, inside.then_some(base + y * i_y + x * i_x));
                    }
                }
            }
        }
    }
}

/// `unfold2d` for thread `thread` of `threads`: the parts `thread`,
/// `thread + threads`, ...
///
/// # Safety
/// `desc` points to a live descriptor whose views lie inside the arena at
/// `arena`, and no other thread writes what these parts read or write.
pub unsafe extern "C" fn nnc_unfold2d(desc: *const WindowDesc, arena: *mut f32, thread: usize, threads: usize) {
    let d = unsafe { &*desc };
    if d.c == 1 {
        unsafe { unfold_one_channel(d, arena, thread, threads) };
    } else if fast(d) {
        // A tap is `C` contiguous elements on both sides.
        walk(
            d,
            thread,
            threads,
            |_| {},
            |patch, pixel| unsafe {
                match pixel {
                    Some(at) => std::ptr::copy_nonoverlapping(arena.offset(at), arena.offset(patch), d.c),
                    None => std::ptr::write_bytes(arena.offset(patch), 0, d.c),
                }
            },
        );
    } else {
        let (image, feature) = (d.image[2], d.patches[4]);
        walk(
            d,
            thread,
            threads,
            |_| {},
            |patch, pixel| {
                for c in 0..d.c as isize {
                    let value = pixel.map_or(0.0, |at| unsafe { *arena.offset(at + c * image) });
                    unsafe { *arena.offset(patch + c * feature) = value };
                }
            },
        );
    }
}

/// `unfold2d` of a one-channel image (a network's first convolution): a
/// tap at a time along each row of patches, so the padding is worked out
/// once per tap and row and the copy in between is a loop with constant
/// strides (one element per patch: a channel loop per tap, as in [`walk`],
/// would cost more than the copy).
///
/// # Safety
/// As [`nnc_unfold2d`].
unsafe fn unfold_one_channel(d: &WindowDesc, arena: *mut f32, thread: usize, threads: usize) {
    let (k, s, p) = (d.kernel as isize, d.stride as isize, d.padding as isize);
    let (h, w, ow) = (d.h as isize, d.w as isize, d.ow as isize);
    let [i0, i_n, _, i_y, i_x] = d.image;
    let [p0, p_n, p_y, p_x, p_f] = d.patches;
    for part in (thread..d.parts.max(1)).step_by(threads.max(1)) {
        for n in d.images(part) {
            let (image, patches) = (i0 + n as isize * i_n, p0 + n as isize * p_n);
            for oy in 0..d.oh as isize {
                for ky in 0..k {
                    let y = oy * s + ky - p;
                    for kx in 0..k {
                        let row = patches + oy * p_y + (ky * k + kx) * p_f;
                        // Patches `lo..hi` of the row read inside the image.
                        let (lo, hi) = if (0..h).contains(&y) {
                            let first = (p - kx).max(0);
                            let lo = (first + s - 1) / s;
                            let last = w - 1 + p - kx;
                            let hi = if last < 0 { 0 } else { (last / s + 1).min(ow) };
                            let lo = lo.min(ow);
                            (lo, hi.max(lo))
                        } else {
                            (ow, ow)
                        };
                        let source = image + y * i_y + (kx - p) * i_x;
                        for ox in (0..lo).chain(hi..ow) {
                            unsafe { *arena.offset(row + ox * p_x) = 0.0 };
                        }
                        for ox in lo..hi {
                            unsafe { *arena.offset(row + ox * p_x) = *arena.offset(source + ox * s * i_x) };
                        }
                    }
                }
            }
        }
    }
}

/// `fold2d` (the adjoint of `unfold2d`: overlapping patches added into the
/// image) for thread `thread` of `threads`.
///
/// # Safety
/// As [`nnc_unfold2d`]; the image view must not overlap the patches.
pub unsafe extern "C" fn nnc_fold2d(desc: *const WindowDesc, arena: *mut f32, thread: usize, threads: usize) {
    let d = unsafe { &*desc };
    let [_, _, i_c, i_y, i_x] = d.image;
    let zero = |base: isize| {
        for c in 0..d.c as isize {
            for y in 0..d.h as isize {
                for x in 0..d.w as isize {
                    unsafe { *arena.offset(base + c * i_c + y * i_y + x * i_x) = 0.0 };
                }
            }
        }
    };
    let add = |patch: isize, pixel: Option<isize>, (image, feature): (isize, isize)| {
        if let Some(at) = pixel {
            for c in 0..d.c as isize {
                unsafe { *arena.offset(at + c * image) += *arena.offset(patch + c * feature) };
            }
        }
    };
    if fast(d) {
        // A tap is `C` contiguous elements on both sides (apart, by the
        // contract above).
        walk(d, thread, threads, zero, |patch, pixel| {
            if let Some(at) = pixel {
                let (image, taps) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(arena.offset(at), d.c),
                        std::slice::from_raw_parts(arena.offset(patch), d.c),
                    )
                };
                for (x, g) in image.iter_mut().zip(taps) {
                    *x += g;
                }
            }
        });
    } else {
        walk(d, thread, threads, zero, |patch, pixel| {
            add(patch, pixel, (i_c, d.patches[4]))
        });
    }
}

/// Whether the image is read channels-last (a channel's neighbour is the
/// next element, or there is one channel) and the patch rows are
/// contiguous: the channel loops then get constant strides and compile to
/// plain runs.
fn fast(d: &WindowDesc) -> bool {
    (d.image[2] == 1 || d.c == 1) && d.patches[4] == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A contiguous layout's strides.
    fn strides(offset: isize, sizes: [usize; 4]) -> [isize; 5] {
        let mut out = [offset, 0, 0, 0, 0];
        let mut stride = 1isize;
        for axis in (0..4).rev() {
            out[axis + 1] = stride;
            stride *= sizes[axis] as isize;
        }
        out
    }

    fn desc(n: usize, c: usize, h: usize, w: usize, kernel: usize, stride: usize, padding: usize) -> WindowDesc {
        let window = crate::prim::Window {
            kernel,
            stride,
            padding,
        };
        let (oh, ow) = (window.out_size(h), window.out_size(w));
        let features = c * kernel * kernel;
        WindowDesc {
            n,
            c,
            h,
            w,
            oh,
            ow,
            kernel,
            stride,
            padding,
            image: strides(0, [n, c, h, w]),
            patches: strides((n * c * h * w) as isize, [n, oh, ow, features]),
            parts: 3,
        }
    }

    /// The definition, element by element (the image through its view).
    fn patch(d: &WindowDesc, image: &[f32], n: usize, oy: usize, ox: usize, f: usize) -> f32 {
        // Tap-major: feature `(ki·k + kj)·C + c`.
        let (c, ki, kj) = (f % d.c, f / d.c / d.kernel, f / d.c % d.kernel);
        let y = (oy * d.stride + ki) as isize - d.padding as isize;
        let x = (ox * d.stride + kj) as isize - d.padding as isize;
        if y < 0 || x < 0 || y >= d.h as isize || x >= d.w as isize {
            return 0.0;
        }
        let [o, s_n, s_c, s_y, s_x] = d.image;
        image[(o + n as isize * s_n + c as isize * s_c + y * s_y + x * s_x) as usize]
    }

    #[test]
    fn unfold_matches_the_definition_and_fold_is_its_adjoint() {
        for &(n, c, h, w, k, s, p) in &[
            (2, 3, 5, 4, 3, 1, 1),
            (3, 2, 6, 6, 2, 2, 0),
            (1, 1, 7, 5, 3, 2, 1),
            (2, 2, 4, 4, 1, 1, 0),
            // One channel (its own path), with taps that fall wholly
            // outside a row or the image.
            (2, 1, 6, 7, 3, 1, 1),
            (3, 1, 4, 9, 3, 3, 0),
            (1, 1, 3, 3, 5, 1, 1),
            (2, 1, 5, 6, 2, 2, 1),
        ] {
            let mut d = desc(n, c, h, w, k, s, p);
            if c > 1 {
                // The image read channels-last, as a pooled NHWC map is.
                d.image = [0, (h * w * c) as isize, 1, (w * c) as isize, c as isize];
            }
            let image_len = n * c * h * w;
            let patch_len = n * d.oh * d.ow * c * k * k;
            let mut arena: Vec<f32> = (0..image_len + patch_len)
                .map(|i| ((i * 7919) % 23) as f32 - 11.0)
                .collect();
            let image = arena[..image_len].to_vec();
            for thread in 0..2 {
                unsafe { nnc_unfold2d(&d, arena.as_mut_ptr(), thread, 2) };
            }
            let features = c * k * k;
            for (i, &got) in arena[image_len..].iter().enumerate() {
                let (f, ox, oy, b) = (
                    i % features,
                    i / features % d.ow,
                    i / features / d.ow % d.oh,
                    i / features / d.ow / d.oh,
                );
                assert_eq!(got, patch(&d, &image, b, oy, ox, f), "unfold at {i} for {d:?}");
            }
            // <unfold(x), g> == <x, fold(g)> for random g.
            let g: Vec<f32> = (0..patch_len).map(|i| ((i * 31) % 13) as f32 - 6.0).collect();
            arena[image_len..].copy_from_slice(&g);
            unsafe { nnc_fold2d(&d, arena.as_mut_ptr(), 0, 1) };
            let folded = &arena[..image_len];
            let mut lhs = 0.0f64;
            for (i, &gi) in g.iter().enumerate() {
                let (f, ox, oy, b) = (
                    i % features,
                    i / features % d.ow,
                    i / features / d.ow % d.oh,
                    i / features / d.ow / d.oh,
                );
                lhs += f64::from(patch(&d, &image, b, oy, ox, f)) * f64::from(gi);
            }
            let rhs: f64 = image
                .iter()
                .zip(folded)
                .map(|(&x, &y)| f64::from(x) * f64::from(y))
                .sum();
            assert_eq!(lhs, rhs, "fold is not unfold's adjoint for {d:?}");
        }
    }
}
