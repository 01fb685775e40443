// The truncated-BPTT driver against independent computations: a hand-derived vanilla-RNN
// BPTT in plain Eigen (per chunk, per overlapping window, per output window, with and without
// parameter updates) and, for the LSTM, a separate tape per chunk built by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <tapegrad/nn/lstm_cell.h>
#include <tapegrad/nn/rnn_cell.h>
#include <tapegrad/nn/tbptt.h>
#include <tapegrad/ops.h>

#include "support/test_support.h"

using namespace tapegrad;
using nn::State;
using nn::StepResult;
using nn::TbpttConfig;
using nn::UpdateInfo;
using M = Matrix<double>;

namespace {

using tapegrad::testing::expect_error;
using tapegrad::testing::random_matrix;

constexpr Index kBatch = 2;
constexpr Index kIn = 3;
constexpr Index kHidden = 4;

// A toy sequence task: inputs x_t, targets y_t, and which steps carry a loss.
struct Sequence {
  std::vector<M> x, y;
  std::vector<bool> has_loss;
  [[nodiscard]] int length() const { return static_cast<int>(x.size()); }
};

Sequence make_sequence(int steps, Index hidden, std::mt19937_64& rng) {
  Sequence s;
  for (int t = 0; t < steps; ++t) {
    s.x.push_back(random_matrix(kBatch, kIn, rng));
    s.y.push_back(random_matrix(kBatch, hidden, rng, 0.5));
    s.has_loss.push_back(true);
  }
  return s;
}

// ---- plain-Eigen vanilla RNN: h' = tanh(x W_ih + h W_hh + b), L_t = mean((h_t - y_t)^2) ----
struct RnnWeights {
  M W_ih, W_hh, b;
};
struct RnnGrads {
  M W_ih, W_hh, b;
};

// One SGD update of the reference weights: w -= lr g.
void sgd_update(RnnWeights& w, const RnnGrads& g, double lr) {
  w.W_ih -= lr * g.W_ih;
  w.W_hh -= lr * g.W_hh;
  w.b -= lr * g.b;
}

M rnn_step(const RnnWeights& w, const M& x, const M& h) {
  M a = x * w.W_ih + h * w.W_hh;
  a.rowwise() += w.b.row(0);
  return a.array().tanh().matrix();
}

double step_loss(const M& h, const M& y) { return (h - y).squaredNorm() / static_cast<double>(h.size()); }

// Forward from h_begin over steps [begin, end): states[i] is the state after step begin + i.
std::vector<M> rnn_forward(const RnnWeights& w, const Sequence& seq, int begin, int end, const M& h_begin) {
  std::vector<M> states;
  M h = h_begin;
  for (int t = begin; t < end; ++t) {
    h = rnn_step(w, seq.x[static_cast<std::size_t>(t)], h);
    states.push_back(h);
  }
  return states;
}

// Hand-derived BPTT: the gradient of sum_{t in [first_loss, end), has_loss} L_t with respect to
// the weights, through steps [begin, end) only, h_begin held fixed.
RnnGrads rnn_window_grad(const RnnWeights& w, const Sequence& seq, int begin, int first_loss, int end,
                         const M& h_begin) {
  const std::vector<M> hs = rnn_forward(w, seq, begin, end, h_begin);
  RnnGrads g{M::Zero(w.W_ih.rows(), w.W_ih.cols()), M::Zero(w.W_hh.rows(), w.W_hh.cols()), M::Zero(1, w.b.cols())};
  M dh = M::Zero(h_begin.rows(), h_begin.cols());
  for (int t = end - 1; t >= begin; --t) {
    const auto i = static_cast<std::size_t>(t - begin);
    const M& h = hs[i];
    if (t >= first_loss && seq.has_loss[static_cast<std::size_t>(t)]) {
      dh += 2.0 * (h - seq.y[static_cast<std::size_t>(t)]) / static_cast<double>(h.size());
    }
    const M da = (dh.array() * (1.0 - h.array().square())).matrix();
    const M& h_prev = i == 0 ? h_begin : hs[i - 1];
    g.W_ih += seq.x[static_cast<std::size_t>(t)].transpose() * da;
    g.W_hh += h_prev.transpose() * da;
    g.b += da.colwise().sum();
    dh = da * w.W_hh.transpose();
  }
  return g;
}

void add_into(RnnGrads& acc, const RnnGrads& g) {
  acc.W_ih += g.W_ih;
  acc.W_hh += g.W_hh;
  acc.b += g.b;
}

// ---- the same model on the tape, driven by run_tbptt ----------------------------------------
struct RnnFixture {
  std::mt19937_64 rng{7};
  nn::RnnCell<double> cell{{.input_size = kIn, .hidden_size = kHidden}, rng};
  Sequence seq;
  M h0;

