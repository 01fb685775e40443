// The hand-written IndRNN recurrence of examples/indrnn (one op for all T steps, the `fused`
// baseline of bench_train_step's IndRNN): its gradient by finite differences with every
// gradcheck check, its values and gradients against the same model through the generic cell
// API (IndRnnCell::forward_sequence), and its shape errors.
#include <gtest/gtest.h>

#include <random>
#include <span>
#include <vector>

#include <tapegrad/gradcheck.h>
#include <tapegrad/nn/nn.h>

#include "../../examples/indrnn/indrnn_cell.h"
#include "../../examples/indrnn/indrnn_sequence.h"
#include "support/test_names.h"
#include "support/test_support.h"

using example::indrnn_sequence;
using tapegrad::Tape;
using tapegrad::testing::expect_error;
using Mat = tapegrad::Matrix<double>;
using V = tapegrad::Var<double>;

namespace {

constexpr Index kB = 3, kH = 4, kT = 5;

// Inputs whose pre-activations xp_t + u * h_{t-1} all stay at least 0.1 away from relu's kink,
// so central differences see a smooth function: each step's pre-activation is drawn first,
// half of them negative, and xp_t is solved for.
std::vector<Mat> smooth_inputs() {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> unit(-1.0, 1.0);
  auto draw = [&](Index r, Index c) { return Mat(Mat::NullaryExpr(r, c, [&] { return unit(rng); })); };
  const Mat u = draw(1, kH), h0 = draw(kB, kH);
  Mat xp(kT * kB, kH), h = h0;
  for (Index t = 0; t < kT; ++t) {
    const Mat pre = draw(kB, kH).unaryExpr([](double v) { return v < 0 ? v - 0.1 : v + 0.1; });
    xp.middleRows(t * kB, kB) = (pre.array() - h.array().rowwise() * u.array().row(0)).matrix();
    h = pre.cwiseMax(0.0);
  }
  return {xp, u, h0};
}

TEST(IndRnnFused, GradientMatchesFiniteDifferencesWithEveryCheck) {
  const tapegrad::GradcheckResult r =
      tapegrad::gradcheck([](std::span<const V> in) { return indrnn_sequence(in[0], in[1], in[2]); }, smooth_inputs());
  EXPECT_TRUE(r.ok) << r.message();
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(r.passed(tapegrad::GradcheckCheck::FanOut)) << r.message();
    ASSERT_NE(r.find(tapegrad::GradcheckCheck::Plain, i), nullptr);
  }
}

TEST(IndRnnFused, EqualsTheGenericCellInValuesAndGradients) {
  std::mt19937_64 rng(5);
  example::IndRnnCell<double> cell({.input_size = 2, .hidden_size = kH}, rng);
  const Mat x = tapegrad::testing::random_matrix(kT * kB, 2, rng);
  const Mat h0 = tapegrad::testing::random_matrix(kB, kH, rng);
  const Mat g = tapegrad::testing::random_matrix(kT * kB, kH, rng);  // dL/dhs of a linear loss

  Tape<double> generic;
  const V h0_g = generic.variable(h0);
  const auto wg = cell.bind(generic);
  const V hs_g = cell.forward_sequence(wg, generic.constant(x), nn::State<double>{{h0_g}}).outputs;
  generic.backward(hs_g, g);

  Tape<double> fused;
  const V W = fused.variable(cell.W.value), u = fused.variable(cell.u.value), b = fused.variable(cell.b.value);
  const V h0_f = fused.variable(h0);
  const V hs_f = indrnn_sequence(tapegrad::affine(fused.constant(x), W, b), u, h0_f);
  fused.backward(hs_f, g);

  EXPECT_TRUE(hs_f.value().isApprox(hs_g.value(), 1e-14));
  EXPECT_GT(hs_f.value().cwiseAbs().maxCoeff(), 0.0);  // relu did not zero everything
  EXPECT_TRUE(h0_f.grad().isApprox(h0_g.grad(), 1e-12));
  EXPECT_TRUE(u.grad().isApprox(wg.u.grad(), 1e-12));
  EXPECT_TRUE(W.grad().isApprox(wg.W.grad(), 1e-12));
  EXPECT_TRUE(b.grad().isApprox(wg.b.grad(), 1e-12));
}

TEST(IndRnnFused, ShapeErrorsNameTheOpAndTheShapes) {
  Tape<double> tape;
  const V xp = tape.variable(Mat::Zero(kT * kB, kH));
  expect_error<tapegrad::ShapeError>(
      [&] { (void)indrnn_sequence(xp, tape.variable(Mat::Zero(1, kH + 1)), tape.variable(Mat::Zero(kB, kH))); },
      {"indrnn_sequence", "[15 x 4]", "[1 x 5]", "[3 x 4]"});
  expect_error<tapegrad::ShapeError>(
      [&] { (void)indrnn_sequence(xp, tape.variable(Mat::Zero(1, kH)), tape.variable(Mat::Zero(2, kH))); },
      {"indrnn_sequence", "[2 x 4]"});
}

}  // namespace
