// What run_tbptt reports besides the gradient, against independent numbers: the per-step losses
// against a plain-Eigen forward loop, the initial-state gradient against central differences of
// the total loss (tanh RNN, LSTM) and against the closed form of a linear RNN in every mode (and
// the per-update start-state gradients likewise), and dropout under overlapping windows: every
// re-run of a step sees the same mask, and the run equals one whose masks were computed per t
// beforehand.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <tapegrad/nn/nn.h>

#include "support/test_names.h"
#include "support/test_support.h"

using Mat = tg::Matrix<double>;
using V = tg::Var<double>;
using nn::TbpttConfig;

namespace {

using namespace tapegrad::testing;  // expect_error, expect_near, random_matrix

constexpr Index kB = 2, kIn = 3, kH = 4;

// Inputs x_t, loss weights v_t (L_t = sum(v_t * h_t)) and which steps have a loss.
struct Task {
  std::vector<Mat> x, v;
  std::vector<bool> has_loss;
  [[nodiscard]] int steps() const { return static_cast<int>(x.size()); }
};

Task make_task(int T, std::mt19937_64& rng, std::vector<int> no_loss = {}) {
  Task task;
  for (int t = 0; t < T; ++t) {
    task.x.push_back(random_matrix(kB, kIn, rng));
    task.v.push_back(random_matrix(kB, kH, rng));
    task.has_loss.push_back(std::find(no_loss.begin(), no_loss.end(), t) == no_loss.end());
  }
  return task;
}

// The step function of `cell` (h only, or h and c) with loss sum(v_t * h_t).
template <class Cell>
nn::StepFn<double> step_of(Cell& cell, const Task& task) {
  return [&cell, &task](tg::Tape<double>& tape, int t, const nn::State<double>& s) {
    const auto k = static_cast<std::size_t>(t);
    nn::State<double> next = cell.step(tape.constant(task.x[k]), s);
    V loss;
    if (task.has_loss[k]) loss = tg::sum(next.h() * tape.constant(task.v[k]));
    return nn::StepResult<double>{next, loss};
  };
}

std::vector<TbpttConfig> all_modes() {
  return {TbpttConfig::full(), TbpttConfig::chunked(3), TbpttConfig::overlapping(2, 5),
          TbpttConfig::per_output_window(2)};
}

TEST(TbpttReport, LossesAreEveryStepOnceInOrderAndMatchAPlainForwardLoop) {
  std::mt19937_64 rng(1);
  nn::RnnCell<double> cell({.input_size = kIn, .hidden_size = kH}, rng);
  const Task task = make_task(9, rng, {1, 4});
  const Mat h0 = random_matrix(kB, kH, rng, 0.5);
  // Plain Eigen: h_t = tanh(x_t W_ih + h_{t-1} W_hh + b).
  std::vector<nn::StepLoss> want;
  Mat h = h0;
  for (int t = 0; t < task.steps(); ++t) {
    Mat a = task.x[static_cast<std::size_t>(t)] * cell.W_ih.value + h * cell.W_hh.value;
    a.rowwise() += cell.b.value.row(0);
    h = a.array().tanh().matrix();
    if (task.has_loss[static_cast<std::size_t>(t)]) {
      want.push_back({t, (h.array() * task.v[static_cast<std::size_t>(t)].array()).sum()});
    }
  }
  for (const TbpttConfig& config : all_modes()) {
    tg::Tape<double> tape;
    // No update: the parameters stay as they are, so every window sees the plain loop's weights.
    const auto report = nn::run_tbptt<double>(tape, task.steps(), {h0}, step_of(cell, task), {}, config);
    ASSERT_EQ(report.losses.size(), want.size()) << config.describe();
    double total = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(report.losses[i].step, want[i].step) << config.describe();
      EXPECT_NEAR(report.losses[i].loss, want[i].loss, 1e-12) << config.describe() << " step " << want[i].step;
      total += want[i].loss;
    }
    EXPECT_NEAR(report.total_loss, total, 1e-12) << config.describe();
  }
}

TEST(TbpttReport, StepCallsCountOverlappingReRuns) {
  std::mt19937_64 rng(2);
  nn::RnnCell<double> cell({.input_size = kIn, .hidden_size = kH}, rng);
  const Task task = make_task(9, rng);
  for (const TbpttConfig& config : all_modes()) {
    std::map<int, int> calls;
    const nn::StepFn<double> counting = [&](tg::Tape<double>& tape, int t, const nn::State<double>& s) {
      ++calls[t];
      return step_of(cell, task)(tape, t, s);
    };
    tg::Tape<double> tape;
    const auto report = nn::run_tbptt<double>(tape, 9, {Mat::Zero(kB, kH)}, counting, {}, config);
    int total = 0;
    for (const auto& [t, n] : calls) total += n;
    EXPECT_EQ(report.step_calls, total) << config.describe();
    if (config.mode != nn::TbpttMode::Overlapping) {
      EXPECT_EQ(total, 9) << config.describe();
    } else {
      // k1 = 2, k2 = 5: windows [0,2) [0,4) [1,6) [3,8) [5,9), begin = max(0, first_loss - 3).
      EXPECT_EQ(total, 2 + 4 + 5 + 5 + 4);
      EXPECT_EQ(calls[0], 2);
      EXPECT_EQ(calls[5], 3);
    }
  }
}