  explicit RnnFixture(int steps) {
    cell.b.value = random_matrix(1, kHidden, rng, 0.3);  // a non-zero bias exercises db
    seq = make_sequence(steps, kHidden, rng);
    h0 = random_matrix(kBatch, kHidden, rng, 0.5);
  }
  [[nodiscard]] RnnWeights weights() const { return {cell.W_ih.value, cell.W_hh.value, cell.b.value}; }

  nn::StepFn<double> step_fn() {
    return [this](Tape<double>& tape, int t, const State<double>& s) {
      const auto i = static_cast<std::size_t>(t);
      State<double> next = cell.step(tape.constant(seq.x[i]), s);
      Var<double> loss;
      if (seq.has_loss[i]) loss = mse_loss(next.h(), tape.constant(seq.y[i]));
      return StepResult<double>{next, loss};
    };
  }
};

// Records each update's gradient and info, zeroes the gradients, does not update.
struct GradRecorder {
  explicit GradRecorder(std::vector<Parameter<double>*> ps) : params(std::move(ps)) {}
  std::vector<Parameter<double>*> params;
  std::vector<UpdateInfo> infos;
  std::vector<RnnGrads> grads;
  nn::UpdateFn fn() {
    return [this](const UpdateInfo& info) {
      infos.push_back(info);
      grads.push_back({params[0]->grad, params[1]->grad, params[2]->grad});
      for (auto* p : params) p->zero_grad();
    };
  }
};

// An update that takes one plain SGD step (p -= lr grad) and zeroes the gradients.
nn::UpdateFn plain_sgd(std::vector<Parameter<double>*> params, double lr) {
  return [params = std::move(params), lr](const UpdateInfo&) {
    for (auto* p : params) {
      p->value -= lr * p->grad;
      p->zero_grad();
    }
  };
}

void expect_near(const M& actual, const M& expected, double tol, const std::string& what) {
  ASSERT_EQ(actual.rows(), expected.rows()) << what;
  ASSERT_EQ(actual.cols(), expected.cols()) << what;
  EXPECT_LE((actual - expected).cwiseAbs().maxCoeff(), tol * (1.0 + expected.cwiseAbs().maxCoeff())) << what;
}

// The cell's weights after training equal the reference's, updated by hand.
void expect_weights(const RnnFixture& f, const RnnWeights& w) {
  expect_near(f.cell.W_ih.value, w.W_ih, 1e-12, "W_ih after updates");
  expect_near(f.cell.W_hh.value, w.W_hh, 1e-12, "W_hh after updates");
  expect_near(f.cell.b.value, w.b, 1e-12, "b after updates");
}

void expect_grads(const RnnGrads& actual, const RnnGrads& expected, const std::string& what) {
  expect_near(actual.W_ih, expected.W_ih, 1e-12, what + " W_ih");
  expect_near(actual.W_hh, expected.W_hh, 1e-12, what + " W_hh");
  expect_near(actual.b, expected.b, 1e-12, what + " b");
}

// The continuous (never truncated) forward: states[t] is the state before step t.
std::vector<M> continuous_states(const RnnWeights& w, const Sequence& seq, const M& h0) {
  std::vector<M> states{h0};
  const std::vector<M> after = rnn_forward(w, seq, 0, seq.length(), h0);
  states.insert(states.end(), after.begin(), after.end());
  return states;
}

double total_loss(const std::vector<M>& states, const Sequence& seq) {
  double sum = 0.0;
  for (int t = 0; t < seq.length(); ++t) {
    const auto i = static_cast<std::size_t>(t);
    if (seq.has_loss[i]) sum += step_loss(states[i + 1], seq.y[i]);
  }
  return sum;
}

}  // namespace

