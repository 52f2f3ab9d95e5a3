//! Parameter and state initialization from the declared initializers,
//! seeded and deterministic: the same seed gives the same numbers.

use ndarray::{ArrayD, IxDyn};

use crate::check::types::Initializer;
use crate::check::ParamInfo;
use crate::interp::random;

/// A stable number for a name (FNV-1a), so each tensor gets its own stream.
pub fn name_stream(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The initial value of a parameter or state. Shapes are constant (the
/// checker requires it).
pub fn initialize(info: &ParamInfo, seed: u64) -> ArrayD<f64> {
    let shape: Vec<usize> = info
        .ty
        .shape
        .iter()
        .map(|d| d.as_const().unwrap_or(1).max(0) as usize)
        .collect();
    let count: usize = shape.iter().product();
    let fan_out = shape.last().copied().unwrap_or(1).max(1) as f64;
    let fan_in = if shape.len() >= 2 {
        (count as f64 / fan_out).max(1.0)
    } else {
        fan_out
    };
    let stream = name_stream(&info.path);
    let uniform = |i: usize| random::uniform(seed, 0, stream, i as u64);
    let normal = |i: usize| random::normal(seed, 0, stream, i as u64);
    let values: Vec<f64> = (0..count)
        .map(|i| match info.init {
            Initializer::Zeros => 0.0,
            Initializer::Ones => 1.0,
            Initializer::Constant(v) => v,
            Initializer::Normal { mean, std } => mean + std * normal(i),
            Initializer::Uniform { low, high } => low + (high - low) * uniform(i),
            // Glorot: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))
            Initializer::Xavier { gain } => {
                let a = gain * (6.0 / (fan_in + fan_out)).sqrt();
                a * (2.0 * uniform(i) - 1.0)
            }
            // He: N(0, gain^2 * 2 / fan_in)
            Initializer::Kaiming { gain } => gain * (2.0 / fan_in).sqrt() * normal(i),
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(&shape), values).expect("the shape holds count values")
}
