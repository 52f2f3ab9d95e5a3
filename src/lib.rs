//! nnc: a compiler for deep-learning experiments written as one `.nn` file.
//!
//! The stages, in reading order (see `ARCHITECTURE.md`):
//! [`syntax`] parses text into an AST, [`check`] resolves names, infers
//! shapes and validates settings, and [`cli`] drives them. [`stdlib`] holds
//! the layers written in `.nn`; [`diagnostics`] is shared by every stage.

// Diagnostics travel in `Result::Err`; they are the cold path, and boxing
// them would only add noise at every `?`.
#![allow(clippy::result_large_err)]

pub mod autodiff;
pub mod check;
pub mod cli;
pub mod codegen;
pub mod collective;
pub mod diagnostics;
pub mod fmt;
pub mod interp;
pub mod ir;
pub mod lsp;
pub mod passes;
pub mod prim;
pub mod runtime;
pub mod stdlib;
pub mod syntax;
pub mod timing;
