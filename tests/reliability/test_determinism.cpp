// Determinism: with a fixed seed, training is a pure function of its inputs. Two runs of the
// same LSTM training (Adam + global-norm clipping, chunked truncated BPTT) give bit-identical
// loss trajectories and weights, and two models trained at the same time on two threads (one
// tape each) give bit-identical results to training them one after the other. This binary is
// also built with ThreadSanitizer in CI (see docs/reliability.md), which would report any data
// race between the two threads.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include <tapegrad/nn/clip.h>
#include <tapegrad/nn/linear.h>
#include <tapegrad/nn/loss.h>
#include <tapegrad/nn/lstm_cell.h>
#include <tapegrad/nn/optim.h>
#include <tapegrad/nn/tbptt.h>
#include "../support/test_names.h"

using S = float;
using M = tg::Matrix<S>;

namespace {

constexpr int kSteps = 20;  // optimizer steps
constexpr int kSeqLen = 8;
constexpr tg::Index kBatch = 4;
constexpr tg::Index kVocab = 5;
constexpr tg::Index kHidden = 8;

/// What a training run produces: the loss of every update and the final weights.
struct TrainingRun {
  std::vector<double> losses;
  std::vector<M> weights;
};

/// Trains an LSTM + linear head to predict the next token of a seeded random sequence.
TrainingRun train(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  nn::LstmCell<S> lstm({.input_size = kVocab, .hidden_size = kHidden}, rng);
  nn::Linear<S> head({.input_size = kHidden, .output_size = kVocab}, rng);
  std::vector<tg::Parameter<S>*> params = nn::parameters_of<S>({&lstm, &head});
  nn::Adam<S> adam(params, {.lr = 0.05});
  nn::Clipper clip(nn::Clipper::Mode::Norm, 0.5);

  // Tokens: one sequence per batch row, one-hot inputs, next-token targets.
  std::uniform_int_distribution<int> token(0, static_cast<int>(kVocab) - 1);
  std::vector<std::vector<int>> seq(kBatch, std::vector<int>(kSeqLen + 1));
  for (auto& row : seq) {
    for (int& t : row) t = token(rng);
  }
  std::vector<M> inputs(kSeqLen, M::Zero(kBatch, kVocab));
  std::vector<std::vector<std::int32_t>> targets(kSeqLen, std::vector<std::int32_t>(kBatch));
  for (int t = 0; t < kSeqLen; ++t) {
    for (tg::Index b = 0; b < kBatch; ++b) {
      inputs[static_cast<std::size_t>(t)](b, seq[static_cast<std::size_t>(b)][static_cast<std::size_t>(t)]) = 1;
      targets[static_cast<std::size_t>(t)][static_cast<std::size_t>(b)] =
          seq[static_cast<std::size_t>(b)][static_cast<std::size_t>(t) + 1];
    }
  }

  TrainingRun run;
  tg::Tape<S> tape;
  const nn::StepFn<S> step = [&](tg::Tape<S>& tp, int t, const nn::State<S>& s) {
    const tg::Var<S> x = tp.constant(inputs[static_cast<std::size_t>(t)]);
    nn::State<S> next = lstm.step(x, s);
    const auto& tgt = targets[static_cast<std::size_t>(t)];
    return nn::StepResult<S>{next, nn::cross_entropy(head.forward(next.h()), std::span<const std::int32_t>(tgt))};
  };
  const nn::UpdateFn update = [&](const nn::UpdateInfo& info) {
    run.losses.push_back(info.loss);
    clip(params);
    adam.step();
    adam.zero_grad();
  };
  const std::vector<M> h0 = {M::Zero(kBatch, kHidden), M::Zero(kBatch, kHidden)};
  // Chunks of 4 steps: two updates per pass over the sequence.
  for (int pass = 0; pass < kSteps / 2; ++pass) {
    nn::run_tbptt<S>(tape, kSeqLen, h0, step, update, nn::TbpttConfig::chunked(4));
  }
  for (auto* p : params) run.weights.push_back(p->value);
  return run;
}

bool bit_identical(const TrainingRun& a, const TrainingRun& b) {
  if (a.losses.size() != b.losses.size() || a.weights.size() != b.weights.size()) return false;
  if (std::memcmp(a.losses.data(), b.losses.data(), sizeof(double) * a.losses.size()) != 0) return false;
  for (std::size_t i = 0; i < a.weights.size(); ++i) {
    const M& x = a.weights[i];
    const M& y = b.weights[i];
    if (x.rows() != y.rows() || x.cols() != y.cols() ||
        std::memcmp(x.data(), y.data(), sizeof(S) * static_cast<std::size_t>(x.size())) != 0)
      return false;
  }
  return true;
}

TEST(Determinism, SameSeedGivesBitIdenticalTraining) {
  const TrainingRun a = train(11);
  const TrainingRun b = train(11);
  ASSERT_EQ(a.losses.size(), static_cast<std::size_t>(kSteps));
  EXPECT_TRUE(bit_identical(a, b));
  // The run really trained (a failure here would make the equality above vacuous).
  EXPECT_LT(a.losses.back(), a.losses.front());
  // And a different seed is a different run, so the comparison can tell runs apart.
  EXPECT_FALSE(bit_identical(a, train(12)));
}

TEST(Determinism, TwoThreadsOnSeparateTapesMatchSequentialRuns) {
  const TrainingRun seq_a = train(21);
  const TrainingRun seq_b = train(22);
  TrainingRun par_a;
  TrainingRun par_b;
  std::thread ta([&] { par_a = train(21); });
  std::thread tb([&] { par_b = train(22); });
  ta.join();
  tb.join();
  EXPECT_TRUE(bit_identical(seq_a, par_a));
  EXPECT_TRUE(bit_identical(seq_b, par_b));
  EXPECT_FALSE(bit_identical(par_a, par_b));
}

TEST(Determinism, FourThreadsEachWithOwnTape) {
  // More threads than cores: interleavings vary from run to run, results must not.
  std::vector<TrainingRun> seq;
  for (std::uint64_t s = 31; s < 35; ++s) seq.push_back(train(s));
  std::vector<TrainingRun> par(4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < 4; ++i) threads.emplace_back([&, i] { par[i] = train(31 + i); });
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < 4; ++i) EXPECT_TRUE(bit_identical(seq[i], par[i])) << "thread " << i;
}

}  // namespace
