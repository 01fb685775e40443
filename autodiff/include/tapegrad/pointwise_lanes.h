// The values pointwise() runs a user's expression on in its forward: Lanes<S, W>, W elements at
// once in a fixed-size Eigen array, so each operation of the expression is one SIMD instruction
// (or a few) and every intermediate stays in registers. The functions here are the ones the
// expression may call; pointwise_dual.h gives the same functions on dual numbers for backward.
// Formulas are those of the ops in ops_unary.cpp / ops_binary.cpp, so pointwise(f) and the same
// math op by op give the same values.
#pragma once

#include <Eigen/Core>
#include <type_traits>

// Every function here is forced inline: the expression is one loop body, and a call left in it
// (GCC keeps the larger ones, sigmoid, as calls) costs more than the function.
#if defined(__GNUC__)
#define TAPEGRAD_POINTWISE_INLINE [[gnu::always_inline]] inline
#else
#define TAPEGRAD_POINTWISE_INLINE inline
#endif

namespace tapegrad::pointwise_math {

/// W elements of one argument (or intermediate) of a pointwise expression.
template <class S, int W>
struct Lanes {
  using Array = Eigen::Array<S, W, 1>;
  Array v;
};

/// The result of comparing Lanes (or Duals), for select().
template <int W>
struct Mask {
  Eigen::Array<bool, W, 1> m;
};

/// A number written in the expression (1, 0.5, a captured scalar): converted to S.
template <class C>
concept Constant = std::is_arithmetic_v<C>;

template <class T>
inline constexpr bool kIsLanes = false;
template <class S, int W>
inline constexpr bool kIsLanes<Lanes<S, W>> = true;

/// Lanes with Lanes, or Lanes with a constant on either side.
namespace detail {
// cond ? a : b lane by lane, as a plain loop: the compiler turns it into SIMD blends, where
// Eigen 3.4's select() is evaluated one coefficient at a time.
template <class A, int W>
TAPEGRAD_POINTWISE_INLINE A blend(const Eigen::Array<bool, W, 1>& cond, const A& a, const A& b) {
  A out;
  for (int l = 0; l < W; ++l) out[l] = cond[l] ? a[l] : b[l];
  return out;
}
}  // namespace detail

template <class A, class B>
concept LanesOperands = (kIsLanes<A> && (kIsLanes<B> || Constant<B>)) || (Constant<A> && kIsLanes<B>);

namespace detail {
template <class A, class B>
using LanesOf = std::conditional_t<kIsLanes<A>, A, B>;
// The operand as an array of L's shape: a constant is broadcast to every lane.
template <class L>
TAPEGRAD_POINTWISE_INLINE const typename L::Array& array_of(const L& x) {
  return x.v;
}
template <class L, Constant C>
TAPEGRAD_POINTWISE_INLINE typename L::Array array_of(C c) {
  return L::Array::Constant(static_cast<typename L::Array::Scalar>(c));
}
}  // namespace detail

// ---- arithmetic --------------------------------------------------------------------------------
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto operator+(const A& a, const B& b) requires LanesOperands<A, B> {
  using L = detail::LanesOf<A, B>;
  return L{detail::array_of<L>(a) + detail::array_of<L>(b)};
}
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto operator-(const A& a, const B& b) requires LanesOperands<A, B> {
  using L = detail::LanesOf<A, B>;
  return L{detail::array_of<L>(a) - detail::array_of<L>(b)};
}
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto operator*(const A& a, const B& b) requires LanesOperands<A, B> {
  using L = detail::LanesOf<A, B>;
  return L{detail::array_of<L>(a) * detail::array_of<L>(b)};
}
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto operator/(const A& a, const B& b) requires LanesOperands<A, B> {
  using L = detail::LanesOf<A, B>;
  return L{detail::array_of<L>(a) / detail::array_of<L>(b)};
}
template <class S, int W>
TAPEGRAD_POINTWISE_INLINE Lanes<S, W> operator-(const Lanes<S, W>& x) {
  return {-x.v};
}

// ---- comparisons and choices -------------------------------------------------------------------
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto operator<(const A& a, const B& b) requires LanesOperands<A, B> {
  using L = detail::LanesOf<A, B>;
  return Mask<L::Array::SizeAtCompileTime>{detail::array_of<L>(a) < detail::array_of<L>(b)};
}
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto operator>(const A& a, const B& b) requires LanesOperands<A, B> {
  return b < a;
}
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto operator<=(const A& a, const B& b) requires LanesOperands<A, B> {
  using L = detail::LanesOf<A, B>;
  return Mask<L::Array::SizeAtCompileTime>{detail::array_of<L>(a) <= detail::array_of<L>(b)};
}
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto operator>=(const A& a, const B& b) requires LanesOperands<A, B> {
  return b <= a;
}
/// a where cond holds, else b (either may be a constant).
template <int W, class A, class B>
TAPEGRAD_POINTWISE_INLINE auto select(const Mask<W>& cond, const A& a, const B& b) requires LanesOperands<A, B> {
  using L = detail::LanesOf<A, B>;
  return L{detail::blend(cond.m, typename L::Array(detail::array_of<L>(a)), typename L::Array(detail::array_of<L>(b)))};
}
/// max(a, b), as the maximum op: ties give a.
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto max(const A& a, const B& b) requires LanesOperands<A, B> {
  return select(a >= b, a, b);
}
/// min(a, b), as the minimum op: ties give a.
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto min(const A& a, const B& b) requires LanesOperands<A, B> {
  return select(a <= b, a, b);
}

// ---- functions ---------------------------------------------------------------------------------
template <class S, int W>
TAPEGRAD_POINTWISE_INLINE Lanes<S, W> exp(const Lanes<S, W>& x) {
  return {x.v.exp()};
}
template <class S, int W>
TAPEGRAD_POINTWISE_INLINE Lanes<S, W> log(const Lanes<S, W>& x) {
  return {x.v.log()};
}
template <class S, int W>
TAPEGRAD_POINTWISE_INLINE Lanes<S, W> sqrt(const Lanes<S, W>& x) {
  return {x.v.sqrt()};
}
template <class S, int W>
TAPEGRAD_POINTWISE_INLINE Lanes<S, W> square(const Lanes<S, W>& x) {
  return {x.v.square()};
}
template <class S, int W>
TAPEGRAD_POINTWISE_INLINE Lanes<S, W> abs(const Lanes<S, W>& x) {
  return {x.v.abs()};
}
template <class S, int W>
TAPEGRAD_POINTWISE_INLINE Lanes<S, W> tanh(const Lanes<S, W>& x) {
  return {x.v.tanh()};
}
/// The sigmoid op's formula: with e = exp(-|x|) <= 1 (no term overflows), 1 / (1 + e) for
/// x >= 0 and e / (1 + e) below, here as one division of the chosen numerator.
template <class S, int W>
TAPEGRAD_POINTWISE_INLINE Lanes<S, W> sigmoid(const Lanes<S, W>& x) {
  using Array = typename Lanes<S, W>::Array;
  const Array e = (-x.v.abs()).exp();
  const Eigen::Array<bool, W, 1> positive = x.v >= S(0);
  return {detail::blend(positive, Array(Array::Constant(S(1))), e) / (S(1) + e)};
}
/// max(x, 0).
template <class S, int W>
TAPEGRAD_POINTWISE_INLINE Lanes<S, W> relu(const Lanes<S, W>& x) {
  return {x.v.max(S(0))};
}

}  // namespace tapegrad::pointwise_math
