//! `cargo bench --bench gemm`: GFLOP/s of the GEMM crates on the examples'
//! shapes (set `MATMUL_NUM_THREADS` for matrixmultiply's threads).

fn main() {
    print!("{}", nnc::codegen::bench::gemm_crates(2));
}
