// Tensor hooks, names and time tags, the node observer and anomaly mode. Every expected number
// is a closed form of a small graph.
#include <gtest/gtest.h>
#include <tapegrad/tapegrad.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "engine_test_ops.h"

using namespace tapegrad;
using namespace tapegrad::testing;
using M = Matrix<double>;

// ---- tensor hooks -----------------------------------------------------------------------------

TEST(Hooks, FireOncePerSweepWithTheFinalGradientAfterAllConsumers) {
  Tape<double> tape;
  auto x = tape.variable(scalar(0.5));
  auto h = tanh(x);
  int calls = 0;
  std::vector<double> seen;
  h.register_hook([&](M& g) {
    ++calls;
    seen.push_back(g(0, 0));
  });
  // Three consumers of h: h*h, tanh(h), 3h.
  auto loss = t_plus(t_plus(t_times(h, h), tanh(h)), t_scale(h, 3.0));
  tape.backward(loss);
  const double hv = std::tanh(0.5);
  const double final_grad = 2 * hv + (1 - std::tanh(hv) * std::tanh(hv)) + 3;  // sum over the 3 consumers
  ASSERT_EQ(calls, 1);
  EXPECT_NEAR(seen[0], final_grad, 1e-14);
  EXPECT_NEAR(x.grad()(0, 0), final_grad * (1 - hv * hv), 1e-14);
  tape.backward(loss);
  ASSERT_EQ(calls, 2);
  EXPECT_NEAR(seen[1], final_grad, 1e-14);
  // Probes and other sweeps can switch hooks off.
  tape.backward(loss, BackwardOptions{.run_hooks = false});
  EXPECT_EQ(calls, 2);
}

TEST(Hooks, ReplacingTheGradientPropagatesUpstream) {
  Tape<double> tape;
  auto x = tape.variable(row(0.5, -0.3));
  auto h = tanh(x);
  h.register_hook([](M& g) { g = g.cwiseMax(-0.5).cwiseMin(0.5); });  // clip to [-0.5, 0.5]
  auto loss = t_sum(t_scale(h, 4.0));                                 // dL/dh = 4 before clipping
  tape.backward(loss);
  for (int j = 0; j < 2; ++j) {
    const double xv = j == 0 ? 0.5 : -0.3;
    EXPECT_NEAR(h.grad()(0, j), 0.5, 1e-15);  // the retained gradient is the clipped one
    EXPECT_NEAR(x.grad()(0, j), 0.5 * (1 - std::tanh(xv) * std::tanh(xv)), 1e-15);
  }
}

TEST(Hooks, HookOnALeafSeesTheSumOfItsConsumers) {
  Tape<double> tape;
  auto x = tape.variable(scalar(0.2));
  double seen = 0;
  x.register_hook([&](M& g) { seen = g(0, 0); });
  auto loss = t_plus(t_scale(x, 2.0), t_times(x, x));
  tape.backward(loss);
  EXPECT_NEAR(seen, 2 + 2 * 0.2, 1e-15);
  EXPECT_NEAR(x.grad()(0, 0), 2 + 2 * 0.2, 1e-15);
}

TEST(Hooks, RegisteringAfterTheNodeWasConsumedIsATapeError) {
  Tape<double> tape;
  auto x = tape.variable(scalar(0.5));
  auto h = tanh(x);
  auto y = tanh(h);
  expect_error<TapeError>([&] { h.register_hook([](M&) {}); }, "consumed");
  EXPECT_THROW(y.register_hook(nullptr), ValueError);
}

