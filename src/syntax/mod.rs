//! Syntax: `.nn` text in, [`ast::File`] with spans and a list of syntax
//! diagnostics out. Parsing never fails and never panics.

pub mod ast;
mod parser;

pub use parser::{item_chunks, parse, CONTEXTUAL_KEYWORDS, KEYWORDS, MAX_OPERATORS};

/// The stack of the threads that check, format and drop syntax trees. A
/// tree is as deep as an expression is long (`1 + 1 + ...` nests to the
/// left), and what walks it recurses: building it, the checker (which
/// bounds its own depth, but only after parsing), the formatter's
/// comparison of trees, and dropping the tree. The parser refuses an
/// expression of more than [`MAX_OPERATORS`] operators, so no tree is
/// deeper than the stack holds.
pub const DEEP_STACK: usize = 256 << 20;

/// Runs `work` on a thread named `name` with a [`DEEP_STACK`], or on this
/// thread if no thread can be started; a panic in it goes on here.
pub fn on_deep_stack<T: Send>(name: &str, work: impl FnOnce() -> T + Send) -> T {
    let mut work = Some(work);
    let spawned = std::thread::scope(|scope| {
        let work = &mut work;
        std::thread::Builder::new()
            .name(name.to_string())
            .stack_size(DEEP_STACK)
            .spawn_scoped(scope, move || work.take().map(|work| work()))
            .ok()
            .map(|handle| handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    });
    match (spawned.flatten(), work) {
        (Some(value), _) => value,
        (None, Some(work)) => work(),
        (None, None) => unreachable!("the work ran on the thread and returned its value"),
    }
}
