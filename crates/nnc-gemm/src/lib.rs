//! nnc's own f32 matrix product, a crate of its own so that it is compiled
//! optimized in every profile (the root's test profile builds nnc itself
//! at `opt-level = 1`, dependencies at 3): `packed` holds the blocking and
//! packing driver, `kernel` the microkernels. The tests live in nnc
//! (`src/codegen/gemm/packed_tests.rs`).

pub mod kernel;
pub mod packed;
