//! Gathers and their adjoints: take / scatter_rows (rows of a table),
//! pick / place (one entry of the last axis), unfold2d / fold2d (image
//! patches). Ids are floats; an id selects entry `trunc(id)` when that is
//! in range, and nothing (a zero, or no update) otherwise.

use ndarray::{ArrayD, IxDyn};

use super::kernels::{expect_shape, KResult};
use super::layout::row_major;
use crate::prim::Window;

/// The entry an id names among `len`, if any.
fn index(id: f64, len: usize) -> Option<usize> {
    let id = id.trunc();
    // NaN fails both comparisons.
    (id >= 0.0 && id < len as f64).then_some(id as usize)
}

fn array(shape: Vec<usize>, data: Vec<f64>) -> KResult {
    ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| e.to_string())
}

/// `(table[V, rest...], ids[...]) -> [ids..., rest...]`; out-of-range ids
/// give zero rows.
pub fn take(table: &ArrayD<f64>, ids: &ArrayD<f64>) -> KResult {
    let Some((&rows, rest)) = table.shape().split_first() else {
        return Err("the table is a scalar".to_string());
    };
    let width: usize = rest.iter().product();
    let table = row_major(table);
    let mut out = Vec::with_capacity(ids.len() * width);
    for &id in ids {
        match index(id, rows) {
            Some(r) => out.extend_from_slice(&table[r * width..(r + 1) * width]),
            None => out.resize(out.len() + width, 0.0),
        }
    }
    let mut shape = ids.shape().to_vec();
    shape.extend_from_slice(rest);
    array(shape, out)
}

/// `(values[ids..., rest...], ids[...]) -> [rows, rest...]`: each value row
/// added into the row its id names; out-of-range ids are dropped.
pub fn scatter_rows(values: &ArrayD<f64>, ids: &ArrayD<f64>, rows: usize, node: &[usize]) -> KResult {
    let k = ids.ndim();
    if values.ndim() < k || values.shape()[..k] != *ids.shape() {
        return Err(format!(
            "values {:?} do not start with the ids' shape {:?}",
            values.shape(),
            ids.shape()
        ));
    }
    let rest = &values.shape()[k..];
    let mut shape = vec![rows];
    shape.extend_from_slice(rest);
    expect_shape(&shape, node)?;
    let width: usize = rest.iter().product();
    let values = row_major(values);
    let mut out = vec![0.0; rows * width];
    for (p, &id) in ids.iter().enumerate() {
        if let Some(r) = index(id, rows) {
            let source = &values[p * width..(p + 1) * width];
            for (o, v) in out[r * width..(r + 1) * width].iter_mut().zip(source) {
                *o += v;
            }
        }
    }
    array(shape, out)
}

/// `(x[..., C], ids[...]) -> [...]`: `x[..., id]`, 0 for out-of-range ids.
pub fn pick(x: &ArrayD<f64>, ids: &ArrayD<f64>) -> KResult {
    let Some((&classes, lead)) = x.shape().split_last() else {
        return Err("the operand is a scalar".to_string());
    };
    if lead != ids.shape() {
        return Err(format!(
            "ids {:?} must be the operand {:?} without its last axis",
            ids.shape(),
            x.shape()
        ));
    }
    let x = row_major(x);
    let out = ids
        .iter()
        .enumerate()
        .map(|(p, &id)| index(id, classes).map_or(0.0, |c| x[p * classes + c]))
        .collect();
    array(ids.shape().to_vec(), out)
}

/// `(values[...], ids[...]) -> [..., classes]`: each value at its id, zeros
/// elsewhere (and everywhere for an out-of-range id).
pub fn place(values: &ArrayD<f64>, ids: &ArrayD<f64>, classes: usize, node: &[usize]) -> KResult {
    if values.shape() != ids.shape() {
        return Err(format!(
            "values {:?} and ids {:?} differ in shape",
            values.shape(),
            ids.shape()
        ));
    }
    let mut shape = ids.shape().to_vec();
    shape.push(classes);
    expect_shape(&shape, node)?;
    let mut out = vec![0.0; ids.len() * classes];
    for (p, (&v, &id)) in values.iter().zip(ids).enumerate() {
        if let Some(c) = index(id, classes) {
            out[p * classes + c] = v;
        }
    }
    array(shape, out)
}