// Central differences of the total loss w.r.t. every element of every initial-state tensor:
// forward runs only, independent of the backward under test.
template <class Cell>
std::vector<Mat> numeric_initial_grad(Cell& cell, const Task& task, const std::vector<Mat>& s0) {
  const double eps = 1e-6;
  std::vector<Mat> out;
  for (std::size_t k = 0; k < s0.size(); ++k) {
    Mat g(s0[k].rows(), s0[k].cols());
    for (Index i = 0; i < g.size(); ++i) {
      std::vector<Mat> plus = s0, minus = s0;
      plus[k].data()[i] += eps;
      minus[k].data()[i] -= eps;
      tg::Tape<double> tape;
      const double lp =
          nn::run_tbptt<double>(tape, task.steps(), plus, step_of(cell, task), {}, TbpttConfig::full()).total_loss;
      const double lm =
          nn::run_tbptt<double>(tape, task.steps(), minus, step_of(cell, task), {}, TbpttConfig::full()).total_loss;
      g.data()[i] = (lp - lm) / (2 * eps);
    }
    out.push_back(g);
  }
  return out;
}

template <class Cell>
void check_full_initial_grad(Cell& cell, const Task& task, const std::vector<Mat>& s0) {
  TbpttConfig config = TbpttConfig::full();
  config.start_state_grad = true;
  std::vector<nn::UpdateInfo> infos;
  tg::Tape<double> tape;
  const auto report = nn::run_tbptt<double>(
      tape, task.steps(), s0, step_of(cell, task), [&](const nn::UpdateInfo& i) { infos.push_back(i); }, config);
  const std::vector<Mat> want = numeric_initial_grad(cell, task, s0);
  ASSERT_EQ(report.initial_state_grad.size(), s0.size());
  ASSERT_EQ(infos.size(), 1u);
  for (std::size_t k = 0; k < s0.size(); ++k) {
    expect_near(report.initial_state_grad[k], want[k], "dL/ds0[" + std::to_string(k) + "]", 1e-8);
    expect_near(infos[0].start_state_grad[k], want[k], "UpdateInfo start grad", 1e-8);
  }
}

TEST(TbpttReport, FullModeInitialStateGradientMatchesCentralDifferences) {
  std::mt19937_64 rng(3);
  nn::RnnCell<double> rnn({.input_size = kIn, .hidden_size = kH}, rng);
  const Task task = make_task(6, rng, {2});
  check_full_initial_grad(rnn, task, {random_matrix(kB, kH, rng, 0.5)});
  nn::LstmCell<double> lstm({.input_size = kIn, .hidden_size = kH}, rng);
  check_full_initial_grad(lstm, task, {random_matrix(kB, kH, rng, 0.5), random_matrix(kB, kH, rng, 0.5)});
}

// Linear RNN h_t = x_t U + h_{t-1} W + b with L_t = sum(v_t * h_t): the loss of step t (after
// t - s + 1 steps from the state h_s entering at step s) has dL_t/dh_s = v_t (W^(t-s+1))^T.
struct Linear {
  Mat W;
  [[nodiscard]] Mat grad(const Task& task, int s, int first_loss, int end) const {
    Mat g = Mat::Zero(kB, kH);
    for (int t = first_loss; t < end; ++t) {
      if (!task.has_loss[static_cast<std::size_t>(t)]) continue;
      Mat p = Mat::Identity(kH, kH);
      for (int k = 0; k < t - s + 1; ++k) p = p * W;
      g += task.v[static_cast<std::size_t>(t)] * p.transpose();
    }
    return g;
  }
};

TEST(TbpttReport, LinearRnnStartStateGradientsInClosedFormInEveryMode) {
  std::mt19937_64 rng(4);
  nn::RnnCell<double> cell({.input_size = kIn, .hidden_size = kH, .activation = nn::Activation::Identity}, rng);
  cell.W_hh.value *= 0.9;
  const Linear lin{cell.W_hh.value};
  const int T = 9;
  const Task task = make_task(T, rng, {3});
  const Mat h0 = random_matrix(kB, kH, rng);
  for (TbpttConfig config : all_modes()) {
    config.start_state_grad = true;
    std::vector<nn::UpdateInfo> infos;
    tg::Tape<double> tape;
    const auto report = nn::run_tbptt<double>(
        tape, T, {h0}, step_of(cell, task), [&](const nn::UpdateInfo& i) { infos.push_back(i); }, config);
    // Every update: the gradient of its losses w.r.t. the state entering at window_begin.
    Mat initial = Mat::Zero(kB, kH);
    for (const nn::UpdateInfo& i : infos) {
      const int s = i.window_begin;
      Mat want = lin.grad(task, s, i.first_loss, i.end_step);
      if (config.mode == nn::TbpttMode::PerOutputWindow) {
        want = lin.grad(task, 0, 0, config.tau + 1);  // only L_0 .. L_tau reach h0
      }
      ASSERT_EQ(i.start_state_grad.size(), 1u);
      expect_near(i.start_state_grad[0], want, config.describe() + " update " + std::to_string(i.index));
      if (s == 0) initial += want;
    }
    if (config.mode == nn::TbpttMode::Full) expect_near(initial, lin.grad(task, 0, 0, T), "full dL/dh0");
    expect_near(report.initial_state_grad.at(0), initial, config.describe() + " initial_state_grad");
  }
  // Off by default: nothing reported.
  tg::Tape<double> tape;
  const auto plain = nn::run_tbptt<double>(
      tape, T, {h0}, step_of(cell, task), [](const nn::UpdateInfo& i) { EXPECT_TRUE(i.start_state_grad.empty()); },
      TbpttConfig::chunked(3));
  EXPECT_TRUE(plain.initial_state_grad.empty());
}

