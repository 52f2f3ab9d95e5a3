//! What the host's caches are, for choices that depend on them: a loop's
//! stacked results too large to stay cached are stored around the caches
//! (`step/loops.rs`).

/// Stacked results of a loop larger than this (half the last-level cache
/// the system reports, else [`STREAM_STACKS_ABOVE`]) are stored around the
/// caches: they are read back only after the loop (by the backward loop, or
/// by the products after it), when lines written a whole loop earlier have
/// left the caches anyway, and streamed they are not read from memory
/// before they are overwritten. Stacks that fit stay cached for the
/// backward loop (BENCHMARKS.md, "Loops: rows fetched ahead, stacks
/// streamed").
pub fn stream_stacks_above() -> usize {
    static ABOVE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *ABOVE.get_or_init(|| last_level_cache().map_or(STREAM_STACKS_ABOVE, |bytes| bytes / 2))
}

/// [`stream_stacks_above`] where the system does not say its caches.
pub const STREAM_STACKS_ABOVE: usize = 16 << 20;

/// Bytes of the largest cache CPU 0 reports (Linux's `sysfs`).
fn last_level_cache() -> Option<usize> {
    let caches = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    caches
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("size")).ok())
        .filter_map(|size| cache_bytes(&size))
        .max()
}

/// A cache size as `sysfs` writes it (`32768K`, `2M`, `512`) in bytes.
fn cache_bytes(size: &str) -> Option<usize> {
    let size = size.trim();
    let (digits, unit) = size.split_at(size.find(|c: char| !c.is_ascii_digit()).unwrap_or(size.len()));
    let scale = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        _ => return None,
    };
    digits.parse::<usize>().ok()?.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cache sizes as `sysfs` writes them; anything else is no size.
    #[test]
    fn cache_sizes_read_as_sysfs_writes_them() {
        assert_eq!(cache_bytes("32768K\n"), Some(32 << 20));
        assert_eq!(cache_bytes("2M"), Some(2 << 20));
        assert_eq!(cache_bytes("512"), Some(512));
        assert_eq!(cache_bytes("1G"), None);
        assert_eq!(cache_bytes("K"), None);
        assert_eq!(cache_bytes(""), None);
    }
}
