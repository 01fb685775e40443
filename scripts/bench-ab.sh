#!/usr/bin/env bash
# A/B of two bench_train_step runs, alternated per filter so both meet the same host load:
# for each filter (one benchmark each), ROUNDS times: A then B, each --benchmark_repetitions=3;
# prints per filter the median of the round medians (wall clock, ms), their min-max, and A / B.
#
#   ./scripts/bench-ab.sh [--threads N] [--rounds R] [--a-env K=V]... [--b-env K=V]... A_BIN B_BIN FILTER...
#
# A_BIN and B_BIN may be the same binary with different --a-env / --b-env (e.g. TAPEGRAD_MIN_BLAS_WORK);
# to compare commits, build the old one in a git worktree. Every run gets TAPEGRAD_KEEP_FREED_MEMORY=1
# and OPENBLAS_CORETYPE=SkylakeX (as scripts/bench-compare.sh), unless the -env options override them.
set -euo pipefail

threads=2
rounds=3
a_env=()
b_env=()
while [[ $# -gt 0 && $1 == --* ]]; do
  case $1 in
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --a-env) a_env+=("$2"); shift 2 ;;
    --b-env) b_env+=("$2"); shift 2 ;;
    *) echo "bench-ab.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [[ $# -lt 3 ]]; then
  sed -n '2,9p' "$0" >&2
  exit 2
fi
a_bin=$1
b_bin=$2
shift 2
for bin in "$a_bin" "$b_bin"; do
  [[ -x $bin ]] || { echo "bench-ab.sh: not an executable: $bin" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One run: prints the median real time in ms of every benchmark the filter selects.
run() {
  local bin=$1 filter=$2
  shift 2
  env TAPEGRAD_KEEP_FREED_MEMORY=1 OPENBLAS_CORETYPE=SkylakeX TAPEGRAD_THREADS="$threads" "$@" \
    "$bin" --benchmark_filter="$filter" --benchmark_repetitions=3 --benchmark_min_time=0.2 \
    --benchmark_format=json 2>/dev/null |
    python3 -c '
import json, sys
scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
for b in json.load(sys.stdin)["benchmarks"]:
    if b.get("aggregate_name") == "median":
        print(b["real_time"] * scale[b["time_unit"]])'
}

echo "| filter | threads | A ms (min-max) | B ms (min-max) | A / B |"
echo "|---|---|---|---|---|"
for filter in "$@"; do
  : >"$work/a" && : >"$work/b"
  for ((r = 0; r < rounds; ++r)); do
    run "$a_bin" "$filter" "${a_env[@]}" >>"$work/a"
    run "$b_bin" "$filter" "${b_env[@]}" >>"$work/b"
  done
  python3 - "$work/a" "$work/b" "$filter" "$threads" <<'PY'
import statistics, sys
a = [float(x) for x in open(sys.argv[1])]
b = [float(x) for x in open(sys.argv[2])]
if not a or not b:
    sys.exit(f"bench-ab.sh: filter {sys.argv[3]!r} matched no benchmark (or one side failed)")
ma, mb = statistics.median(a), statistics.median(b)
print(f"| {sys.argv[3]} | {sys.argv[4]} | {ma:.4g} ({min(a):.4g}-{max(a):.4g}) | {mb:.4g} ({min(b):.4g}-{max(b):.4g}) | {ma / mb:.3f}x |")
PY
done
