//! Layout kernels: reshape, permute, broadcast, slice, concat, pad. Results
//! are in standard (row-major) layout.

use std::borrow::Cow;

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice};

use super::kernels::{expect_shape, KResult};

/// The elements in row-major order, borrowed when the array already is.
pub fn row_major(x: &ArrayD<f64>) -> Cow<'_, [f64]> {
    match x.as_slice() {
        Some(slice) => Cow::Borrowed(slice),
        None => Cow::Owned(x.iter().copied().collect()),
    }
}

/// The same elements in row-major order, in `shape`.
pub fn reshape(x: &ArrayD<f64>, shape: &[usize]) -> KResult {
    let count: usize = shape.iter().product();
    if count != x.len() {
        return Err(format!(
            "cannot reshape {:?} ({} elements) to {shape:?} ({count})",
            x.shape(),
            x.len()
        ));
    }
    ArrayD::from_shape_vec(IxDyn(shape), row_major(x).into_owned()).map_err(|e| e.to_string())
}

/// Output axis `i` is input axis `perm[i]`.
pub fn permute(x: &ArrayD<f64>, perm: &[usize]) -> KResult {
    let mut sorted = perm.to_vec();
    sorted.sort_unstable();
    if sorted != (0..x.ndim()).collect::<Vec<_>>() {
        return Err(format!("{perm:?} is not a permutation of the axes of {:?}", x.shape()));
    }
    Ok(x.view().permuted_axes(IxDyn(perm)).as_standard_layout().into_owned())
}

/// NumPy broadcast: align right; each input size equals the output's or is 1.
pub fn broadcast(x: &ArrayD<f64>, shape: &[usize]) -> KResult {
    let view = x
        .broadcast(IxDyn(shape))
        .ok_or_else(|| format!("cannot broadcast {:?} to {shape:?}", x.shape()))?;
    Ok(view.as_standard_layout().into_owned())
}

/// `count` elements `start, start + step, ...` along `axis`.
pub fn slice(x: &ArrayD<f64>, axis: usize, start: i64, step: i64, count: usize) -> KResult {
    if axis >= x.ndim() {
        return Err(format!("axis {axis} of a rank-{} operand", x.ndim()));
    }
    let size = x.shape()[axis];
    if step < 1 {
        return Err(format!("step {step} is below 1"));
    }
    let bad = || format!("{count} elements from {start} by {step} do not fit in size {size} of axis {axis}");
    let start = usize::try_from(start).map_err(|_| bad())?;
    let step = step as usize;
    let end = match count {
        0 => start,
        _ => (count - 1)
            .checked_mul(step)
            .and_then(|span| span.checked_add(start))
            .filter(|&last| last < size)
            .ok_or_else(bad)?
            .saturating_add(1),
    };
    if start > size {
        return Err(bad());
    }
    let range = Slice::new(start as isize, Some(end as isize), step as isize);
    Ok(x.slice_axis(Axis(axis), range).as_standard_layout().into_owned())
}

/// Operands one after another along `axis`.
pub fn concat(axis: usize, inputs: &[&ArrayD<f64>]) -> KResult {
    let rank = inputs.first().map_or(0, |x| x.ndim());
    if axis >= rank {
        return Err(format!("axis {axis} of rank-{rank} operands"));
    }
    let views: Vec<ArrayViewD<f64>> = inputs.iter().map(|x| x.view()).collect();
    let out = ndarray::concatenate(Axis(axis), &views).map_err(|_| {
        let shapes: Vec<&[usize]> = inputs.iter().map(|x| x.shape()).collect();
        format!("cannot concatenate {shapes:?} along axis {axis}")
    })?;
    Ok(out.as_standard_layout().into_owned())
}

/// `before` and `after` elements equal to `value` around `axis`.
pub fn pad(x: &ArrayD<f64>, axis: usize, before: i64, after: i64, value: f64, node: &[usize]) -> KResult {
    if axis >= x.ndim() {
        return Err(format!("axis {axis} of a rank-{} operand", x.ndim()));
    }
    let (Ok(before), Ok(after)) = (usize::try_from(before), usize::try_from(after)) else {
        return Err(format!("negative padding: before {before}, after {after}"));
    };
    let size = x.shape()[axis];
    let mut shape = x.shape().to_vec();
    shape[axis] = before
        .checked_add(size)
        .and_then(|s| s.checked_add(after))
        .ok_or("padding overflows")?;
    expect_shape(&shape, node)?;
    let mut out = ArrayD::from_elem(IxDyn(&shape), value);
    out.slice_axis_mut(Axis(axis), Slice::from(before..before + size))
        .assign(x);
    Ok(out)
}
