// Single-GEMM rate at the shapes one training step uses (bench/train_step_config.h), raw Eigen on
// Tapegrad's row-major float matrices, no tape, and in a TAPEGRAD_OPENBLAS build the same products
// in OpenBLAS's cblas_sgemm (names ending in _blas; its AVX-512 kernels need OPENBLAS_CORETYPE unset
// or SkylakeX, as scripts/bench-compare.sh sets it). The best rate over a config's shapes, either
// library, is the reference for "% of GEMM rate" of BM_TrainStep (scripts/bench-compare.sh).
// N = T * B rows, G = H (RNN), 4H (LSTM) or 3H (GRU):
//   BM_GemmRate/<cell>/<config>/step   [B x H][H x G]    h_{t-1} W_hh, once per time step
//   BM_GemmRate/<cell>/<config>/proj   [N x H][H x G]    input projection of all steps
//   BM_GemmRate/<cell>/<config>/wgrad  [N x H]^T[N x G]  weight gradient over all steps
//   BM_GemmRate/<cell>/<config>/dx     [N x G][H x G]^T  input gradient over all steps
//   BM_GemmRate/<cell>/<config>/head   [N x H][H x K]    logits of all rows
// Threads: env TAPEGRAD_THREADS (default 1); env TAPEGRAD_KEEP_FREED_MEMORY=1 calls
// tapegrad::keep_freed_memory() first, as bench_train_step does, so both see the same allocator. Counters: gflop = 2 m
// k n per product, gflops = that per second of the benchmark thread's CPU time (scripts/bench-compare.sh uses
// real_time).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include <tapegrad/kernels/blas.h>
#include <tapegrad/tensor.h>
#include <tapegrad/threading.h>

#include "tapegrad_env.h"
#include "train_step_config.h"

namespace {

using tapegrad::Matrix;
using tapegrad_bench::Cell;
using tapegrad_bench::TrainConfig;

enum class Shape { Step, Proj, Wgrad, Dx, Head };

void BM_GemmRate(benchmark::State& state, Cell cell, TrainConfig cfg, Shape shape, bool blas) {
  const int threads = tapegrad::set_num_threads(tapegrad_bench::env_threads());
  tapegrad_bench::env_keep_freed_memory();
  const std::int64_t n = cfg.steps * cfg.batch;
  const std::int64_t h = cfg.hidden;
  const std::int64_t g = tapegrad_bench::gate_cols(cell, cfg);
  // Every shape as  out = lhs * rhs  with lhs [m x k], rhs [k x c] (before any transpose).
  std::int64_t m = 0, k = 0, c = 0;
  switch (shape) {
    case Shape::Step:
      m = cfg.batch, k = h, c = g;
      break;
    case Shape::Proj:
      m = n, k = h, c = g;
      break;
    case Shape::Wgrad:
      m = h, k = n, c = g;
      break;
    case Shape::Dx:
      m = n, k = g, c = h;
      break;
    case Shape::Head:
      m = n, k = h, c = cfg.vocab;
      break;
  }
  Matrix<float> out(m, c);
  if (blas) {  // the same product in cblas_sgemm, operands stored as below
    using Operand = tapegrad::kernels::BlasOperand<float>;
    const bool lhs_t = shape == Shape::Wgrad, rhs_t = shape == Shape::Dx;
    const Matrix<float> a = lhs_t ? Matrix<float>::Random(k, m) : Matrix<float>::Random(m, k);
    const Matrix<float> w = rhs_t ? Matrix<float>::Random(c, k) : Matrix<float>::Random(k, c);
    for (auto _ : state) {
      tapegrad::kernels::blas_gemm(m, c, k, Operand{a.data(), a.cols(), lhs_t}, Operand{w.data(), w.cols(), rhs_t},
                                   0.0F, out.data(), c);
      benchmark::DoNotOptimize(out.data());
      benchmark::ClobberMemory();
    }
  } else if (shape == Shape::Wgrad) {  // A^T dY, A [N x H] stored as in the step
    const Matrix<float> a = Matrix<float>::Random(k, m);
    const Matrix<float> dy = Matrix<float>::Random(k, c);
    for (auto _ : state) {
      out.noalias() = a.transpose() * dy;
      benchmark::DoNotOptimize(out.data());
      benchmark::ClobberMemory();
    }
  } else if (shape == Shape::Dx) {  // dY W^T, W [H x G] stored as in the step
    const Matrix<float> dy = Matrix<float>::Random(m, k);
    const Matrix<float> w = Matrix<float>::Random(c, k);
    for (auto _ : state) {
      out.noalias() = dy * w.transpose();
      benchmark::DoNotOptimize(out.data());
      benchmark::ClobberMemory();
    }
  } else {
    const Matrix<float> a = Matrix<float>::Random(m, k);
    const Matrix<float> w = Matrix<float>::Random(k, c);
    for (auto _ : state) {
      out.noalias() = a * w;
      benchmark::DoNotOptimize(out.data());
      benchmark::ClobberMemory();
    }
  }
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(k) * static_cast<double>(c);
  state.counters["gflops"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["gflop"] = flops * 1e-9;
  state.counters["threads"] = threads;
  // Built by appending: GCC 12 reports a false -Wrestrict for "literal" + std::string here.
  std::string label = "[";
  label.append(std::to_string(m)).append("x").append(std::to_string(k)).append("][");
  label.append(std::to_string(k)).append("x").append(std::to_string(c)).append("]");
  state.SetLabel(label);
}

bool register_all() {
  constexpr std::pair<Shape, const char*> kShapes[] = {
      {Shape::Step, "step"}, {Shape::Proj, "proj"}, {Shape::Wgrad, "wgrad"}, {Shape::Dx, "dx"}, {Shape::Head, "head"}};
  for (const Cell cell : {Cell::Rnn, Cell::Lstm, Cell::Gru}) {  // the IndRNN's GEMMs are the RNN's without step
    for (const TrainConfig& cfg : tapegrad_bench::kTrainConfigs) {
      for (const auto& [shape, name] : kShapes) {
        for (const bool blas : {false, true}) {
          if (blas && !tapegrad::kernels::kBlasProducts) continue;
          const std::string full = std::string("BM_GemmRate/") + tapegrad_bench::cell_name(cell) + "/" + cfg.name +
                                   "/" + name + (blas ? "_blas" : "");
          benchmark::RegisterBenchmark(full.c_str(), BM_GemmRate, cell, cfg, shape, blas)
              ->Unit(benchmark::kMicrosecond);
        }
      }
    }
  }
  return true;
}

const bool registered = register_all();

}  // namespace