TEST(Hooks, AConsumerDroppedByRewindNoLongerBlocksAHook) {
  Tape<double> tape;
  auto x = tape.variable(scalar(0.3));
  auto h = tanh(x);
  const Mark m = tape.mark();
  (void)t_scale(h, 2.0);  // consumes h ...
  EXPECT_THROW(h.register_hook([](M&) {}), TapeError);
  tape.rewind(m);  // ... until rewind drops that consumer
  double seen = 0;
  h.register_hook([&](M& g) { seen = g(0, 0); });
  auto loss = t_scale(h, 5.0);
  tape.backward(loss);
  EXPECT_NEAR(seen, 5.0, 1e-15);
  EXPECT_NEAR(x.grad()(0, 0), 5 * (1 - std::tanh(0.3) * std::tanh(0.3)), 1e-15);
  EXPECT_THROW(h.register_hook([](M&) {}), TapeError);  // consumed again
}

TEST(Hooks, IntermediateGradientsAreRetainedAfterBackward) {
  Tape<double> tape;
  auto x = tape.variable(scalar(0.7));
  auto a = tanh(x);
  auto b = t_scale(a, -2.0);
  auto loss = t_times(b, b);  // loss = 4 tanh(x)^2
  tape.backward(loss);
  const double av = std::tanh(0.7);
  EXPECT_NEAR(loss.grad()(0, 0), 1.0, 0);
  EXPECT_NEAR(b.grad()(0, 0), 2 * (-2 * av), 1e-15);
  EXPECT_NEAR(a.grad()(0, 0), 8 * av, 1e-15);
  EXPECT_NEAR(x.grad()(0, 0), 8 * av * (1 - av * av), 1e-15);
}

// ---- names and time tags ------------------------------------------------------------------------

TEST(Names, NamesAndScopedTimeTags) {
  Tape<double> tape;
  EXPECT_EQ(tape.current_time(), kNoTime);
  auto x = tape.variable(scalar(0.1));
  EXPECT_EQ(&x.set_name("x"), &x);
  Var<double> a, b, c, d;
  {
    auto s1 = tape.time_step(1);
    a = tanh(x);
    {
      auto s2 = tape.time_step(2);
      b = tanh(a);
      EXPECT_EQ(tape.current_time(), 2);
    }
    EXPECT_EQ(tape.current_time(), 1);  // the inner scope restored the outer tag
    c = tanh(b);
  }
  EXPECT_EQ(tape.current_time(), kNoTime);
  d = tanh(c);
  EXPECT_EQ(x.time(), kNoTime);
  EXPECT_EQ(a.time(), 1);
  EXPECT_EQ(b.time(), 2);
  EXPECT_EQ(c.time(), 1);
  EXPECT_EQ(d.time(), kNoTime);
  EXPECT_EQ(x.name(), "x");
  EXPECT_EQ(a.name(), "");
  b.set_name("h_2");
  EXPECT_EQ(tape.name_of(b.id()), "h_2");
  EXPECT_EQ(tape.display_name(b.id()), "h_2");
  expect_contains(tape.display_name(a.id()), "tanh");  // unnamed: "#id (op)"
  EXPECT_NO_THROW(tape.backward(b));                   // any [1 x 1] node is a valid loss
  auto m = tape.variable(M::Zero(2, 2));
  m.set_name("matrix_node");
  expect_error<ShapeError>([&] { tape.backward(m); }, "matrix_node");
}

// ---- the observer ---------------------------------------------------------------------------------

