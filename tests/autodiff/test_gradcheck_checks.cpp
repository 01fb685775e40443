// The public gradcheck catches what a custom op's backward gets wrong: a wrong derivative
// (plain), an assignment instead of += (fan-out, by default), a backward that ignores that two
// inputs may be one Var (alias), work for an input that needs no gradient (constant), and it
// names the element with the largest error and the check that failed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <tapegrad/tapegrad.h>

using namespace tapegrad;
using ::testing::HasSubstr;
using M = Matrix<double>;
using V = Var<double>;
using In = std::span<const V>;
using Check = GradcheckCheck;

namespace {

M sample(Index rows, Index cols, double offset = 0.0) {
  M m(rows, cols);
  for (Index k = 0; k < m.size(); ++k) m.data()[k] = offset + 0.25 * static_cast<double>(k) - 0.6;
  return m;
}

// y = 2x whose backward assigns into gx (the bug rule 1 of docs/extending.md warns about).
V twice_assigning(const V& x) {
  return apply<double>(
      {"twice_assigning", x.shape()}, {x}, [](OpCtx<double>& c) { c.y() = 2 * c.x(0); },
      [](OpCtx<double>& c) {
        if (c.needs_grad(0)) c.gx(0) = 2 * c.gy();
      });
}

// The same op written right.
V twice(const V& x) {
  return apply<double>(
      {"twice", x.shape()}, {x}, [](OpCtx<double>& c) { c.y() = 2 * c.x(0); },
      [](OpCtx<double>& c) {
        if (c.needs_grad(0)) c.gx(0) += 2 * c.gy();
      });
}

// y = a + b whose backward assigns into both gradients.
V sum_assigning(const V& a, const V& b) {
  return apply<double>(
      {"sum_assigning", a.shape()}, {a, b}, [](OpCtx<double>& c) { c.y() = c.x(0) + c.x(1); },
      [](OpCtx<double>& c) {
        if (c.needs_grad(0)) c.gx(0) = c.gy();
        if (c.needs_grad(1)) c.gx(1) = c.gy();
      });
}

// y = a .* b whose backward reads b's gradient before adding into a's, then writes b's back:
// right for two Vars, also with other consumers, but a and b being one Var loses a's part.
V product_ignoring_alias(const V& a, const V& b) {
  return apply<double>(
      {"product_ignoring_alias", a.shape()}, {a, b}, [](OpCtx<double>& c) { c.y() = c.x(0).cwiseProduct(c.x(1)); },
      [](OpCtx<double>& c) {
        M before_b;
        if (c.needs_grad(1)) before_b = c.gx(1);
        if (c.needs_grad(0)) c.gx(0) += c.gy().cwiseProduct(c.x(1));
        if (c.needs_grad(1)) c.gx(1) = before_b + c.gy().cwiseProduct(c.x(0));
      });
}

// y = a .* b, right in every situation.
V product(const V& a, const V& b) {
  return apply<double>(
      {"product", a.shape()}, {a, b}, [](OpCtx<double>& c) { c.y() = c.x(0).cwiseProduct(c.x(1)); },
      [](OpCtx<double>& c) {
        if (c.needs_grad(0)) c.gx(0) += c.gy().cwiseProduct(c.x(1));
        if (c.needs_grad(1)) c.gx(1) += c.gy().cwiseProduct(c.x(0));
      });
}

// y = a .* b whose backward never asks needs_grad, so a gradient reaches a constant input.
V product_ignoring_constants(const V& a, const V& b) {
  return apply<double>(
      {"product_ignoring_constants", a.shape()}, {a, b}, [](OpCtx<double>& c) { c.y() = c.x(0).cwiseProduct(c.x(1)); },
      [](OpCtx<double>& c) {
        c.gx(0) += c.gy().cwiseProduct(c.x(1));
        c.gx(1) += c.gy().cwiseProduct(c.x(0));
      });
}

// y = 1e6 x whose backward is off by factor (1 + delta) at the given elements.
struct WrongElement {
  Index row, col;
  double delta;
};
V large_scale_with_errors(const V& x, std::vector<WrongElement> wrong) {
  return apply<double>(
      {"large_scale_with_errors", x.shape()}, {x}, [](OpCtx<double>& c) { c.y() = 1e6 * c.x(0); },
      [wrong](OpCtx<double>& c) {
        if (!c.needs_grad(0)) return;
        c.gx(0) += 1e6 * c.gy();
        for (const WrongElement& e : wrong) c.gx(0)(e.row, e.col) += e.delta * 1e6 * c.gy()(e.row, e.col);
      });
}

// y = x^2 with a deliberately wrong backward (3x instead of 2x).
V broken_square(const V& x) {
  return apply<double>(
      {"broken_square", x.shape()}, {x}, [](OpCtx<double>& c) { c.y() = c.x(0).array().square().matrix(); },
      [](OpCtx<double>& c) {
        if (c.needs_grad(0)) c.gx(0).array() += 3 * c.x(0).array() * c.gy().array();
      });
}

std::size_t count(const GradcheckResult& r, Check check) {
  std::size_t n = 0;
  for (const InputReport& report : r.reports) n += report.check == check ? 1 : 0;
  return n;
}

// ---- the common custom-op bug ------------------------------------------------------------------

TEST(GradcheckChecks, AnAssigningBackwardFailsByDefault) {
  const GradcheckResult r = gradcheck([](In x) { return twice_assigning(x[0]); }, {sample(2, 3)});
  EXPECT_FALSE(r);
  // Alone, an assignment into a zero gradient gives the right numbers: only fan-out sees it.
  EXPECT_TRUE(r.passed(Check::Plain)) << r.message();
  ASSERT_NE(r.find(Check::FanOut, 0), nullptr);
  EXPECT_FALSE(r.find(Check::FanOut, 0)->ok);
  EXPECT_THAT(r.message(), HasSubstr("gradcheck FAILED: fan-out check, input 0\n"));
  EXPECT_THAT(r.message(), HasSubstr("fan-out"));
}

TEST(GradcheckChecks, TheSameOpWrittenRightPassesEveryCheck) {
  const GradcheckResult r = gradcheck([](In x) { return twice(x[0]); }, {sample(2, 3)});
  EXPECT_TRUE(r) << r.message();
  EXPECT_TRUE(r.passed(Check::Plain));
  EXPECT_TRUE(r.passed(Check::FanOut));
  EXPECT_TRUE(r.passed(Check::Constant));
  EXPECT_EQ(r.find(Check::Alias, 0), nullptr);  // one input: nothing to alias
  // d<v, 2x>/dx = 2v: at the worst element the gradients are 2v either way.
  EXPECT_NEAR(r.find(Check::Plain, 0)->analytic, r.find(Check::Plain, 0)->numeric, 1e-8);
  EXPECT_THAT(r.message(), HasSubstr("gradcheck passed\n"));
}

TEST(GradcheckChecks, AnAssigningBinaryBackwardFailsUnderAliasToo) {
  GradcheckOptions o;
  o.fan_out = false;
  const GradcheckResult r =
      gradcheck([](In x) { return sum_assigning(x[0], x[1]); }, {sample(2, 2), sample(2, 2, 1)}, o);
  EXPECT_FALSE(r);
  EXPECT_TRUE(r.passed(Check::Plain));
  EXPECT_TRUE(r.passed(Check::Constant));
  const InputReport* alias = r.find(Check::Alias, 0);
  ASSERT_NE(alias, nullptr);
  EXPECT_FALSE(alias->ok);
  // f(x, x) = 2x: d<v, f>/dx = 2v, but the second assignment leaves only v.
  EXPECT_NEAR(alias->analytic / alias->numeric, 0.5, 1e-6);
  EXPECT_THAT(r.message(), HasSubstr("FAILED: alias check, input 0\n"));
}

// ---- aliasing ----------------------------------------------------------------------------------

TEST(GradcheckChecks, ABackwardThatIgnoresAliasingFailsOnlyUnderAlias) {
  const GradcheckResult r =
      gradcheck([](In x) { return product_ignoring_alias(x[0], x[1]); }, {sample(2, 3), sample(2, 3, 0.3)});
  EXPECT_FALSE(r);
  EXPECT_TRUE(r.passed(Check::Plain)) << r.message();
  EXPECT_TRUE(r.passed(Check::FanOut)) << r.message();
  EXPECT_TRUE(r.passed(Check::Constant)) << r.message();
  const InputReport* alias = r.find(Check::Alias, 0);
  ASSERT_NE(alias, nullptr);
  EXPECT_FALSE(alias->ok);
  // f(x, x) = x^2: d<v, f>/dx = 2 v x; writing b's old gradient back drops a's v x.
  EXPECT_NEAR(alias->analytic / alias->numeric, 0.5, 1e-6);
  EXPECT_EQ(alias->shape, (Shape{2, 3}));
  EXPECT_THAT(r.message(), HasSubstr("FAILED: alias check, input 0\n"));
}

TEST(GradcheckChecks, AProductWrittenRightPassesAlias) {
  const GradcheckResult r = gradcheck([](In x) { return product(x[0], x[1]); }, {sample(2, 3), sample(2, 3, 0.3)});
  EXPECT_TRUE(r) << r.message();
  EXPECT_TRUE(r.passed(Check::Alias));
  EXPECT_EQ(count(r, Check::Plain), 2u);
  EXPECT_EQ(count(r, Check::FanOut), 2u);
  EXPECT_EQ(count(r, Check::Alias), 1u);
  EXPECT_EQ(count(r, Check::Constant), 4u);  // each of 2 inputs constant, a report for both
}

TEST(GradcheckChecks, AliasNeedsInputsOfOneShape) {
  const GradcheckResult r = gradcheck([](In x) { return add(x[0], x[1]); }, {sample(2, 3), sample(1, 3)});
  EXPECT_TRUE(r) << r.message();
  EXPECT_EQ(count(r, Check::Alias), 0u);
}

TEST(GradcheckChecks, AliasIsSkippedWithANoteWhereTheAliasedValueIsNotFinite) {
  // log(a - b) is -inf at a = b; the other checks run at a > b.
  const GradcheckResult r = gradcheck([](In x) { return log(sub(x[0], x[1])); }, {sample(2, 2, 3.0), sample(2, 2)});
  EXPECT_TRUE(r) << r.message();
  EXPECT_EQ(count(r, Check::Alias), 0u);
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_THAT(r.notes[0], HasSubstr("alias check skipped"));
  EXPECT_THAT(r.message(), HasSubstr("note: alias check skipped"));
}

// ---- constant inputs ---------------------------------------------------------------------------

TEST(GradcheckChecks, AGradientReachingAConstantInputFailsTheConstantCheck) {
  const M a = sample(2, 2), b = sample(2, 2, 0.3);
  const GradcheckResult r = gradcheck([](In x) { return product_ignoring_constants(x[0], x[1]); }, {a, b});
  EXPECT_FALSE(r);
  EXPECT_TRUE(r.passed(Check::Plain));
  EXPECT_TRUE(r.passed(Check::FanOut));
  EXPECT_TRUE(r.passed(Check::Alias));
  // With b constant, a's gradient is still right and b's must be zero; it is v .* a instead.
  ASSERT_NE(r.find(Check::Constant, 0, 1), nullptr);
  EXPECT_TRUE(r.find(Check::Constant, 0, 1)->ok);
  const InputReport* reached = r.find(Check::Constant, 1, 1);
  ASSERT_NE(reached, nullptr);
  EXPECT_FALSE(reached->ok);
  EXPECT_EQ(reached->numeric, 0.0);
  EXPECT_NE(reached->analytic, 0.0);
  EXPECT_THAT(r.message(), HasSubstr("constant check, input 1 (input 1 constant)"));
  EXPECT_THAT(r.message(), HasSubstr("constant(1)"));
}

TEST(GradcheckChecks, ChecksCanBeTurnedOff) {
  GradcheckOptions o;
  o.fan_out = false;
  o.alias = false;
  o.constant_inputs = false;
  const GradcheckResult r =
      gradcheck([](In x) { return sum_assigning(x[0], x[1]); }, {sample(2, 2), sample(2, 2, 1)}, o);
  EXPECT_TRUE(r) << r.message();  // plain alone cannot see an assignment
  EXPECT_EQ(r.reports.size(), 2u);
}

// ---- the worst element -------------------------------------------------------------------------

TEST(GradcheckChecks, NamesTheElementWithTheLargestError) {
  // Two wrong elements; (1, 2) is off by 50 %, (0, 1) by 20 %: the worst is (1, 2).
  const GradcheckResult r = gradcheck(
      [](In x) {
        return large_scale_with_errors(x[0], {{0, 1, 0.2}, {1, 2, 0.5}});
      },
      {sample(2, 3)});
  EXPECT_FALSE(r);
  for (const Check check : {Check::Plain, Check::FanOut}) {
    const InputReport* report = r.find(check, 0);
    ASSERT_NE(report, nullptr);
    EXPECT_FALSE(report->ok);
    EXPECT_EQ(report->worst_row, 1) << to_string(check);
    EXPECT_EQ(report->worst_col, 2) << to_string(check);
    EXPECT_NEAR(report->analytic / report->numeric, 1.5, 1e-6) << to_string(check);
    EXPECT_NE(report->numeric, 0.0);
  }
  EXPECT_THAT(r.message(), HasSubstr("(1, 2)"));
}

TEST(GradcheckChecks, NamesTheWorstElementAlsoWhenEveryElementPasses) {
  // Gradients of 1e6 |v| with a lenient rtol: every error is far below its tolerance, and the
  // worst relative to it is (1, 2), off by 0.1 %, not the first element.
  GradcheckOptions o;
  o.rtol = 1e-2;
  const GradcheckResult r = gradcheck(
      [](In x) {
        return large_scale_with_errors(x[0], {{0, 1, 5e-4}, {1, 2, 1e-3}});
      },
      {sample(2, 3)}, o);
  EXPECT_TRUE(r) << r.message();
  const InputReport* plain = r.find(Check::Plain, 0);
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(plain->worst_row, 1);
  EXPECT_EQ(plain->worst_col, 2);
  EXPECT_NEAR(plain->analytic / plain->numeric, 1.001, 1e-6);
  EXPECT_NEAR(plain->max_rel_error, 1e-3 / 1.001, 1e-6);
}

// ---- projections -------------------------------------------------------------------------------

TEST(GradcheckChecks, SeveralProjectionsEachNamedBySeed) {
  auto fn = [](In x) { return broken_square(x[0]); };
  GradcheckOptions one;
  one.seed = 5;
  one.projections = 1;
  GradcheckOptions three = one;
  three.projections = 3;
  const GradcheckResult r1 = gradcheck(fn, {sample(2, 3)}, one);
  const GradcheckResult r3 = gradcheck(fn, {sample(2, 3)}, three);
  for (const InputReport& report : r3.reports) {
    EXPECT_GE(report.seed, 5u);
    EXPECT_LE(report.seed, 7u);
  }
  for (const InputReport& report : r1.reports) EXPECT_EQ(report.seed, 5u);
  // Projection 0 of three is the only projection of one: its worst error can only grow.
  EXPECT_GE(r3.find(Check::Plain, 0)->max_abs_error, r1.find(Check::Plain, 0)->max_abs_error);
  // x^2 checked as 3x: analytic / numeric = 1.5 wherever the worst element lands.
  EXPECT_NEAR(r3.find(Check::Plain, 0)->analytic / r3.find(Check::Plain, 0)->numeric, 1.5, 1e-6);
  GradcheckOptions none;
  none.projections = 0;
  EXPECT_THROW(gradcheck(fn, {sample(2, 3)}, none), ValueError);
}

// ---- a wrong derivative ------------------------------------------------------------------------

TEST(GradcheckChecks, DetectsAWrongBackward) {
  M a(2, 2), b(1, 3);
  a << 0.5, -1.0, 2.0, 1.5;
  b << 1.0, 2.0, -0.5;
  auto fn = [](In x) { return add(sum(broken_square(x[0])), sum(tanh(x[1]))); };
  const GradcheckResult r = gradcheck(fn, {a, b});
  EXPECT_FALSE(r);
  ASSERT_EQ(count(r, Check::Plain), 2u);
  const InputReport& r0 = *r.find(Check::Plain, 0);
  const InputReport& r1 = *r.find(Check::Plain, 1);
  // The output is [1 x 1], so L = v0 * f: input 0's analytic gradient is 3 v0 x against the true
  // 2 v0 x, an error of |v0 x|, largest at x = 2.0 (row 1, col 0) where numeric = 4 v0.
  EXPECT_FALSE(r0.ok);
  EXPECT_NEAR(r0.max_abs_error, std::abs(r0.numeric) / 2, 1e-6);
  EXPECT_EQ(r0.worst_row, 1);
  EXPECT_EQ(r0.worst_col, 0);
  EXPECT_NEAR(r0.analytic / r0.numeric, 1.5, 1e-6);
  EXPECT_TRUE(r1.ok);
  EXPECT_LT(r1.max_abs_error, 1e-8);
  EXPECT_EQ(r1.shape, (Shape{1, 3}));
  EXPECT_THAT(r.message(), HasSubstr("FAILED: plain check, input 0"));
  EXPECT_THAT(r.message(), HasSubstr("[2 x 2]"));
  EXPECT_THAT(r.message(), HasSubstr("FAIL\n"));
}

TEST(GradcheckChecks, PassesAKnownGradientAndIsSeeded) {
  M a(2, 3);
  a << 0.1, -0.2, 0.3, 0.4, -0.5, 0.6;
  auto fn = [](In x) { return tanh(x[0]); };
  const GradcheckResult r = gradcheck(fn, {a});
  EXPECT_TRUE(r) << r.message();
  EXPECT_THAT(r.message(), HasSubstr("passed"));
  GradcheckOptions o;
  o.seed = 3;
  const GradcheckResult r2 = gradcheck(fn, {a}, o);
  EXPECT_TRUE(r2);
}

TEST(GradcheckChecks, InputWithNoPathHasZeroGradientBothWays) {
  M a = M::Constant(1, 2, 0.3), b = M::Constant(2, 2, 0.7);
  auto fn = [](In x) { return exp(x[0]); };  // ignores x[1]
  const GradcheckResult r = gradcheck(fn, {a, b});
  EXPECT_TRUE(r) << r.message();
  EXPECT_EQ(r.find(Check::Plain, 1)->max_abs_error, 0.0);
}

}  // namespace
