//! The IR text of every example at each stage, and each pass alone on a
//! small fixture as a before/after diff. Snapshots are named
//! `<stage>@<example>` and `pass@<name>`.

use crate::common::{examples, root};
use std::path::Path;

fn program(path: &Path) -> nnc::check::Program {
    let program = nnc::check::check_file(path).expect("readable");
    assert!(
        !program.has_errors(),
        "{}",
        program.sources.render(&program.diagnostics, false)
    );
    program
}

/// The training step as `nnc run` builds it, before the passes: each
/// `scan` a loop, differentiated as a reverse loop.
fn step(program: &nnc::check::Program) -> nnc::ir::Graph {
    let mut forward = nnc::ir::lower::lower_loops(&program.train_trace);
    nnc::passes::prepare_forward(&mut forward);
    nnc::autodiff::optimizer::training_step(&forward, program.optimizer.as_ref().unwrap())
}

/// The training step differentiated as lowered, so that every pass of the
/// pipeline (the hoisting of products too) has its own work to show.
fn unprepared_step(program: &nnc::check::Program) -> nnc::ir::Graph {
    let forward = nnc::ir::lower::lower(&program.train_trace);
    nnc::autodiff::optimizer::training_step(&forward, program.optimizer.as_ref().unwrap())
}

#[test]
fn every_stage_of_every_example() {
    for path in examples() {
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let program = program(&path);
        let forward = nnc::ir::lower::lower_loops(&program.train_trace);
        nnc::ir::verify::assert_valid(&forward, "lowering");
        let mut graph = step(&program);
        nnc::ir::verify::assert_valid(&graph, "autodiff");
        let grad = nnc::ir::print::print(&graph);
        nnc::passes::optimize_loops(&mut graph);
        nnc::ir::verify::assert_valid(&graph, "passes");
        insta::assert_snapshot!(format!("ir@{name}"), nnc::ir::print::print(&forward));
        insta::assert_snapshot!(format!("grad@{name}"), grad);
        insta::assert_snapshot!(format!("opt@{name}"), nnc::ir::print::print(&graph));
    }
}

#[test]
fn printing_is_deterministic() {
    let path = root().join("examples/gpt.nn");
    let first = nnc::ir::print::print(&step(&program(&path)));
    let second = nnc::ir::print::print(&step(&program(&path)));
    assert_eq!(first, second);
}

/// Each pass alone on the fixture's training step, as a unified diff.
#[test]
fn each_pass_alone() {
    let program = program(&root().join("tests/data/ok/passes.nn"));
    for pass in nnc::passes::pipeline() {
        if pass.name() == "narrow-sequences" {
            // Works on loop bodies the other passes have simplified; see
            // loops::the_backward_lstm_loop_reads_only_what_it_needs.
            continue;
        }
        if ["sink-gathers", "scatter-in-loops", "shifted-products"].contains(&pass.name()) {
            // Work on loops kept as loops (and on the products after them),
            // which the fixture has none of; see
            // loops::a_gathered_sequence_is_gathered_inside_the_loop,
            // loops::a_scatter_of_stacked_rows_is_summed_inside_the_loop and
            // passes::shifted's tests.
            continue;
        }
        let mut graph = unprepared_step(&program);
        // Surviving nodes keep their numbers, so the diff shows only the change.
        let names = nnc::ir::print::numbering(&graph);
        let before = nnc::ir::print::print(&graph);
        let changed = pass.run(&mut graph);
        nnc::ir::verify::assert_valid(&graph, pass.name());
        let after = nnc::ir::print::print_with_names(&graph, &names, &[]);
        assert!(changed, "{} found nothing to do on the fixture", pass.name());
        assert_ne!(before, after);
        let diff = similar::TextDiff::from_lines(&before, &after)
            .unified_diff()
            .context_radius(1)
            .to_string();
        insta::assert_snapshot!(format!("pass@{}", pass.name()), diff);
    }
}

/// The passes leave the fixture's step smaller, and one more round finds
/// nothing to do.
#[test]
fn passes_reach_a_fixed_point() {
    let program = program(&root().join("tests/data/ok/passes.nn"));
    let mut graph = step(&program);
    nnc::ir::loops::unroll(&mut graph).unwrap();
    let before = graph.len();
    nnc::passes::optimize(&mut graph);
    assert!(graph.len() < before, "{} -> {}", before, graph.len());
    for pass in nnc::passes::pipeline() {
        assert!(!pass.run(&mut graph), "{} still changes the graph", pass.name());
    }
}

