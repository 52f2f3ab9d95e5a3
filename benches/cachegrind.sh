#!/usr/bin/env bash
# Usage: bash benches/cachegrind.sh BIN FILE N1 N2 [nnc bench args...]
# Per-step instructions, L1 data misses and last-level misses of one
# thread, counted by valgrind's cachegrind (simulated caches) over the
# N2 - N1 training steps between a run of N1 and a run of N2 steps, so
# compilation and warm-up cancel out. The counts do not depend on what
# else the machine runs: a way to compare two builds on a noisy host
# (BENCHMARKS.md, "Loops: where the rest of the gap is").
set -euo pipefail
bin=$1 file=$2 n1=$3 n2=$4
shift 4
count() {
  local steps=$1
  shift
  NNC_THREADS=1 valgrind --tool=cachegrind --cache-sim=yes --cachegrind-out-file=/dev/null \
    "$bin" bench "$file" --backend jit --steps "$steps" --repeats 1 "$@" 2>&1 |
    grep -E '(I +refs|D1 +misses|LL misses):' | awk '{gsub(",", "", $4); print $4}'
}
mapfile -t a < <(count "$n1" "$@")
mapfile -t b < <(count "$n2" "$@")
awk -v n=$((n2 - n1)) -v bin="$bin" \
  -v i="$((b[0] - a[0]))" -v d="$((b[1] - a[1]))" -v l="$((b[2] - a[2]))" \
  'BEGIN { printf "%s: per step %.1fM instructions, %.2fM L1d misses, %.3fM LL misses\n", bin, i / n / 1e6, d / n / 1e6, l / n / 1e6 }'
