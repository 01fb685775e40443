// Batched weight gradients (Note [Batched weight gradients], autodiff/src/shared_weight_products.cpp):
// a leaf W multiplied at many steps by a batch of few rows gets its gradient from stacked
// products at the end of the sweep. Every expected gradient is the closed form
// dW = sum_t h_t^T G_t of L = sum_t <G_t, h_t W>, computed in plain Eigen; the plain,
// instrumented (observer) and release sweeps, hooks on W, Parameters, batches past the
// deferral limit and stacks past the stack size must all give it.
#include <gtest/gtest.h>

#include <random>
#include <stdexcept>
#include <vector>

#include <tapegrad/kernels/product.h>
#include <tapegrad/tapegrad.h>

#include "support/test_support.h"

using namespace tapegrad;
using M = Matrix<double>;
using tapegrad::testing::random_matrix;

namespace {

// T steps of y_t = h_t W (affine adds a bias b), h_t constants [rows x k], W [k x n], and
// L = sum_t sum(G_t * y_t) with constant G_t; the closed forms of dW and db.
struct SharedWeight {
  std::vector<M> h, g;
  M w, dw, db;
  SharedWeight(int steps, Index rows, Index k = 4, Index n = 5, unsigned seed = 1) {
    std::mt19937_64 rng(seed);
    w = random_matrix(k, n, rng);
    dw = M::Zero(k, n);
    db = M::Zero(1, n);
    for (int t = 0; t < steps; ++t) {
      h.push_back(random_matrix(rows, k, rng));
      g.push_back(random_matrix(rows, n, rng));
      dw += h.back().transpose() * g.back();
      db += g.back().colwise().sum();
    }
  }
  // Records the steps with W (and b, for affine) and returns L.
  Var<double> loss(Tape<double>& tape, const Var<double>& W, const Var<double>& b = {}) const {
    Var<double> total;
    for (std::size_t t = 0; t < h.size(); ++t) {
      const Var<double> x = tape.constant(h[t]);
      const Var<double> y = b.empty() ? matmul(x, W) : affine(x, W, b);
      const Var<double> step = sum(y * tape.constant(g[t]));
      total = t == 0 ? step : total + step;
    }
    return total;
  }
};

void expect_matrix_near(const M& got, const M& want, double tol = 1e-12) {
  ASSERT_EQ(got.rows(), want.rows());
  ASSERT_EQ(got.cols(), want.cols());
  EXPECT_LT((got - want).cwiseAbs().maxCoeff(), tol * (1.0 + want.cwiseAbs().maxCoeff())) << got << "\nwant\n" << want;
}

TEST(BatchedWeightGrads, SharedWeightGetsTheSumOverStepsForMatmulAndAffine) {
  const SharedWeight m(9, 3);
  Tape<double> tape;
  const Var<double> W = tape.variable(m.w);
  tape.backward(m.loss(tape, W));
  expect_matrix_near(W.grad(), m.dw);

  tape.clear();
  const Var<double> W2 = tape.variable(m.w);
  const Var<double> b = tape.variable(M::Zero(1, m.w.cols()));
  tape.backward(m.loss(tape, W2, b));
  expect_matrix_near(W2.grad(), m.dw);
  expect_matrix_near(b.grad(), m.db);
}

TEST(BatchedWeightGrads, EverySweepKindGivesTheSameGradient) {
  const SharedWeight m(6, 2);
  {  // an observer: each product is added when its entry runs
    Tape<double> tape;
    int events = 0;
    tape.set_observer([&](const NodeEvent&) { ++events; });
    const Var<double> W = tape.variable(m.w);
    tape.backward(m.loss(tape, W));
    expect_matrix_near(W.grad(), m.dw);
    EXPECT_GT(events, 0);
  }
  {  // a release sweep frees output gradients, so it adds each product at once
    Tape<double> tape;
    const Var<double> W = tape.variable(m.w);
    BackwardOptions release;
    release.release = true;
    tape.backward(m.loss(tape, W), release);
    expect_matrix_near(W.grad(), m.dw);
  }
  {  // anomaly mode
    Tape<double> tape;
    tape.set_anomaly_mode(true);
    const Var<double> W = tape.variable(m.w);
    tape.backward(m.loss(tape, W));
    expect_matrix_near(W.grad(), m.dw);
  }
}

TEST(BatchedWeightGrads, AHookOnTheWeightSeesTheWholeSumAndMayChangeIt) {
  const SharedWeight m(7, 4);
  Tape<double> tape;
  const Var<double> W = tape.variable(m.w);
  M seen;
  W.register_hook([&](M& g) {
    seen = g;
    g *= 2.0;
  });
  tape.backward(m.loss(tape, W));
  expect_matrix_near(seen, m.dw);
  expect_matrix_near(W.grad(), 2.0 * m.dw);
}

TEST(BatchedWeightGrads, ParametersAccumulateOverSweeps) {
  const SharedWeight m(5, 3);
  Parameter<double> p(m.w, "W");
  Tape<double> tape;
  const Var<double> loss = m.loss(tape, tape.leaf(p));
  tape.backward(loss);
  expect_matrix_near(p.grad, m.dw);
  tape.backward(loss);
  expect_matrix_near(p.grad, 2.0 * m.dw);
}

TEST(BatchedWeightGrads, BatchesPastTheLimitAndStacksPastTheirSizeGiveTheSum) {
  // kStepMaxRows + 1 rows: added at once; 64-row steps x 100: 6,400 rows, several stacks.
  for (const auto& [steps, rows] : {std::pair{3, kernels::kStepMaxRows + 1}, std::pair{100, kernels::kStepMaxRows}}) {
    const SharedWeight m(steps, rows, 6, 7, 3);
    Tape<double> tape;
    const Var<double> W = tape.variable(m.w);
    tape.backward(m.loss(tape, W));
    expect_matrix_near(W.grad(), m.dw, 1e-11);
  }
}

TEST(BatchedWeightGrads, TwoWeightsAndAWeightUsedAsBothOperandsStayApart) {
  // y_t = (h_t W) V and z = W W: the deferred products of two leaves interleave in the sweep,
  // and W gets one part of z's gradient at once (as the left operand) and one deferred (as the
  // right). Closed form dW = sum_t h_t^T G_t V^T + G_z W^T + W^T G_z, dV = sum_t (h_t W)^T G_t.
  std::mt19937_64 rng(9);
  const M w = random_matrix(4, 4, rng), v = random_matrix(4, 4, rng), gz = random_matrix(4, 4, rng);
  std::vector<M> h, g;
  M dw = gz * w.transpose() + w.transpose() * gz, dv = M::Zero(4, 4);
  Tape<double> tape;
  const Var<double> W = tape.variable(w), V = tape.variable(v);
  Var<double> loss = sum(matmul(W, W) * tape.constant(gz));
  for (int t = 0; t < 5; ++t) {
    h.push_back(random_matrix(2, 4, rng));
    g.push_back(random_matrix(2, 4, rng));
    const M hw = h.back() * w;
    dw += h.back().transpose() * g.back() * v.transpose();
    dv += hw.transpose() * g.back();
    loss = loss + sum(matmul(matmul(tape.constant(h.back()), W), V) * tape.constant(g.back()));
  }
  tape.backward(loss);
  expect_matrix_near(W.grad(), dw);
  expect_matrix_near(V.grad(), dv);
}

// The input gradients g_t W^T of the same products read W^T from one copy per sweep: right for
// two leaves used in turn, and again after the tape was cleared and W recorded with a new value.
TEST(BatchedWeightGrads, InputGradientsThroughTwoLeavesAndANewSweepAreExact) {
  std::mt19937_64 rng(4);
  Tape<double> tape;
  for (int sweep = 0; sweep < 2; ++sweep) {
    tape.clear();
    const M w1 = random_matrix(5, 6, rng), w2 = random_matrix(5, 6, rng);
    const Var<double> W1 = tape.variable(w1), W2 = tape.variable(w2);
    std::vector<Var<double>> h;
    std::vector<M> g, want;
    Var<double> loss;
    for (int t = 0; t < 6; ++t) {
      h.push_back(tape.variable(random_matrix(3, 5, rng)));
      g.push_back(random_matrix(3, 6, rng));
      const M& w = t % 2 == 0 ? w1 : w2;
      want.push_back(g.back() * w.transpose());
      const Var<double> step = sum(matmul(h.back(), t % 2 == 0 ? W1 : W2) * tape.constant(g.back()));
      loss = t == 0 ? step : loss + step;
    }
    tape.backward(loss);
    for (int t = 0; t < 6; ++t)
      expect_matrix_near(h[static_cast<std::size_t>(t)].grad(), want[static_cast<std::size_t>(t)]);
  }
}

// A backward that throws half way through a sweep leaves deferred products behind; the next
// sweep must not add them.
TEST(BatchedWeightGrads, ASweepThatThrewLeavesNothingForTheNext) {
  const SharedWeight m(1, 3);
  Tape<double> tape;
  const Var<double> W = tape.variable(m.w);
  const Var<double> y0 = matmul(tape.constant(m.h[0]), W);
  bool fail = true;
  const Var<double> thrower = apply<double>(
      {"thrower", y0.shape()}, {y0}, [](OpCtx<double>& c) { c.y() = c.x(0); },
      [&fail](OpCtx<double>& c) {
        if (fail) throw std::runtime_error("thrower: backward failed");
        if (c.needs_grad(0)) c.gx(0) += c.gy();
      });
  const Var<double> y1 = matmul(tape.constant(m.h[0]), W);
  const Var<double> ok_part = sum(y1 * tape.constant(m.g[0]));
  // The sweep runs ok_part's matmul (deferred) before the thrower's backward throws.
  EXPECT_THROW(tape.backward(ok_part + sum(thrower)), std::runtime_error);
  fail = false;
  tape.backward(ok_part);
  expect_matrix_near(W.grad(), m.dw);
}

}  // namespace
