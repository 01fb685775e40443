// The callback contract (Note [Callback contract] in tape.h): hooks, observers, backward closures
// and forward closures may read the tape, but a call that would change it while they run throws
// TapeError; a hook that changes its gradient's shape throws ShapeError. After each refusal the
// tape is idle again: a later sweep gives the closed-form gradients, and Parameter::grad is as
// it was before the refused sweep.
#include <gtest/gtest.h>
#include <tapegrad/tapegrad.h>

#include <cmath>
#include <functional>
#include <string>

#include "engine_test_ops.h"

using namespace tapegrad;
using namespace tapegrad::testing;
using M = Matrix<double>;

namespace {

// d/dx sum(3 tanh(x)) = 3 (1 - tanh(x)^2), elementwise.
M reference_grad(const M& x) { return (3.0 * (1.0 - x.array().tanh().square())).matrix(); }

// Records loss = sum(3 tanh(x)) with x = [0.5, -0.3] and a parameter P = x used once more
// (loss + sum(P)), runs `inside` from a hook on tanh(x) during backward, and checks the error.
// Then checks that Parameter::grad is unchanged, and that the same tape, rewound, still gives the
// closed-form gradients.
template <class E>
void expect_refused_from_hook(const std::function<void(Tape<double>&, const Var<double>&)>& inside,
                              const std::string& words) {
  Tape<double> tape;
  Parameter<double> p(row(0.25, 0.75), "P");
  p.grad = row(10, 20);
  const Mark start = tape.mark();
  const Var<double> x = tape.variable(row(0.5, -0.3));
  const Var<double> h = tanh(x);
  h.register_hook([&](M&) { inside(tape, x); });
  const Var<double> loss = t_plus(t_sum(t_scale(h, 3.0)), t_sum(tape.leaf(p)));
  expect_error<E>([&] { tape.backward(loss); }, words);
  EXPECT_EQ(p.grad, row(10, 20)) << "a refused sweep must not touch Parameter::grad";
  tape.rewind(start);  // the tape is idle again: rewind, record and backward work
  const Var<double> x2 = tape.variable(row(0.5, -0.3));
  tape.backward(t_plus(t_sum(t_scale(tanh(x2), 3.0)), t_sum(tape.leaf(p))));
  EXPECT_TRUE(x2.grad().isApprox(reference_grad(row(0.5, -0.3)), 1e-14));
  EXPECT_EQ(p.grad, row(11, 21));
}

}  // namespace

// ---- hooks that change the gradient's shape --------------------------------------------------

TEST(CallbackContract, HookThatResizesTheGradientIsAShapeErrorNamingNodeAndShapes) {
  for (const bool anomaly : {false, true}) {
    Tape<double> tape;
    tape.set_anomaly_mode(anomaly);
    const Var<double> x = tape.variable(row(0.5, -0.3));
    const Var<double> h = tanh(x);
    h.set_name("h");
    h.register_hook([](M& g) { g.resize(3, 3); });
    const Var<double> loss = t_sum(t_scale(h, 3.0));
    const std::string msg = message_of<ShapeError>([&] { tape.backward(loss); });
    for (const char* w : {"hook on node 'h'", "[3 x 3]", "[1 x 2]", "not its shape"}) expect_contains(msg, w);
    EXPECT_EQ(shape_of(h.grad()), (Shape{1, 2})) << "the wrong-shaped gradient is not kept";
    EXPECT_TRUE(x.grad().isZero()) << "the sweep stopped at the hook";
  }
}