// ---- chunked (k1 = k2 = k) -------------------------------------------------------------------

TEST(Tbptt, ChunkGradientEqualsDetachedChunkBptt) {
  RnnFixture f(11);
  GradRecorder rec{f.cell.parameters()};
  Tape<double> tape;
  const auto report = nn::run_tbptt<double>(tape, 11, {f.h0}, f.step_fn(), rec.fn(), TbpttConfig::chunked(4));

  const RnnWeights w = f.weights();
  const std::vector<M> hs = continuous_states(w, f.seq, f.h0);
  const std::vector<std::pair<int, int>> chunks{{0, 4}, {4, 8}, {8, 11}};
  ASSERT_EQ(rec.grads.size(), chunks.size());
  for (std::size_t c = 0; c < chunks.size(); ++c) {
    const auto [begin, end] = chunks[c];
    // Starts from the continuous state at the boundary, held fixed: nothing crosses it.
    const RnnGrads expected = rnn_window_grad(w, f.seq, begin, begin, end, hs[static_cast<std::size_t>(begin)]);
    expect_grads(rec.grads[c], expected, "chunk " + std::to_string(c));
    EXPECT_EQ(rec.infos[c].index, static_cast<int>(c));
    EXPECT_EQ(rec.infos[c].first_loss, begin);
    EXPECT_EQ(rec.infos[c].window_begin, begin);
    EXPECT_EQ(rec.infos[c].end_step, end);
    EXPECT_EQ(rec.infos[c].sweeps, 1);
  }
  // Truncation changes the gradient (the test would be vacuous otherwise).
  const RnnGrads full = rnn_window_grad(w, f.seq, 0, 8, 11, f.h0);
  EXPECT_GT((full.W_hh - rec.grads[2].W_hh).norm(), 1e-6);

  EXPECT_EQ(report.sweeps, 3);
  EXPECT_EQ(report.updates, 3);
  EXPECT_EQ(report.num_steps, 11);
  EXPECT_NEAR(report.total_loss, total_loss(hs, f.seq), 1e-12);
  ASSERT_EQ(report.final_state.size(), 1u);
  expect_near(report.final_state[0], hs[11], 1e-14, "final state");
  EXPECT_EQ(report.config.describe(), "chunked TBPTT k1=k2=4");
  EXPECT_EQ(report.describe().rfind("chunked TBPTT k1=k2=4: 11 steps, 3 sweeps, 3 updates", 0), 0u)
      << report.describe();
}

TEST(Tbptt, FullModeIsOneSweepOfUntruncatedBptt) {
  RnnFixture f(9);
  GradRecorder rec{f.cell.parameters()};
  Tape<double> tape;
  const auto report = nn::run_tbptt<double>(tape, 9, {f.h0}, f.step_fn(), rec.fn(), TbpttConfig::full());
  ASSERT_EQ(rec.grads.size(), 1u);
  expect_grads(rec.grads[0], rnn_window_grad(f.weights(), f.seq, 0, 0, 9, f.h0), "full");
  EXPECT_EQ(report.sweeps, 1);
  EXPECT_EQ(report.updates, 1);
  EXPECT_EQ(report.config.describe(), "full BPTT");
  // The whole sequence stays on the tape for inspection (diagnostics).
  EXPECT_GT(tape.num_entries(), 9u * 3u);
}

