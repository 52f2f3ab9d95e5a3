//! Loops compiled as loops: graphs that keep every `scan` one loop node
//! (`ir::lower::lower_loops`) on the JIT against the interpreter on the
//! same graph. Every recurrent layer of the standard library at T = 1, 2,
//! 5 (the evaluation graph, and the training step with its backward
//! loops), the `ctc` example (a loop with a captured tensor), on one
//! thread and on a team of two (the same bits), with bounds checked; and
//! the code compiled does not grow with the sequence length.

use std::collections::HashMap;

use nnc::check::dims::Dim;
use nnc::codegen::{CompileOptions, Compiled};
use nnc::interp::Env;
use nnc::ir::Graph;
use nnc::prim::Prim;

use crate::common::root;
use crate::recurrent::{session, step_with_loops, write_model, LAYERS, LENGTHS};

/// f32 against f64: `|jit - interp| <= ATOL + RTOL·|interp|`.
const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-5;

/// Bounds checked; on a team the stacked results are stored around the
/// caches whatever their size (`stream_stacks_above`), so the bits
/// compared between one thread and two also compare the two ways of
/// storing them.
fn options(threads: usize) -> CompileOptions {
    CompileOptions {
        check_bounds: true,
        threads,
        adaptive: false,
        flush_subnormals: true,
        huge_pages: true,
        collective: None,
        stream_stacks_above: if threads > 1 { 0 } else { usize::MAX },
    }
}

/// How many loop nodes a graph has.
pub(crate) fn loops(graph: &Graph) -> usize {
    graph
        .graph
        .node_indices()
        .filter(|&id| matches!(graph.node(id).op, Prim::Scan(_)))
        .count()
}

/// The evaluation graph with its loops, optimized.
fn eval_graph(session: &nnc::runtime::Session) -> Graph {
    let mut graph = nnc::ir::lower::lower_loops(&session.program.eval_trace);
    nnc::passes::optimize_loops_up_to(&mut graph, 0);
    graph
}

/// The training step with its loops: forward loops and their gradients as
/// backward loops, optimized.
fn step_graph(session: &nnc::runtime::Session) -> Graph {
    let mut step = step_with_loops(session);
    nnc::passes::optimize_loops_up_to(&mut step, 0);
    step
}

/// `graph` (which has loops) on the JIT against the interpreter, on one
/// thread and on two (streaming its stacks), bounds checked; both give the
/// same bits.
fn check(name: &str, graph: &Graph, env: &Env) {
    assert!(loops(graph) > 0, "{name}: the graph has no loop left");
    let one = crate::jit::compare_outputs_options(&format!("{name}, 1 thread"), graph, env, (RTOL, ATOL), &options(1));
    let two = crate::jit::compare_outputs_options(&format!("{name}, 2 threads"), graph, env, (RTOL, ATOL), &options(2));
    for output in one.output_names() {
        let (a, b) = (one.output(&output).unwrap(), two.output(&output).unwrap());
        let same = a
            .iter()
            .zip(b.iter())
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()));
        assert!(same, "{name}: `{output}` differs between 1 and 2 threads");
    }
}

