//! Training end to end on the reference interpreter, bounded in steps.

use std::path::Path;

use nnc::runtime::{Overrides, Session};

fn session(example: &str, overrides: &Overrides) -> Session {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let program = nnc::check::check_file(&dir.join(example)).expect("readable");
    assert!(!program.has_errors());
    match Session::new(program, &dir, overrides) {
        Ok(session) => session,
        Err((diagnostic, _)) => panic!("{}", diagnostic.message),
    }
}

/// The MLP on digits, as written in the file (30 epochs of batch 64), on
/// the interpreter: at least 90 % validation accuracy.
#[test]
fn interpreter_trains_the_mlp_on_digits() {
    let mut session = session("digits_mlp.nn", &Overrides::default());
    let steps = session.total_steps;
    let start = std::time::Instant::now();
    let mut first = None;
    for _ in 0..steps {
        let loss = session.train_step().expect("finite step");
        first.get_or_insert(loss);
    }
    let metrics = session
        .evaluate(&["loss".into(), "accuracy".into()], usize::MAX)
        .unwrap();
    println!(
        "{steps} steps in {:.1?}: first loss {first:?}, validation {metrics:?}",
        start.elapsed()
    );
    assert!(
        metrics["accuracy"] >= 0.90,
        "validation accuracy {:.3} < 0.90",
        metrics["accuracy"]
    );
    assert!(metrics["loss"] < first.unwrap(), "loss did not fall");
}