TEST(Tbptt, ChunkedWithParameterUpdatesMatchesEigenSimulation) {
  RnnFixture f(10);
  const double lr = 0.1;
  const nn::UpdateFn sgd = plain_sgd(f.cell.parameters(), lr);
  RnnWeights w = f.weights();  // the simulation's own copy, updated by hand below
  Tape<double> tape;
  const auto report = nn::run_tbptt<double>(tape, 10, {f.h0}, f.step_fn(), sgd, TbpttConfig::chunked(3));

  M h = f.h0;
  double loss = 0.0;
  for (int begin = 0; begin < 10; begin += 3) {
    const int end = std::min(begin + 3, 10);
    const std::vector<M> hs = rnn_forward(w, f.seq, begin, end, h);
    for (int t = begin; t < end; ++t) {
      loss += step_loss(hs[static_cast<std::size_t>(t - begin)], f.seq.y[static_cast<std::size_t>(t)]);
    }
    const RnnGrads g = rnn_window_grad(w, f.seq, begin, begin, end, h);
    h = hs.back();  // carried with the parameters this chunk ran with
    sgd_update(w, g, lr);
  }
  expect_weights(f, w);
  expect_near(report.final_state[0], h, 1e-12, "final state");
  EXPECT_NEAR(report.total_loss, loss, 1e-12);
  EXPECT_EQ(report.updates, 4);
}

TEST(Tbptt, WindowsWithoutLossRunNoSweepAndNoUpdate) {
  RnnFixture f(10);
  for (std::size_t t = 0; t < 9; ++t) f.seq.has_loss[t] = false;  // adding-problem style: one loss at the end
  GradRecorder rec{f.cell.parameters()};
  Tape<double> tape;
  const auto report = nn::run_tbptt<double>(tape, 10, {f.h0}, f.step_fn(), rec.fn(), TbpttConfig::chunked(4));
  EXPECT_EQ(report.sweeps, 1);
  EXPECT_EQ(report.updates, 1);
  ASSERT_EQ(rec.infos.size(), 1u);
  EXPECT_EQ(rec.infos[0].first_loss, 8);
  EXPECT_EQ(rec.infos[0].end_step, 10);
  const std::vector<M> hs = continuous_states(f.weights(), f.seq, f.h0);
  expect_grads(rec.grads[0], rnn_window_grad(f.weights(), f.seq, 8, 8, 10, hs[8]), "last chunk");
}

// ---- overlapping (k1 < k2) -------------------------------------------------------------------

TEST(Tbptt, OverlappingWindowsMatchPerWindowBptt) {
  RnnFixture f(11);
  GradRecorder rec{f.cell.parameters()};
  Tape<double> tape;
  const auto report = nn::run_tbptt<double>(tape, 11, {f.h0}, f.step_fn(), rec.fn(), TbpttConfig::overlapping(3, 7));
  const RnnWeights w = f.weights();
  const std::vector<M> hs = continuous_states(w, f.seq, f.h0);
  // Updates every 3 steps (ends 3, 6, 9, 11); each sweep reaches k2 - k1 = 4 steps behind its
  // first loss (7 steps for a full window).
  struct Window {
    int begin, first_loss, end;
  };
  const std::vector<Window> windows{{0, 0, 3}, {0, 3, 6}, {2, 6, 9}, {5, 9, 11}};
  ASSERT_EQ(rec.grads.size(), windows.size());
  for (std::size_t i = 0; i < windows.size(); ++i) {
    const Window& win = windows[i];
    const RnnGrads expected =
        rnn_window_grad(w, f.seq, win.begin, win.first_loss, win.end, hs[static_cast<std::size_t>(win.begin)]);
    expect_grads(rec.grads[i], expected, "window " + std::to_string(i));
    EXPECT_EQ(rec.infos[i].window_begin, win.begin);
    EXPECT_EQ(rec.infos[i].first_loss, win.first_loss);
    EXPECT_EQ(rec.infos[i].end_step, win.end);
  }
  // The reach matters: the same losses through only k1 steps give another gradient.
  const RnnGrads short_reach = rnn_window_grad(w, f.seq, 6, 6, 9, hs[6]);
  EXPECT_GT((short_reach.W_hh - rec.grads[2].W_hh).norm(), 1e-6);
  EXPECT_EQ(report.sweeps, 4);
  EXPECT_NEAR(report.total_loss, total_loss(hs, f.seq), 1e-12);  // each step's loss counted once
  expect_near(report.final_state[0], hs[11], 1e-14, "final state");
  EXPECT_EQ(report.config.describe(), "overlapping TBPTT k1=3 k2=7");
}

