//! `cargo bench --bench gemm [-- WHERE]`: GFLOP/s of the GEMM crates on the
//! examples' shapes (all, or those whose "where" contains WHERE, e.g.
//! `"square 1024"`); the split runs on `NNC_THREADS` threads (default 2).
//! Set `MATMUL_NUM_THREADS` for matrixmultiply's threads.

fn main() {
    let only = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let threads = std::env::var("NNC_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .filter(|&t| t >= 1)
        .unwrap_or(2);
    print!("{}", nnc::codegen::bench::gemm_crates(threads, only.as_deref()));
}