/// The verifier prints its complaint under the offending node.
#[test]
fn the_verifier_points_at_the_bad_node() {
    use nnc::check::dims::Dim;
    use nnc::prim::{BinaryOp, DType, Prim};
    let mut graph = nnc::ir::Graph::new();
    let d = |n: i64| Dim::constant(n);
    let a = graph.add(Prim::Param("a".into()), DType::F32, vec![d(2), d(3)], &[]);
    let b = graph.add(Prim::Param("b".into()), DType::F32, vec![d(3), d(4)], &[]);
    let product = graph.add(Prim::MatMul, DType::F32, vec![d(2), d(4)], &[a, b]);
    // Wrong: an element-wise op on operands of different shapes.
    let bad = graph.add(Prim::Binary(BinaryOp::Add), DType::F32, vec![d(2), d(4)], &[product, a]);
    graph.set_output("y", bad);
    let problems = nnc::ir::verify::verify(&graph);
    assert_eq!(problems.len(), 1);
    insta::assert_snapshot!(nnc::ir::print::print_with_notes(&graph, &problems), @r"
    %0: f32[2, 3] = param a
    %1: f32[3, 4] = param b
    %2: f32[2, 4] = matmul(%0, %1)
    %3: f32[2, 4] = add(%2, %0)
        ^ error: operand 1 is [2, 3], but the result is [2, 4]
    output y = %3
    ");
}

/// The step of one of two data-parallel processes: the loss and the
/// gradients flattened into one vector, summed over the processes by one
/// `all_reduce`, halved, and sliced back before the update.
#[test]
fn a_data_parallel_step_sums_over_the_processes_once() {
    let program = program(&root().join("examples/views_linear.nn"));
    let mut forward = nnc::ir::lower::lower_loops(&program.train_trace);
    nnc::passes::prepare_forward(&mut forward);
    let optimizer = program.optimizer.as_ref().unwrap();
    let mut graph = nnc::autodiff::optimizer::replicated_training_step(&forward, optimizer, 2);
    nnc::ir::verify::assert_valid(&graph, "autodiff");
    nnc::passes::optimize_loops(&mut graph);
    nnc::ir::verify::assert_valid(&graph, "passes");
    let text = nnc::ir::print::print(&graph);
    assert_eq!(text.matches("= all_reduce").count(), 1, "{text}");
    insta::assert_snapshot!("opt@views_linear@2_processes", text);
}

/// Batch normalization's statistics (`sync_mean`) are traced as a share's
/// mean summed over the processes: the step of one of two processes halves
/// each sum, and its gradient is summed too; the step of one process has
/// no sum at all.
#[test]
fn batch_statistics_are_summed_over_the_processes_only_when_there_are_several() {
    let data = root().join("examples/data/views.csv");
    let text = format!(
        r#"
data views = series("{}", column: "views", window: 7, val_last: 28, normalize: true)
model norm(x: f32[B, 7]) -> f32[B] {{
    reshape(linear(batch_norm(linear(x, 4, bias: false)), 1), [B])
}}
loss mse(norm(views.x), views.y)
optimizer sgd(lr: 0.1)
train {{ steps: 1, batch: 8 }}
"#,
        data.display()
    );
    let program = nnc::check::check_source("norm.nn", &text, &Default::default());
    assert!(
        !program.has_errors(),
        "{}",
        program.sources.render(&program.diagnostics, false)
    );
    let mut forward = nnc::ir::lower::lower_loops(&program.train_trace);
    nnc::passes::prepare_forward(&mut forward);
    let forward_text = nnc::ir::print::print(&forward);
    assert_eq!(forward_text.matches("= all_reduce").count(), 2, "{forward_text}");
    let optimizer = program.optimizer.as_ref().unwrap();
    let alone = nnc::autodiff::optimizer::training_step(&forward, optimizer);
    let alone_text = nnc::ir::print::print(&alone);
    assert_eq!(alone_text.matches("= all_reduce").count(), 0, "{alone_text}");
    let mut graph = nnc::autodiff::optimizer::replicated_training_step(&forward, optimizer, 2);
    nnc::ir::verify::assert_valid(&graph, "autodiff");
    nnc::passes::optimize_loops(&mut graph);
    nnc::ir::verify::assert_valid(&graph, "passes");
    let text = nnc::ir::print::print(&graph);
    // Mean and variance, their gradients, and the step's one sum.
    assert_eq!(text.matches("= all_reduce").count(), 5, "{text}");
    insta::assert_snapshot!("opt@batch_norm@2_processes", text);
}
