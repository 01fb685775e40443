#!/usr/bin/env bash
# Tapegrad vs LibTorch, one training step (bench/bench_train_step.cpp vs
# bench/peers/bench_torch_step.cpp), measured side by side in alternation:
#   for threads in 1 2: round 1 Tapegrad then LibTorch, round 2 LibTorch then Tapegrad, ...
# then the single-GEMM rates (bench_gemm_rate, best over the rounds). Prints a markdown table per
# config (Tapegrad `fused` median ms (min-max), LibTorch median ms (min-max) for the best of its
# `unrolled` and `nn` variants, speedup LibTorch/Tapegrad per round (median, min-max), GFLOP/s,
# % of the best GEMM rate) and writes it to build/peers/compare.md; raw JSON in
# build/peers/compare/. Each side takes its best thread count (by median).
# With --path table: Tapegrad's `table` step (embedding folded into the input projection)
# against LibTorch's best of `table`, `unrolled` and `nn`; written to build/peers/compare-table.md,
# raw JSON in build/peers/compare-table/; GFLOP/s there are the standard model's FLOPs (the
# table step does fewer), so no % GEMM.
# With --path cell: every Tapegrad path of the rnn, lstm, gru and indrnn models (`fused` where
# a fused op exists, `cell` = a user's cell on the public cell API with its gate math in one
# pointwise call, `cell_ops` = the same cell op by op, `unrolled` = op by op per step with no
# planning) against LibTorch's `unrolled` and `nn`; ratios cell / fused, LibTorch unrolled / cell
# and LibTorch best / Tapegrad best, and the cell path's GFLOP/s and % GEMM; written to
# build/peers/compare-cell.md, raw JSON in build/peers/compare-cell/.
#
# Usage: scripts/bench-compare.sh [--quick] [--rounds N] [--min-time S] [--threads "1 2"]
#                                 [--time real|cpu] [--no-build] [--bin-dir DIR ...]
#                                 [--openblas-core NAME] [--no-keep-freed-memory]
#                                 [--path fused|table|cell] [--cells "rnn|lstm|gru|indrnn"]
#   --quick     1 round, tiny and small only (a smoke check)
#   --rounds    rounds per thread count (default 5)
#   --min-time  --benchmark_min_time of each run, seconds (default 0.5)
#   --time      real: wall clock (default); cpu: the benchmark thread's CPU time (only meaningful
#               with 1 thread: it does not count BLAS/OpenMP worker threads)
#   --no-build  use the binaries already in build/peers/bin
#   --bin-dir   look for the binaries in DIR (repeatable, first match wins; implies --no-build),
#               e.g. --bin-dir build-bench/bin --bin-dir build-peer/bin
#   --no-keep-freed-memory  Tapegrad without tapegrad::keep_freed_memory() (threading.h), which
#               it otherwise calls (env TAPEGRAD_KEEP_FREED_MEMORY=1; the peer gains nothing from it)
#   --openblas-core  OPENBLAS_CORETYPE for the peer (default: SkylakeX on an AVX-512 CPU, even
#               when the environment presets another core; else OpenBLAS's own choice)
#   --cells     which models, a regex alternation (default rnn|lstm; with --path cell
#               rnn|lstm|gru|indrnn)
# Needs libtorch-dev and libopenblas-dev (Debian); selects OpenBLAS as libblas.so.3 when run as root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rounds=5
min_time=0.5
threads_list="1 2"
time_kind=real
configs="tiny|small|medium|large|long"
build=1
bin_dirs=()
openblas_core=""
keep_freed=1
path=fused
cells=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) rounds=1; configs="tiny|small"; shift ;;
    --rounds) rounds="$2"; shift 2 ;;
    --min-time) min_time="$2"; shift 2 ;;
    --threads) threads_list="$2"; shift 2 ;;
    --time) time_kind="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --bin-dir) bin_dirs+=("$2"); build=0; shift 2 ;;
    --openblas-core) openblas_core="$2"; shift 2 ;;
    --no-keep-freed-memory) keep_freed=0; shift ;;
    --path) path="$2"; shift 2 ;;
    --cells) cells="$2"; shift 2 ;;
    -h | --help) sed -n '2,41p' "$0"; exit 0 ;;
    *) echo "bench-compare.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$time_kind" == real || "$time_kind" == cpu ]] || { echo "bench-compare.sh: --time must be real or cpu" >&2; exit 2; }
[[ "$path" == fused || "$path" == table || "$path" == cell ]] ||
  { echo "bench-compare.sh: --path must be fused, table or cell" >&2; exit 2; }
if [[ -z "$cells" ]]; then
  cells="rnn|lstm"
  [[ "$path" == cell ]] && cells="rnn|lstm|gru|indrnn"
