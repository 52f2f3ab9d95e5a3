//! Counter-based random numbers: value `index` of stream `stream` at step
//! `step` under seed `seed` is a pure function of those four numbers, so the
//! interpreter and a JIT (or any other backend) draw the same numbers in any
//! order, in parallel or not.
//!
//! The four counters are absorbed one after another with splitmix64's
//! finalizer; the top 53 bits of the result give a uniform in `[0, 1)`.
//! Normals are Box–Muller from two uniforms of the same stream at indices
//! `2·index` and `2·index + 1`.

/// Splitmix64's increment (the golden ratio in 64 bits).
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// Splitmix64's finalizer: a bijection on `u64` that mixes every input bit
/// into every output bit.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 64 random bits for `(seed, step, stream, index)`.
pub fn bits(seed: u64, step: u64, stream: u64, index: u64) -> u64 {
    let mut h = 0u64;
    for word in [seed, step, stream, index] {
        h = mix(h.wrapping_add(GAMMA) ^ word);
    }
    h
}

/// Uniform on `[0, 1)`, a multiple of 2^-53.
pub fn uniform(seed: u64, step: u64, stream: u64, index: u64) -> f64 {
    (bits(seed, step, stream, index) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Standard normal (Box–Muller, cosine branch) from the uniforms at
/// `2·index` and `2·index + 1`.
pub fn normal(seed: u64, step: u64, stream: u64, index: u64) -> f64 {
    let first = index.wrapping_mul(2);
    // 1 - u is in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - uniform(seed, step, stream, first);
    let u2 = uniform(seed, step, stream, first.wrapping_add(1));
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
