//! The standard library of layers and losses, written in `.nn` and compiled
//! into the binary. `nnc std` prints it.

/// `(file name, source)` of every standard-library file, in load order.
pub const FILES: &[(&str, &str)] = &[
    ("<std>/layers.nn", include_str!("../stdlib/layers.nn")),
    ("<std>/losses.nn", include_str!("../stdlib/losses.nn")),
    ("<std>/ctc.nn", include_str!("../stdlib/ctc.nn")),
    ("<std>/bert.nn", include_str!("../stdlib/bert.nn")),
];
