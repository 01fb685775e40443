#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ with clang (build/fuzz) and runs each one for a fixed
# number of executions from its seed corpus (fuzz/corpus/<target>). Any crash, sanitizer report,
# uncaught non-tapegrad exception or timeout fails the script and leaves the input in build/fuzz/.
#   ./scripts/fuzz.sh                        CI: -seed=1, checkpoint -runs=8000, graph -runs=20000
#                                            (under 1 min each; the fixed seed makes a CI run repeatable)
#   ./scripts/fuzz.sh -max_total_time=600    any libFuzzer flags replace the defaults (random seed)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CXX_FUZZ=${CXX_FUZZ:-clang++-14}
# clang-14 with its libFuzzer runtime (libclang-rt-14-dev) beside the project's packages.
./scripts/install-deps.sh clang-14 libclang-rt-14-dev

declare -A default_runs=([checkpoint]=8000 [graph]=20000)

cmake -S fuzz -B build/fuzz -DCMAKE_CXX_COMPILER="$CXX_FUZZ" >/dev/null
cmake --build build/fuzz -j "$(nproc)"

export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export TAPEGRAD_FUZZ_STATS=1  # fuzz_checkpoint prints how many loads were refused and accepted
for target in checkpoint graph; do
  flags=("$@")
  if [ ${#flags[@]} -eq 0 ]; then flags=(-seed=1 "-runs=${default_runs[$target]}"); fi
  work="build/fuzz/work/$target"
  mkdir -p "$work"
  echo "=== fuzz $target: ${flags[*]}"
  start=$SECONDS
  # New inputs go to $work (first dir); the committed seeds are read only. -timeout: a hang fails.
  log="build/fuzz/$target.log"
  rc=0
  (cd build/fuzz && "./fuzz_$target" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${flags[@]}" \
    "../../$work" "../../fuzz/corpus/$target") >"$log" 2>&1 || rc=$?
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb|fuzz_checkpoint stats)" "$log" || true
  if [ "$rc" -ne 0 ]; then
    grep -E -A12 "ERROR|runtime error|Assertion|fuzz_checkpoint:|what\(\)" "$log" | head -40 >&2 || true
    echo "=== fuzz $target: FAILED (exit $rc); full log $log; reproduce: build/fuzz/fuzz_$target build/fuzz/crash-*" >&2
    exit 1
  fi
  echo "=== fuzz $target: ok in $((SECONDS - start)) s"
done
