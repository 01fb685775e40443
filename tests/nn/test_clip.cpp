// Gradient clipping: norms and scales against closed forms, counters, NaN/Inf policy, thresholds.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <tapegrad/nn/clip.h>

#include "support/test_support.h"

using namespace tapegrad;
using namespace tapegrad::nn;
using M = Matrix<double>;

namespace {

using tapegrad::testing::expect_error;

// W's gradient has norm 5 (3-4-5), b's has norm 12; jointly sqrt(25 + 144) = 13.
struct Fixture {
  Parameter<double> w{M::Zero(2, 2), "W"};
  Parameter<double> b{M::Zero(1, 2), "b"};
  std::vector<Parameter<double>*> params{&w, &b};
  Fixture() { set(); }
  void set() {
    w.grad << 3, 4, 0, 0;
    b.grad << 0, -12;
  }
};

}  // namespace

// clip_grad_norm is torch.nn.utils.clip_grad_norm_: one norm over every parameter.
TEST(ClipNorm, ScalesEverythingByOneFactor) {
  Fixture f;
  const ClipReport r = clip_grad_norm(f.params, 6.5);
  EXPECT_NEAR(r.norm_seen, 13.0, 1e-12);
  EXPECT_TRUE(r.clipped);
  EXPECT_FALSE(r.skipped);
  const double scale = 6.5 / (13.0 + 1e-6);
  EXPECT_NEAR(r.scale, scale, 1e-15);
  EXPECT_NEAR(f.w.grad(0, 1), 4 * scale, 1e-12);
  EXPECT_NEAR(f.b.grad(0, 1), -12 * scale, 1e-12);
  const double joint = std::sqrt(f.w.grad.squaredNorm() + f.b.grad.squaredNorm());
  EXPECT_NEAR(joint, 6.5, 1e-6);
}

TEST(ClipNorm, BelowThresholdLeavesGradientsAlone) {
  Fixture f;
  const ClipReport r = clip_grad_norm(f.params, 13.5);
  EXPECT_NEAR(r.norm_seen, 13.0, 1e-12);
  EXPECT_FALSE(r.clipped);
  EXPECT_EQ(r.scale, 1.0);
  EXPECT_EQ(f.w.grad(0, 0), 3.0);
  EXPECT_EQ(f.b.grad(0, 1), -12.0);
}

TEST(ClipNormPerParameter, EachParameterByItsOwnNorm) {
  Fixture f;
  const ClipReport r = clip_grad_norm_per_parameter(f.params, 6.0);
  EXPECT_NEAR(r.norm_seen, 12.0, 1e-12);  // the largest per-parameter norm
  EXPECT_TRUE(r.clipped);
  const double scale = 6.0 / (12.0 + 1e-6);
  EXPECT_NEAR(r.scale, scale, 1e-15);
  EXPECT_EQ(f.w.grad(0, 0), 3.0);  // norm 5 <= 6: untouched
  EXPECT_NEAR(f.b.grad(0, 1), -12 * scale, 1e-12);
  EXPECT_NEAR(f.b.grad.norm(), 6.0, 1e-6);
}

TEST(ClipValue, ClampsElements) {
  Fixture f;
  const ClipReport r = clip_grad_value(f.params, 3.5);
  EXPECT_EQ(r.norm_seen, 12.0);  // the largest |g|
  EXPECT_TRUE(r.clipped);
  EXPECT_EQ(r.scale, 1.0);
  M w(2, 2);
  w << 3, 3.5, 0, 0;
  EXPECT_EQ(f.w.grad, w);
  EXPECT_EQ(f.b.grad(0, 1), -3.5);
  f.set();
  EXPECT_FALSE(clip_grad_value(f.params, 12.0).clipped);
}

TEST(Clip, FloatNormDoesNotOverflow) {
  // (1e30)^2 overflows float; the norm is accumulated in double with scaling.
  Parameter<float> p(Matrix<float>::Zero(1, 2), "big");
  p.grad << 3e30f, 4e30f;
  std::vector<Parameter<float>*> ps = {&p};
  const ClipReport r = clip_grad_norm(ps, 1.0);
  EXPECT_NEAR(r.norm_seen / 5e30, 1.0, 1e-6);
  EXPECT_TRUE(r.clipped);
  EXPECT_NEAR(p.grad(0, 1), 0.8f, 1e-6);
}

TEST(Clip, NonFiniteThrowsNamingParameters) {
  Fixture f;
  f.w.grad(1, 0) = std::numeric_limits<double>::quiet_NaN();
  expect_error<NumericError>([&] { clip_grad_norm(f.params, 1.0); }, {"clip_grad_norm", "'W' (NaN)", "non-finite"});
  f.set();
  f.b.grad(0, 0) = std::numeric_limits<double>::infinity();
  expect_error<NumericError>([&] { clip_grad_norm_per_parameter(f.params, 1.0); },
                             {"clip_grad_norm_per_parameter", "'b' (Inf)"});
  f.w.grad(0, 0) = std::numeric_limits<double>::quiet_NaN();
  expect_error<NumericError>([&] { clip_grad_value(f.params, 1.0); }, {"clip_grad_value", "'W' (NaN)", "'b' (Inf)"});
  EXPECT_TRUE(std::isinf(f.b.grad(0, 0)));  // throwing leaves the gradients for inspection
}

