// Matmul through the tape vs raw Eigen, float, n x n times n x n. One iteration is the forward
// product and its backward (dA = G B^T, dB = A^T G): three GEMMs either way. The tape version also
// copies A and B onto the tape and zero-fills the gradient slots it accumulates into; that
// bookkeeping is what the comparison measures. Counter flops is 3 * 2n^3 per iteration.
#include <benchmark/benchmark.h>

#include <cstdint>

#include <tapegrad/tapegrad.h>

namespace {

using tapegrad::Matrix;
using tapegrad::Tape;
using tapegrad::Var;

void report_flops(benchmark::State& state, std::int64_t n) {
  const double flops = 3.0 * 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  state.counters["flops"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}

struct Operands {
  Matrix<float> a, b, g;
  explicit Operands(std::int64_t n)
      : a(Matrix<float>::Random(n, n)), b(Matrix<float>::Random(n, n)), g(Matrix<float>::Random(n, n)) {}
};

void BM_MatmulTape(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const Operands m(n);
  Tape<float> tape;
  for (auto _ : state) {
    tape.clear();
    Var<float> a = tape.variable(m.a);
    Var<float> b = tape.variable(m.b);
    Var<float> c = tapegrad::matmul(a, b);
    tape.backward(c, m.g);
    benchmark::DoNotOptimize(a.grad().data());
    benchmark::DoNotOptimize(b.grad().data());
  }
  report_flops(state, n);
}

void BM_MatmulEigen(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const Operands m(n);
  Matrix<float> c(n, n), ga(n, n), gb(n, n);
  for (auto _ : state) {
    c.noalias() = m.a * m.b;
    ga.noalias() = m.g * m.b.transpose();
    gb.noalias() = m.a.transpose() * m.g;
    benchmark::DoNotOptimize(c.data());
    benchmark::DoNotOptimize(ga.data());
    benchmark::DoNotOptimize(gb.data());
    benchmark::ClobberMemory();
  }
  report_flops(state, n);
}

}  // namespace

BENCHMARK(BM_MatmulTape)->RangeMultiplier(2)->Range(64, 1024)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MatmulEigen)->RangeMultiplier(2)->Range(64, 1024)->Unit(benchmark::kMicrosecond);
