//! nnc: a compiler for deep-learning experiments written as one `.nn` file.
//!
//! The stages, in reading order (see `ARCHITECTURE.md`): [`syntax`] parses
//! text into an AST; [`check`] resolves names, infers symbolic shapes,
//! validates settings and traces the loss in the primitive ops of [`prim`];
//! [`ir`] holds that trace as a graph; [`autodiff`] appends the backward
//! pass and the optimizer update; [`passes`] simplify it; [`codegen`]
//! compiles the step to one native function, checked against the
//! reference interpreter [`interp`]; [`runtime`] trains, evaluates and
//! reports; [`cli`] drives them. Beside them: [`stdlib`] (the layers,
//! written in `.nn`), [`diagnostics`], [`fmt`], [`lsp`], [`collective`]
//! (the sums of data-parallel training) and [`timing`].

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