fi

# --- the peer's best setup: OpenBLAS, not the reference BLAS --------------------------------
if [[ ! -f /usr/lib/x86_64-linux-gnu/cmake/Torch/TorchConfig.cmake ]]; then
  echo "bench-compare.sh: LibTorch not found; install it with: apt-get install -y libtorch-dev libopenblas-dev" >&2
  exit 1
fi
alt=libblas.so.3-x86_64-linux-gnu
current=$(update-alternatives --query "$alt" 2>/dev/null | sed -n 's/^Value: //p')
if [[ "$current" != *openblas* ]]; then
  openblas=$(update-alternatives --list "$alt" 2>/dev/null | grep -m1 openblas || true)
  if [[ -n "$openblas" && $(id -u) -eq 0 ]]; then
    echo "bench-compare.sh: selecting $openblas as libblas.so.3 (was: ${current:-none})"
    update-alternatives --set "$alt" "$openblas"
  else
    echo "bench-compare.sh: libblas.so.3 is '${current:-unknown}', not OpenBLAS; LibTorch would run on the" \
      "reference BLAS. Install libopenblas-dev and run: update-alternatives --set $alt <openblas libblas.so.3>" >&2
    exit 1
  fi
fi

# Debian's OpenBLAS 0.3.21 does not pick its AVX-512 kernels on every AVX-512 CPU (it falls back
# to SSE3 "Prescott" on CPUs it does not know), and some machines preset an AVX2 OPENBLAS_CORETYPE,
# so the peer would run on slower kernels than the CPU has. It gets SkylakeX on AVX-512 CPUs
# unless --openblas-core says otherwise; the table header shows the kernels in use.
if [[ -n "$openblas_core" ]]; then
  export OPENBLAS_CORETYPE="$openblas_core"
elif grep -qw avx512f /proc/cpuinfo; then
  if [[ -n "${OPENBLAS_CORETYPE:-}" && "$OPENBLAS_CORETYPE" != SkylakeX ]]; then
    echo "bench-compare.sh: OPENBLAS_CORETYPE was '$OPENBLAS_CORETYPE'; using SkylakeX, OpenBLAS's AVX-512" \
      "kernels (--openblas-core NAME to choose)" >&2
  fi
  export OPENBLAS_CORETYPE=SkylakeX
fi

if [[ $build -eq 1 ]]; then
  cmake --preset peers >/dev/null
  cmake --build --preset peers -j "$(nproc)" --target bench_train_step bench_gemm_rate bench_torch_step
