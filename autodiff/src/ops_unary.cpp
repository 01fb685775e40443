// Elementwise and scalar ops: one row each, the forward value and the derivative side by side.
// The derivative is written in terms of the input x and/or the output y, whichever is cheaper
// and more accurate (tanh and exp reuse y; log and relu read x).
#include <cmath>

#include <tapegrad/op.h>
#include <tapegrad/ops.h>

#include "instantiate.h"

namespace tapegrad {
namespace {

// Records y = f(x) elementwise with dL/dx += dL/dy * d(x, y). f and d receive Eigen arrays.
// A [1 x 1] value (a loss, a scalar chain) goes through fixed-size 1x1 arrays: the same
// functors and the same scalar math, without the set-up of Eigen's runtime-size loop, which
// costs more than the op itself at that size.
template <class S, class F, class D>
Var<S> elementwise(const char* name, const Var<S>& x, F f, D d) {
  using One = Eigen::Map<Eigen::Array<S, 1, 1>>;
  using ConstOne = Eigen::Map<const Eigen::Array<S, 1, 1>>;
  return apply<S>(
      {name, x.shape()}, {x},
      [f](OpCtx<S>& c) {
        if (c.y().size() == 1) {
          One(c.y().data()) = f(ConstOne(c.x(0).data()));
        } else {
          c.y().array() = f(c.x(0).array());
        }
      },
      [d](OpCtx<S>& c) {
        if (!c.needs_grad(0)) return;
        Matrix<S>& g = c.gx(0);
        if (g.size() == 1) {
          One(g.data()) += ConstOne(c.gy().data()) * d(ConstOne(c.x(0).data()), ConstOne(c.y().data()));
        } else {
          g.array() += c.gy().array() * d(c.x(0).array(), c.y().array());
        }
      });
}

// sigmoid(x) written with e = exp(-|x|) <= 1, so no term overflows for any x:
// x >= 0: 1 / (1 + e);  x < 0: e / (1 + e).
template <class A>
auto stable_sigmoid(const A& x) {
  using S = typename A::Scalar;
  return (x >= S(0)).select(S(1) / (S(1) + (-x.abs()).exp()), (-x.abs()).exp() / (S(1) + (-x.abs()).exp()));
}

// log(1 + e^-|x|): the non-linear part of softplus, exact for large |x| (log1p of a tiny number).
template <class A>
auto log1p_exp_neg_abs(const A& x) {
  return (-x.abs()).exp().log1p();
}

template <class S, class A>
auto step(const A& cond) {  // [cond] as 0 or 1 of type S
  return cond.template cast<S>();
}

}  // namespace

// ---- scalar arithmetic -------------------------------------------------------------------------

// y = x + c;  dy/dx = 1
template <class S>
Var<S> add_scalar(const Var<S>& x, std::type_identity_t<S> c) {
  return elementwise<S>(
      "add_scalar", x, [c](const auto& a) { return a + c; },
      [](const auto& a, const auto&) { return a.Constant(a.rows(), a.cols(), S(1)); });
}

// y = c x;  dy/dx = c
template <class S>
Var<S> mul_scalar(const Var<S>& x, std::type_identity_t<S> c) {
  return elementwise<S>(
      "mul_scalar", x, [c](const auto& a) { return a * c; },
      [c](const auto& a, const auto&) { return a.Constant(a.rows(), a.cols(), c); });
}

// y = -x;  dy/dx = -1
template <class S>
Var<S> neg(const Var<S>& x) {
  return elementwise<S>(
      "neg", x, [](const auto& a) { return -a; },
      [](const auto& a, const auto&) { return a.Constant(a.rows(), a.cols(), S(-1)); });
}

// y = x^p;  dy/dx = p x^(p-1)
template <class S>
Var<S> pow(const Var<S>& x, std::type_identity_t<S> p) {
  if (p != std::floor(p) && x.value().size() > 0) {
    Index r = 0, col = 0;
    const S lowest = x.value().minCoeff(&r, &col);
    TAPEGRAD_CHECK(lowest >= S(0), ValueError,
                   "pow: x has a negative entry {} at ({}, {}) and the exponent p = {} is not a whole number", lowest,
                   r, col, p);
  }
  return elementwise<S>(
      "pow", x, [p](const auto& a) { return a.pow(p); },
      [p](const auto& a, const auto&) { return p * a.pow(p - S(1)); });
}

// ---- elementwise functions ---------------------------------------------------------------------

// y = tanh(x);  dy/dx = 1 - y^2
template <class S>
Var<S> tanh(const Var<S>& x) {
  return elementwise<S>(
      "tanh", x, [](const auto& a) { return a.tanh(); }, [](const auto&, const auto& y) { return S(1) - y.square(); });
}

// y = 1 / (1 + e^-x);  dy/dx = y (1 - y)
template <class S>
Var<S> sigmoid(const Var<S>& x) {
  return elementwise<S>(
      "sigmoid", x, [](const auto& a) { return stable_sigmoid(a); },
      [](const auto&, const auto& y) { return y * (S(1) - y); });
}

// y = max(x, 0);  dy/dx = [x > 0]
template <class S>
Var<S> relu(const Var<S>& x) {
  return elementwise<S>(
      "relu", x, [](const auto& a) { return a.max(S(0)); },
      [](const auto& a, const auto&) { return step<S>(a > S(0)); });
}

// y = x if x > 0 else slope x;  dy/dx = 1 or slope
template <class S>
Var<S> leaky_relu(const Var<S>& x, std::type_identity_t<S> slope) {
  return elementwise<S>(
      "leaky_relu", x, [slope](const auto& a) { return (a > S(0)).select(a, slope * a); },
      [slope](const auto& a, const auto&) { return (a > S(0)).select(a.Constant(a.rows(), a.cols(), S(1)), slope); });
}

// y = e^x;  dy/dx = y
template <class S>
Var<S> exp(const Var<S>& x) {
  return elementwise<S>(
      "exp", x, [](const auto& a) { return a.exp(); }, [](const auto&, const auto& y) { return y; });
}

// y = ln x;  dy/dx = 1 / x
template <class S>
Var<S> log(const Var<S>& x) {
  return elementwise<S>(
      "log", x, [](const auto& a) { return a.log(); }, [](const auto& a, const auto&) { return a.inverse(); });
}

// y = sqrt(x);  dy/dx = 1 / (2 y)
template <class S>
Var<S> sqrt(const Var<S>& x) {
  return elementwise<S>(
      "sqrt", x, [](const auto& a) { return a.sqrt(); }, [](const auto&, const auto& y) { return S(0.5) / y; });
}

// y = x^2;  dy/dx = 2 x
template <class S>
Var<S> square(const Var<S>& x) {
  return elementwise<S>(
      "square", x, [](const auto& a) { return a.square(); }, [](const auto& a, const auto&) { return S(2) * a; });
}

// y = |x|;  dy/dx = sign(x)  (0 at x = 0)
template <class S>
Var<S> abs(const Var<S>& x) {
  return elementwise<S>(
      "abs", x, [](const auto& a) { return a.abs(); }, [](const auto& a, const auto&) { return a.sign(); });
}

// y = 1 / x;  dy/dx = -1 / x^2 = -y^2
template <class S>
Var<S> reciprocal(const Var<S>& x) {
  return elementwise<S>(
      "reciprocal", x, [](const auto& a) { return a.inverse(); },
      [](const auto&, const auto& y) { return -y.square(); });
}

// y = log(1 + e^x) = max(x, 0) + log(1 + e^-|x|);  dy/dx = sigmoid(x)
template <class S>
Var<S> softplus(const Var<S>& x) {
  return elementwise<S>(
      "softplus", x, [](const auto& a) { return a.max(S(0)) + log1p_exp_neg_abs(a); },
      [](const auto& a, const auto&) { return stable_sigmoid(a); });
}

// y = log sigmoid(x) = min(x, 0) - log(1 + e^-|x|);  dy/dx = 1 - sigmoid(x) = sigmoid(-x)
template <class S>
Var<S> log_sigmoid(const Var<S>& x) {
  return elementwise<S>(
      "log_sigmoid", x, [](const auto& a) { return a.min(S(0)) - log1p_exp_neg_abs(a); },
      [](const auto& a, const auto&) { return stable_sigmoid(-a); });
}

// y = sin x;  dy/dx = cos x
template <class S>
Var<S> sin(const Var<S>& x) {
  return elementwise<S>(
      "sin", x, [](const auto& a) { return a.sin(); }, [](const auto& a, const auto&) { return a.cos(); });
}

// y = cos x;  dy/dx = -sin x
template <class S>
Var<S> cos(const Var<S>& x) {
  return elementwise<S>(
      "cos", x, [](const auto& a) { return a.cos(); }, [](const auto& a, const auto&) { return -a.sin(); });
}

// y = clamp(x, -1, 1);  dy/dx = [|x| < 1]
template <class S>
Var<S> hardtanh(const Var<S>& x) {
  return elementwise<S>(
      "hardtanh", x, [](const auto& a) { return a.max(S(-1)).min(S(1)); },
      [](const auto& a, const auto&) { return step<S>(a.abs() < S(1)); });
}

// y = min(max(x, lo), hi);  dy/dx = [lo < x < hi]
template <class S>
Var<S> clamp(const Var<S>& x, std::type_identity_t<S> lo, std::type_identity_t<S> hi) {
  TAPEGRAD_CHECK(lo <= hi, ValueError, "clamp: lo = {} is greater than hi = {}", lo, hi);
  return elementwise<S>(
      "clamp", x, [lo, hi](const auto& a) { return a.max(lo).min(hi); },
      [lo, hi](const auto& a, const auto&) { return step<S>(a > lo && a < hi); });
}

TAPEGRAD_INSTANTIATE_OPS(TAPEGRAD_UNARY_OPS)

}  // namespace tapegrad
