// The values pointwise() runs a user's expression on in its backward: forward-mode dual numbers
// Dual<S, W, K>, W elements at once, each carrying its value and its K partial derivatives with
// respect to the expression's K arguments. Seeding argument k with partial k = 1 and evaluating
// the expression once gives every d out / d argument_k of those W elements. The functions are
// those of pointwise_lanes.h; each derivative is written as in the matching op's backward
// (ops_unary.cpp, ops_binary.cpp), so the gradients agree with the op-by-op path.
#pragma once

#include <array>

#include <tapegrad/pointwise_lanes.h>

namespace tapegrad::pointwise_math {

/// W elements of one argument (or intermediate) of a pointwise expression, with d/d argument_k.
template <class S, int W, int K>
struct Dual {
  using Array = Eigen::Array<S, W, 1>;
  Array v;
  std::array<Array, K> d;
};

template <class T>
inline constexpr bool kIsDual = false;
template <class S, int W, int K>
inline constexpr bool kIsDual<Dual<S, W, K>> = true;

template <class S, int W, int K>
inline constexpr bool kHasLanes<Dual<S, W, K>> = true;

/// Operands of the Dual arithmetic.
template <class A, class B>
concept DualOperands = (Operands<A, B> && (kIsDual<A> || kIsDual<B>));

namespace detail {
// The operand as a Dual of D's type: a constant has zero partials.
template <class D>
TAPEGRAD_POINTWISE_INLINE const D& dual_of(const D& x) {
  return x;
}
template <class D, Constant C>
TAPEGRAD_POINTWISE_INLINE D dual_of(C c) {
  D x;
  x.v.setConstant(static_cast<typename D::Array::Scalar>(c));
  for (auto& d : x.d) d.setZero();
  return x;
}
// y = f(x) with f' = derivative (an array of W lanes): every partial is scaled by it.
template <class D, class V>
TAPEGRAD_POINTWISE_INLINE D chain(const D& x, typename D::Array value, const V& derivative) {
  D y;
  y.v = value;
  const typename D::Array scale = derivative;
  for (std::size_t k = 0; k < x.d.size(); ++k) y.d[k] = scale * x.d[k];
  return y;
}
}  // namespace detail

// ---- arithmetic: a constant operand adds no partial (and no 0 * x term, which an infinite x
// would turn into NaN) ---------------------------------------------------------------------------
template <class S, int W, int K>
TAPEGRAD_POINTWISE_INLINE Dual<S, W, K> operator-(const Dual<S, W, K>& x) {
  Dual<S, W, K> y;
  y.v = -x.v;
  for (int k = 0; k < K; ++k) y.d[k] = -x.d[k];
  return y;
}
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto operator+(const A& a, const B& b) requires DualOperands<A, B> {
  detail::OperandOf<A, B> y;
  if constexpr (kIsDual<A> && kIsDual<B>) {
    y.v = a.v + b.v;
    for (std::size_t k = 0; k < y.d.size(); ++k) y.d[k] = a.d[k] + b.d[k];
  } else if constexpr (kIsDual<A>) {
    y = a;
    y.v += static_cast<typename A::Array::Scalar>(b);
  } else {
    y = b;
    y.v = static_cast<typename B::Array::Scalar>(a) + b.v;
  }
  return y;
}
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto operator-(const A& a, const B& b) requires DualOperands<A, B> {
  if constexpr (kIsDual<B>) {
    return a + -b;
  } else {
    return a + -static_cast<typename A::Array::Scalar>(b);
  }
}
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto operator*(const A& a, const B& b) requires DualOperands<A, B> {
  detail::OperandOf<A, B> y;
  if constexpr (kIsDual<A> && kIsDual<B>) {
    y.v = a.v * b.v;
    for (std::size_t k = 0; k < y.d.size(); ++k) y.d[k] = a.d[k] * b.v + a.v * b.d[k];
  } else if constexpr (kIsDual<A>) {
    const auto c = static_cast<typename A::Array::Scalar>(b);
    y.v = a.v * c;
    for (std::size_t k = 0; k < y.d.size(); ++k) y.d[k] = a.d[k] * c;
  } else {
    const auto c = static_cast<typename B::Array::Scalar>(a);
    y.v = c * b.v;
    for (std::size_t k = 0; k < y.d.size(); ++k) y.d[k] = c * b.d[k];
  }
  return y;
}
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto operator/(const A& a, const B& b) requires DualOperands<A, B> {
  detail::OperandOf<A, B> y;
  if constexpr (kIsDual<A> && kIsDual<B>) {  // d(a/b) = (da - (a/b) db) / b
    y.v = a.v / b.v;
    for (std::size_t k = 0; k < y.d.size(); ++k) y.d[k] = (a.d[k] - y.v * b.d[k]) / b.v;
  } else if constexpr (kIsDual<A>) {
    const auto c = static_cast<typename A::Array::Scalar>(b);
    y.v = a.v / c;
    for (std::size_t k = 0; k < y.d.size(); ++k) y.d[k] = a.d[k] / c;
  } else {  // d(c/b) = -(c/b) db / b
    y.v = static_cast<typename B::Array::Scalar>(a) / b.v;
    for (std::size_t k = 0; k < y.d.size(); ++k) y.d[k] = -y.v * b.d[k] / b.v;
  }
  return y;
}

// ---- choices (the chosen side's partials); comparisons, max and min are in pointwise_lanes.h -----
template <int W, class A, class B>
TAPEGRAD_POINTWISE_INLINE auto select(const Mask<W>& cond, const A& a, const B& b) requires DualOperands<A, B> {
  using D = detail::OperandOf<A, B>;
  const D& x = detail::dual_of<D>(a);
  const D& y = detail::dual_of<D>(b);
  D out;
  out.v = detail::blend(cond.m, x.v, y.v);
  for (std::size_t k = 0; k < out.d.size(); ++k) out.d[k] = detail::blend(cond.m, x.d[k], y.d[k]);
  return out;
}
// ---- functions: TAPEGRAD_POINTWISE_FUNCTIONS (pointwise_lanes.h), each value with its derivative
#define TAPEGRAD_DUAL_FUNCTION(name, value, derivative)                     \
  template <class S, int W, int K>                                          \
  TAPEGRAD_POINTWISE_INLINE Dual<S, W, K> name(const Dual<S, W, K>& dual) { \
    const typename Dual<S, W, K>::Array& x = dual.v;                        \
    const typename Dual<S, W, K>::Array y = value;                          \
    return detail::chain(dual, y, derivative);                              \
  }
TAPEGRAD_POINTWISE_FUNCTIONS(TAPEGRAD_DUAL_FUNCTION)
#undef TAPEGRAD_DUAL_FUNCTION

}  // namespace tapegrad::pointwise_math
