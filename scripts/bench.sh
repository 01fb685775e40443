#!/usr/bin/env bash
# Builds the `bench` preset and runs every benchmark in build/bench/bin (bench_tape, bench_matmul,
# bench_rnn_step, bench_train_step, bench_gemm_rate, and any other bench_*), writing Google
# Benchmark JSON to build/bench/results/<bench>.json (medians etc. of 5 repetitions). Extra
# arguments go to every benchmark binary, e.g. ./scripts/bench.sh --benchmark_filter=Tape
# Threads for matrix products: TAPEGRAD_THREADS=2 ./scripts/bench.sh (default 1).
# Tapegrad vs LibTorch side by side: scripts/bench-compare.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/install-deps.sh
cmake --preset bench
cmake --build --preset bench -j "$(nproc)"
mkdir -p build/bench/results
for path in build/bench/bin/bench_*; do
  [[ -x "$path" ]] || continue
  b=$(basename "$path")
  echo "=== $b"
  "$path" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_out="build/bench/results/$b.json" --benchmark_out_format=json "$@"
done
echo "JSON results in build/bench/results/"
