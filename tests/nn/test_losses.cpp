// Losses against closed forms, ignore_index handling, error messages and gradcheck.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include <tapegrad/gradcheck.h>
#include <tapegrad/nn/loss.h>
#include <tapegrad/ops.h>

#include "support/test_support.h"

using namespace tapegrad;
using M = Matrix<double>;

namespace {

using tapegrad::testing::expect_error;

// The logits of the cross-entropy tests: two rows, three classes.
M logits_2x3() {
  M x(2, 3);
  x << 1, 2, 3, 1, 1, 1;
  return x;
}

// -log softmax(x)_t of the fixture rows, by hand.
const double kRow0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 3.0;
const double kRow1 = std::log(3.0);

// Log-probabilities of three rows over two classes, and targets that pick -1.7 and -3 and
// ignore row 1 (-100, the default ignore_index).
M log_probs_3x2() {
  M lp(3, 2);
  lp << -0.2, -1.7, -0.9, -0.5, -3, -0.05;
  return lp;
}
const std::vector<std::int32_t> kTargetsIgnoringRow1 = {1, -100, 0};

}  // namespace

TEST(CrossEntropy, MeanAndSumMatchClosedForm) {
  Tape<double> t;
  auto x = t.constant(logits_2x3());
  const std::vector<std::int32_t> y = {2, 0};
  EXPECT_NEAR(nn::cross_entropy(x, y).item(), (kRow0 + kRow1) / 2, 1e-12);
  EXPECT_NEAR(nn::cross_entropy(x, y, {.reduction = Reduction::Sum}).item(), kRow0 + kRow1, 1e-12);
}

TEST(CrossEntropy, IgnoreIndexDropsRowsFromLossCountAndGradient) {
  Tape<double> t;
  auto x = t.variable(logits_2x3());
  const std::vector<std::int32_t> y = {2, -100};
  auto loss = nn::cross_entropy(x, y);
  EXPECT_NEAR(loss.item(), kRow0, 1e-12);  // mean over the one row that counts
  t.backward(loss);
  EXPECT_EQ(x.grad().row(1).norm(), 0.0);
  // d/dx of -log softmax_t is softmax - onehot.
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  EXPECT_NEAR(x.grad()(0, 0), std::exp(1.0) / z, 1e-12);
  EXPECT_NEAR(x.grad()(0, 2), std::exp(3.0) / z - 1, 1e-12);

  const std::vector<std::int32_t> custom = {7, 0};
  EXPECT_NEAR(nn::cross_entropy(x, custom, {.reduction = Reduction::Sum, .ignore_index = 7}).item(), kRow1, 1e-12);
  const std::vector<std::int32_t> none = {-100, -100};
  EXPECT_EQ(nn::cross_entropy(x, none).item(), 0.0);
}

TEST(CrossEntropy, FloatMatchesClosedForm) {
  Tape<float> t;
  auto x = t.constant(logits_2x3().cast<float>());
  const std::vector<std::int32_t> y = {2, 0};
  EXPECT_NEAR(nn::cross_entropy(x, y).item(), (kRow0 + kRow1) / 2, 1e-6);
}

TEST(CrossEntropy, ErrorsNameTheLossAndShapes) {
  Tape<double> t;
  auto x = t.constant(logits_2x3());
  const std::vector<std::int32_t> three = {0, 1, 2};
  expect_error<ShapeError>([&] { (void)nn::cross_entropy(x, three); }, {"cross_entropy", "[2 x 3]", "3 targets"});
  const std::vector<std::int32_t> out_of_range = {0, 3};
  expect_error<ValueError>([&] { (void)nn::cross_entropy(x, out_of_range); }, {"cross_entropy", "row 1", "[2 x 3]"});
}

TEST(NllLoss, PicksNegatedLogProbabilities) {
  M lp(2, 3);
  lp << -0.1, -2, -3, -1, -0.5, -4;
  Tape<double> t;
  auto x = t.variable(lp);
  const std::vector<std::int32_t> y = {1, 0};
  EXPECT_NEAR(nn::nll_loss(x, y, {.reduction = Reduction::Sum}).item(), 3.0, 1e-15);
  auto mean = nn::nll_loss(x, y);
  EXPECT_NEAR(mean.item(), 1.5, 1e-15);
  t.backward(mean);
  M expected = M::Zero(2, 3);
  expected(0, 1) = -0.5;
  expected(1, 0) = -0.5;
  EXPECT_TRUE(x.grad().isApprox(expected, 1e-15)) << x.grad();
}