TEST(Clip, SkipStepZeroesGradientsAndReportsIt) {
  for (int mode = 0; mode < 3; ++mode) {
    Fixture f;
    f.b.grad(0, 1) = -std::numeric_limits<double>::infinity();
    ClipReport r;
    if (mode == 0) r = clip_grad_norm(f.params, 1.0, NonFinite::SkipStep);
    if (mode == 1) r = clip_grad_norm_per_parameter(f.params, 1.0, NonFinite::SkipStep);
    if (mode == 2) r = clip_grad_value(f.params, 1.0, NonFinite::SkipStep);
    EXPECT_TRUE(r.skipped) << mode;
    EXPECT_FALSE(r.clipped) << mode;
    EXPECT_EQ(r.scale, 0.0) << mode;
    EXPECT_FALSE(std::isfinite(r.norm_seen)) << mode;
    EXPECT_EQ(f.w.grad.norm(), 0.0) << mode;
    EXPECT_EQ(f.b.grad.norm(), 0.0) << mode;
  }
}

TEST(Clip, BadThresholds) {
  Fixture f;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  expect_error<ValueError>([&] { clip_grad_value(f.params, -1.0); }, {"clip_grad_value", "-1"});
  expect_error<ValueError>([&] { clip_grad_norm_per_parameter(f.params, nan); },
                           {"clip_grad_norm_per_parameter", "max_norm", "nan"});
  expect_error<ValueError>([&] { clip_grad_norm(f.params, -0.5); }, {"clip_grad_norm", "-0.5"});
  expect_error<ValueError>([&] { Clipper(Clipper::Mode::NormPerParameter, nan); }, {"Clipper"});
  EXPECT_EQ(f.w.grad(0, 1), 4.0);  // nothing was touched
  std::vector<Parameter<double>*> with_null = {&f.w, nullptr};
  expect_error<ValueError>([&] { clip_grad_norm(with_null, 1.0); }, {"#1", "null"});
}

// A braced list of parameter pointers deduces the scalar type, for every function and Clipper.
TEST(Clip, TakesABracedList) {
  Fixture f;
  EXPECT_NEAR(clip_grad_norm({&f.w, &f.b}, 6.5).norm_seen, 13.0, 1e-12);
  EXPECT_NEAR(f.b.grad(0, 1), -12 * 6.5 / (13.0 + 1e-6), 1e-12);
  f.set();
  EXPECT_NEAR(clip_grad_norm_per_parameter({&f.w, &f.b}, 6.0).norm_seen, 12.0, 1e-12);
  EXPECT_EQ(f.w.grad(0, 1), 4.0);  // norm 5 <= 6: untouched
  f.set();
  EXPECT_NEAR(clip_grad_value({&f.b}, 3.5).norm_seen, 12.0, 1e-12);
  EXPECT_EQ(f.b.grad(0, 1), -3.5);
  EXPECT_EQ(f.w.grad(0, 1), 4.0);  // not in the list
  f.set();
  Clipper clipper(Clipper::Mode::Norm, 6.5);
  EXPECT_NEAR(clipper({&f.w, &f.b}).norm_seen, 13.0, 1e-12);
  EXPECT_EQ(clipper.steps_clipped(), 1);
  Parameter<float> single{Matrix<float>::Constant(1, 1, 0), "s"};
  single.grad(0, 0) = -2;
  EXPECT_NEAR(clipper({&single}).norm_seen, 2.0, 1e-6);
}

// Each mode applies its function: Norm the joint norm 13, NormPerParameter the largest own norm 12.
TEST(Clipper, ModesMatchTheFunctions) {
  Fixture f;
  Clipper joint(Clipper::Mode::Norm, 6.5);
  EXPECT_NEAR(joint(f.params).norm_seen, 13.0, 1e-12);
  EXPECT_NEAR(f.w.grad(0, 1), 4 * 6.5 / (13.0 + 1e-6), 1e-12);
  f.set();
  Clipper own(Clipper::Mode::NormPerParameter, 6.0);
  EXPECT_NEAR(own(f.params).norm_seen, 12.0, 1e-12);
  EXPECT_EQ(f.w.grad(0, 1), 4.0);
  EXPECT_NEAR(f.b.grad(0, 1), -12 * 6.0 / (12.0 + 1e-6), 1e-12);
}

TEST(Clipper, CountsSeenClippedSkipped) {
  Fixture f;
  Clipper clip(Clipper::Mode::Norm, 6.5, NonFinite::SkipStep);
  EXPECT_TRUE(clip(f.params).clipped);  // 13 > 6.5
  f.w.grad.setConstant(0.1);
  f.b.grad.setConstant(0.1);
  EXPECT_FALSE(clip(f.params).clipped);
  EXPECT_NEAR(clip.last().norm_seen, std::sqrt(6 * 0.01), 1e-12);
  f.w.grad(0, 0) = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(clip(f.params).skipped);
  EXPECT_EQ(clip.steps_seen(), 3);
  EXPECT_EQ(clip.steps_clipped(), 1);
  EXPECT_EQ(clip.steps_skipped(), 1);
  clip.reset_counters();
  EXPECT_EQ(clip.steps_seen(), 0);

  Fixture g;
  Clipper value(Clipper::Mode::Value, 1.0);
  EXPECT_TRUE(value(g.params).clipped);
  g.w.grad(0, 0) = std::numeric_limits<double>::infinity();
  EXPECT_THROW(value(g.params), NumericError);
  EXPECT_EQ(value.steps_seen(), 2);
  EXPECT_EQ(value.steps_clipped(), 1);
  EXPECT_EQ(value.steps_skipped(), 0);
}
