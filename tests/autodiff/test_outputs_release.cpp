// Ops with several outputs (apply_outputs) and release sweeps (BackwardOptions::release), checked
// against closed-form derivatives of tiny test ops built with the public API.
#include <gtest/gtest.h>
#include <tapegrad/recompute.h>
#include <tapegrad/tapegrad.h>

#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "engine_test_ops.h"

using namespace tapegrad;
using namespace tapegrad::testing;
using M = Matrix<double>;

namespace {

// Two outputs of x: twice = 2x (main) and square = x^2 (extra). Backward records which outputs
// it saw reached, so the tests can check when it runs and what it is told.
struct SeenOutputs {
  int runs = 0;
  bool extra_reached = false;
  double main_grad_sum = 0;
};

std::vector<Var<double>> twice_and_square(const Var<double>& x, SeenOutputs* seen) {
  return apply_outputs<double>(
      {"twice_and_square", x.shape(), {}, {}, {x.shape()}}, {x},
      [](OpCtx<double>& c) {
        c.y() = 2 * c.x(0);
        c.y(1) = c.x(0).array().square().matrix();
      },
      [seen](OpCtx<double>& c) {
        ++seen->runs;
        seen->main_grad_sum = c.gy().sum();
        const M* g_square = c.gy_or_null(1);
        seen->extra_reached = g_square != nullptr;
        if (!c.needs_grad(0)) return;
        c.gx(0) += 2 * c.gy();
        if (g_square != nullptr) c.gx(0).array() += 2 * c.x(0).array() * g_square->array();
      });
}

const M kX = (M(2, 2) << 0.5, -1.0, 2.0, 0.25).finished();

// x = kX on a tape, and out = twice_and_square(x).
class OpOutputs : public ::testing::Test {
 protected:
  Tape<double> tape;
  SeenOutputs seen;
  Var<double> x = tape.variable(kX);
  std::vector<Var<double>> out = twice_and_square(x, &seen);
};

TEST_F(OpOutputs, BothOutputsSumTheirPaths) {
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].value(), M(2 * kX));
  EXPECT_EQ(out[1].value(), M(kX.array().square().matrix()));
  tape.backward(t_plus(t_sum(out[0]), t_sum(out[1])));  // d/dx = 2 + 2x
  EXPECT_EQ(seen.runs, 1);
  EXPECT_TRUE(seen.extra_reached);
  EXPECT_EQ(x.grad(), M((2 + 2 * kX.array()).matrix()));
}

TEST_F(OpOutputs, AnExtraOutputAloneRunsBackwardWithAZeroMainGradient) {
  tape.backward(t_sum(out[1]));  // d/dx = 2x
  EXPECT_EQ(seen.runs, 1);
  EXPECT_TRUE(seen.extra_reached);
  EXPECT_EQ(seen.main_grad_sum, 0.0);
  EXPECT_EQ(x.grad(), M(2 * kX));
}

TEST_F(OpOutputs, AnUnreachedExtraOutputIsNull) {
  tape.backward(t_sum(out[0]));  // d/dx = 2
  EXPECT_EQ(seen.runs, 1);
  EXPECT_FALSE(seen.extra_reached);
  EXPECT_EQ(x.grad(), M::Constant(2, 2, 2.0));
}

TEST_F(OpOutputs, NoGradientNeededStillGivesEveryOutput) {
  tape.clear();
  const auto constant_out = twice_and_square(tape.constant(kX), &seen);
  ASSERT_EQ(constant_out.size(), 2u);
  EXPECT_FALSE(constant_out[1].requires_grad());
  EXPECT_EQ(constant_out[1].value(), M(kX.array().square().matrix()));
  EXPECT_EQ(tape.num_entries(), 0u);
}

TEST_F(OpOutputs, HooksOnAnExtraOutputRunWhenItsGradientIsFinal) {
  M hooked;
  out[1].register_hook([&](M& g) {
    hooked = g;
    g *= 3;  // a hook may change the gradient its producer sees
  });
  tape.backward(t_sum(t_times(out[1], out[1])));  // d(sum y^2)/dy = 2y
  EXPECT_EQ(hooked, M(2 * kX.array().square().matrix()));
  EXPECT_TRUE(x.grad().isApprox(M(3 * 4 * kX.array().cube().matrix()), 1e-15));  // 3 * 2y * 2x
}

TEST_F(OpOutputs, ApplyRefusesExtraOutputs) {
  EXPECT_THROW((void)apply<double>(
                   {"two", x.shape(), {}, {}, {x.shape()}}, {x}, [](OpCtx<double>&) {}, [](OpCtx<double>&) {}),
               ValueError);
}

// An op with an aux tensor: y = x * x, the saved copy of x in aux(0).
Var<double> square_saving_x(const Var<double>& x) {
  return apply<double>(
      {"square_saving_x", x.shape(), {x.shape()}}, {x},
      [](OpCtx<double>& c) {
        c.aux(0) = c.x(0);
        c.y() = c.x(0).array().square().matrix();
      },
      [](OpCtx<double>& c) {
        if (c.needs_grad(0)) c.gx(0).array() += 2 * c.aux(0).array() * c.gy().array();
      });
}