TEST(CallbackContract, HookThatReplacesTheGradientWithAnotherShapeIsRefusedAlsoWithAnObserver) {
  Tape<double> tape;
  int events = 0;
  tape.set_observer([&](const NodeEvent&) { ++events; });
  const Var<double> x = tape.variable(row(0.5, -0.3));
  const Var<double> h = tanh(x);
  h.register_hook([](M& g) { g = M::Ones(2, 1); });  // a transpose-shaped replacement
  expect_error<ShapeError>([&] { tape.backward(t_sum(h)); }, "[2 x 1]");
  // The tape still works: a hook-free computation after a rewind gives the closed form.
  tape.clear();
  const Var<double> y = tape.variable(row(0.5, -0.3));
  tape.backward(t_sum(t_scale(tanh(y), 3.0)));
  EXPECT_TRUE(y.grad().isApprox(reference_grad(row(0.5, -0.3)), 1e-14));
  EXPECT_GT(events, 0);
}

TEST(CallbackContract, HookThatKeepsTheShapeMayReplaceTheValues) {
  Tape<double> tape;
  const Var<double> x = tape.variable(row(0.5, -0.3));
  const Var<double> h = tanh(x);
  h.register_hook([](M& g) { g = M::Constant(1, 2, 2.0); });
  tape.backward(t_sum(t_scale(h, 3.0)));
  EXPECT_TRUE(x.grad().isApprox((2.0 * (1.0 - row(0.5, -0.3).array().tanh().square())).matrix(), 1e-14));
}

TEST(CallbackContract, OpBackwardThatResizesAnInputGradientIsCaughtInAnomalyMode) {
  Tape<double> tape;
  tape.set_anomaly_mode(true);
  const Var<double> x = tape.variable(row(0.5, -0.3));
  const Var<double> y = apply<double>(
      {"bad_backward", {1, 2}}, {x}, [](OpCtx<double>& c) { c.y() = c.x(0); },
      [](OpCtx<double>& c) { c.gx(0) = M::Ones(4, 4); });  // assigns: Eigen resizes gx(0)
  const std::string msg = message_of<ShapeError>([&] { tape.backward(t_sum(y)); });
  for (const char* w : {"bad_backward", "input 0", "[4 x 4]", "[1 x 2]"}) expect_contains(msg, w);
}

// ---- hooks that change the tape ---------------------------------------------------------------

TEST(CallbackContract, HookThatClearsTheTapeIsRefused) {
  expect_refused_from_hook<TapeError>([](Tape<double>& t, const Var<double>&) { t.clear(); },
                                      "clear: refused during backward");
}

TEST(CallbackContract, HookThatRewindsTheTapeIsRefused) {
  expect_refused_from_hook<TapeError>([](Tape<double>& t, const Var<double>&) { t.rewind(Mark{}); },
                                      "rewind: refused during backward");
}

TEST(CallbackContract, HookThatRecordsAnOpOnTheSweptTapeIsRefused) {
  expect_refused_from_hook<TapeError>([](Tape<double>&, const Var<double>& x) { (void)t_scale(x, 2.0); },
                                      "scale: refused during backward");
  expect_refused_from_hook<TapeError>([](Tape<double>& t, const Var<double>&) { (void)t.constant(row(1, 2)); },
                                      "constant: refused during backward");
}

TEST(CallbackContract, HookThatRunsBackwardOnTheSweptTapeIsRefused) {
  expect_refused_from_hook<TapeError>([](Tape<double>& t, const Var<double>& x) { t.backward(x, row(1, 1)); },
                                      "backward: refused during backward");
}

TEST(CallbackContract, HookThatAddsAHookOrNamesANodeIsRefused) {
  expect_refused_from_hook<TapeError>([](Tape<double>&, const Var<double>& x) { x.register_hook([](M&) {}); },
                                      "register_hook: refused");
  expect_refused_from_hook<TapeError>([](Tape<double>&, const Var<double>& x) { x.set_name("late"); },
                                      "set_name: refused");
}

