//! The step's memory: one zeroed allocation of 64-byte lines that every
//! buffer of the memory plan lies in (`memory.rs` places them).
//!
//! A large arena (at least [`HUGE_PAGES_FROM`]) asks Linux for huge pages:
//! a training step touches all of its arena every time, and a GPT's arena
//! (850 MB for gpt-small) in 4 KiB pages is far beyond the TLB's reach.
//! The pages are still faulted in by the step's first touches, now 2 MiB
//! at a time; on a host whose memory is fragmented that first step may
//! wait on the kernel's compaction (`BENCHMARKS.md`, "The arena in huge
//! pages"). `CompileOptions::huge_pages` (`NNC_HUGE_PAGES=0`) keeps 4 KiB
//! pages, as the benchmarks' baseline.

use super::memory;

/// 64 bytes, so the arena starts on a cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(super) struct Line(pub(super) [f32; 16]);

/// 64-byte lines of the arena for `plan` (one spare line at the end).
pub(super) fn arena_lines(plan: &memory::Plan) -> usize {
    plan.total.div_ceil(16) + 1
}

/// The step's memory: `lines` zeroed 64-byte lines. It is allocated with
/// the allocator's own alignment (16 bytes) and one line more, and starts
/// at the first line boundary inside: with a 64-byte alignment the global
/// allocator zeroes the memory itself (`posix_memalign` and a fill, which
/// touches every page: a cost growing with the arena, at compile time),
/// where a 16-byte one takes `calloc`'s fresh pages from the system, zero
/// and untouched until the step writes them.
pub(super) struct Arena {
    allocation: *mut u8,
    layout: std::alloc::Layout,
    lines: usize,
}

// Safety: the arena is plain memory owned by one `Compiled`.
unsafe impl Send for Arena {}
// Safety: shared references only read it.
unsafe impl Sync for Arena {}

impl Arena {
    pub(super) fn as_ptr(&self) -> *const Line {
        self.allocation.wrapping_add(self.allocation.align_offset(64)) as *const Line
    }

    pub(super) fn as_mut_ptr(&mut self) -> *mut Line {
        self.as_ptr() as *mut Line
    }

    pub(super) fn len(&self) -> usize {
        self.lines
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // Safety: allocated in `allocate_arena` with this layout.
        unsafe { std::alloc::dealloc(self.allocation, self.layout) };
    }
}

/// The zeroed arena for `plan`; an error, not an abort, if the memory
/// cannot be had. The memory comes zeroed from the allocator (fresh pages
/// from the system are zero and are not touched here, see [`Arena`]), so a
/// large arena costs nothing until the step writes it.
pub(super) fn allocate_arena(plan: &memory::Plan, huge_pages: bool) -> Result<Arena, String> {
    let lines = arena_lines(plan);
    let line = std::mem::size_of::<Line>();
    let refused = || {
        format!(
            "cannot allocate the step's {} MB of memory (the machine refused it)",
            (lines * line).div_ceil(1 << 20)
        )
    };
    let bytes = lines
        .checked_add(1)
        .and_then(|n| n.checked_mul(line))
        .ok_or_else(refused)?;
    let layout = std::alloc::Layout::from_size_align(bytes, 16).map_err(|_| refused())?;
    // Safety: the layout is not empty (`lines >= 1`, one spare line); the
    // extra line leaves room for `lines` whole lines after the first line
    // boundary; all-zero bytes are valid `f32`s.
    let allocation = unsafe { std::alloc::alloc_zeroed(layout) };
    if allocation.is_null() {
        return Err(refused());
    }
    if huge_pages && bytes >= HUGE_PAGES_FROM {
        in_huge_pages(allocation, bytes);
    }
    Ok(Arena {
        allocation,
        layout,
        lines,
    })
}

/// Arenas from this size on are put in huge pages (see the module doc):
/// 16 of them. Smaller ones stay within the TLB's reach anyway.
const HUGE_PAGES_FROM: usize = 32 << 20;

/// Asks for huge pages on the whole 2 MiB pages of `bytes` bytes from
/// `allocation`, not yet touched. A refusal (a kernel without transparent
/// huge pages) leaves ordinary pages.
#[cfg(target_os = "linux")]
fn in_huge_pages(allocation: *mut u8, bytes: usize) {
    const HUGE: usize = 2 << 20;
    let start = (allocation as usize).next_multiple_of(HUGE);
    let end = (allocation as usize + bytes) / HUGE * HUGE;
    if end > start {
        // Safety: `start..end` lies inside the allocation; the advice does
        // not change what the memory holds (zeros).
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn in_huge_pages(_allocation: *mut u8, _bytes: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asking for huge pages keeps what the memory holds, whether it was
    /// touched before (the pattern) or not (the zeros after it), and the
    /// memory stays writable.
    #[test]
    fn huge_pages_keep_the_contents() {
        let bytes = 8 << 20;
        let layout = std::alloc::Layout::from_size_align(bytes, 16).unwrap();
        let allocation = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!allocation.is_null());
        let memory = unsafe { std::slice::from_raw_parts_mut(allocation, bytes) };
        for (i, byte) in memory[..1 << 20].iter_mut().enumerate() {
            *byte = (i % 251) as u8;
        }
        in_huge_pages(allocation, bytes);
        assert!(memory[..1 << 20].iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        assert!(memory[1 << 20..].iter().all(|&b| b == 0));
        memory[bytes - 1] = 7;
        assert_eq!(memory[bytes - 1], 7);
        unsafe { std::alloc::dealloc(allocation, layout) };
    }
}
