// The recurrences' per-step products, Eigen's GEMM against small_gemm (kernels/small_gemm.h)
// and, in a TAPEGRAD_OPENBLAS build, OpenBLAS's cblas_sgemm (Note [BLAS products] in
// kernels/blas.h; its AVX-512 kernels need OPENBLAS_CORETYPE=SkylakeX on CPUs
// OpenBLAS 0.3.21 does not know), on 1 and 2 threads (Eigen::setNbThreads; small_gemm_on splits the
// columns; both need an OpenMP build such as the `peers` preset for 2). Forward: h_{t-1} [B x H] times W [H x G];
// backward: dA_t [B x G] times W^T, which small_gemm reads from a transposed copy made once per sequence (the copy is
// outside the timed loop, as it is outside the step loop). Shapes: every config of bench/train_step_config.h, G = H
// (RNN) and 4H (LSTM). The crossover sets step_product_fits. BM_TransposeCopy (below) times that copy of W^T.
//   BM_StepProduct/<fwd|bwd>/<B>x<H>x<G>/<eigen|small|blas>/t<threads>   counter gflops (wall clock)
#include <benchmark/benchmark.h>

#include <array>
#include <string>
#include <utility>

#include <tapegrad/kernels/blas.h>
#include <tapegrad/kernels/small_gemm.h>
#include <tapegrad/kernels/threads.h>
#include <tapegrad/kernels/transpose_copy.h>
#include <tapegrad/tensor.h>
#include <tapegrad/threading.h>

namespace {

using tapegrad::Index;
using tapegrad::Matrix;

struct StepShape {
  int batch, hidden, gates;
};

enum class Kernel { Eigen, Small, Blas };

void BM_StepProduct(benchmark::State& state, StepShape s, bool backward, Kernel kernel, int threads) {
  if constexpr (tapegrad::kernels::kParallelProducts) Eigen::setNbThreads(threads);
  // OpenBLAS's OpenMP variant takes the calling thread's OpenMP count.
  if constexpr (tapegrad::kernels::kParallelProducts) tapegrad::set_num_threads(threads);
  const Index m = s.batch;
  const Index k = backward ? s.gates : s.hidden;
  const Index n = backward ? s.hidden : s.gates;
  const Matrix<float> a = Matrix<float>::Random(m, k);
  const Matrix<float> w = Matrix<float>::Random(s.hidden, s.gates);
  const Matrix<float> wt = w.transpose();  // what the backward's small_gemm reads
  Matrix<float> out = Matrix<float>::Zero(m, n);
  for (auto _ : state) {
    if (kernel == Kernel::Small) {
      const Matrix<float>& b = backward ? wt : w;
      tapegrad::kernels::small_gemm_on<float, tapegrad::kernels::Accumulate>(threads, out.data(), n, a.data(), k,
                                                                             b.data(), n, m, k, n);
    } else if (kernel == Kernel::Blas) {
      using Operand = tapegrad::kernels::BlasOperand<float>;
      tapegrad::kernels::blas_gemm(m, n, k, Operand{a.data(), k, false}, Operand{w.data(), s.gates, backward}, 1.0F,
                                   out.data(), n);
    } else if (backward) {
      out.noalias() += a * w.transpose();
    } else {
      out.noalias() += a * w;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  if constexpr (tapegrad::kernels::kParallelProducts) Eigen::setNbThreads(0);
  if constexpr (tapegrad::kernels::kParallelProducts) tapegrad::set_num_threads(1);
  const double work = static_cast<double>(m) * k * n;
  state.counters["gflops"] = benchmark::Counter(2 * work * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = tapegrad::kernels::kParallelProducts ? threads : 1;
}

// The backward's once-per-sweep copy of W^T: Eigen's `w.transpose()` against the tiled
// transpose_copy (kernels/transpose_copy.h), into a destination allocated once.
//   BM_TransposeCopy/<H>x<G>/<eigen|tiled>   counter gbytes (read + written, wall clock)
void BM_TransposeCopy(benchmark::State& state, Index rows, Index cols, bool tiled) {
  const Matrix<float> w = Matrix<float>::Random(rows, cols);
  Matrix<float> out(cols, rows);
  for (auto _ : state) {
    if (tiled) {
      tapegrad::kernels::transpose_copy<tapegrad::kernels::Assign>(w, out);
    } else {
      out = w.transpose();
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["gbytes"] = benchmark::Counter(2.0 * static_cast<double>(w.size()) * sizeof(float) * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

bool register_all() {
  constexpr std::array<std::pair<Kernel, const char*>, 3> kKernels{
      {{Kernel::Eigen, "eigen"}, {Kernel::Small, "small"}, {Kernel::Blas, "blas"}}};
  // (B, H): tiny, small, medium, large, long (train_step_config.h).
  constexpr std::array<std::array<int, 2>, 5> kConfigs{{{1, 32}, {16, 128}, {32, 512}, {64, 1024}, {8, 256}}};
  for (const bool backward : {false, true}) {
    for (const auto& [batch, hidden] : kConfigs) {
      for (const int gates : {hidden, 4 * hidden}) {
        const StepShape s{batch, hidden, gates};
        for (const int threads : {1, 2}) {
          for (const auto& [kernel, kernel_name] : kKernels) {
            if (kernel == Kernel::Blas && !tapegrad::kernels::kBlasProducts) continue;
            const std::string name = std::string("BM_StepProduct/") + (backward ? "bwd/" : "fwd/") +
                                     std::to_string(batch) + "x" + std::to_string(hidden) + "x" +
                                     std::to_string(gates) + "/" + kernel_name + "/t" + std::to_string(threads);
            benchmark::RegisterBenchmark(name.c_str(), BM_StepProduct, s, backward, kernel, threads)
                ->Unit(benchmark::kMicrosecond);
          }
        }
      }
    }
  }
  // W of the medium and large RNN and LSTM configs.
  constexpr std::array<std::array<int, 2>, 4> kWeights{{{512, 512}, {512, 2048}, {1024, 1024}, {1024, 4096}}};
  for (const auto& [rows, cols] : kWeights) {
    for (const bool tiled : {false, true}) {
      const std::string name =
          "BM_TransposeCopy/" + std::to_string(rows) + "x" + std::to_string(cols) + (tiled ? "/tiled" : "/eigen");
      benchmark::RegisterBenchmark(name.c_str(), BM_TransposeCopy, rows, cols, tiled)->Unit(benchmark::kMicrosecond);
    }
  }
  return true;
}

const bool registered = register_all();

}  // namespace