TEST(CallbackContract, HookMayReadTheTapeAndUseAnotherTape) {
  Tape<double> tape;
  Tape<double> other;
  const Var<double> x = tape.variable(row(0.5, -0.3));
  const Var<double> h = tanh(x);
  double inner = 0;
  std::size_t entries = 0;
  h.register_hook([&](M& g) {
    entries = tape.num_entries();  // reading is allowed
    const Var<double> z = other.variable(g);
    other.backward(t_sum(t_times(z, z)));  // d/dz sum(z^2) = 2z on another tape
    inner = z.grad()(0, 1);
  });
  tape.backward(t_sum(t_scale(h, 3.0)));
  EXPECT_DOUBLE_EQ(inner, 6.0);
  EXPECT_EQ(entries, tape.num_entries());
  EXPECT_TRUE(x.grad().isApprox(reference_grad(row(0.5, -0.3)), 1e-14));
}

// ---- observers ----------------------------------------------------------------------------------

TEST(CallbackContract, ObserverThatRemovesItselfOrChangesTheTapeIsRefused) {
  Tape<double> tape;
  const Var<double> x = tape.variable(row(0.5, -0.3));
  const Var<double> loss = t_sum(t_scale(tanh(x), 3.0));
  const std::function<void(Tape<double>&)> misuses[] = {
      [](Tape<double>& t) { t.set_observer(nullptr); },  [](Tape<double>& t) { t.clear(); },
      [](Tape<double>& t) { t.set_anomaly_mode(true); }, [&x](Tape<double>&) { (void)tanh(x); },
      [&loss](Tape<double>& t) { t.backward(loss); },
  };
  for (const auto& misuse : misuses) {
    tape.set_observer([&](const NodeEvent&) { misuse(tape); });
    expect_error<TapeError>([&] { tape.backward(loss); }, "refused during backward");
    tape.set_observer(nullptr);  // idle again: allowed
    tape.backward(loss);
    EXPECT_TRUE(x.grad().isApprox(reference_grad(row(0.5, -0.3)), 1e-14));
  }
  EXPECT_FALSE(tape.anomaly_mode());
}

// ---- op closures --------------------------------------------------------------------------------

TEST(CallbackContract, OpBackwardThatRewindsItsTapeIsRefused) {
  Tape<double> tape;
  const Var<double> x = tape.variable(row(0.5, -0.3));
  const Mark m = tape.mark();
  const Var<double> y = apply<double>(
      {"rewinding_op", {1, 2}}, {x}, [](OpCtx<double>& c) { c.y() = c.x(0); },
      [m](OpCtx<double>& c) { c.tape().rewind(m); });
  expect_error<TapeError>([&] { tape.backward(t_sum(y)); }, "rewind: refused during backward");
  EXPECT_EQ(tape.num_entries(), 2u) << "nothing was dropped";
}

TEST(CallbackContract, OpForwardThatChangesItsOwnTapeIsRefusedNamingTheOp) {
  Tape<double> tape;
  const Var<double> x = tape.variable(row(0.5, -0.3));
  const auto op_that = [&](std::function<void(Tape<double>&)> inside) {
    return apply<double>(
        {"greedy_op", {1, 2}}, {x},
        [&](OpCtx<double>& c) {
          inside(c.tape());
          c.y() = c.x(0);
        },
        [](OpCtx<double>& c) { c.gx(0) += c.gy(); });
  };
  const std::size_t entries = tape.num_entries();
  for (const char* what : {"clear", "scale", "backward"}) {
    const std::string msg = message_of<TapeError>([&] {
      (void)op_that([&](Tape<double>& t) {
        if (std::string(what) == "clear") t.clear();
        if (std::string(what) == "scale") (void)t_scale(x, 2.0);
        if (std::string(what) == "backward") t.backward(x, row(1, 1));
      });
    });
    expect_contains(msg, std::string(what) + ": refused inside the forward of op 'greedy_op'");
  }
  EXPECT_EQ(tape.num_entries(), entries) << "a refused forward records nothing";
  EXPECT_TRUE(x.valid());
  const Var<double> y = op_that([](Tape<double>&) {});
  tape.backward(t_sum(t_scale(tanh(y), 3.0)));
  EXPECT_TRUE(x.grad().isApprox(reference_grad(row(0.5, -0.3)), 1e-14));
}
