#!/usr/bin/env bash
# Usage: bash benches/ab.sh ROUNDS BIN_A BIN_B -- NNC_ARGS...
# Runs `BIN nnc_args` for the two builds alternately, ROUNDS times each,
# and prints each build's minimum, median and every ms/step: on a noisy
# host (other tenants, 2 vCPUs) only alternating runs of one sitting can
# be compared (BENCHMARKS.md). Environment variables pass through, e.g.
#   NNC_THREADS=1 bash benches/ab.sh 6 /tmp/nnc-old target/release/nnc -- \
#     bench benches/compare/lstm.nn --backend jit --steps 6 --repeats 2 --set T=512
# AB_FIELD=fastest compares each run's fastest step instead of its median.
set -euo pipefail
if [ $# -lt 4 ] || [ "$4" != "--" ]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
rounds=$1 a=$2 b=$3
shift 4
for _ in $(seq "$rounds"); do
  for bin in "$a" "$b"; do
    if [ "${AB_FIELD:-median}" = fastest ]; then
      ms=$("$bin" "$@" 2>&1 | grep -oE 'fastest [0-9.]+ ms' | grep -oE '[0-9.]+' | tail -1)
    else
      ms=$("$bin" "$@" 2>&1 | grep -oE '[0-9.]+ ms/step' | grep -oE '^[0-9.]+' | tail -1)
    fi
    echo "$bin ${ms:-nan}"
  done
done | python3 -c '
import statistics, sys
runs = {}
for line in sys.stdin:
    name, value = line.split()
    runs.setdefault(name, []).append(float(value))
for name, values in runs.items():
    values.sort()
    print(f"{name}: min {values[0]:.3f} median {statistics.median(values):.3f} ms/step, n = {len(values)}: {values}")
'
