// The BPTT contract: a vanilla RNN written as a plain loop over tapegrad ops gets exactly the
// gradients of the hand-derived BPTT (bptt_reference.h), for full BPTT and for the per-output
// truncated window (numpy's bptt_truncate = tau) run by backward_per_output_window.
#include <gtest/gtest.h>
#include <tapegrad/tapegrad.h>
#include <tapegrad/window.h>

#include <cstdint>
#include <random>
#include <vector>

#include "bptt_reference.h"

using namespace tapegrad;
using Eigen::MatrixXd;
using M = Matrix<double>;

namespace {

struct Problem {
  int T, B, in, H, K;
  reference::RnnParams ref;
  std::vector<MatrixXd> xs;
  std::vector<std::vector<std::int32_t>> targets;
};

Problem make_problem(int T, int B, int in, int H, int K, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-0.8, 0.8);
  auto rnd = [&](int r, int c) { return MatrixXd(MatrixXd::NullaryExpr(r, c, [&] { return u(rng); })); };
  Problem p{T, B, in, H, K, {}, {}, {}};
  p.ref.U = rnd(in, H);
  p.ref.W = rnd(H, H);
  p.ref.V = rnd(H, K);
  p.ref.b = rnd(1, H);
  p.ref.c = rnd(1, K);
  p.ref.h0 = rnd(B, H);
  std::uniform_int_distribution<std::int32_t> cls(0, K - 1);
  for (int t = 0; t < T; ++t) {
    p.xs.push_back(rnd(B, in));
    std::vector<std::int32_t> y(static_cast<std::size_t>(B));
    for (auto& k : y) k = cls(rng);
    p.targets.push_back(y);
  }
  return p;
}

// The RNN as tapegrad parameters (h0 too, so its gradient accumulates across sweeps).
struct Net {
  Parameter<double> U, W, V, b, c, h0;
  explicit Net(const reference::RnnParams& r)
      : U(M(r.U), "U"), W(M(r.W), "W"), V(M(r.V), "V"), b(M(r.b), "b"), c(M(r.c), "c"), h0(M(r.h0), "h0") {}

  // Records step t: h = tanh(x_t U + h W + b), returns CE(softmax(h V + c), targets_t) summed.
  Var<double> step(Tape<double>& tape, const Problem& p, int t, Var<double>& h) {
    if (t == 0) h = tape.leaf(h0);
    auto x = tape.constant(M(p.xs[static_cast<std::size_t>(t)]));
    auto z = add(add(matmul(x, tape.leaf(U)), matmul(h, tape.leaf(W))), tape.leaf(b));
    h = tanh(z);
    auto logits = add(matmul(h, tape.leaf(V)), tape.leaf(c));
    return softmax_cross_entropy(logits, std::span<const std::int32_t>(p.targets[static_cast<std::size_t>(t)]),
                                 Reduction::Sum);
  }
};

double max_abs(const M& a, const MatrixXd& b) {
  EXPECT_EQ(a.rows(), b.rows());
  EXPECT_EQ(a.cols(), b.cols());
  return (a - b).cwiseAbs().maxCoeff();
}

void expect_grads_equal(const Net& n, const reference::RnnGrads& g, double tol) {
  EXPECT_LE(max_abs(n.U.grad, g.dU), tol) << "dU";
  EXPECT_LE(max_abs(n.W.grad, g.dW), tol) << "dW";
  EXPECT_LE(max_abs(n.V.grad, g.dV), tol) << "dV";
  EXPECT_LE(max_abs(n.b.grad, g.db), tol) << "db";
  EXPECT_LE(max_abs(n.c.grad, g.dc), tol) << "dc";
  EXPECT_LE(max_abs(n.h0.grad, g.dh0), tol) << "dh0";
}

void check_full(const Problem& p) {
  Net net(p.ref);
  Tape<double> tape;
  Var<double> h;
  Var<double> loss;
  for (int t = 0; t < p.T; ++t) {
    auto s = tape.time_step(t);
    auto lt = net.step(tape, p, t, h);
    loss = t == 0 ? lt : add(loss, lt);
  }
  tape.backward(loss);
  const auto g = reference::rnn_bptt(p.ref, p.xs, p.targets);
  EXPECT_NEAR(loss.item(), g.loss, 1e-10);
  expect_grads_equal(net, g, 1e-10);
}

