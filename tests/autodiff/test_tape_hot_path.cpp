// The tape's per-op fast path (docs/performance.md, "Tape overhead"): the checks it keeps and
// the bookkeeping it moved. Errors raised by apply() name the op and the input's position; the
// "consumed" test of register_hook scans the live entries; a slot reused with another shape
// resizes its value and gradient; the 1x1 anomaly check. Expected values are closed forms.
#include <gtest/gtest.h>
#include <tapegrad/tapegrad.h>

#include <cmath>
#include <functional>
#include <initializer_list>
#include <limits>
#include <string>
#include <utility>

#include "engine_test_ops.h"

namespace {

using tapegrad::apply;
using tapegrad::Matrix;
using tapegrad::OpCtx;
using tapegrad::Shape;
using tapegrad::Tape;
using tapegrad::Var;
using M = Matrix<double>;

// y = a + 2 b (same shapes), written with an explicit output shape, so that apply() is the
// first to look at the inputs (built-in ops read x.shape() first, which names the accessor).
Var<double> axpy2(const Var<double>& a, const Var<double>& b, Shape out) {
  return apply<double>(
      {"axpy2", out}, {a, b}, [](OpCtx<double>& c) { c.y() = c.x(0) + 2.0 * c.x(1); },
      [](OpCtx<double>& c) {
        if (c.needs_grad(0)) c.gx(0) += c.gy();
        if (c.needs_grad(1)) c.gx(1) += 2.0 * c.gy();
      });
}

using tapegrad::testing::expect_contains;
using tapegrad::testing::message_of;
using tapegrad::testing::scalar;

TEST(TapeHotPath, StaleInputNamesTheOpAndThePosition) {
  Tape<double> tape;
  const tapegrad::Mark m = tape.mark();
  auto a = tape.variable(scalar(1.0));
  tape.rewind(m);
  auto b = tape.variable(scalar(2.0));  // reuses a's slot: a is stale, not silently b
  const std::string msg = message_of<tapegrad::TapeError>([&] { (void)axpy2(b, a, Shape{1, 1}); });
  expect_contains(msg, "axpy2");
  expect_contains(msg, "input 1");
  expect_contains(msg, "cleared or rewound");
  EXPECT_EQ(tape.num_entries(), 0u);  // nothing recorded by the failed op
  EXPECT_EQ(tape.num_values(), 1u);
}

TEST(TapeHotPath, EmptyAndForeignInputsNameTheOpAndThePosition) {
  Tape<double> tape;
  Tape<double> other;
  auto a = tape.variable(scalar(1.0));
  auto f = other.variable(scalar(1.0));
  std::string msg = message_of<tapegrad::TapeError>([&] { (void)axpy2(Var<double>{}, a, Shape{1, 1}); });
  expect_contains(msg, "axpy2");
  expect_contains(msg, "input 0");
  expect_contains(msg, "empty");
  msg = message_of<tapegrad::TapeError>([&] { (void)axpy2(a, Var<double>{}, Shape{1, 1}); });
  expect_contains(msg, "axpy2");
  expect_contains(msg, "input 1");
  expect_contains(msg, "empty");
  msg = message_of<tapegrad::TapeError>([&] { (void)axpy2(a, f, Shape{1, 1}); });
  expect_contains(msg, "axpy2");
  expect_contains(msg, "input 1");
  expect_contains(msg, "another tape");
}

TEST(TapeHotPath, StaleHandleAccessorsNameTheAccessor) {
  Tape<double> tape;
  auto a = tape.variable(scalar(1.0));
  tape.clear();
  for (const auto& [what, fn] : std::initializer_list<std::pair<const char*, std::function<void()>>>{
           {"Var::value", [&] { (void)a.value(); }},
           {"Var::grad", [&] { (void)a.grad(); }},
           {"Var::name", [&] { (void)a.name(); }},
           {"Var::time", [&] { (void)a.time(); }},
           {"Var::requires_grad", [&] { (void)a.requires_grad(); }},
           {"Var::set_name", [&] { (void)a.set_name("x"); }}}) {
    const std::string msg = message_of<tapegrad::TapeError>(fn);
    expect_contains(msg, what);
    expect_contains(msg, "cleared or rewound");
  }
  const std::string msg = message_of<tapegrad::TapeError>([] { (void)Var<double>{}.value(); });
  expect_contains(msg, "empty handle");
}

TEST(TapeHotPath, ValuesAndGradientsOfACustomOp) {
  Tape<double> tape;
  auto a = tape.variable((M(1, 2) << 1.0, -2.0).finished());
  auto b = tape.variable((M(1, 2) << 0.5, 3.0).finished());
  auto y = axpy2(a, b, Shape{1, 2});
  EXPECT_EQ(y.value(), (M(1, 2) << 2.0, 4.0).finished());
  tape.backward(y, M::Ones(1, 2));
  EXPECT_EQ(a.grad(), M::Ones(1, 2));
  EXPECT_EQ(b.grad(), M::Constant(1, 2, 2.0));
}

TEST(TapeHotPath, HookConsumedCheckSeesOnlyLiveOpEntries) {
  Tape<double> tape;
  auto x = tape.variable(scalar(0.5));
  auto h = tapegrad::tanh(x);
  int calls = 0;
  h.register_hook([&](M&) { ++calls; });  // a hook is not a consumer
  h.register_hook([&](M&) { ++calls; });
  const tapegrad::Mark m = tape.mark();
  auto unrelated = tapegrad::tanh(x);  // reads x, not h
  h.register_hook([&](M&) { ++calls; });
  auto y = tapegrad::mul_scalar(h, 3.0);  // consumes h
  EXPECT_THROW(h.register_hook([](M&) {}), tapegrad::TapeError);
  EXPECT_THROW(x.register_hook([](M&) {}), tapegrad::TapeError);  // consumed by both tanh ops
  tape.rewind(m);                                                 // drops the consumer: hooks may be registered again
  (void)unrelated;
  h.register_hook([&](M& g) {
    ++calls;
    g *= 2.0;
  });
  auto z = tapegrad::mul_scalar(h, 3.0);
  tape.backward(z);
  EXPECT_EQ(calls, 3);  // the two kept hooks and the new one; the one above the mark was dropped
  const double t = std::tanh(0.5);
  EXPECT_NEAR(x.grad()(0, 0), 2.0 * 3.0 * (1 - t * t), 1e-15);
  (void)y;
}

TEST(TapeHotPath, ConstantConsumerDoesNotCountAsConsumer) {
  Tape<double> tape;
  auto c = tape.constant(scalar(2.0));
  auto d = tapegrad::tanh(c);  // no input requires a gradient: nothing is recorded
  EXPECT_EQ(tape.num_entries(), 0u);
  int calls = 0;
  c.register_hook([&](M&) { ++calls; });
  EXPECT_EQ(tape.num_entries(), 1u);
  EXPECT_NEAR(d.item(), std::tanh(2.0), 1e-15);
}

TEST(TapeHotPath, SlotReusedWithAnotherShapeResizesValueAndGradient) {
  Tape<double> tape;
  for (int round = 0; round < 3; ++round) {
    // Round 0 and 2 record [1 x 1] chains, round 1 a [2 x 3] chain in the same slots.
    const Shape s = round == 1 ? Shape{2, 3} : Shape{1, 1};
    tape.clear();
    const M x0 = M::Constant(s.rows, s.cols, 0.25 * (round + 1));
    auto x = tape.variable(x0);
    auto y = tapegrad::add_scalar(tapegrad::mul_scalar(x, 3.0), 1.0);  // y = 3 x + 1
    EXPECT_EQ(tapegrad::shape_of(y.value()), s);
    EXPECT_EQ(y.value(), (3.0 * x0.array() + 1.0).matrix());
    tape.backward(y, M::Constant(s.rows, s.cols, 2.0));
    EXPECT_EQ(tapegrad::shape_of(x.grad()), s);
    EXPECT_EQ(x.grad(), M::Constant(s.rows, s.cols, 6.0));
  }
}

TEST(TapeHotPath, ScalarAnomalyCheckNamesTheOp) {
  Tape<double> tape;
  tape.set_anomaly_mode(true);
  auto x = tape.variable(scalar(-1.0));
  const std::string msg = message_of<tapegrad::NumericError>([&] { (void)tapegrad::log(x); });
  expect_contains(msg, "'log'");
  expect_contains(msg, "NaN");
  const std::string inf = message_of<tapegrad::NumericError>(
      [&] { (void)tapegrad::add_scalar(x, std::numeric_limits<double>::infinity()); });
  expect_contains(inf, "'add_scalar'");
  expect_contains(inf, "Inf");
  // Finite 1x1 values pass.
  EXPECT_NEAR(tapegrad::add_scalar(x, 0.5).item(), -0.5, 0.0);
}

}  // namespace
