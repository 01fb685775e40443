#!/usr/bin/env bash
# Builds the `bench` preset and runs every benchmark, writing Google Benchmark JSON to
# build/bench/results/<bench>.json (medians etc. of 5 repetitions). Extra arguments go to every
# benchmark binary, e.g. ./scripts/bench.sh --benchmark_filter=Tape
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/install-deps.sh
cmake --preset bench
cmake --build --preset bench -j "$(nproc)"
mkdir -p build/bench/results
for b in bench_tape bench_matmul bench_rnn_step; do
  echo "=== $b"
  "./build/bench/bin/$b" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_out="build/bench/results/$b.json" --benchmark_out_format=json "$@"
done
echo "JSON results in build/bench/results/"
