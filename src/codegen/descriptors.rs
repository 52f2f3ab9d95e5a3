//! The descriptors of the native calls the step function makes: a matrix
//! product's (`MatMulDesc`: its operands' views placed in the arena, and
//! how it is cut between the threads) and an `unfold2d`/`fold2d`'s
//! (`WindowDesc`, its views checked to lie inside their buffers). In: the
//! fused graph and the memory plan; out: the descriptors the code points
//! to (`step/`).

use super::fuse::Fused;
use super::gemm::{self, MatMulDesc, Operand};
use super::memory::Plan;
use super::window::{self, WindowDesc};

/// The descriptor of a matrix product: its operands' views placed in the
/// arena.
pub(super) fn matmul_descriptor(
    fused: &Fused,
    plan: &Plan,
    root: crate::ir::NodeId,
    a: &super::fuse::View,
    b: &super::fuse::View,
    threads: usize,
) -> MatMulDesc {
    // A product written through its permutation (`fuse::written_product`)
    // lies in the permutation's buffer, each of its axes with the stride
    // of the axis it became.
    let product = super::fuse::written_product(&fused.bound, root).unwrap_or(root);
    let shape = fused.bound.shape(product);
    let rank = shape.len();
    let (m, n) = (shape[rank - 2], shape[rank - 1]);
    let a_shape = fused.bound.shape(fused.bound.inputs(product)[0]);
    let k = a_shape[a_shape.len() - 1];
    let strides: Vec<isize> = match fused.bound.op(root) {
        crate::prim::Prim::Permute(perm) => {
            let written = fused.bound.shape(root);
            let row_major: Vec<isize> = (0..rank)
                .map(|a| written[a + 1..].iter().product::<usize>() as isize)
                .collect();
            (0..rank)
                .map(|axis| row_major[perm.iter().position(|&p| p == axis).expect("a permutation")])
                .collect()
        }
        _ => (0..rank)
            .map(|a| shape[a + 1..].iter().product::<usize>() as isize)
            .collect(),
    };
    let mut batch = [1usize; gemm::MAX_BATCH];
    let mut c_batch = [0isize; gemm::MAX_BATCH];
    let first = gemm::MAX_BATCH - (rank - 2);
    batch[first..].copy_from_slice(&shape[..rank - 2]);
    c_batch[first..].copy_from_slice(&strides[..rank - 2]);
    let entries: usize = batch.iter().product();
    let placed = |v: &super::fuse::View| Operand {
        offset: v.strides.offset + plan.buffer(v.buffer).offset as isize,
        ..v.strides
    };
    // A parameter's product at a training batch reads, on each thread, the
    // rows of the weight that thread updates (`gemm::by_depth`).
    let by_depth = entries == 1
        && matches!(fused.bound.op(b.buffer), crate::prim::Prim::Param(_))
        && gemm::by_depth(m, k, n, (b.strides.row, b.strides.col));
    let parts = if by_depth {
        gemm::DEPTH_PARTS
    } else {
        gemm::parts_for(m * entries, k, n, threads)
    };
    MatMulDesc {
        m,
        k,
        n,
        batch,
        a: placed(a),
        b: placed(b),
        c: Operand {
            offset: plan.buffer(root).offset as isize,
            batch: c_batch,
            row: strides[rank - 2],
            col: strides[rank - 1],
        },
        parts,
        accumulate: 0,
        by_depth: usize::from(by_depth),
        claims: gemm::Claims::with_partials(if by_depth { (parts - 1) * m * n } else { 0 }),
    }
}

/// The descriptor of an `unfold2d` or `fold2d`: the operand's view and the
/// root's own (contiguous) buffer placed in the arena, checked to lie
/// inside their buffers.
pub(super) fn window_descriptor(
    fused: &Fused,
    plan: &Plan,
    root: crate::ir::NodeId,
    operand: &super::fuse::Strided,
    threads: usize,
) -> Result<WindowDesc, String> {
    use crate::prim::Prim;
    let bound = &fused.bound;
    // A fold written through a permutation (`fuse::folded_into`) has the
    // permutation's buffer.
    let window_node = super::fuse::folded_into(bound, root).unwrap_or(root);
    let (window, image_node, patch_node) = match bound.op(window_node) {
        Prim::Unfold2d(w) => (*w, bound.inputs(window_node)[0], window_node),
        Prim::Fold2d(w) => (*w, window_node, bound.inputs(window_node)[0]),
        op => return Err(format!("{}: {op} is not a window", bound.name(root))),
    };
    let image = bound.shape(image_node);
    let patches = bound.shape(patch_node);
    let own = plan.buffer(root);
    let contiguous = |sizes: &[usize]| {
        let mut out = [own.offset as isize, 0, 0, 0, 0];
        let mut stride = 1isize;
        for axis in (0..4).rev() {
            out[axis + 1] = stride;
            stride *= sizes[axis] as isize;
        }
        out
    };
    // The own buffer's strides for the window's axes: axis `perm[i]` of the
    // fold is axis `i` of the permuted buffer.
    let own_view = |sizes: &[usize]| match bound.op(root) {
        Prim::Permute(perm) => {
            let written = contiguous(bound.shape(root));
            let mut out = [written[0], 0, 0, 0, 0];
            for (i, &axis) in perm.iter().enumerate() {
                out[axis + 1] = written[i + 1];
            }
            out
        }
        _ => contiguous(sizes),
    };
    let view = {
        let s = &operand.strides;
        [
            plan.buffer(operand.buffer).offset as isize + operand.offset,
            s[0],
            s[1],
            s[2],
            s[3],
        ]
    };
    let unfold = window_node == patch_node;
    let mut desc = WindowDesc {
        n: image[0],
        c: image[1],
        h: image[2],
        w: image[3],
        oh: patches[1],
        ow: patches[2],
        kernel: window.kernel,
        stride: window.stride,
        padding: window.padding,
        image: if unfold { view } else { own_view(image) },
        patches: if unfold { own_view(patches) } else { view },
        parts: 1,
    };
    if desc.n * desc.work() >= window::PARALLEL_MIN_WORK && threads > 1 {
        desc.parts = threads.min(desc.n);
    }
    let extents = desc.extents();
    let buffers = [
        if unfold { operand.buffer } else { root },
        if unfold { root } else { operand.buffer },
    ];
    for (&(lo, hi), &buffer) in extents.iter().zip(&buffers) {
        let b = plan.buffer(buffer);
        if lo < b.offset as isize || hi >= (b.offset + b.len.max(1)) as isize {
            return Err(format!(
                "{}: a window view [{lo}, {hi}] leaves its buffer {} at {} of {} elements",
                bound.name(root),
                bound.name(buffer),
                b.offset,
                b.len
            ));
        }
    }
    Ok(desc)
}
