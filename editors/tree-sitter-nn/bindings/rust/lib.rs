//! The `.nn` language for tree-sitter: [`LANGUAGE`] (the generated parser
//! of `grammar.js`) and [`HIGHLIGHTS_QUERY`].

use tree_sitter_language::LanguageFn;

extern "C" {
    fn tree_sitter_nn() -> *const ();
}

/// The tree-sitter language of `.nn` files.
pub const LANGUAGE: LanguageFn = unsafe { LanguageFn::from_raw(tree_sitter_nn) };

/// Highlight captures (`queries/highlights.scm`).
pub const HIGHLIGHTS_QUERY: &str = include_str!("../../queries/highlights.scm");