TEST(Tbptt, OverlappingWithUpdatesReRecordsUnderCurrentParameters) {
  // Documented semantics: each window re-runs its steps from the saved state at its start
  // with the current parameters; the states it computes replace the saved ones.
  RnnFixture f(10);
  const double lr = 0.2;
  const nn::UpdateFn sgd = plain_sgd(f.cell.parameters(), lr);
  RnnWeights w = f.weights();
  Tape<double> tape;
  const int k1 = 2;
  const int k2 = 5;
  const auto report = nn::run_tbptt<double>(tape, 10, {f.h0}, f.step_fn(), sgd, TbpttConfig::overlapping(k1, k2));

  std::vector<M> saved(11);  // saved[s]: the latest value of the state before step s
  saved[0] = f.h0;
  M last;
  for (int first = 0; first < 10; first += k1) {
    const int end = std::min(first + k1, 10);
    const int begin = std::max(0, first - (k2 - k1));
    const std::vector<M> hs = rnn_forward(w, f.seq, begin, end, saved[static_cast<std::size_t>(begin)]);
    const RnnGrads g = rnn_window_grad(w, f.seq, begin, first, end, saved[static_cast<std::size_t>(begin)]);
    for (int t = begin; t < end; ++t) saved[static_cast<std::size_t>(t + 1)] = hs[static_cast<std::size_t>(t - begin)];
    last = hs.back();
    sgd_update(w, g, lr);
  }
  expect_weights(f, w);
  expect_near(report.final_state[0], last, 1e-12, "final state");
  EXPECT_EQ(report.updates, 5);
}

TEST(Tbptt, OverlappingWithK2EqualK1IsChunked) {
  RnnFixture f(7);
  GradRecorder a{f.cell.parameters()};
  GradRecorder b{f.cell.parameters()};
  Tape<double> tape;
  nn::run_tbptt<double>(tape, 7, {f.h0}, f.step_fn(), a.fn(), TbpttConfig::overlapping(3, 3));
  nn::run_tbptt<double>(tape, 7, {f.h0}, f.step_fn(), b.fn(), TbpttConfig::chunked(3));
  const std::vector<M> hs = continuous_states(f.weights(), f.seq, f.h0);
  ASSERT_EQ(a.grads.size(), 3u);
  ASSERT_EQ(b.grads.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const int begin = static_cast<int>(3 * i);
    const RnnGrads expected =
        rnn_window_grad(f.weights(), f.seq, begin, begin, std::min(begin + 3, 7), hs[static_cast<std::size_t>(begin)]);
    expect_grads(a.grads[i], expected, "overlapping(3, 3)");
    expect_grads(b.grads[i], expected, "chunked(3)");
  }
}

// ---- per-output window -----------------------------------------------------------------------

