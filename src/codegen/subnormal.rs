//! Subnormal floats flushed to zero while a compiled step runs.
//!
//! Arithmetic that makes or reads a subnormal `f32` (below 1.2e-38) takes a
//! microcode assist on x86 that costs about a hundred cycles. Training makes
//! them as a matter of course: Adam's moments decay by 0.9 and 0.999 each
//! step where a weight's gradient is rarely non-zero, and sink through the
//! subnormal range on the way to zero. Like XLA and oneDNN on CPU, the
//! compiled step runs with the FTZ and DAZ bits of MXCSR set, so such values
//! count as zero. The interpreter computes in `f64`, where these values are
//! normal numbers; the difference (below 1.2e-38 in any one value) is far
//! inside the tolerances the two are compared with. `NNC_FLUSH_SUBNORMALS=0`
//! turns the flush off, as a baseline for the benchmark.

/// Sets flush-to-zero and denormals-are-zero on this thread until dropped,
/// then restores the previous mode.
pub struct FlushSubnormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);

impl FlushSubnormals {
    pub fn new() -> FlushSubnormals {
        #[cfg(target_arch = "x86_64")]
        {
            let saved = read_mxcsr();
            write_mxcsr(saved | FTZ_DAZ);
            FlushSubnormals { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        FlushSubnormals {}
    }
}

impl Default for FlushSubnormals {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FlushSubnormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        write_mxcsr(self.saved);
    }
}

#[cfg(target_arch = "x86_64")]
fn read_mxcsr() -> u32 {
    let mut value: u32 = 0;
    // Safety: stmxcsr stores the 32-bit control register at the address.
    unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut value, options(nostack)) };
    value
}

#[cfg(target_arch = "x86_64")]
fn write_mxcsr(value: u32) {
    // Safety: ldmxcsr loads the control register; only the rounding and
    // flush bits are changed, and they are restored by `Drop`.
    unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &value, options(nostack, readonly)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnormals_flush_inside_the_guard_only() {
        let tiny = std::hint::black_box(1.0e-30f32);
        let scale = std::hint::black_box(1.0e-10f32);
        assert!(tiny * scale > 0.0, "IEEE keeps the subnormal product");
        {
            let _guard = FlushSubnormals::new();
            assert_eq!(std::hint::black_box(tiny) * std::hint::black_box(scale), 0.0);
        }
        assert!(
            std::hint::black_box(tiny) * std::hint::black_box(scale) > 0.0,
            "the mode is restored"
        );
    }
}