void check_window(const Problem& p, int tau) {
  SCOPED_TRACE(testing::Message() << "tau = " << tau);
  Net net(p.ref);
  Tape<double> tape;
  Var<double> h;
  const WindowReport r = backward_per_output_window(tape, p.T, tau, [&](int t) {
    EXPECT_EQ(tape.current_time(), t);  // the driver opened time_step(t)
    return net.step(tape, p, t, h);
  });
  const auto g = reference::rnn_bptt(p.ref, p.xs, p.targets, tau);
  EXPECT_EQ(r.sweeps, p.T);
  EXPECT_NEAR(r.loss, g.loss, 1e-10);
  expect_grads_equal(net, g, 1e-10);
}

}  // namespace

// Two derivations inside the reference agree: truncation longer than the sequence is full BPTT.
TEST(BpttReference, TruncationCoveringTheSequenceEqualsFullBptt) {
  const Problem p = make_problem(6, 2, 3, 4, 3, 11);
  const auto full = reference::rnn_bptt(p.ref, p.xs, p.targets);
  const auto trunc = reference::rnn_bptt(p.ref, p.xs, p.targets, 5);
  EXPECT_LE((full.dU - trunc.dU).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_LE((full.dW - trunc.dW).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_LE((full.db - trunc.db).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_LE((full.dh0 - trunc.dh0).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_EQ(full.dV, trunc.dV);
  // ... and a shorter one really differs (the test below is not vacuous).
  const auto tau1 = reference::rnn_bptt(p.ref, p.xs, p.targets, 1);
  EXPECT_GT((full.dW - tau1.dW).cwiseAbs().maxCoeff(), 1e-6);
  EXPECT_EQ(tau1.dh0.cwiseAbs().maxCoeff() > 0, true);  // output 0 and 1 still reach h0
}

TEST(BpttContract, FullBpttMatchesTheHandDerivation) { check_full(make_problem(6, 2, 3, 4, 3, 1)); }

TEST(BpttContract, PerOutputWindowMatchesNumpyTruncation) {
  const Problem p = make_problem(6, 2, 3, 4, 3, 2);
  for (int tau = 0; tau <= 3; ++tau) check_window(p, tau);
}

TEST(BpttContract, WindowLongerThanTheSequenceIsFullBptt) {
  const Problem p = make_problem(4, 2, 3, 4, 3, 3);
  Net net(p.ref);
  Tape<double> tape;
  Var<double> h;
  backward_per_output_window(tape, p.T, 1000, [&](int t) { return net.step(tape, p, t, h); });
  expect_grads_equal(net, reference::rnn_bptt(p.ref, p.xs, p.targets), 1e-10);
}

TEST(BpttContract, SingleStep) {
  const Problem p = make_problem(1, 2, 3, 4, 3, 4);
  check_full(p);
  check_window(p, 0);
}

TEST(BpttContract, BatchOfThree) {
  const Problem p = make_problem(5, 3, 2, 5, 4, 5);
  check_full(p);
  for (int tau = 0; tau <= 3; ++tau) check_window(p, tau);
}

TEST(Window, StepsWithoutALossRunNoSweep) {
  Tape<double> tape;
  Parameter<double> w(M::Constant(1, 1, 0.5), "w");
  int calls = 0;
  const WindowReport r = backward_per_output_window(tape, 4, 1, [&](int t) -> Var<double> {
    ++calls;
    auto y = tanh(tape.leaf(w));
    if (t % 2 == 0) return Var<double>{};
    return y;
  });
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(r.sweeps, 2);
  EXPECT_NEAR(r.loss, 2 * std::tanh(0.5), 1e-15);
  // The leaf w is recorded once (step 0); each loss step's window reaches it through its own
  // tanh, so w collects 2 (1 - tanh(0.5)^2).
  EXPECT_NEAR(w.grad(0, 0), 2 * (1 - std::tanh(0.5) * std::tanh(0.5)), 1e-15);
}

TEST(Window, RejectsANegativeTauAndNonScalarLosses) {
  Tape<double> tape;
  auto never = [&](int) -> Var<double> { return {}; };
  EXPECT_THROW(backward_per_output_window(tape, 3, -1, never), ValueError);
  EXPECT_THROW(backward_per_output_window(tape, -1, 0, never), ValueError);
  EXPECT_THROW(backward_per_output_window(tape, 2, 0, [&](int) { return tape.variable(M::Zero(2, 2)); }), ShapeError);
}
