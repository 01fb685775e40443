// Tape overhead per recorded op: a chain of N elementwise ops on a 1x1 tensor, recorded and then
// swept backward. On a 1x1 tensor the arithmetic is a few nanoseconds, so the time is almost all
// bookkeeping (slot allocation, closure recording, the reverse loop). Counter ns_per_op is the
// time of one iteration divided by N. BM_RawChainTanh does the same arithmetic in plain scalars,
// the floor that the tape adds to. The ForwardOnly and BackwardOnly variants split the cost of
// one recorded op between recording and the reverse sweep.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include <tapegrad/tapegrad.h>

namespace {

using tapegrad::Matrix;
using tapegrad::Tape;
using tapegrad::Var;

// Reports the iteration time divided by n, in nanoseconds.
void report_ns_per_op(benchmark::State& state, std::int64_t n) {
  state.counters["ns_per_op"] = benchmark::Counter(
      static_cast<double>(n) * 1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

struct TanhOp {
  template <class S>
  static Var<S> apply(const Var<S>& x) {
    return tapegrad::tanh(x);
  }
};
struct AddScalarOp {
  template <class S>
  static Var<S> apply(const Var<S>& x) {
    return tapegrad::add_scalar(x, S(1e-3));
  }
};

// y = Op(Op(...Op(x))), n ops recorded on x's tape.
template <class Op>
Var<float> record_chain(const Var<float>& x, std::int64_t n) {
  Var<float> y = x;
  for (std::int64_t i = 0; i < n; ++i) y = Op::apply(y);
  return y;
}

// Records N ops on a fresh recording each iteration and, with sweep, sweeps them backward.
template <class Op>
void run_chain(benchmark::State& state, bool sweep) {
  const std::int64_t n = state.range(0);
  Tape<float> tape;
  const Matrix<float> x0 = Matrix<float>::Constant(1, 1, 0.5F);
  for (auto _ : state) {
    tape.clear();  // keeps every buffer: steady state records without allocating
    const Var<float> x = tape.variable(x0);
    const Var<float> y = record_chain<Op>(x, n);
    if (sweep) {
      tape.backward(y);
      benchmark::DoNotOptimize(x.grad()(0, 0));
    } else {
      benchmark::DoNotOptimize(y.value()(0, 0));
    }
  }
  report_ns_per_op(state, n);
}

// Record N ops and sweep backward once: the cost of one recorded op, forward + backward.
template <class Op>
void BM_TapeChain(benchmark::State& state) {
  run_chain<Op>(state, true);
}

// Recording only (no backward): how the cost splits between the two passes.
template <class Op>
void BM_TapeChainForwardOnly(benchmark::State& state) {
  run_chain<Op>(state, false);
}

// Backward only: the chain is recorded once, each iteration sweeps it again (a sweep leaves the
// record intact). With BM_TapeChainForwardOnly this splits the cost between the two passes.
template <class Op>
void BM_TapeChainBackwardOnly(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  Tape<float> tape;
  const Var<float> x = tape.variable(Matrix<float>::Constant(1, 1, 0.5F));
  const Var<float> y = record_chain<Op>(x, n);
  for (auto _ : state) {
    tape.backward(y);
    benchmark::DoNotOptimize(x.grad()(0, 0));
  }
  report_ns_per_op(state, n);
}

// The same tanh chain in plain floats: forward keeps every y, backward multiplies (1 - y^2).
void BM_RawChainTanh(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  std::vector<float> ys(static_cast<std::size_t>(n) + 1);
  for (auto _ : state) {
    ys[0] = 0.5F;
    benchmark::DoNotOptimize(ys.data());
    for (std::size_t i = 1; i < ys.size(); ++i) ys[i] = std::tanh(ys[i - 1]);
    float g = 1.0F;
    for (std::size_t i = ys.size() - 1; i > 0; --i) g *= 1.0F - ys[i] * ys[i];
    benchmark::DoNotOptimize(g);
  }
  report_ns_per_op(state, n);
}

}  // namespace

BENCHMARK_TEMPLATE(BM_TapeChain, TanhOp)->Arg(1000)->Arg(10000);
BENCHMARK_TEMPLATE(BM_TapeChain, AddScalarOp)->Arg(1000)->Arg(10000);
BENCHMARK_TEMPLATE(BM_TapeChainForwardOnly, TanhOp)->Arg(1000)->Arg(10000);
BENCHMARK_TEMPLATE(BM_TapeChainForwardOnly, AddScalarOp)->Arg(1000)->Arg(10000);
BENCHMARK_TEMPLATE(BM_TapeChainBackwardOnly, TanhOp)->Arg(1000)->Arg(10000);
BENCHMARK_TEMPLATE(BM_TapeChainBackwardOnly, AddScalarOp)->Arg(1000)->Arg(10000);
BENCHMARK(BM_RawChainTanh)->Arg(1000)->Arg(10000);
