//! `cargo bench --bench steps -- [EXAMPLE.nn ...] [--steps N] [--repeats N]
//! [--backend interp|jit|both]`: training steps per second of examples on
//! the interpreter and the JIT (one JSON line per backend and example).

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut take = |flag: &str, default: &str| -> String {
        match args.iter().position(|a| a == flag) {
            Some(i) if i + 1 < args.len() => {
                let value = args.remove(i + 1);
                args.remove(i);
                value
            }
            _ => default.to_string(),
        }
    };
    let steps: usize = take("--steps", "20").parse().expect("--steps N");
    let repeats: usize = take("--repeats", "3").parse().expect("--repeats N");
    let backend = take("--backend", "both");
    let examples = if args.is_empty() {
        vec![
            "examples/digits_mlp.nn".to_string(),
            "examples/digits_cnn.nn".into(),
            "examples/gpt.nn".into(),
        ]
    } else {
        args
    };
    for example in examples {
        match nnc::codegen::bench::bench(
            std::path::Path::new(&example),
            &backend,
            (0, steps),
            repeats,
            &Default::default(),
        ) {
            Ok(reports) => {
                for report in reports {
                    eprintln!("{report}");
                    println!("{}", report.to_json());
                }
            }
            Err(e) => eprintln!("{example}: {e}"),
        }
    }
}
