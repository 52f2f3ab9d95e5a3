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

/// The sigmoid-sum + ReLU model on the views series beats the
/// same-day-last-week baseline (563 views): below 0.65 standard deviations
/// of the training values (786.1 views), i.e. 511 views.
#[test]
fn sigmoid_sum_model_beats_the_baselines() {
    let mut session = session("views_sigmoid.nn", &Overrides::default());
    for _ in 0..session.total_steps {
        session.train_step().expect("finite step");
    }
    let metrics = session.evaluate(&["mae".into()], usize::MAX).unwrap();
    println!("validation {metrics:?}");
    assert!(
        metrics["mae"] < 511.0,
        "validation MAE {:.1} >= 511 views",
        metrics["mae"]
    );
}

/// Batch norm after every hidden layer, trained by SGD with momentum at a
/// high rate (the file's `NORM = true` variant): at least 94 % validation
/// accuracy (evaluation uses the running statistics).
#[test]
fn normalized_mlp_learns_the_digits() {
    let mut session = session("digits_bn.nn", &Overrides::default());
    for _ in 0..session.total_steps {
        session.train_step().expect("finite step");
    }
    let metrics = session.evaluate(&["accuracy".into()], usize::MAX).unwrap();
    println!("validation {metrics:?}");
    assert!(
        metrics["accuracy"] >= 0.94,
        "validation accuracy {:.3} < 0.94",
        metrics["accuracy"]
    );
}