TEST(NllLoss, IgnoreIndex) {
  Tape<double> t;
  auto x = t.variable(log_probs_3x2());
  auto loss = nn::nll_loss(x, kTargetsIgnoringRow1);
  EXPECT_NEAR(loss.item(), (1.7 + 3) / 2, 1e-15);
  t.backward(loss);
  EXPECT_EQ(x.grad().row(1).norm(), 0.0);
  EXPECT_NEAR(x.grad()(0, 1), -0.5, 1e-15);
  const std::vector<std::int32_t> none = {-1, -1, -1};
  EXPECT_EQ(nn::nll_loss(x, none, {.ignore_index = -1}).item(), 0.0);
}

TEST(NllLoss, OfLogSoftmaxEqualsCrossEntropy) {
  M x0(3, 4);
  x0 << 0.3, -1.2, 2.0, 0.1, 5, 4, -3, 0, -0.5, -0.5, 0.25, 1;
  Tape<double> t;
  auto x = t.constant(x0);
  const std::vector<std::int32_t> y = {2, -100, 3};
  for (Reduction r : {Reduction::Sum, Reduction::Mean}) {
    EXPECT_NEAR(nn::nll_loss(log_softmax(x), y, {.reduction = r}).item(),
                nn::cross_entropy(x, y, {.reduction = r}).item(), 1e-12);
  }
}

TEST(NllLoss, Errors) {
  Tape<double> t;
  auto x = t.constant(M::Zero(2, 3));
  const std::vector<std::int32_t> one = {0};
  expect_error<ShapeError>([&] { (void)nn::nll_loss(x, one); }, {"nll_loss", "[2 x 3]"});
  const std::vector<std::int32_t> bad = {-2, 0};
  expect_error<ValueError>([&] { (void)nn::nll_loss(x, bad); }, {"nll_loss", "target -2", "row 0"});
}

TEST(MseLoss, SumAndMean) {
  M p(2, 2), q(2, 2);
  p << 1, 2, 3, 4;
  q << 0, 2, 1, 1;  // differences 1, 0, 2, 3
  Tape<double> t;
  auto a = t.constant(p);
  auto b = t.constant(q);
  EXPECT_NEAR(nn::mse_loss(a, b, Reduction::Sum).item(), 14.0, 1e-15);
  EXPECT_NEAR(nn::mse_loss(a, b).item(), 3.5, 1e-15);
  auto c = t.constant(M::Zero(2, 1));
  expect_error<ShapeError>([&] { (void)nn::mse_loss(a, c); }, {"mse_loss", "[2 x 2]", "[2 x 1]"});
}

TEST(LossGradcheck, CrossEntropyNllAndMse) {
  M x0(3, 4);
  x0 << 0.3, -1.2, 2.0, 0.1, 1.5, 0.4, -0.3, 0, -0.5, -0.7, 0.25, 1;
  const std::vector<std::int32_t> y = {2, -100, 3};
  auto ce = gradcheck([&](std::span<const Var<double>> in) { return nn::cross_entropy(in[0], y); }, {x0});
  EXPECT_TRUE(ce) << ce.message();
  auto ce_sum = gradcheck(
      [&](std::span<const Var<double>> in) { return nn::cross_entropy(in[0], y, {.reduction = Reduction::Sum}); },
      {x0});
  EXPECT_TRUE(ce_sum) << ce_sum.message();
  auto nll = gradcheck([&](std::span<const Var<double>> in) { return nn::nll_loss(log_softmax(in[0]), y); }, {x0});
  EXPECT_TRUE(nll) << nll.message();
  M t0 = M::Constant(3, 4, 0.5);
  auto mse =
      gradcheck([&](std::span<const Var<double>> in) { return nn::mse_loss(in[0], in[1], Reduction::Sum); }, {x0, t0});
  EXPECT_TRUE(mse) << mse.message();
}

// ---- reduction None: one loss per row -------------------------------------------------------

