//! `NNC_TIMING=1`: how long each stage of a compile took, printed to
//! stderr as `timing: <stage> <duration>` (for finding where compile time
//! goes; nothing else reads it).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Whether `NNC_TIMING` is set (read once).
pub fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var_os("NNC_TIMING").is_some())
}

/// Prints `stage`'s time since `start` when timing is on; returns now, so
/// that calls chain from one stage to the next.
pub fn stage(stage: &str, start: Instant) -> Instant {
    if enabled() {
        eprintln!("timing: {stage} {:.1?}", start.elapsed());
    }
    Instant::now()
}

/// Prints the total of each named part when timing is on.
pub fn parts(what: &str, parts: &[(&str, Duration)]) {
    if enabled() {
        let text: Vec<String> = parts.iter().map(|(name, d)| format!("{name} {d:.1?}")).collect();
        eprintln!("timing: {what}: {}", text.join(", "));
    }
}