fi
[[ ${#bin_dirs[@]} -gt 0 ]] || bin_dirs=(build/peers/bin)
binary() {  # the first bin dir holding $1
  for d in "${bin_dirs[@]}"; do [[ -x "$d/$1" ]] && { echo "$d/$1"; return; }; done
  echo "bench-compare.sh: $1 not found in ${bin_dirs[*]}" >&2
  exit 1
}
for b in bench_train_step bench_gemm_rate bench_torch_step; do binary "$b" >/dev/null; done
out=build/peers/compare
[[ "$path" != fused ]] && out=build/peers/compare-$path
rm -rf "$out"
mkdir -p "$out"
uptime >"$out/uptime_before.txt"

run() {  # run <binary> <filter> <json> <threads>
  TAPEGRAD_THREADS="$4" OPENBLAS_NUM_THREADS="$4" OMP_NUM_THREADS="$4" TAPEGRAD_KEEP_FREED_MEMORY="$keep_freed" \
    "$(binary "$1")" --benchmark_filter="$2" \
    --benchmark_min_time="$min_time" --benchmark_out="$3" --benchmark_out_format=json \
    --benchmark_format=console 2>>"$out/stderr.txt" | grep -E '^BM_' || true
}

tg_filter="^BM_TrainStep/($cells)/($configs)/$path\$"
[[ "$path" == cell ]] && tg_filter="^BM_TrainStep/($cells)/($configs)/(fused|cell|cell_ops|unrolled)\$"
torch_filter="^BM_TorchStep/($cells)/($configs)/(unrolled|nn)\$"
[[ "$path" == table ]] && torch_filter="^BM_TorchStep/($cells)/($configs)/(unrolled|nn|table)\$"
for t in $threads_list; do
  for ((r = 1; r <= rounds; ++r)); do
    echo "=== threads $t, round $r/$rounds ($(uptime | sed 's/.*load/load/'))"
    if ((r % 2 == 1)); then
      run bench_train_step "$tg_filter" "$out/tapegrad_t${t}_r${r}.json" "$t"
      run bench_torch_step "$torch_filter" "$out/torch_t${t}_r${r}.json" "$t"
    else
      run bench_torch_step "$torch_filter" "$out/torch_t${t}_r${r}.json" "$t"
      run bench_train_step "$tg_filter" "$out/tapegrad_t${t}_r${r}.json" "$t"
    fi
    # The reference rate is a peak: the best of every round, so one noisy round cannot lower it.
    run bench_gemm_rate "^BM_GemmRate/($cells)/($configs)/" "$out/gemm_t${t}_r${r}.json" "$t" >/dev/null
  done
done
uptime >"$out/uptime_after.txt"

python3 - "$out" "$time_kind" "$rounds" "$min_time" "$(git rev-parse --short HEAD)" "$keep_freed" "$path" <<'PY'
import glob, json, os, re, statistics, sys

out, time_kind, rounds, min_time, commit, keep_freed, step_path = sys.argv[1:8]
key = "real_time" if time_kind == "real" else "cpu_time"
to_ms = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
step = re.compile(r"^BM_(TrainStep|TorchStep)/(\w+)/(\w+)/(\w+)$")
gemm = re.compile(r"^BM_GemmRate/(\w+)/(\w+)/(\w+)$")
models = ["rnn", "lstm", "gru", "indrnn"]
order = ["tiny", "small", "medium", "large", "long"]
# The step-time targets of docs/performance.md, ms per step (best of 1 and 2 threads, median).
targets = {("rnn", "tiny"): 0.025, ("rnn", "small"): 0.6, ("rnn", "medium"): 14, ("rnn", "large"): 65,
           ("rnn", "long"): 30, ("lstm", "tiny"): 0.06, ("lstm", "small"): 3.5, ("lstm", "medium"): 75,
           ("lstm", "large"): 340, ("lstm", "long"): 180}

times = {}   # (side, cell, cfg, variant, threads) -> {round: ms}
flops = {}   # (cell, cfg) -> GEMM GFLOP per step
gemm_rate = {}  # (cell, cfg, threads) -> best GFLOP/s over the step's shapes
context = {}
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    name = os.path.basename(path)[:-5]
    with open(path) as f:
        doc = json.load(f)
    if name.startswith("torch"):
        context.update({k: v for k, v in doc["context"].items() if k.startswith(("torch", "openblas"))})
    context.setdefault("host", doc["context"].get("host_name", "?"))
    context.setdefault("cpus", doc["context"].get("num_cpus", "?"))
    parts = name.split("_")
    threads = int(parts[1][1:])
    for b in doc["benchmarks"]:
        if b.get("run_type") != "iteration" or b.get("error_occurred"):
            continue
        m = step.match(b["name"])
        if m:
            side, cell, cfg, variant = m.groups()
            ms = b[key] * to_ms[b["time_unit"]]
            times.setdefault((side, cell, cfg, variant, threads), {})[int(parts[2][1:])] = ms
            flops[(cell, cfg)] = b["gflop_per_step"]
            continue
        m = gemm.match(b["name"])
        if m:
            cell, cfg, _ = m.groups()
            k = (cell, cfg, threads)
            rate = b["gflop"] / (b[key] * to_ms[b["time_unit"]] * 1e-3)
            gemm_rate[k] = max(gemm_rate.get(k, 0.0), rate)

def best(side, cell, cfg, variants=None):
    """(median, runs, variant, threads) of the variant/thread count with the lowest median."""
    cands = [(statistics.median(r.values()), r, v, t) for (s, c, g, v, t), r in times.items()
             if s == side and c == cell and g == cfg and r and (variants is None or v in variants)]
    return min(cands, key=lambda x: x[0]) if cands else None

def fmt(x):
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"

def load(fname):
    try:
        with open(os.path.join(out, fname)) as f:
            return f.read().strip().split("load average:")[-1].strip()
    except OSError:
        return "?"

def cell_name(cell):
    return {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU", "indrnn": "IndRNN"}[cell]

def median_range(b):
    """'median (min-max) tN' of a best() result, or '-'."""
    if b is None:
        return "-"
    m, runs, _, t = b
    return f"{fmt(m)} ({fmt(min(runs.values()))}-{fmt(max(runs.values()))}) t{t}"

def speedup(slow, fast):
    """slow ms / fast ms per round: 'median (min-max)', or '-'."""
    if slow is None or fast is None:
        return "-"
    ratios = [slow[1][r] / fast[1][r] for r in fast[1] if r in slow[1]]
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})" if ratios else "-"

def cell_table():
    """The --path cell table: every Tapegrad path against LibTorch, per model and config."""
    rows = [
        "| model | config | fused ms | cell ms | cell_ops ms | unrolled ms | cell / fused | LibTorch unrolled ms | "
        "LibTorch best ms (variant) | LibTorch unrolled / cell | LibTorch best / Tapegrad best (path) | "
        "cell GFLOP/s | cell % GEMM |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in models:
        for cfg in order:
            paths = {v: best("TrainStep", cell, cfg, {v}) for v in ("fused", "cell", "cell_ops", "unrolled")}
            pt_unrolled = best("TorchStep", cell, cfg, {"unrolled"})
            pt_best = best("TorchStep", cell, cfg)
            tg_best = best("TrainStep", cell, cfg)
            if tg_best is None and pt_best is None:
                continue
            row = [cell_name(cell), cfg] + [median_range(paths[v]) for v in ("fused", "cell", "cell_ops", "unrolled")]
            row.append(f"{paths['cell'][0] / paths['fused'][0]:.2f}x" if paths["cell"] and paths["fused"] else "-")
            row.append(median_range(pt_unrolled))
            row.append(f"{median_range(pt_best)} {pt_best[2]}" if pt_best else "-")
            row.append(speedup(pt_unrolled, paths["cell"]))
            row.append(f"{speedup(pt_best, tg_best)} {tg_best[2]}" if tg_best and pt_best else "-")
            c = paths["cell"]
            if c and (cell, cfg) in flops:
                gf = flops[(cell, cfg)] / (c[0] * 1e-3)
                rate = gemm_rate.get((cell, cfg, c[3]))
                row.append(f"{gf:.1f}")
                row.append(f"{100 * gf / rate:.0f}% of {rate:.0f}" if rate else "-")
            else:
                row += ["-", "-"]
            rows.append("| " + " | ".join(row) + " |")
    return rows

lines = [
    f"Training step, ms ({'wall clock' if time_kind == 'real' else 'CPU time of the benchmark thread'}), "
    f"median (min-max) of {rounds} alternating round(s), --benchmark_min_time={min_time}; each side at its "
    f"best thread count (1 or 2, by median). Commit {commit}, host {context['host']} ({context['cpus']} CPUs), "
    f"load average before {load('uptime_before.txt')}, after {load('uptime_after.txt')}. Tapegrad "
    f"{'with' if keep_freed == '1' else 'without'} keep_freed_memory().",
    f"LibTorch {context.get('torch_version', '?')}, BLAS mapped: `{context.get('torch_mapped_blas', '?')}` "
    f"(`{context.get('openblas_config', '?')}`), "
    f"oneDNN: {context.get('torch_mkldnn', '?')}. Speedup = LibTorch ms / Tapegrad ms within each round. "
    "GFLOP/s = GEMM FLOPs of the step (6 N H (2G + K)) / Tapegrad's median time; % GEMM = that over the best "
    "single-GEMM rate at the step's shapes (bench_gemm_rate, best over the rounds, same thread count).",
    "",
    f"| model | config | Tapegrad {step_path} ms | LibTorch ms (variant) | speedup (min-max) | target ms | "
    "GFLOP/s | % GEMM |",
    "|---|---|---|---|---|---|---|---|",
]
if step_path == "cell":
    lines = lines[:-2] + cell_table()
for cell in (models if step_path != "cell" else []):
    for cfg in order:
        tg = best("TrainStep", cell, cfg)
        pt = best("TorchStep", cell, cfg)
        if tg is None and pt is None:
            continue
        row = [cell_name(cell), cfg]
        if tg:
            tm, tr, _, tt = tg
            row.append(f"{fmt(tm)} ({fmt(min(tr.values()))}-{fmt(max(tr.values()))}) t{tt}")
        else:
            row.append("-")
        if pt:
            pm, pr, pv, ptt = pt
            row.append(f"{fmt(pm)} ({fmt(min(pr.values()))}-{fmt(max(pr.values()))}) {pv} t{ptt}")
        else:
            row.append("-")
        if tg and pt:
            ratios = [pr[r] / tr[r] for r in tr if r in pr]
            row.append(f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})" if ratios else "-")
        else:
            row.append("-")
        row.append(f"{targets[(cell, cfg)]:g}" if (cell, cfg) in targets else "-")
        if tg and (cell, cfg) in flops:
            gf = flops[(cell, cfg)] / (tm * 1e-3)  # GFLOP per step / seconds per step
            rate = gemm_rate.get((cell, cfg, tt))
            row.append(f"{gf:.1f}")
            row.append(f"{100 * gf / rate:.0f}% of {rate:.0f}" if rate and step_path == "fused" else "-")
        else:
            row += ["-", "-"]
        lines.append("| " + " | ".join(row) + " |")
text = "\n".join(lines) + "\n"
print()
print(text)
md = out + ".md"
with open(md, "w") as f:
    f.write(text)
print(f"(written to {md}; raw JSON in {out}/)")
PY