TEST(ReleaseSweep, LeavesGetTheSameGradientsAndAuxAndInnerGradientsAreFreed) {
  for (const bool release : {false, true}) {
    Tape<double> tape;
    const Var<double> x = tape.variable(kX);
    const Var<double> y = square_saving_x(x);
    const Var<double> z = square_saving_x(y);  // x^4
    const Var<double> loss = t_sum(z);
    const std::size_t before = tape_value_bytes(tape);
    tape.backward(loss, BackwardOptions{.release = release});
    EXPECT_TRUE(x.grad().isApprox(M(4 * kX.array().cube().matrix()), 1e-15)) << "release " << release;
    const std::size_t aux_bytes = 2 * sizeof(double) * static_cast<std::size_t>(kX.size());
    EXPECT_EQ(tape_value_bytes(tape), release ? before - aux_bytes : before);
    if (release) {
      expect_error<TapeError>([&] { (void)y.grad(); }, "freed by backward(release = true)");
      EXPECT_EQ(z.value(), M(kX.array().pow(4).matrix()));  // values stay readable
    } else {
      EXPECT_TRUE(y.grad().isApprox(M(2 * kX.array().square().matrix()), 1e-15));
    }
  }
}

TEST(ReleaseSweep, TheTapeRecordsAgainAfterARelease) {
  Tape<double> tape;
  for (int round = 0; round < 3; ++round) {
    tape.clear();
    const Var<double> x = tape.variable(kX);
    const Var<double> y = square_saving_x(square_saving_x(x));
    tape.backward(t_sum(y), BackwardOptions{.release = true});
    EXPECT_TRUE(x.grad().isApprox(M(4 * kX.array().cube().matrix()), 1e-15)) << "round " << round;
  }
}

TEST(ReleaseSweep, AParameterGetsTheSameGradient) {
  Parameter<double> w(kX, "w");
  M plain;
  for (const bool release : {false, true}) {
    w.zero_grad();
    Tape<double> tape;
    const Var<double> wl = tape.leaf(w);
    tape.backward(t_sum(square_saving_x(t_times(wl, wl))), BackwardOptions{.release = release});
    if (!release) {
      plain = w.grad;
      EXPECT_TRUE(plain.isApprox(M(4 * kX.array().cube().matrix()), 1e-15));
    } else {
      EXPECT_EQ(w.grad, plain);
    }
  }
}

TEST(ReleaseSweep, RecomputeSegmentsGiveTheSameGradients) {
  // Two segments, each y -> square_saving_x(y) twice: the whole chain is x^16.
  const auto segment = [](Tape<double>& /*sub*/, std::span<const Var<double>> in) {
    return std::vector<Var<double>>{square_saving_x(square_saving_x(in[0]))};
  };
  const M x0 = M::Constant(1, 2, 0.9);
  for (const bool release : {false, true}) {
    Tape<double> tape;
    const Var<double> x = tape.variable(x0);
    Var<double> y = x;
    for (int s = 0; s < 2; ++s) y = recompute<double>({y}, segment)[0];
    tape.backward(t_sum(y), BackwardOptions{.release = release});
    EXPECT_TRUE(x.grad().isApprox(M(16 * x0.array().pow(15).matrix()), 1e-14)) << "release " << release;
  }
}

// In a release sweep softmax_cross_entropy turns its saved probabilities into dL/dlogits in place
// when nothing else touched that gradient first: the gradient is bit-identical to the plain sweep's,
// with ignored rows, and when the logits also feed an op recorded before or after it.
TEST(ReleaseSweep, CrossEntropyGivesTheSameGradientInPlace) {
  const M logits = (M(3, 4) << 0.5, -1.0, 2.0, 0.25, 1.5, 0.0, -0.5, 1.0, -2.0, 0.75, 0.5, 0.1).finished();
  const std::vector<std::int32_t> targets = {2, -100, 0};
  for (int use : {0, 1, 2}) {  // 0: CE only; 1: another op recorded before CE; 2: after CE
    M grads[2];
    for (const bool release : {false, true}) {
      Tape<double> tape;
      const Var<double> x = tape.variable(logits);
      Var<double> loss;
      if (use == 1) {
        const Var<double> other = t_sum(x);
        loss = t_plus(other, softmax_cross_entropy(x, targets, Reduction::Mean));
      } else {
        loss = softmax_cross_entropy(x, targets, Reduction::Mean);
        if (use == 2) loss = t_plus(loss, t_sum(x));
      }
      tape.backward(loss, BackwardOptions{.release = release});
      grads[release ? 1 : 0] = x.grad();
    }
    EXPECT_EQ(grads[1], grads[0]) << "use " << use;
    EXPECT_EQ(grads[0].row(1), M::Constant(1, 4, use == 0 ? 0.0 : 1.0)) << "ignored row, use " << use;
  }
}

// A release sweep that throws half way (anomaly mode: sqrt's derivative at 0 is inf) leaves the
// entries it reached released: a second sweep throws TapeError instead of running a backward
// whose saved tensors may already be consumed.
TEST(ReleaseSweep, AnEntryThatThrowsIsStillReleased) {
  Tape<double> tape;
  tape.set_anomaly_mode(true);
  const Var<double> x = tape.variable(M::Zero(1, 2));
  const Var<double> y = sqrt(x);  // the first (and only) entry the sweep runs throws
  EXPECT_THROW(tape.backward(y, M::Ones(1, 2), BackwardOptions{.release = true}), NumericError);
  expect_error<TapeError>([&] { tape.backward(y, M::Ones(1, 2)); }, "released");
}

}  // namespace
