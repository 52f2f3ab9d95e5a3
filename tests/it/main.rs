//! Integration tests, one binary: checking the examples, the diagnostics of
//! bad programs, robustness on mutated input, and the command line.

mod attention_examples;
mod carried;
mod cli;
mod common;
mod ctc;
mod decoding_examples;
mod decoding_methods;
mod distributed;
mod errors;
mod examples;
mod finetune;
mod fmt;
mod fuzz;
mod grad;
mod hessian;
mod ir;
mod jit;
mod jit_ops;
mod jit_patterns;
mod loops;
mod lsp;
mod pipeline_fuzz;
mod programs;
mod recurrent;
mod reliability;
mod report;
mod run;
mod scheduled_sampling;
mod sequence_examples;
mod sweep;
mod train;
mod views;