TEST(Observer, SeesEveryEntryWithOpNameTimeShapesAndGradientNorms) {
  Tape<double> tape;
  auto x = tape.variable(row(0.4, -0.9));
  x.set_name("x");
  Var<double> y, z, loss;
  {
    auto s = tape.time_step(3);
    y = tanh(x);
    y.set_name("y");
    z = t_scale(y, 2.0);
    z.set_name("z");
  }
  loss = t_sum(z);
  loss.set_name("loss");
  std::vector<NodeEvent> events;
  std::vector<std::vector<InputGradEvent>> inputs;
  std::vector<std::string> names;
  tape.set_observer([&](const NodeEvent& e) {
    events.push_back(e);
    names.emplace_back(e.name);
    inputs.emplace_back(e.inputs.begin(), e.inputs.end());
  });
  tape.backward(loss);
  ASSERT_EQ(events.size(), 3u);
  const double s2 = std::sqrt(2.0);
  // t_sum: dL/dloss = 1, passes ones [1 x 2] to z.
  EXPECT_STREQ(events[0].op, "t_sum");
  EXPECT_EQ(names[0], "loss");
  EXPECT_EQ(events[0].time, kNoTime);
  EXPECT_EQ(events[0].shape, (Shape{1, 1}));
  EXPECT_NEAR(events[0].grad_norm, 1.0, 1e-15);
  ASSERT_EQ(inputs[0].size(), 1u);
  EXPECT_EQ(inputs[0][0].id, z.id());
  EXPECT_EQ(inputs[0][0].shape, (Shape{1, 2}));
  EXPECT_NEAR(inputs[0][0].grad_norm, s2, 1e-15);
  // t_scale: gy = ones, passes 2 * ones to y.
  EXPECT_STREQ(events[1].op, "t_scale");
  EXPECT_EQ(names[1], "z");
  EXPECT_EQ(events[1].time, 3);
  EXPECT_NEAR(events[1].grad_norm, s2, 1e-15);
  EXPECT_NEAR(inputs[1][0].grad_norm, 2 * s2, 1e-15);
  // tanh: gy = 2 * ones, passes 2 (1 - tanh(x)^2) to x.
  EXPECT_STREQ(events[2].op, "tanh");
  EXPECT_EQ(names[2], "y");
  EXPECT_EQ(events[2].time, 3);
  EXPECT_EQ(events[2].shape, (Shape{1, 2}));
  EXPECT_NEAR(events[2].grad_norm, 2 * s2, 1e-15);
  EXPECT_EQ(inputs[2][0].id, x.id());
  const double d0 = 2 * (1 - std::pow(std::tanh(0.4), 2));
  const double d1 = 2 * (1 - std::pow(std::tanh(-0.9), 2));
  EXPECT_NEAR(inputs[2][0].grad_norm, std::hypot(d0, d1), 1e-15);
  // Without an observer nothing is reported.
  tape.set_observer(nullptr);
  tape.backward(loss);
  EXPECT_EQ(events.size(), 3u);
}

// ---- anomaly mode ---------------------------------------------------------------------------------

TEST(Anomaly, NaNInAForwardValueNamesTheOpTheNodeAndTheTimeStep) {
  Tape<double> tape;
  tape.set_anomaly_mode(true);
  auto x = tape.variable(scalar(-1.0));
  x.set_name("price");
  auto s = tape.time_step(7);
  const std::string msg = message_of<NumericError>([&] { (void)log(x); });
  for (const char* part : {"'log'", "price", "time step 7", "NaN"}) expect_contains(msg, part);
}

TEST(Anomaly, OffByDefaultSoNaNsPassThrough) {
  Tape<double> tape;
  EXPECT_FALSE(tape.anomaly_mode());
  auto x = tape.variable(scalar(-1.0));
  EXPECT_TRUE(std::isnan(log(x).item()));
}

TEST(Anomaly, InfOnlyInBackwardNamesTheOp) {
  Tape<double> tape;
  auto x = tape.variable(scalar(0.0));
  x.set_name("x");
  Var<double> loss;
  {
    auto s = tape.time_step(2);
    loss = t_sum(sqrt(x));  // sqrt(0) = 0 is fine; d/dx = 1 / (2 sqrt(x)) = Inf
  }
  tape.backward(loss);  // anomaly mode off: the Inf just flows
  EXPECT_TRUE(std::isinf(x.grad()(0, 0)));
  tape.set_anomaly_mode(true);
  const std::string msg = message_of<NumericError>([&] { tape.backward(loss); });
  for (const char* part : {"'sqrt'", "backward", "time step 2"}) expect_contains(msg, part);
}