TEST(CrossEntropy, NoneGivesPerRowClosedForms) {
  Tape<double> t;
  auto x = t.variable(logits_2x3());
  const std::vector<std::int32_t> y = {2, 0};
  const Var<double> per_row = nn::cross_entropy(x, y, {.reduction = Reduction::None});
  ASSERT_EQ(per_row.shape(), (Shape{2, 1}));
  EXPECT_NEAR(per_row.value()(0, 0), kRow0, 1e-12);
  EXPECT_NEAR(per_row.value()(1, 0), kRow1, 1e-12);
  // Weighting the rows by w gives dL/dx_r = w_r (softmax(x_r) - onehot(t_r)).
  M w(2, 1);
  w << 2.0, -0.5;
  t.backward(sum(per_row * t.constant(w)));
  const double z0 = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  EXPECT_NEAR(x.grad()(0, 2), 2.0 * (std::exp(3.0) / z0 - 1), 1e-12);
  EXPECT_NEAR(x.grad()(0, 0), 2.0 * std::exp(1.0) / z0, 1e-12);
  EXPECT_NEAR(x.grad()(1, 0), -0.5 * (1.0 / 3 - 1), 1e-12);
  EXPECT_NEAR(x.grad()(1, 1), -0.5 / 3, 1e-12);

  const std::vector<std::int32_t> ignored = {-100, 0};
  const Var<double> some = nn::cross_entropy(x, ignored, {.reduction = Reduction::None});
  EXPECT_EQ(some.value()(0, 0), 0.0);
  EXPECT_NEAR(some.value()(1, 0), kRow1, 1e-12);
}

TEST(CrossEntropy, NoneIsStableForLargeFloatLogits) {
  // Rows of 1e4-sized logits: the per-row loss is log(1 + e^-1) and log(2), not inf or 0.
  Matrix<float> big(2, 2);
  big << 1e4f, 1e4f - 1, -1e4f, -1e4f;
  Tape<float> t;
  const std::vector<std::int32_t> y = {0, 1};
  const Var<float> per_row = nn::cross_entropy(t.constant(big), y, {.reduction = Reduction::None});
  EXPECT_NEAR(per_row.value()(0, 0), std::log1p(std::exp(-1.0)), 1e-6);
  EXPECT_NEAR(per_row.value()(1, 0), std::log(2.0), 1e-6);
}

TEST(NllLoss, NoneGivesNegatedPicksAndZeroForIgnoredRows) {
  Tape<double> t;
  auto x = t.variable(log_probs_3x2());
  const Var<double> per_row = nn::nll_loss(x, kTargetsIgnoringRow1, {.reduction = Reduction::None});
  M want(3, 1);
  want << 1.7, 0, 3;
  EXPECT_EQ(per_row.value(), want);
  t.backward(sum(per_row));
  M grad = M::Zero(3, 2);
  grad(0, 1) = -1;
  grad(2, 0) = -1;
  EXPECT_EQ(x.grad(), grad);
}

TEST(MseLoss, NoneGivesEachSquaredErrorAsPyTorch) {
  M p(2, 2), q(2, 2);
  p << 1, 2, 3, 4;
  q << 0, 2, 1, 1;  // differences 1, 0, 2, 3
  Tape<double> t;
  const Var<double> each = nn::mse_loss(t.constant(p), t.constant(q), Reduction::None);
  M want(2, 2);
  want << 1, 0, 4, 9;
  EXPECT_EQ(each.value(), want);
  M col_p(3, 1), col_q(3, 1);  // [N x 1] predictions: the per-row column
  col_p << 0.5, -1, 2;
  col_q << 0, 1, 2;
  const Var<double> rows = nn::mse_loss(t.constant(col_p), t.constant(col_q), Reduction::None);
  M want_rows(3, 1);
  want_rows << 0.25, 4, 0;
  EXPECT_EQ(rows.value(), want_rows);
}

TEST(LossGradcheck, NoneReductions) {
  M x0(3, 4);
  x0 << 0.3, -1.2, 2.0, 0.1, 1.5, 0.4, -0.3, 0, -0.5, -0.7, 0.25, 1;
  const std::vector<std::int32_t> y = {2, -100, 3};
  const nn::LossOptions none{.reduction = Reduction::None};
  auto ce = gradcheck([&](std::span<const Var<double>> in) { return nn::cross_entropy(in[0], y, none); }, {x0});
  EXPECT_TRUE(ce) << ce.message();
  auto nll =
      gradcheck([&](std::span<const Var<double>> in) { return nn::nll_loss(log_softmax(in[0]), y, none); }, {x0});
  EXPECT_TRUE(nll) << nll.message();
  M t0 = M::Constant(3, 4, 0.5);
  auto mse =
      gradcheck([&](std::span<const Var<double>> in) { return nn::mse_loss(in[0], in[1], Reduction::None); }, {x0, t0});
  EXPECT_TRUE(mse) << mse.message();
}