/// Image sizes and output sizes of a window over `[n, c, h, w]`.
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    k: usize,
    stride: usize,
    padding: usize,
}

impl Geometry {
    fn new(image: &[usize], window: Window) -> Result<Geometry, String> {
        let &[n, c, h, w] = image else {
            return Err(format!("the image {image:?} is not [N, C, H, W]"));
        };
        let Window {
            kernel: k,
            stride,
            padding,
        } = window;
        if k == 0 || stride == 0 {
            return Err(format!("kernel {k} and stride {stride} must be positive"));
        }
        // `(size + 2·padding - k) / stride + 1`, as `Window::out_size`, checked.
        let out_size = |size: usize| {
            padding
                .checked_mul(2)
                .and_then(|p| p.checked_add(size))
                .and_then(|s| s.checked_sub(k))
                .map(|s| s / stride + 1)
        };
        let (Some(oh), Some(ow)) = (out_size(h), out_size(w)) else {
            return Err(format!(
                "a {k}x{k} window does not fit in {h}x{w} with padding {padding}"
            ));
        };
        Ok(Geometry {
            n,
            c,
            h,
            w,
            oh,
            ow,
            k,
            stride,
            padding,
        })
    }

    /// `[N, OH, OW, k·k·C]`, or an error if `k·k·C` overflows.
    fn patches_shape(&self) -> Result<Vec<usize>, String> {
        let features = self
            .k
            .checked_mul(self.k)
            .and_then(|kk| kk.checked_mul(self.c))
            .ok_or("the window is too large")?;
        Ok(vec![self.n, self.oh, self.ow, features])
    }

    /// Calls `f(patch_index, image_index)` for every patch entry that lies
    /// inside the image (entries in the padding have no image index).
    fn for_each(&self, mut f: impl FnMut(usize, usize)) {
        let (k, features) = (self.k, self.c * self.k * self.k);
        // Image coordinate of window offset `o` at output position `i`.
        let coordinate =
            |i: usize, o: usize, size: usize| (i * self.stride + o).checked_sub(self.padding).filter(|&x| x < size);
        for b in 0..self.n {
            for i in 0..self.oh {
                for j in 0..self.ow {
                    let row = ((b * self.oh + i) * self.ow + j) * features;
                    for ch in 0..self.c {
                        let plane = (b * self.c + ch) * self.h;
                        for ki in 0..k {
                            let Some(y) = coordinate(i, ki, self.h) else {
                                continue;
                            };
                            for kj in 0..k {
                                if let Some(x) = coordinate(j, kj, self.w) {
                                    f(row + (ki * k + kj) * self.c + ch, (plane + y) * self.w + x);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `[N, C, H, W] -> [N, OH, OW, k·k·C]`: every patch as a row, tap-major:
/// feature `(ki·k + kj)·C + c`; the padding reads zeros.
pub fn unfold2d(x: &ArrayD<f64>, window: Window, node: &[usize]) -> KResult {
    let g = Geometry::new(x.shape(), window)?;
    let shape = g.patches_shape()?;
    expect_shape(&shape, node)?;
    let x = row_major(x);
    let mut out = vec![0.0; shape.iter().product()];
    g.for_each(|patch, pixel| out[patch] = x[pixel]);
    array(shape, out)
}

/// The adjoint of `unfold2d`: `[N, OH, OW, k·k·C] -> [N, C, H, W]` (the
/// node's shape), adding overlapping entries and dropping the padding.
pub fn fold2d(patches: &ArrayD<f64>, window: Window, shape: &[usize]) -> KResult {
    let g = Geometry::new(shape, window)?;
    let expected = g.patches_shape()?;
    if patches.shape() != expected.as_slice() {
        return Err(format!(
            "patches {:?} do not fit the image {shape:?}: expected {expected:?}",
            patches.shape(),
        ));
    }
    let patches = row_major(patches);
    let mut out = vec![0.0; shape.iter().product()];
    g.for_each(|patch, pixel| out[pixel] += patches[patch]);
    array(shape.to_vec(), out)
}