// ---- dropout under overlapping windows ----

// The keep-and-scale mask of step t from the generator's uniforms (not through nn::dropout).
Mat precomputed_mask(const nn::Generator& gen, std::uint64_t stream, int t, Index rows, Index cols, double p) {
  Mat m(rows, cols);
  for (Index i = 0; i < rows; ++i) {
    for (Index j = 0; j < cols; ++j) {
      m(i, j) = gen.uniform({stream, t}, static_cast<std::uint64_t>(i * cols + j)) < p ? 0.0 : 1.0 / (1.0 - p);
    }
  }
  return m;
}

TEST(TbpttReport, OverlappingReRunsSeeTheSameDropoutMaskAsPrecomputedPerStep) {
  const int T = 10;
  const double p = 0.4, lr = 0.05;
  std::mt19937_64 data(5);
  const Task task = make_task(T, data);
  nn::Generator gen(31, 2);
  enum class Masks { Dropout, Precomputed, Stateful };
  const auto train = [&](Masks masks, std::map<int, std::vector<Mat>>* seen) {
    std::mt19937_64 init(6);
    std::mt19937_64 stateful(7);  // a fresh draw at every call, as a stateful rng gives
    nn::RnnCell<double> cell({.input_size = kIn, .hidden_size = kH}, init);
    std::vector<tg::Parameter<double>*> params = cell.parameters();
    const nn::StepFn<double> step = [&](tg::Tape<double>& tape, int t, const nn::State<double>& s) {
      const auto k = static_cast<std::size_t>(t);
      const V raw = tape.constant(task.x[k]);
      V x;
      if (masks == Masks::Dropout) {
        x = nn::dropout(raw, gen, {.p = p, .stream = 0});
      } else if (masks == Masks::Precomputed) {
        x = tg::mask_mul(raw, precomputed_mask(gen, 0, t, kB, kIn, p));
      } else {
        x = tg::mask_mul(raw, precomputed_mask(nn::Generator(stateful()), 0, t, kB, kIn, p));
      }
      if (seen != nullptr) (*seen)[t].push_back(x.value());
      nn::State<double> next = cell.step(x, s);
      return nn::StepResult<double>{next, tg::sum(next.h() * tape.constant(task.v[k]))};
    };
    const nn::UpdateFn sgd = [&](const nn::UpdateInfo&) {
      for (tg::Parameter<double>* q : params) {
        q->value -= lr * q->grad;
        q->grad.setZero();
      }
    };
    tg::Tape<double> tape;
    const auto report = nn::run_tbptt<double>(tape, T, {Mat::Zero(kB, kH)}, step, sgd, TbpttConfig::overlapping(3, 7));
    EXPECT_GT(report.step_calls, T);  // steps were re-run
    std::vector<Mat> out;
    for (tg::Parameter<double>* q : params) out.push_back(q->value);
    return out;
  };
  std::map<int, std::vector<Mat>> seen;
  const std::vector<Mat> with_dropout = train(Masks::Dropout, &seen);
  const std::vector<Mat> with_precomputed = train(Masks::Precomputed, nullptr);
  // Every call of step t saw one mask, and masks differ from step to step.
  int reruns = 0;
  for (const auto& [t, inputs] : seen) {
    for (const Mat& m : inputs) EXPECT_EQ(m, inputs.front()) << "step " << t;
    reruns += static_cast<int>(inputs.size()) - 1;
  }
  EXPECT_GT(reruns, 0);
  EXPECT_NE(seen.at(0).front(), seen.at(1).front());
  const auto same_bits = [](const std::vector<Mat>& a, const std::vector<Mat>& b) {
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (std::memcmp(a[i].data(), b[i].data(), sizeof(double) * static_cast<std::size_t>(a[i].size())) != 0) {
        return false;
      }
    }
    return a.size() == b.size();
  };
  EXPECT_TRUE(same_bits(with_dropout, with_precomputed));
  // The check can tell: masks redrawn at every call (a stateful rng) end elsewhere.
  EXPECT_FALSE(same_bits(train(Masks::Stateful, nullptr), with_precomputed));
}

}  // namespace
