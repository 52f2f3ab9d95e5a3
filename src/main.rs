//! The `nnc` binary: the command line of `nnc::cli`, with an allocator
//! that turns a failed allocation into a message and exit code 1 (the
//! standard library's default is an abort).

use std::alloc::{GlobalAlloc, Layout, System};

/// The system allocator; a failed allocation ends the process with a
/// message instead of an abort. `nnc run` checks its plan against the
/// memory it has before allocating, so this is for what the plan missed.
struct Allocator;

// Safety: every call goes to `System`; only a null result is intercepted.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        checked(System.alloc(layout), layout.size())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        checked(System.alloc_zeroed(layout), layout.size())
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        checked(System.realloc(ptr, layout, new_size), new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Allocator = Allocator;

fn checked(ptr: *mut u8, size: usize) -> *mut u8 {
    if ptr.is_null() {
        out_of_memory(size);
    }
    ptr
}

/// Says that `size` bytes could not be had and exits with 1, allocating
/// nothing (the message is assembled on the stack).
fn out_of_memory(size: usize) -> ! {
    let mut message = [0u8; 256];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        let n = bytes.len().min(message.len() - len);
        message[len..len + n].copy_from_slice(&bytes[..n]);
        len += n;
    };
    put(b"error: out of memory: ");
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = size;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    put(&digits[at..]);
    put(b" more bytes could not be allocated (other processes may have taken the memory); try a smaller --batch or --memory-limit\n");
    // Safety: write(2) and _exit(2) are async-signal-safe and allocate nothing.
    unsafe {
        libc::write(2, message.as_ptr().cast(), len);
        libc::_exit(1)
    }
}

fn main() -> std::process::ExitCode {
    // Output into a closed pipe (`nnc grad FILE | head -1`) ends the process
    // quietly, as it does any Unix filter; Rust's runtime ignores SIGPIPE,
    // which made every `println!` after `head` exited a panic.
    // Safety: called before any other thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    nnc::cli::main()
}
