// Tiny ops defined in the tests with the public apply() API, so the engine tests depend only
// on tape.h/op.h (not on the op library) and know every derivative exactly; and the checks of
// error messages the engine tests share.
#pragma once

#include <gtest/gtest.h>
#include <tapegrad/op.h>

#include <string>
#include <utility>

namespace tapegrad::testing {

/// A [1 x 1] tensor holding v.
inline Matrix<double> scalar(double v) { return Matrix<double>::Constant(1, 1, v); }
/// The [1 x 2] row (a, b).
inline Matrix<double> row(double a, double b) {
  Matrix<double> m(1, 2);
  m << a, b;
  return m;
}

/// The message of the E that f throws (a test failure, and "", if it throws none).
template <class E, class F>
std::string message_of(F&& f) {
  try {
    std::forward<F>(f)();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "no exception of the expected type";
  return {};
}

inline void expect_contains(const std::string& msg, const std::string& part) {
  EXPECT_NE(msg.find(part), std::string::npos) << "message: " << msg << "\nexpected to contain: " << part;
}

/// f throws E with a message containing words.
template <class E, class F>
void expect_error(F&& f, const std::string& words) {
  expect_contains(message_of<E>(std::forward<F>(f)), words);
}

/// a + b (same shapes).
template <class S>
Var<S> t_plus(const Var<S>& a, const Var<S>& b) {
  return apply<S>(
      {"t_plus", a.shape()}, {a, b}, [](OpCtx<S>& c) { c.y().noalias() = c.x(0) + c.x(1); },
      [](OpCtx<S>& c) {
        if (c.needs_grad(0)) c.gx(0) += c.gy();
        if (c.needs_grad(1)) c.gx(1) += c.gy();
      });
}

/// a * b elementwise (same shapes).
template <class S>
Var<S> t_times(const Var<S>& a, const Var<S>& b) {
  return apply<S>(
      {"t_times", a.shape()}, {a, b}, [](OpCtx<S>& c) { c.y().array() = c.x(0).array() * c.x(1).array(); },
      [](OpCtx<S>& c) {
        if (c.needs_grad(0)) c.gx(0).array() += c.gy().array() * c.x(1).array();
        if (c.needs_grad(1)) c.gx(1).array() += c.gy().array() * c.x(0).array();
      });
}

/// k * x.
template <class S>
Var<S> t_scale(const Var<S>& x, S k) {
  return apply<S>(
      {"t_scale", x.shape()}, {x}, [k](OpCtx<S>& c) { c.y().noalias() = k * c.x(0); },
      [k](OpCtx<S>& c) {
        if (c.needs_grad(0)) c.gx(0) += k * c.gy();
      });
}

/// Sum of all elements, [1 x 1].
template <class S>
Var<S> t_sum(const Var<S>& x) {
  return apply<S>(
      {"t_sum", {1, 1}}, {x}, [](OpCtx<S>& c) { c.y()(0, 0) = c.x(0).sum(); },
      [](OpCtx<S>& c) {
        if (c.needs_grad(0)) c.gx(0).array() += c.gy()(0, 0);
      });
}

}  // namespace tapegrad::testing
