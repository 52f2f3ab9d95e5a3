//! `unfold2d`: the patches of images as rows, the gather under
//! convolution and pooling.

use super::args::{const_int, float_tensor};
use super::{Args, Out};
use crate::check::dims::Dim;
use crate::check::eval::{plural, tensor_too_large, Checker};
use crate::check::types::TensorType;
use crate::diagnostics::{codes, Diagnostic};
use crate::prim::{Prim, Window};

/// `unfold2d(x[N, C, H, W], kernel, stride, padding)`: every `kernel x
/// kernel` patch as a row, `[N, OH, OW, kernel * kernel * C]`, tap-major
/// (feature `(ki * kernel + kj) * C + c`).
pub(super) fn unfold2d(checker: &mut Checker, a: &Args) -> Out {
    let x = float_tensor(checker, a, 0)?;
    if x.ty.rank() != 4 {
        checker.report(
            Diagnostic::error(
                codes::RANK_MISMATCH,
                format!("`unfold2d` needs images [N, C, H, W], found {}", x.ty),
                a.span(0),
            )
            .label(format!("{} dimension{}", x.ty.rank(), plural(x.ty.rank()))),
        );
        return None;
    }
    let kernel = const_int(checker, a, 1, "the kernel size")?;
    let stride = if a.get(2).is_some() {
        const_int(checker, a, 2, "the stride")?
    } else {
        1
    };
    let padding = if a.get(3).is_some() {
        const_int(checker, a, 3, "the padding")?
    } else {
        0
    };
    for (value, what, index, min) in [
        (kernel, "kernel", 1, 1),
        (stride, "stride", 2, 1),
        (padding, "padding", 3, 0),
    ] {
        if value < min {
            checker.report(
                Diagnostic::error(
                    codes::BAD_VALUE,
                    format!("the {what} of `unfold2d` must be at least {min}, found {value}"),
                    a.span(index),
                )
                .label("out of range"),
            );
            return None;
        }
    }
    let mut out = vec![x.ty.shape[0].clone()];
    for (axis, name) in [(2, "height"), (3, "width")] {
        let Some(size) = x.ty.shape[axis].as_const() else {
            checker.report(
                Diagnostic::error(
                    codes::NOT_CONSTANT,
                    format!(
                        "the image {name} must be known when compiling, found {}",
                        x.ty.shape[axis]
                    ),
                    a.span(0),
                )
                .label(format!("this is {}", x.ty)),
            );
            return None;
        };
        // Each is at most i64::MAX; the padded size may not be.
        let Some(padded) = padding.checked_mul(2).and_then(|p| p.checked_add(size)) else {
            checker.report(too_large(a, &format!("the padded image {name}")));
            return None;
        };
        let span = padded - kernel;
        if span < 0 {
            checker.report(
                Diagnostic::error(
                    codes::SHAPE_MISMATCH,
                    format!("the kernel {kernel} is larger than the padded image {name} {padded}"),
                    a.span,
                )
                .label("kernel does not fit")
                .with_secondary(a.span(0), format!("this is {}", x.ty)),
            );
            return None;
        }
        out.push(Dim::constant(span / stride + 1));
    }
    let features = kernel
        .checked_mul(kernel)
        .map(|taps| x.ty.shape[1].mul(&Dim::constant(taps)));
    match features {
        Some(features) if !features.is_overflow() => out.push(features),
        _ => {
            checker.report(too_large(a, "a patch's features"));
            return None;
        }
    }
    let ty = TensorType::new(x.ty.dtype, out);
    let window = Window {
        kernel: kernel as usize,
        stride: stride as usize,
        padding: padding as usize,
    };
    let node = checker.emit(Prim::Unfold2d(window), &ty, &[x.node]);
    Some((ty, node))
}

/// E0312 for a size of `unfold2d` that does not fit in 64 bits.
fn too_large(a: &Args, what: &str) -> Diagnostic {
    tensor_too_large(a.span, format!("{what} would not fit in 64 bits"))
}
