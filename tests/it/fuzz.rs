//! No input makes the checker panic. Mutations of the examples and random
//! bytes go through `check_source`; a bounded number run in every test run,
//! and `NNC_FUZZ_CASES=N` runs more (the seed changes with `NNC_FUZZ_SEED`).

use std::path::Path;

/// xorshift64*: a small deterministic generator for the fuzzers (text
/// mutations here, generated programs in `programs/`).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn new(seed: u64) -> Rng {
        // Mix the seed so nearby seeds start far apart.
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

const TOKENS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "=",
    "->",
    "...",
    "..",
    "@",
    "*",
    "+",
    "-",
    "/",
    "0",
    "-1",
    "1e-3",
    "99999999999999999999",
    "\"",
    "#",
    "\n",
    "if",
    "else",
    "repeat",
    "model",
    "block",
    "param",
    "state",
    "update",
    "loss",
    "f32[",
    "i32[B]",
    "x",
    "B",
    "training",
    "not",
    "and",
    "é",
    "\u{0}",
];

pub fn mutate(rng: &mut Rng, source: &str, corpus: &[String]) -> String {
    let mut bytes = source.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(6) {
            0 if !bytes.is_empty() => {
                let end = (at + 1 + rng.below(12)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                bytes.splice(at..at, token.bytes());
            }
            2 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] = rng.next() as u8;
            }
            3 => {
                // Splice a line of another example.
                let other = &corpus[rng.below(corpus.len())];
                let lines: Vec<&str> = other.lines().collect();
                let line = lines[rng.below(lines.len())];
                bytes.splice(at..at, format!("{line}\n").bytes());
            }
            4 if !bytes.is_empty() => {
                // Duplicate a span.
                let end = (at + rng.below(40)).min(bytes.len());
                let span = bytes[at.min(end)..end].to_vec();
                bytes.splice(end..end, span);
            }
            _ => {
                let digits = ["0", "1", "2", "3", "7", "64", "-5", "1000000"];
                bytes.splice(at..at, digits[rng.below(digits.len())].bytes());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

pub fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["examples", "tests/data/err"] {
        let mut paths: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for path in paths {
            if path.extension().is_some_and(|e| e == "nn") {
                out.push(std::fs::read_to_string(path).unwrap());
            }
        }
    }
    for (_, text) in nnc::stdlib::FILES {
        out.push(text.to_string());
    }
    out
}

#[test]
fn mutated_programs_never_panic() {
    let cases: usize = std::env::var("NNC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let seed: u64 = std::env::var("NNC_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let corpus = corpus();
    let mut rng = Rng(seed | 1);
    let options = nnc::check::Options::default();
    for case in 0..cases {
        let input = if case % 10 == 9 {
            // Random bytes, sometimes long.
            let len = rng.below(if case % 100 == 99 { 5000 } else { 200 });
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            let base = &corpus[rng.below(corpus.len())];
            mutate(&mut rng, base, &corpus)
        };
        let result = std::panic::catch_unwind(|| {
            let program = nnc::check::check_source("fuzz.nn", &input, &options);
            // Rendering must not panic either.
            program.sources.render(&program.diagnostics, false);
        });
        if result.is_err() {
            let path = std::env::temp_dir().join(format!("nnc-fuzz-{case}.nn"));
            std::fs::write(&path, &input).unwrap();
            panic!("case {case} (seed {seed}) panicked; input saved to {}", path.display());
        }
    }
}

/// An expression may have `syntax::MAX_OPERATORS` operators, those inside
/// its brackets counted: a program with one of exactly that many checks
/// and formats (its terms in groups, so the tree is shallow); one more
/// operator is a syntax error at that operator, the item left as written,
/// and nothing else is reported.
#[test]
fn expressions_have_at_most_max_operators() {
    let max = nnc::syntax::MAX_OPERATORS;
    let program = |operators: usize| {
        // Groups of 100 terms (99 operators) joined by `+` (at least 100),
        // then as many `+ 1` as make the count.
        let groups = operators / 100;
        let group = format!("({})", vec!["1"; 100].join(" + "));
        let mut expression = vec![group; groups].join(" + ");
        expression.push_str(&" + 1".repeat(operators + 1 - 100 * groups));
        format!(
            "const N = {expression}\n\
             data digits = csv(\"examples/data/digits.csv\", x: \"p0\"..\"p63\", y: \"label\", classes: 10)\n\
             model tiny(x: f32[B, 64]) -> f32[B, 10] {{\n    linear(x, 10)\n}}\n\
             loss cross_entropy(tiny(digits.x), digits.y)\n\
             optimizer sgd(lr: 0.1)\n\
             train {{ steps: 1, batch: 8 }}\n"
        )
    };
    let options = nnc::check::Options {
        base_dir: Some(crate::common::root().to_path_buf()),
        ..Default::default()
    };

    let text = program(max);
    let operators = text.lines().next().unwrap().matches('+').count();
    assert_eq!(operators, max);
    let checked = nnc::check::check_source("long.nn", &text, &options);
    let rendered = checked.sources.render(&checked.diagnostics, false);
    assert!(checked.diagnostics.is_empty(), "{rendered}");
    assert_eq!(checked.constants[0].1.as_const_int(), Some(max as i64 + 1));
    let formatted = nnc::fmt::format(&text);
    assert_eq!((formatted.broken, formatted.unchanged), (0, 0));

    let text = program(max + 1);
    let checked = nnc::check::check_source("long.nn", &text, &options);
    let [error] = &checked.diagnostics[..] else {
        panic!("{}", checked.sources.render(&checked.diagnostics, false));
    };
    assert_eq!(error.code, "E0001");
    assert_eq!(error.message, format!("the expression has more than {max} operators"));
    let last = text.lines().next().unwrap().rfind('+').unwrap() as u32;
    assert_eq!((error.primary.span.start, error.primary.span.end), (last, last + 1));
    let formatted = nnc::fmt::format(&text);
    assert_eq!((formatted.broken, formatted.unchanged), (1, 0));
    assert!(formatted.text.starts_with(text.lines().next().unwrap()));
}

/// Deeply nested input must not overflow the stack.
#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let chains = [
        format!("const X = 1{}\n", " + 1".repeat(100_000)),
        format!("const X = {}1\n", "- ".repeat(20_000)),
        format!("const X = {}1\n", "not ".repeat(20_000)),
        format!("const X = [{}]\n", "x[0](1).".repeat(5_000)),
    ];
    let nested = [100, 1000, 5000].map(|depth| format!("const X = {}1{}\n", "(".repeat(depth), ")".repeat(depth)));
    for (depth, source) in nested.into_iter().chain(chains).enumerate() {
        let options = nnc::check::Options::default();
        let input = source.clone();
        let handle = std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(move || nnc::check::check_source("deep.nn", &input, &options).diagnostics.len())
            .unwrap();
        let diagnostics = handle.join().unwrap_or_else(|_| panic!("depth {depth} crashed"));
        assert!(
            diagnostics > 0,
            "depth {depth}: a program without a model must have errors"
        );
    }
}