TEST(Tbptt, PerOutputWindowMatchesSumOfShortWindows) {
  RnnFixture f(9);
  GradRecorder rec{f.cell.parameters()};
  Tape<double> tape;
  const int tau = 2;
  const auto report =
      nn::run_tbptt<double>(tape, 9, {f.h0}, f.step_fn(), rec.fn(), TbpttConfig::per_output_window(tau));
  const RnnWeights w = f.weights();
  const std::vector<M> hs = continuous_states(w, f.seq, f.h0);
  // L_t reaches steps max(0, t - tau) .. t: a window of its own that starts at the
  // continuous state before step t - tau.
  RnnGrads expected{M::Zero(kIn, kHidden), M::Zero(kHidden, kHidden), M::Zero(1, kHidden)};
  for (int t = 0; t < 9; ++t) {
    const int begin = std::max(0, t - tau);
    add_into(expected, rnn_window_grad(w, f.seq, begin, t, t + 1, hs[static_cast<std::size_t>(begin)]));
  }
  ASSERT_EQ(rec.grads.size(), 1u);
  expect_grads(rec.grads[0], expected, "per-output window");
  EXPECT_EQ(report.sweeps, 9);
  EXPECT_EQ(report.updates, 1);
  EXPECT_EQ(rec.infos[0].sweeps, 9);
  EXPECT_NEAR(report.total_loss, total_loss(hs, f.seq), 1e-12);
  expect_near(report.final_state[0], hs[9], 1e-14, "final state");
  EXPECT_EQ(report.config.describe(), "per-output-window TBPTT tau=2");
}

TEST(Tbptt, PerOutputWindowWithLongTauIsFullBptt) {
  RnnFixture f(6);
  GradRecorder rec{f.cell.parameters()};
  Tape<double> tape;
  nn::run_tbptt<double>(tape, 6, {f.h0}, f.step_fn(), rec.fn(), TbpttConfig::per_output_window(5));
  ASSERT_EQ(rec.grads.size(), 1u);
  expect_grads(rec.grads[0], rnn_window_grad(f.weights(), f.seq, 0, 0, 6, f.h0), "tau = T - 1");
}

// ---- LSTM: both h and c carried and detached ----------------------------------------------------

namespace {

M sigmoid(const M& a) { return (1.0 / (1.0 + (-a.array()).exp())).matrix(); }

// The LSTM forward in plain Eigen (gate blocks i, f, g, o), for the carried values.
void lstm_step_eigen(const nn::LstmCell<double>& cell, const M& x, M& h, M& c) {
  const Index n = cell.hidden_size();
  M a = x * cell.W_ih.value + h * cell.W_hh.value;
  a.rowwise() += cell.b.value.row(0);
  const M i = sigmoid(a.middleCols(0, n));
  const M fg = sigmoid(a.middleCols(n, n));
  const M g = a.middleCols(2 * n, n).array().tanh().matrix();
  const M o = sigmoid(a.middleCols(3 * n, n));
  c = (fg.array() * c.array() + i.array() * g.array()).matrix();
  h = (o.array() * c.array().tanh()).matrix();
}

}  // namespace

