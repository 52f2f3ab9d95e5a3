//! nnc: a compiler for deep-learning experiments written as one `.nn` file.
//!
//! The stages, in reading order (see `ARCHITECTURE.md`):
//! [`syntax`] parses text into an AST, [`check`] resolves names and infers
//! shapes, and [`cli`] drives them.

pub mod diagnostics;
pub mod syntax;