#[test]
fn every_recurrent_layer_as_a_loop_matches_the_interpreter() {
    for (label, layer) in LAYERS {
        let dir = write_model("loops-eval", label, layer);
        for t in LENGTHS {
            let session = session(&dir, "model.nn", &[("T", t)], 3);
            let env = session.step_env(0);
            check(&format!("{label}, T = {t}, evaluation"), &eval_graph(&session), &env);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn every_recurrent_layer_trains_as_a_loop_like_the_interpreter() {
    for (label, layer) in LAYERS {
        let dir = write_model("loops-train", label, layer);
        for t in LENGTHS {
            let session = session(&dir, "model.nn", &[("T", t)], 3);
            let env = session.step_env(0);
            check(&format!("{label}, T = {t}, training step"), &step_graph(&session), &env);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// The training step with loops (backward loops from `autodiff::loops`)
/// against the unrolled step the runtime trains with (whose gradients
/// `recurrent.rs` checks against finite differences), both on the
/// interpreter in f64: every output within 1e-9 relative + 1e-12.
#[test]
fn the_training_step_with_loops_matches_the_unrolled_one() {
    for (label, layer) in LAYERS {
        let dir = write_model("loops-unrolled", label, layer);
        for t in LENGTHS {
            let session = session(&dir, "model.nn", &[("T", t)], 3);
            let env = session.step_env(0);
            let looped = nnc::interp::run_outputs(&step_graph(&session), &env).unwrap();
            let unrolled = nnc::interp::run_outputs(&session.step_graph, &env).unwrap();
            for (name, want) in &unrolled {
                let got = &looped[name];
                assert_eq!(got.shape(), want.shape(), "{label}, T = {t}: `{name}`");
                for (g, w) in got.iter().zip(want.iter()) {
                    assert!(
                        (g - w).abs() <= 1e-12 + 1e-9 * w.abs(),
                        "{label}, T = {t}: `{name}` is {g} with loops, {w} unrolled"
                    );
                }
            }
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// The fused kernels, the memory plan and the CLIF list a loop's body
/// once: the dumps of a char LSTM's evaluation graph are as long at T = 4
/// as at T = 64, and show the loop with its body.
#[test]
fn dumps_show_the_body_once() {
    let dir = root().join("examples");
    let dumps = |t: f64| {
        let session = session(&dir, "char_lstm.nn", &[("T", t)], 2);
        let graph = eval_graph(&session);
        let dims = HashMap::from([(nnc::check::data::BATCH.to_string(), 2)]);
        (
            nnc::codegen::dump_fused(&graph, &dims).unwrap(),
            nnc::codegen::dump_memory(&graph, &dims).unwrap(),
            nnc::codegen::dump_clif(&graph, &dims).unwrap(),
        )
    };
    let (short, long) = (dumps(4.0), dumps(64.0));
    assert!(
        short.0.contains("= scan (length=4") && short.0.contains("its body once:"),
        "{}",
        short.0
    );
    assert!(
        short.1.contains("loop %") && short.1.contains("(argument 0)"),
        "{}",
        short.1
    );
    assert_eq!(
        short.0.lines().count(),
        long.0.lines().count(),
        "{}\n{}",
        short.0,
        long.0
    );
    assert_eq!(
        short.1.lines().count(),
        long.1.lines().count(),
        "{}\n{}",
        short.1,
        long.1
    );
    let functions = |clif: &str| clif.matches("; kernel").count();
    assert!(short.2.contains("; step") && functions(&short.2) > 0, "{}", short.2);
    assert_eq!(functions(&short.2), functions(&long.2));
}

/// The CTC loss scans the frames with a captured tensor (`skip`).
#[test]
fn the_ctc_example_as_a_loop_matches_the_interpreter() {
    let dir = root().join("examples");
    let session = session(&dir, "ctc.nn", &[], 2);
    let env = session.step_env(0);
    check("ctc, evaluation", &eval_graph(&session), &env);
}

/// Kernel functions of a char LSTM's evaluation graph: as many at T = 4
/// as at T = 64 (the body is compiled once, whatever the length).
#[test]
fn compiled_code_does_not_grow_with_the_sequence_length() {
    let dir = root().join("examples");
    let functions = |t: f64| {
        let session = session(&dir, "char_lstm.nn", &[("T", t)], 2);
        let graph = eval_graph(&session);
        let dims = HashMap::from([(nnc::check::data::BATCH.to_string(), 2)]);
        let planned = nnc::codegen::Planned::new(&graph, &dims).unwrap();
        let compiled = Compiled::from_planned(planned, &options(2), std::time::Instant::now()).unwrap();
        compiled.functions()
    };
    let (short, long) = (functions(4.0), functions(64.0));
    assert_eq!(short, long, "kernel functions at T = 4 and at T = 64");
}

/// A char LSTM of the examples' widths (H = 128, batch 4), large enough
/// that the team of two shares kernels and products inside the loops'
/// bodies: evaluation and training step against the interpreter.
#[test]
fn a_wide_lstm_with_shared_kernels_in_its_loops_matches_the_interpreter() {
    let dir = root().join("examples");
    let session = session(&dir, "char_lstm.nn", &[("T", 3.0)], 4);
    let env = session.step_env(0);
    check("char lstm, evaluation", &eval_graph(&session), &env);
    check("char lstm, training step", &step_graph(&session), &env);
}

/// Constant sizes.
fn dims(shape: &[i64]) -> Vec<Dim> {
    shape.iter().map(|&n| Dim::constant(n)).collect()
}

/// Argument `k` of a loop body: f32 of a constant shape.
fn arg(body: &mut Graph, k: usize, shape: &[i64]) -> nnc::ir::NodeId {
    body.add(Prim::Arg(k), nnc::prim::DType::F32, dims(shape), &[])
}

/// A parameter `name`: f32 of a constant shape.
fn param(graph: &mut Graph, name: &str, shape: &[i64]) -> nnc::ir::NodeId {
    graph.add(Prim::Param(name.into()), nnc::prim::DType::F32, dims(shape), &[])
}

/// A scan node of `looped` over `operands`, its value every result laid
/// end to end.
fn scan(graph: &mut Graph, looped: nnc::ir::loops::Loop, operands: &[nnc::ir::NodeId]) -> nnc::ir::NodeId {
    let flat = looped.flat_shape().unwrap();
    graph.add(
        Prim::Scan(std::sync::Arc::new(looped)),
        nnc::prim::DType::F32,
        flat,
        operands,
    )
}

/// Ids `[rows, steps]` for a table of 5 rows: -1 to 5, so some outside it.
fn ids_feed(rows: usize, steps: usize) -> ndarray::ArrayD<f64> {
    let ids = (0..rows * steps).map(|i| ((i * 3) % 7) as f64 - 1.0).collect();
    ndarray::ArrayD::from_shape_vec(vec![rows, steps], ids).unwrap()
}

/// Inputs named and shaped as given, each filled with a pattern of its
/// own (values in [-1, 1.5]).
fn feeds(inputs: &[(&str, &[usize])]) -> Env {
    let values = |shape: &[usize], seed: usize| {
        let n: usize = shape.iter().product();
        let data = (0..n).map(|i| ((i * 7 + seed * 13) % 11) as f64 / 4.0 - 1.0).collect();
        ndarray::ArrayD::from_shape_vec(shape.to_vec(), data).unwrap()
    };
    Env {
        dims: HashMap::new(),
        feeds: inputs
            .iter()
            .enumerate()
            .map(|(k, (name, shape))| (name.to_string(), values(shape, k + 1)))
            .collect(),
        seed: 0,
        step: 0,
        collective: None,
    }
}

/// A loop whose two carries trade places every step (each next value is
/// the other's argument: one waits outside the slots while they are
/// written), run in reverse, with an argument as a stacked result and a
/// captured parameter read in place.
#[test]
fn carries_passed_round_and_arguments_as_results() {
    use nnc::prim::{BinaryOp, DType};
    let mut body = Graph::new();
    let c0 = arg(&mut body, 0, &[2, 3]);
    let c1 = arg(&mut body, 1, &[2, 3]);
    let x = arg(&mut body, 2, &[2, 3]);
    let w = arg(&mut body, 3, &[3]);
    let wide = body.add(Prim::Broadcast, DType::F32, dims(&[2, 3]), &[w]);
    let scaled = body.binary(BinaryOp::Mul, x, wide);
    let next = body.binary(BinaryOp::Add, c0, scaled);
    body.set_output("carry 0", c1);
    body.set_output("carry 1", c0);
    body.set_output("y 0", c0);
    body.set_output("y 1", next);
    let looped = nnc::ir::loops::Loop {
        body,
        length: 4,
        reverse: true,
        carries: 2,
        sequences: 1,
        captured: 1,
        ys: 2,
    };
    let mut graph = Graph::new();
    let a = param(&mut graph, "a", &[2, 3]);
    let b = param(&mut graph, "b", &[2, 3]);
    let xs = param(&mut graph, "xs", &[2, 4, 3]);
    let w = param(&mut graph, "w", &[3]);
    let scan = scan(&mut graph, looped, &[a, b, xs, w]);
    graph.set_output("out", scan);
    let env = feeds(&[("a", &[2, 3]), ("b", &[2, 3]), ("xs", &[2, 4, 3]), ("w", &[3])]);
    check("carries passed round", &graph, &env);
}
/// A loop whose stacked result and next carry are the sequence's step
/// itself: the copies out read the sequence's slot, so the next step's
/// sequence is copied in only after every thread has read it, where an
/// LSTM's loops copy theirs in as the step before ends.
#[test]
fn a_sequence_step_as_result_and_next_carry() {
    use nnc::prim::BinaryOp;
    let mut body = Graph::new();
    let c0 = arg(&mut body, 0, &[64, 8]);
    let x = arg(&mut body, 1, &[64, 8]);
    let sum = body.binary(BinaryOp::Add, c0, x);
    body.set_output("carry 0", x);
    body.set_output("y 0", x);
    body.set_output("y 1", sum);
    let looped = nnc::ir::loops::Loop {
        body,
        length: 70,
        reverse: false,
        carries: 1,
        sequences: 1,
        captured: 0,
        ys: 2,
    };
    let mut graph = Graph::new();
    let a = param(&mut graph, "a", &[64, 8]);
    let xs = param(&mut graph, "xs", &[64, 70, 8]);
    let scan = scan(&mut graph, looped, &[a, xs]);
    graph.set_output("out", scan);
    let env = feeds(&[("a", &[64, 8]), ("xs", &[64, 70, 8])]);
    check("a sequence step as result", &graph, &env);
    let early = ", copied in as the step before ends";
    let memory = nnc::codegen::dump_memory(&graph, &HashMap::new()).unwrap();
    assert!(memory.contains("steps at [") && !memory.contains(early), "{memory}");

    let dir = write_model("loops-early-steps", "lstm", "lstm(x, hidden: H)");
    let session = session(&dir, "model.nn", &[("T", 5.0)], 3);
    let dims = HashMap::from([(nnc::check::data::BATCH.to_string(), 3)]);
    let memory = nnc::codegen::dump_memory(&step_graph(&session), &dims).unwrap();
    assert_eq!(memory.matches(early).count(), 2, "{memory}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A loop whose sequence is a gather of table rows (a character model's
/// projected embedding) gathers them itself, step by step
/// (`passes/tables.rs`): the loop reads the ids, captures the table, and
/// gives the values the stacked rows gave, ids outside the table (zeros)
/// included.
#[test]
fn a_gathered_sequence_is_gathered_inside_the_loop() {
    use nnc::prim::{BinaryOp, DType};
    let mut body = Graph::new();
    let c0 = arg(&mut body, 0, &[2, 3]);
    let x = arg(&mut body, 1, &[2, 3]);
    let sum = body.binary(BinaryOp::Add, c0, x);
    let scaled = body.binary(BinaryOp::Mul, sum, x);
    body.set_output("carry 0", sum);
    body.set_output("y 0", scaled);
    let looped = nnc::ir::loops::Loop {
        body,
        length: 70,
        reverse: false,
        carries: 1,
        sequences: 1,
        captured: 0,
        ys: 1,
    };
    let mut graph = Graph::new();
    let a = param(&mut graph, "a", &[2, 3]);
    let table = param(&mut graph, "table", &[5, 3]);
    let ids = graph.add(Prim::Input("ids".into()), DType::I32, dims(&[2, 70]), &[]);
    let rows = graph.add(Prim::Take, DType::F32, dims(&[2, 70, 3]), &[table, ids]);
    let scan = scan(&mut graph, looped, &[a, rows]);
    graph.set_output("out", scan);
    let mut env = feeds(&[("a", &[2, 3]), ("table", &[5, 3])]);
    env.feeds.insert("ids".into(), ids_feed(2, 70));
    let expected = nnc::interp::run_outputs(&graph, &env).unwrap();

    let mut sunk = graph.clone();
    nnc::passes::optimize_loops_up_to(&mut sunk, 0);
    let scan = sunk.output("out").unwrap();
    let operands = sunk.inputs(scan);
    assert_eq!(
        sunk.node(operands[1]).op,
        Prim::Input("ids".into()),
        "the loop reads the ids"
    );
    assert_eq!(
        sunk.node(operands[2]).op,
        Prim::Param("table".into()),
        "and captures the table"
    );
    assert!(!sunk.graph.node_indices().any(|n| sunk.node(n).op == Prim::Take));
    assert_eq!(nnc::interp::run_outputs(&sunk, &env).unwrap(), expected);
    check("a gathered sequence", &sunk, &env);
}

/// A loop's stacked result scattered into a table's rows after it (an
/// embedding's gradient) is added step by step instead, into a sum the
/// loop carries (`passes/tables.rs`), computed in its slot: the values the
/// scatter after the loop gave, ids outside the table included, on one
/// thread and two.
#[test]
fn a_scatter_of_stacked_rows_is_summed_inside_the_loop() {
    use nnc::prim::{BinaryOp, DType};
    let mut body = Graph::new();
    let c0 = arg(&mut body, 0, &[2, 20]);
    let x = arg(&mut body, 1, &[2, 20]);
    let w = arg(&mut body, 2, &[20]);
    let wide = body.add(Prim::Broadcast, DType::F32, dims(&[2, 20]), &[w]);
    let next = body.binary(BinaryOp::Mul, c0, wide);
    let next = body.binary(BinaryOp::Add, next, x);
    body.set_output("carry 0", next);
    body.set_output("y 0", next);
    let looped = nnc::ir::loops::Loop {
        body,
        length: 70,
        reverse: true,
        carries: 1,
        sequences: 1,
        captured: 1,
        ys: 1,
    };
    let mut graph = Graph::new();
    let a = param(&mut graph, "a", &[2, 20]);
    let xs = param(&mut graph, "xs", &[2, 70, 20]);
    let w = param(&mut graph, "w", &[20]);
    let ids = graph.add(Prim::Input("ids".into()), DType::I32, dims(&[2, 70]), &[]);
    let scan = scan(&mut graph, looped, &[a, xs, w]);
    let last = graph.slice(scan, 0, Dim::constant(0), Dim::constant(40), 1);
    let stacked = graph.slice(scan, 0, Dim::constant(40), Dim::constant(2800), 1);
    let stacked = graph.reshape(stacked, dims(&[2, 70, 20]));
    let table = graph.add(
        Prim::ScatterRows { rows: Dim::constant(5) },
        DType::F32,
        dims(&[5, 20]),
        &[stacked, ids],
    );
    graph.set_output("last", last);
    graph.set_output("table", table);
    let mut env = feeds(&[("a", &[2, 20]), ("xs", &[2, 70, 20]), ("w", &[20])]);
    env.feeds.insert("ids".into(), ids_feed(2, 70));
    let expected = nnc::interp::run_outputs(&graph, &env).unwrap();

    let mut summed = graph.clone();
    nnc::passes::optimize_loops_up_to(&mut summed, 0);
    assert!(
        !summed
            .graph
            .node_indices()
            .any(|n| matches!(summed.node(n).op, Prim::ScatterRows { .. })),
        "no scatter after the loop"
    );
    let got = nnc::interp::run_outputs(&summed, &env).unwrap();
    for (name, want) in &expected {
        let close = want
            .iter()
            .zip(got[name].iter())
            .all(|(w, g)| (w - g).abs() <= 1e-9 * (1.0 + w.abs()));
        assert!(close, "{name}: {want} against {}", got[name]);
    }
    let memory = nnc::codegen::dump_memory(&summed, &HashMap::new()).unwrap();
    let body = memory.split("loop %").nth(1).expect("the loop");
    let sum = body
        .lines()
        .filter(|l| l.contains("f32[5, 20] 400 B"))
        .collect::<Vec<_>>();
    assert!(
        sum.len() == 2 && sum.iter().any(|l| l.ends_with("(output, in place)")),
        "{memory}"
    );
    check("a scatter summed in the loop", &summed, &env);
}

/// A carried sum with a scatter whose rows are computed from the sum
/// itself (`acc + scatter_rows(2·acc, ids_t)`, the ids a permutation with
/// repeats): computed in the sum's slot, a row written early would be read
/// back as a later row's value, so the kernel must not work in place.
#[test]
fn a_scatter_that_reads_its_own_sum_is_not_computed_in_place() {
    use nnc::prim::{BinaryOp, DType};
    let mut body = Graph::new();
    let acc = arg(&mut body, 0, &[5, 8]);
    let ids = body.add(Prim::Arg(1), DType::I32, dims(&[5]), &[]);
    let doubled = body.binary(BinaryOp::Add, acc, acc);
    let rows = body.add(
        Prim::ScatterRows { rows: Dim::constant(5) },
        DType::F32,
        dims(&[5, 8]),
        &[doubled, ids],
    );
    let next = body.binary(BinaryOp::Add, acc, rows);
    body.set_output("carry 0", next);
    let looped = nnc::ir::loops::Loop {
        body,
        length: 3,
        reverse: false,
        carries: 1,
        sequences: 1,
        captured: 0,
        ys: 0,
    };
    let mut graph = Graph::new();
    let a = param(&mut graph, "a", &[5, 8]);
    let ids = graph.add(Prim::Input("ids".into()), DType::I32, dims(&[5, 3]), &[]);
    let scan = scan(&mut graph, looped, &[a, ids]);
    graph.set_output("out", scan);
    let mut env = feeds(&[("a", &[5, 8])]);
    let ids: Vec<f64> = [4, 0, 1, 3, 3, 2, 0, 2, 1, 1, 4, 2, 0, 3, 4]
        .iter()
        .map(|&i| i as f64)
        .collect();
    env.feeds
        .insert("ids".into(), ndarray::ArrayD::from_shape_vec(vec![5, 3], ids).unwrap());
    check("a scatter reading its own sum", &graph, &env);
}

/// The backward loop of a peephole LSTM computes the sums of the
/// peepholes' and the bias's gradients (carries of their own: element-wise
/// products and a column sum, not summed by one product after the loop)
/// straight into their slots: every read of the old value comes first, at
/// the same element; and the projected embedding table's gradient, to
/// which each step adds its rows (`passes/tables.rs`). So is the state's
/// gradient `[dh, dc]`, and in the
/// forward loop the state `[h, c]`: concatenations that do not read the
/// old value, which every kernel before them has read.
#[test]
fn next_carries_are_computed_in_their_slots() {
    let dir = write_model("loops-in-place", "lstm", "lstm(x, hidden: H, peephole: true)");
    let session = session(&dir, "model.nn", &[("T", 5.0)], 3);
    let dims = HashMap::from([(nnc::check::data::BATCH.to_string(), 3)]);
    let memory = nnc::codegen::dump_memory(&step_graph(&session), &dims).unwrap();
    let backward = memory.split("loop %").nth(2).expect("a backward loop");
    assert!(backward.contains("carries at ["), "{memory}");
    assert_eq!(backward.matches("(output, in place)").count(), 6, "{memory}");
    let forward = memory.split("loop %").nth(1).expect("a forward loop");
    assert_eq!(forward.matches("(output, in place)").count(), 1, "{memory}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The backward loop of an LSTM reads the cell state of the step before,
/// `concat(zeros, c[:, ..T − 1])` (of the step after, `concat(c[:, 1..],
/// zeros)`, when reversed), from where the forward loop stacked `c`:
/// the concatenation gets no buffer and the first step reads zeros.
/// The values against the interpreter, on one thread and two.
#[test]
fn the_backward_loop_reads_the_shifted_state_in_place() {
    for (label, layer, zeros) in [
        ("lstm", "lstm(x, hidden: H)", "a step of zeros first"),
        (
            "lstm reversed",
            "lstm(x, hidden: H, reverse: true)",
            "a step of zeros last",
        ),
    ] {
        let dir = write_model("loops-shifted", label, layer);
        let session = session(&dir, "model.nn", &[("T", 5.0)], 3);
        let graph = step_graph(&session);
        let dims = HashMap::from([(nnc::check::data::BATCH.to_string(), 3)]);
        let memory = nnc::codegen::dump_memory(&graph, &dims).unwrap();
        let backward = memory.split("loop %").nth(2).expect("a backward loop");
        let steps = backward.split("steps at [").nth(1).unwrap().split(']').next().unwrap();
        assert_eq!(steps.matches(zeros).count(), 1, "{label}: {memory}");
        let fused = nnc::codegen::dump_fused(&graph, &dims).unwrap();
        let concats = fused
            .lines()
            .filter(|l| l.starts_with('k') && l.contains(": concat"))
            .count();
        assert!(
            concats <= 1,
            "{label}: only the product's operand `h` is concatenated: {fused}"
        );
        check(&format!("{label}, shifted state"), &graph, &session.step_env(0));
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// A loop inside a loop's body: the outer loop steps over `xs`, and each
/// step runs an inner loop over the captured `s` that reads the outer
/// step's argument (captured in turn).
#[test]
fn a_loop_inside_a_loop_matches_the_interpreter() {
    use nnc::prim::{BinaryOp, DType, UnaryOp};
    // Inner: acc' = acc + s_t * x, stacking acc'.
    let mut inner = Graph::new();
    let acc = arg(&mut inner, 0, &[2]);
    let s_t = arg(&mut inner, 1, &[2]);
    let x = arg(&mut inner, 2, &[2]);
    let product = inner.binary(BinaryOp::Mul, s_t, x);
    let next = inner.binary(BinaryOp::Add, acc, product);
    inner.set_output("carry 0", next);
    inner.set_output("y 0", next);
    let inner = nnc::ir::loops::Loop {
        body: inner,
        length: 3,
        reverse: false,
        carries: 1,
        sequences: 1,
        captured: 1,
        ys: 1,
    };
    // Outer: h' = tanh(final acc of the inner loop from h), stacking it.
    let mut outer = Graph::new();
    let h = arg(&mut outer, 0, &[2]);
    let x_t = arg(&mut outer, 1, &[2]);
    let s = arg(&mut outer, 2, &[2, 3]);
    let inner = scan(&mut outer, inner, &[h, s, x_t]);
    let slice = Prim::Slice {
        axis: 0,
        start: Dim::constant(0),
        step: 1,
    };
    let last = outer.add(slice, DType::F32, dims(&[2]), &[inner]);
    let next = outer.unary(UnaryOp::Tanh, last);
    outer.set_output("carry 0", next);
    outer.set_output("y 0", last);
    let outer = nnc::ir::loops::Loop {
        body: outer,
        length: 4,
        reverse: true,
        carries: 1,
        sequences: 1,
        captured: 1,
        ys: 1,
    };
    let mut graph = Graph::new();
    let h0 = param(&mut graph, "h0", &[2]);
    let xs = param(&mut graph, "xs", &[2, 4]);
    let s = param(&mut graph, "s", &[2, 3]);
    let scan = scan(&mut graph, outer, &[h0, xs, s]);
    graph.set_output("out", scan);
    let values = |shape: &[usize], seed: usize| {
        let n: usize = shape.iter().product();
        let data = (0..n).map(|i| ((i * 5 + seed * 3) % 7) as f64 / 3.0 - 1.0).collect();
        ndarray::ArrayD::from_shape_vec(shape.to_vec(), data).unwrap()
    };
    let env = Env {
        dims: HashMap::new(),
        feeds: HashMap::from([
            ("h0".to_string(), values(&[2], 1)),
            ("xs".to_string(), values(&[2, 4], 2)),
            ("s".to_string(), values(&[2, 3], 3)),
        ]),
        seed: 0,
        step: 0,
        collective: None,
    };
    check("a loop inside a loop", &graph, &env);
}

/// What each step of the LSTM's backward loop copies in: the cell state
/// (not the stacked `[h, c]` carry), the adjoint of `h` (not padded to the
/// carry's width) and the stored activations (three sigmoid gates and the
/// tanh of the candidate; the tanh of the new cell state is recomputed
/// from them and `c`), and nothing wider: not the gate sums the
/// activations were computed from. Sizes per step
/// and batch row, H = 3.
#[test]
fn the_backward_lstm_loop_reads_only_what_it_needs() {
    let dir = write_model("loops-narrow", "lstm", "lstm(x, hidden: H)");
    let session = session(&dir, "model.nn", &[("T", 5.0)], 3);
    let graph = step_graph(&session);
    let scans: Vec<_> = graph
        .graph
        .node_indices()
        .filter(|&id| matches!(graph.node(id).op, Prim::Scan(_)))
        .collect();
    assert_eq!(scans.len(), 2, "a forward and a backward loop");
    let widths = |id| {
        let Prim::Scan(looped) = &graph.node(id).op else {
            unreachable!()
        };
        let operands = graph.inputs(id);
        let mut widths: Vec<i64> = operands[looped.carries..looped.carries + looped.sequences]
            .iter()
            .map(|&s| graph.shape(s)[2..].iter().map(|d| d.as_const().unwrap()).product())
            .collect();
        widths.sort();
        widths
    };
    // The forward loop reads each step's character ids (one per row) and
    // gathers their rows of the projected table (`passes/tables.rs`), which
    // it captures ([V, 4H]), where it read the stacked projection (4H).
    assert_eq!(widths(scans[0]), [1]);
    let Prim::Scan(forward) = &graph.node(scans[0]).op else {
        unreachable!()
    };
    let captured = &graph.inputs(scans[0])[forward.carries + forward.sequences..];
    assert!(captured
        .iter()
        .any(|&k| graph.shape(k) == [Dim::constant(12), Dim::constant(12)]));
    // The backward loop: c (H), the adjoint of h (H) and four activations
    // (H each); before narrowing it read [h, c] (2H) and a padded adjoint
    // (2H), and before activations were stored, the gate sums (4H). And
    // the ids, with which each step adds its gate gradients into the
    // projected table's gradient (one per row).
    assert_eq!(widths(scans[1]), [1, 3, 3, 3, 3, 3, 3]);
    std::fs::remove_dir_all(dir).unwrap();
}