TEST(Tbptt, LstmCarriesAndDetachesHAndC) {
  std::mt19937_64 rng(11);
  const Index hidden = 3;
  nn::LstmCell<double> cell({.input_size = kIn, .hidden_size = hidden}, rng);
  const int steps = 8;
  const int k = 3;
  const Sequence seq = make_sequence(steps, hidden, rng);
  const M h0 = random_matrix(kBatch, hidden, rng, 0.5);
  const M c0 = random_matrix(kBatch, hidden, rng, 0.5);

  std::vector<int> detached_checks;
  nn::StepFn<double> step = [&](Tape<double>& tape, int t, const State<double>& s) {
    if (t % k == 0) {  // a chunk boundary: every carried tensor must arrive without history
      EXPECT_EQ(s.size(), 2u);
      for (const Var<double>& v : s.tensors) EXPECT_FALSE(v.requires_grad()) << "step " << t;
      detached_checks.push_back(t);
    }
    const auto i = static_cast<std::size_t>(t);
    State<double> next = cell.step(tape.constant(seq.x[i]), s);
    return StepResult<double>{next, mse_loss(next.h(), tape.constant(seq.y[i]))};
  };
  std::vector<std::vector<M>> grads;
  nn::UpdateFn record = [&](const UpdateInfo&) {
    grads.push_back({cell.W_ih.grad, cell.W_hh.grad, cell.b.grad});
    cell.zero_grad();
  };
  Tape<double> tape;
  const auto report = nn::run_tbptt<double>(tape, steps, {h0, c0}, step, record, TbpttConfig::chunked(k));
  EXPECT_EQ(detached_checks, (std::vector<int>{0, 3, 6}));

  // Carried values equal the continuous forward (plain Eigen).
  std::vector<M> h_at{h0}, c_at{c0};
  M h = h0, c = c0;
  for (int t = 0; t < steps; ++t) {
    lstm_step_eigen(cell, seq.x[static_cast<std::size_t>(t)], h, c);
    h_at.push_back(h);
    c_at.push_back(c);
  }
  ASSERT_EQ(report.final_state.size(), 2u);
  expect_near(report.final_state[0], h, 1e-13, "final h");
  expect_near(report.final_state[1], c, 1e-13, "final c");

  // Each chunk's gradient equals a separate tape built by hand from constant (h, c) at the
  // chunk start: no gradient crosses the boundary through h or through c.
  ASSERT_EQ(grads.size(), 3u);
  for (int begin = 0, ci = 0; begin < steps; begin += k, ++ci) {
    const int end = std::min(begin + k, steps);
    Tape<double> ref;
    State<double> s{
        {ref.constant(h_at[static_cast<std::size_t>(begin)]), ref.constant(c_at[static_cast<std::size_t>(begin)])}};
    std::vector<Var<double>> losses;
    for (int t = begin; t < end; ++t) {
      s = cell.step(ref.constant(seq.x[static_cast<std::size_t>(t)]), s);
      losses.push_back(mse_loss(s.h(), ref.constant(seq.y[static_cast<std::size_t>(t)])));
    }
    Var<double> total = losses[0];
    for (std::size_t i = 1; i < losses.size(); ++i) total = total + losses[i];
    cell.zero_grad();
    ref.backward(total);
    const std::string what = "lstm chunk " + std::to_string(ci);
    expect_near(grads[static_cast<std::size_t>(ci)][0], cell.W_ih.grad, 1e-12, what + " W_ih");
    expect_near(grads[static_cast<std::size_t>(ci)][1], cell.W_hh.grad, 1e-12, what + " W_hh");
    expect_near(grads[static_cast<std::size_t>(ci)][2], cell.b.grad, 1e-12, what + " b");
  }
  // Had c (or h) not been detached, the last chunk's gradient would differ: check that the
  // graph through the boundary contributes.
  {
    Tape<double> ref;
    State<double> s{{ref.constant(h_at[3]), ref.constant(c_at[3])}};
    std::vector<Var<double>> losses;
    for (int t = 3; t < steps; ++t) {
      s = cell.step(ref.constant(seq.x[static_cast<std::size_t>(t)]), s);
      if (t >= 6) losses.push_back(mse_loss(s.h(), ref.constant(seq.y[static_cast<std::size_t>(t)])));
    }
    cell.zero_grad();
    ref.backward(losses[0] + losses[1]);
    EXPECT_GT((cell.W_hh.grad - grads[2][1]).norm(), 1e-8);
  }
}

// ---- float instantiation ----------------------------------------------------------------------

TEST(Tbptt, FloatChunkedMatchesDoubleReference) {
  std::mt19937_64 rng(5);
  nn::RnnCell<float> cell({.input_size = kIn, .hidden_size = kHidden}, rng);
  RnnFixture f(6);
  const RnnWeights w{cell.W_ih.value.cast<double>(), cell.W_hh.value.cast<double>(), cell.b.value.cast<double>()};
  std::vector<M> grads;
  nn::StepFn<float> step = [&](Tape<float>& tape, int t, const State<float>& s) {
    const auto i = static_cast<std::size_t>(t);
    State<float> next = cell.step(tape.constant(f.seq.x[i].cast<float>()), s);
    return StepResult<float>{next, mse_loss(next.h(), tape.constant(f.seq.y[i].cast<float>()))};
  };
  nn::UpdateFn record = [&](const UpdateInfo&) {
    grads.push_back(cell.W_hh.grad.cast<double>());
    cell.zero_grad();
  };
  Tape<float> tape;
  nn::run_tbptt<float>(tape, 6, {f.h0.cast<float>()}, step, record, TbpttConfig::chunked(3));
  const std::vector<M> hs = continuous_states(w, f.seq, f.h0);
  ASSERT_EQ(grads.size(), 2u);
  expect_near(grads[0], rnn_window_grad(w, f.seq, 0, 0, 3, hs[0]).W_hh, 1e-5, "float chunk 0");
  expect_near(grads[1], rnn_window_grad(w, f.seq, 3, 3, 6, hs[3]).W_hh, 1e-5, "float chunk 1");
}

