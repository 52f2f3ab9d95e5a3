//! Counter-based random numbers: value `index` of stream `stream` at step
//! `step` under seed `seed` is a pure function of those four numbers, so the
//! interpreter and a JIT (or any other backend) draw the same numbers in any
//! order, in parallel or not.
//!
//! The four counters are absorbed one after another with splitmix64's
//! finalizer; the top 53 bits of the result give a uniform in `[0, 1)`.
//! Normals are Box–Muller from two uniforms of the same stream at indices
//! `2·index` and `2·index + 1`.
//!
//! The `rand`/`randn` primitives of a graph draw from [`tensor_uniform`] and
//! [`tensor_normal`] instead: the first three counters make a stream key once
//! per step, and each element is a cheap 32-bit hash of the key and its
//! index, so compiled code draws four numbers per vector instruction. Their
//! uniforms are multiples of 2^-24, which f32 holds exactly: every backend
//! sees the same numbers, and a comparison such as dropout's `u < p` comes
//! out the same in f32 and f64.

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

/// The key of stream `stream` at step `step` under seed `seed`: the three
/// counters absorbed as in [`bits`].
pub fn stream_key(seed: u64, step: u64, stream: u64) -> u64 {
    let mut h = 0u64;
    for word in [seed, step, stream] {
        h = mix(h.wrapping_add(GAMMA) ^ word);
    }
    h
}

/// The constants of [`hash32`] (the "lowbias32" finalizer found by
/// Wellons' hash prospector).
pub const HASH32: (u32, u32) = (0x7feb_352d, 0x846c_a68b);

/// A bijection on `u32` that mixes every input bit into every output bit.
pub fn hash32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(HASH32.0);
    x ^= x >> 15;
    x = x.wrapping_mul(HASH32.1);
    x ^ (x >> 16)
}

/// 32 random bits for element `index` of the stream with key `key`: the
/// index (its low 32 bits) is hashed with the key's low half, then with its
/// high half.
pub fn lane(key: u64, index: u64) -> u32 {
    hash32(hash32(index as u32 ^ key as u32) ^ (key >> 32) as u32)
}

/// Element `index` of a `rand` tensor: uniform on `[0, 1)`, a multiple of
/// 2^-24.
pub fn tensor_uniform(seed: u64, step: u64, stream: u64, index: u64) -> f64 {
    f64::from(lane(stream_key(seed, step, stream), index) >> 8) * (1.0 / (1u64 << 24) as f64)
}

/// Element `index` of a `randn` tensor: Box–Muller (cosine branch) from the
/// tensor uniforms at `2·index` and `2·index + 1`.
pub fn tensor_normal(seed: u64, step: u64, stream: u64, index: u64) -> f64 {
    let key = stream_key(seed, step, stream);
    let uniform = |i: u64| f64::from(lane(key, i) >> 8) * (1.0 / (1u64 << 24) as f64);
    let first = index.wrapping_mul(2);
    // 1 - u is in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - uniform(first);
    let u2 = uniform(first.wrapping_add(1));
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tensor uniforms cover `[0, 1)` evenly: over 2^16 draws each of 16
    /// bins holds its share within 5 %, and the mean is 1/2 within 0.005.
    #[test]
    fn tensor_uniforms_are_even() {
        let n = 1u64 << 16;
        let mut bins = [0u32; 16];
        let mut sum = 0.0;
        for i in 0..n {
            let u = tensor_uniform(3, 7, 1, i);
            assert!((0.0..1.0).contains(&u));
            assert_eq!(u, f64::from(u as f32), "exact in f32");
            bins[(u * 16.0) as usize] += 1;
            sum += u;
        }
        let share = (n / 16) as f64;
        for (b, &count) in bins.iter().enumerate() {
            assert!(
                (f64::from(count) - share).abs() < 0.05 * share,
                "bin {b}: {count} of {share}"
            );
        }
        assert!((sum / n as f64 - 0.5).abs() < 0.005, "mean {}", sum / n as f64);
    }

    /// Neighbouring elements, steps and streams are not correlated: the
    /// correlation of 2^14 pairs stays under 0.03 (the noise is ~0.008).
    #[test]
    fn tensor_uniforms_are_independent() {
        let n = 1u64 << 14;
        type Pair<'a> = &'a dyn Fn(u64) -> (f64, f64);
        let corr = |pair: Pair| {
            let (mut sxy, mut sx, mut sy, mut sxx, mut syy) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for i in 0..n {
                let (x, y) = pair(i);
                sxy += x * y;
                sx += x;
                sy += y;
                sxx += x * x;
                syy += y * y;
            }
            let n = n as f64;
            (sxy / n - sx * sy / n / n) / ((sxx / n - (sx / n).powi(2)) * (syy / n - (sy / n).powi(2))).sqrt()
        };
        let cases: [(&str, Pair); 3] = [
            ("next index", &|i| {
                (tensor_uniform(1, 1, 0, i), tensor_uniform(1, 1, 0, i + 1))
            }),
            ("next step", &|i| {
                (tensor_uniform(1, 1, 0, i), tensor_uniform(1, 2, 0, i))
            }),
            ("next stream", &|i| {
                (tensor_uniform(1, 1, 0, i), tensor_uniform(1, 1, 1, i))
            }),
        ];
        for (name, pair) in cases {
            let c = corr(pair);
            assert!(c.abs() < 0.03, "{name}: correlation {c}");
        }
    }
}
