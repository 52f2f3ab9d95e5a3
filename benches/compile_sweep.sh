#!/usr/bin/env bash
# Usage: bash benches/compile_sweep.sh BIN... (e.g. target/release/nnc and an
# older build): compile time, ms/step and peak RSS of the char LSTM over T
# and of the GPT over layers, the binaries alternating (BENCHMARKS.md,
# "Code built once per structure"). The LSTM's 13 warm-up steps cover the
# step-time tuner's first comparison of two threads with one (3 + 2 x 5
# steps, `codegen/tune.rs`), whose steps on one thread would otherwise be
# timed too.
cd "$(dirname "$0")/.."
# The cache line's round trip between the cores labels the host's minutes
# (BENCHMARKS.md, "Which core reads a weight").
trip() { echo -n "$1: "; cargo bench --quiet --bench cores 2>/dev/null | grep -oE '[0-9]+ ns a round trip' || echo "not measured"; }
trip before
for T in 32 128 512 2048; do
  for b in "$@"; do
    steps=10; [ $T -ge 2048 ] && steps=3
    echo -n "lstm T=$T $b: "; $b bench benches/compare/lstm.nn --backend jit --steps $steps --warmup 13 --repeats 2 --set T=$T 2>&1 | grep -oE 'compile [0-9]+ ms, [0-9.]+ ms/step.*RSS [0-9]+ MiB'
  done
done
for L in 2 6 12 24; do
  for b in "$@"; do
    echo -n "gpt L=$L $b: "; $b bench benches/compare/gpt.nn --backend jit --steps 3 --repeats 2 --set LAYERS=$L 2>&1 | grep -oE 'compile [0-9]+ ms, [0-9.]+ ms/step'
  done
done
for b in "$@"; do
  echo -n "gpt-small $b: "; $b bench benches/compare/gpt.nn --backend jit --steps 2 --repeats 2 --set T=128 --set D=384 --set HEADS=6 --set LAYERS=6 --batch 16 2>&1 | grep -oE 'compile [0-9]+ ms, [0-9.]+ ms/step'
done
trip after