// ---- errors ------------------------------------------------------------------------------------

TEST(Tbptt, InvalidConfigsThrowValueErrorNamingTheField) {
  expect_error<ValueError>([] { TbpttConfig::chunked(0).validate(); }, {"k1", "0"});
  expect_error<ValueError>([] { TbpttConfig::chunked(-2).validate(); }, {"k1", "-2"});
  expect_error<ValueError>([] { TbpttConfig{nn::TbpttMode::Chunked, 3, 5, -1}.validate(); }, {"k2", "5"});
  expect_error<ValueError>([] { TbpttConfig::overlapping(0, 4).validate(); }, {"k1", "0"});
  expect_error<ValueError>([] { TbpttConfig::overlapping(5, 3).validate(); }, {"k2", "3", "k1", "5"});
  expect_error<ValueError>([] { TbpttConfig::per_output_window(-1).validate(); }, {"tau", "-1"});
  EXPECT_NO_THROW(TbpttConfig::full().validate());
  EXPECT_NO_THROW(TbpttConfig::per_output_window(0).validate());

  RnnFixture f(4);
  Tape<double> tape;
  expect_error<ValueError>(
      [&] { nn::run_tbptt<double>(tape, 4, {f.h0}, f.step_fn(), {}, TbpttConfig::overlapping(4, 2)); }, {"k2", "2"});
}

TEST(Tbptt, ZeroLengthSequenceThrowsValueError) {
  RnnFixture f(3);
  Tape<double> tape;
  for (const TbpttConfig& c : {TbpttConfig::full(), TbpttConfig::chunked(2), TbpttConfig::overlapping(1, 2),
                               TbpttConfig::per_output_window(1)}) {
    expect_error<ValueError>([&] { nn::run_tbptt<double>(tape, 0, {f.h0}, f.step_fn(), {}, c); }, {"num_steps", "0"});
  }
  expect_error<ValueError>([&] { nn::run_tbptt<double>(tape, -3, {f.h0}, f.step_fn(), {}, TbpttConfig::full()); },
                           {"num_steps", "-3"});
  expect_error<ValueError>([&] { nn::run_tbptt<double>(tape, 3, {f.h0}, {}, {}, TbpttConfig::full()); },
                           {"step function"});
}

TEST(Tbptt, StepReturningAnotherStateShapeThrowsShapeError) {
  RnnFixture f(3);
  Tape<double> tape;
  nn::StepFn<double> two_tensors = [&](Tape<double>& t, int, const State<double>& s) {
    return StepResult<double>{State<double>{{s.h(), t.constant(f.h0)}}, Var<double>{}};
  };
  expect_error<ShapeError>([&] { nn::run_tbptt<double>(tape, 3, {f.h0}, two_tensors, {}, TbpttConfig::chunked(2)); },
                           {"step 0", "2 tensors", "1"});
  nn::StepFn<double> vector_loss = [&](Tape<double>& t, int, const State<double>& s) {
    return StepResult<double>{s, t.constant(M::Zero(2, 1))};
  };
  expect_error<ShapeError>([&] { nn::run_tbptt<double>(tape, 3, {f.h0}, vector_loss, {}, TbpttConfig::full()); },
                           {"loss", "[2 x 1]"});
}
