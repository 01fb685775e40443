// The values pointwise() runs a user's expression on in its forward: Lanes<S, W>, W elements at
// once in a fixed-size Eigen array, so each operation of the expression is one SIMD instruction
// (or a few) and every intermediate stays in registers. The functions here are the ones the
// expression may call; pointwise_dual.h gives the same functions on dual numbers for backward.
// Formulas are those of the ops in ops_unary.cpp / ops_binary.cpp, so pointwise(f) and the same
// math op by op give the same values.
#pragma once

#include <Eigen/Core>
#include <type_traits>

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
template <class A, class B>
concept LanesOperands = (kIsLanes<A> && (kIsLanes<B> || Constant<B>)) || (Constant<A> && kIsLanes<B>);

namespace detail {
template <class A, class B>
using LanesOf = std::conditional_t<kIsLanes<A>, A, B>;
// The operand as an array of L's shape: a constant is broadcast to every lane.
template <class L>
const typename L::Array& array_of(const L& x) {
  return x.v;
}
template <class L, Constant C>
typename L::Array array_of(C c) {
  return L::Array::Constant(static_cast<typename L::Array::Scalar>(c));
}
}  // namespace detail

// ---- arithmetic --------------------------------------------------------------------------------
template <class A, class B>
requires LanesOperands<A, B>
auto operator+(const A& a, const B& b) {
  using L = detail::LanesOf<A, B>;
  return L{detail::array_of<L>(a) + detail::array_of<L>(b)};
}
template <class A, class B>
requires LanesOperands<A, B>
auto operator-(const A& a, const B& b) {
  using L = detail::LanesOf<A, B>;
  return L{detail::array_of<L>(a) - detail::array_of<L>(b)};
}
template <class A, class B>
requires LanesOperands<A, B>
auto operator*(const A& a, const B& b) {
  using L = detail::LanesOf<A, B>;
  return L{detail::array_of<L>(a) * detail::array_of<L>(b)};
}
template <class A, class B>
requires LanesOperands<A, B>
auto operator/(const A& a, const B& b) {
  using L = detail::LanesOf<A, B>;
  return L{detail::array_of<L>(a) / detail::array_of<L>(b)};
}
template <class S, int W>
Lanes<S, W> operator-(const Lanes<S, W>& x) {
  return {-x.v};
}

// ---- comparisons and choices -------------------------------------------------------------------
template <class A, class B>
requires LanesOperands<A, B>
auto operator<(const A& a, const B& b) {
  using L = detail::LanesOf<A, B>;
  return Mask<L::Array::SizeAtCompileTime>{detail::array_of<L>(a) < detail::array_of<L>(b)};
}
template <class A, class B>
requires LanesOperands<A, B>
auto operator>(const A& a, const B& b) { return b < a; }
template <class A, class B>
requires LanesOperands<A, B>
auto operator<=(const A& a, const B& b) {
  using L = detail::LanesOf<A, B>;
  return Mask<L::Array::SizeAtCompileTime>{detail::array_of<L>(a) <= detail::array_of<L>(b)};
}
template <class A, class B>
requires LanesOperands<A, B>
auto operator>=(const A& a, const B& b) { return b <= a; }
/// a where cond holds, else b (either may be a constant).
template <int W, class A, class B>
requires LanesOperands<A, B>
auto select(const Mask<W>& cond, const A& a, const B& b) {
  using L = detail::LanesOf<A, B>;
  return L{cond.m.select(detail::array_of<L>(a), detail::array_of<L>(b))};
}
/// max(a, b), as the maximum op: ties give a.
template <class A, class B>
requires LanesOperands<A, B>
auto max(const A& a, const B& b) { return select(a >= b, a, b); }
/// min(a, b), as the minimum op: ties give a.
template <class A, class B>
requires LanesOperands<A, B>
auto min(const A& a, const B& b) { return select(a <= b, a, b); }

// ---- functions ---------------------------------------------------------------------------------
template <class S, int W>
Lanes<S, W> exp(const Lanes<S, W>& x) {
  return {x.v.exp()};
}
template <class S, int W>
Lanes<S, W> log(const Lanes<S, W>& x) {
  return {x.v.log()};
}
template <class S, int W>
Lanes<S, W> sqrt(const Lanes<S, W>& x) {
  return {x.v.sqrt()};
}
template <class S, int W>
Lanes<S, W> square(const Lanes<S, W>& x) {
  return {x.v.square()};
}
template <class S, int W>
Lanes<S, W> abs(const Lanes<S, W>& x) {
  return {x.v.abs()};
}
template <class S, int W>
Lanes<S, W> tanh(const Lanes<S, W>& x) {
  return {x.v.tanh()};
}
/// 1 / (1 + e^-x) with e = exp(-|x|) <= 1, so no term overflows (the sigmoid op's formula).
template <class S, int W>
Lanes<S, W> sigmoid(const Lanes<S, W>& x) {
  const typename Lanes<S, W>::Array e = (-x.v.abs()).exp();
  return {(x.v >= S(0)).select(S(1) / (S(1) + e), e / (S(1) + e))};
}
/// max(x, 0).
template <class S, int W>
Lanes<S, W> relu(const Lanes<S, W>& x) {
  return {x.v.max(S(0))};
}

}  // namespace tapegrad::pointwise_math
