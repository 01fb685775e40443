// One training step of a vanilla tanh RNN language model, everything through the tape:
//   x_t = U[tokens_t]                   (embedding lookup, K x H table)
//   h_t = tanh(x_t + h_{t-1} W + b)
//   loss = sum_t CE(softmax(h_t V + c), targets_t)   (summed over batch and time)
// then backward over all T steps and a plain SGD update of U, W, b, V, c.
// Configs: tiny (B=1, H=32, K=65, T=25) and small (B=16, H=128, K=65, T=50).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include <tapegrad/tapegrad.h>

namespace {

using tapegrad::Matrix;
using tapegrad::Parameter;
using tapegrad::Tape;
using tapegrad::Var;

struct Config {
  std::int64_t batch, hidden, vocab, steps;
};
constexpr Config kTiny{1, 32, 65, 25};
constexpr Config kSmall{16, 128, 65, 50};

struct Model {
  Parameter<float> U, W, b, V, c;
  explicit Model(const Config& cfg)
      : U(Matrix<float>::Random(cfg.vocab, cfg.hidden) * 0.1F, "U"),
        W(Matrix<float>::Random(cfg.hidden, cfg.hidden) * 0.1F, "W"),
        b(Matrix<float>::Zero(1, cfg.hidden), "b"),
        V(Matrix<float>::Random(cfg.hidden, cfg.vocab) * 0.1F, "V"),
        c(Matrix<float>::Zero(1, cfg.vocab), "c") {}
  void sgd(float lr) {
    for (Parameter<float>* p : {&U, &W, &b, &V, &c}) {
      p->value -= lr * p->grad;
      p->zero_grad();
    }
  }
};

void BM_RnnTrainStep(benchmark::State& state, Config cfg) {
  Model model(cfg);
  std::mt19937 rng(42);
  std::uniform_int_distribution<std::int32_t> token(0, static_cast<std::int32_t>(cfg.vocab - 1));
  // tokens[t] and targets[t] hold one id per batch row; targets are the next tokens.
  std::vector<std::vector<std::int32_t>> tokens(static_cast<std::size_t>(cfg.steps + 1));
  for (auto& row : tokens) {
    row.resize(static_cast<std::size_t>(cfg.batch));
    for (auto& id : row) id = token(rng);
  }
  const Matrix<float> h0 = Matrix<float>::Zero(cfg.batch, cfg.hidden);
  Tape<float> tape;

  for (auto _ : state) {
    tape.clear();
    Var<float> U = tape.leaf(model.U), W = tape.leaf(model.W), b = tape.leaf(model.b);
    Var<float> V = tape.leaf(model.V), c = tape.leaf(model.c);
    Var<float> h = tape.constant(h0);
    Var<float> loss;
    for (std::int64_t t = 0; t < cfg.steps; ++t) {
      const auto& in = tokens[static_cast<std::size_t>(t)];
      const auto& target = tokens[static_cast<std::size_t>(t + 1)];
      h = tapegrad::tanh(tapegrad::add(tapegrad::gather_rows(U, in), tapegrad::affine(h, W, b)));
      Var<float> step_loss =
          tapegrad::softmax_cross_entropy(tapegrad::affine(h, V, c), target, tapegrad::Reduction::Sum);
      loss = t == 0 ? step_loss : tapegrad::add(loss, step_loss);
    }
    tape.backward(loss);
    model.sgd(1e-3F);
    benchmark::DoNotOptimize(loss.item());
  }
  state.counters["tokens_per_s"] =
      benchmark::Counter(static_cast<double>(cfg.batch * cfg.steps), benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK_CAPTURE(BM_RnnTrainStep, tiny_B1_H32_K65_T25, kTiny)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_RnnTrainStep, small_B16_H128_K65_T50, kSmall)->Unit(benchmark::kMillisecond);
