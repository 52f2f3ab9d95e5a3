//! Syntax: `.nn` text in, [`ast::File`] with spans and a list of syntax
//! diagnostics out. Parsing never fails and never panics.

pub mod ast;
mod parser;

pub use parser::{item_chunks, parse, CONTEXTUAL_KEYWORDS, KEYWORDS};
