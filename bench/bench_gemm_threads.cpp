// When does a second thread pay inside one matrix product? Raw Eigen on Tapegrad's row-major
// float matrices, out = a * b with a [m x k], b [k x n], timed with Eigen allowed 1 and 2 threads
// (Eigen::setNbThreads, bypassing Tapegrad's own threshold). The shapes are the products a
// training step runs (bench/train_step_config.h: per-step [B x H][H x G], the projections and
// weight gradients over all steps) plus squares, ordered by work = m k n multiply-adds. The
// crossover sets tapegrad::kernels::kDefaultMinParallelWork (kernels/threads.h); see docs/performance.md.
//   BM_GemmThreads/<m>x<k>x<n>/t<threads>   counters: work (multiply-adds), gflops (wall clock)
// Needs a build with TAPEGRAD_OPENMP=ON (the `peers` preset); without it both runs use 1 thread.
#include <benchmark/benchmark.h>

#include <array>
#include <string>

#include <tapegrad/kernels/threads.h>
#include <tapegrad/tensor.h>

namespace {

using tapegrad::Matrix;

struct ProductShape {
  int m, k, n;
};

void BM_GemmThreads(benchmark::State& state, ProductShape s, int threads) {
  if constexpr (tapegrad::kernels::kParallelProducts) Eigen::setNbThreads(threads);
  const Matrix<float> a = Matrix<float>::Random(s.m, s.k);
  const Matrix<float> b = Matrix<float>::Random(s.k, s.n);
  Matrix<float> out(s.m, s.n);
  for (auto _ : state) {
    out.noalias() = a * b;
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  if constexpr (tapegrad::kernels::kParallelProducts) Eigen::setNbThreads(0);  // back to OpenMP's default
  const double work = static_cast<double>(s.m) * s.k * s.n;
  state.counters["work"] = work;
  state.counters["gflops"] = benchmark::Counter(2 * work * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = tapegrad::kernels::kParallelProducts ? threads : 1;
}

bool register_all() {
  // (m, k, n): tiny/small/medium/large/long step shapes [B x H][H x G] for G = H and 4H, the
  // tiny projection [T*B x H][H x 4H], the LSTM tiny table's forward [K x H][H x 4H] and weight
  // gradient [H x K][K x 4H], and squares.
  constexpr std::array<ProductShape, 19> kShapes{{{1, 32, 128},
                                                  {25, 32, 128},
                                                  {65, 32, 128},
                                                  {32, 65, 128},
                                                  {16, 128, 128},
                                                  {32, 64, 64},
                                                  {8, 256, 256},
                                                  {64, 64, 64},
                                                  {16, 128, 512},
                                                  {8, 256, 1024},
                                                  {128, 128, 128},
                                                  {32, 512, 512},
                                                  {800, 128, 128},
                                                  {64, 256, 256},
                                                  {32, 512, 2048},
                                                  {256, 256, 256},
                                                  {64, 1024, 1024},
                                                  {512, 512, 512},
                                                  {64, 1024, 4096}}};
  for (const ProductShape& s : kShapes) {
    for (const int threads : {1, 2}) {
      std::string name = "BM_GemmThreads/";
      name.append(std::to_string(s.m)).append("x").append(std::to_string(s.k)).append("x");
      name.append(std::to_string(s.n)).append("/t").append(std::to_string(threads));
      benchmark::RegisterBenchmark(name.c_str(), BM_GemmThreads, s, threads)
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
    }
  }
  return true;
}

const bool registered = register_all();

}  // namespace
