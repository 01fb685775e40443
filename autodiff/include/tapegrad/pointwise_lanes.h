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

/// The values an expression runs on: Lanes, and Dual (pointwise_dual.h), whose lanes `v` hold
/// its value. Comparisons, max and min read only those lanes, so one definition serves both.
template <class T>
inline constexpr bool kHasLanes = kIsLanes<T>;

/// Two values, or a value with a constant on either side.
template <class A, class B>
concept Operands = (kHasLanes<A> && (kHasLanes<B> || Constant<B>)) || (Constant<A> && kHasLanes<B>);
/// Operands of the Lanes arithmetic.
template <class A, class B>
concept LanesOperands = (Operands<A, B> && (kIsLanes<A> || kIsLanes<B>));

namespace detail {
// The operands' type: the one that is not a constant.
template <class A, class B>
using OperandOf = std::conditional_t<kHasLanes<A>, A, B>;
// The operand's lanes as an array of T's shape: a constant is broadcast to every lane.
template <class T>
TAPEGRAD_POINTWISE_INLINE const typename T::Array& lanes_of(const T& x) {
  return x.v;
}
template <class T, Constant C>
TAPEGRAD_POINTWISE_INLINE typename T::Array lanes_of(C c) {
  return T::Array::Constant(static_cast<typename T::Array::Scalar>(c));
}
// cond ? a : b lane by lane, as a plain loop: the compiler turns it into SIMD blends, where
// Eigen 3.4's select() is evaluated one coefficient at a time.
template <class A, int W>
TAPEGRAD_POINTWISE_INLINE A blend(const Eigen::Array<bool, W, 1>& cond, const A& a, const A& b) {
  A out;
  for (int l = 0; l < W; ++l) out[l] = cond[l] ? a[l] : b[l];
  return out;
}
}  // namespace detail

// ---- arithmetic --------------------------------------------------------------------------------
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto operator+(const A& a, const B& b) requires LanesOperands<A, B> {
  using L = detail::OperandOf<A, B>;
  return L{detail::lanes_of<L>(a) + detail::lanes_of<L>(b)};
}
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto operator-(const A& a, const B& b) requires LanesOperands<A, B> {
  using L = detail::OperandOf<A, B>;
  return L{detail::lanes_of<L>(a) - detail::lanes_of<L>(b)};
}
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto operator*(const A& a, const B& b) requires LanesOperands<A, B> {
  using L = detail::OperandOf<A, B>;
  return L{detail::lanes_of<L>(a) * detail::lanes_of<L>(b)};
}
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto operator/(const A& a, const B& b) requires LanesOperands<A, B> {
  using L = detail::OperandOf<A, B>;
  return L{detail::lanes_of<L>(a) / detail::lanes_of<L>(b)};
}
template <class S, int W>
TAPEGRAD_POINTWISE_INLINE Lanes<S, W> operator-(const Lanes<S, W>& x) {
  return {-x.v};
}

// ---- comparisons (of the values, Lanes or Dual) and choices ------------------------------------
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto operator<(const A& a, const B& b) requires Operands<A, B> {
  using T = detail::OperandOf<A, B>;
  return Mask<T::Array::SizeAtCompileTime>{detail::lanes_of<T>(a) < detail::lanes_of<T>(b)};
}
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto operator>(const A& a, const B& b) requires Operands<A, B> {
  return b < a;
}
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto operator<=(const A& a, const B& b) requires Operands<A, B> {
  using T = detail::OperandOf<A, B>;
  return Mask<T::Array::SizeAtCompileTime>{detail::lanes_of<T>(a) <= detail::lanes_of<T>(b)};
}
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto operator>=(const A& a, const B& b) requires Operands<A, B> {
  return b <= a;
}
/// a where cond holds, else b (either may be a constant).
template <int W, class A, class B>
TAPEGRAD_POINTWISE_INLINE auto select(const Mask<W>& cond, const A& a, const B& b) requires LanesOperands<A, B> {
  using L = detail::OperandOf<A, B>;
  return L{detail::blend(cond.m, typename L::Array(detail::lanes_of<L>(a)), typename L::Array(detail::lanes_of<L>(b)))};
}
/// max(a, b), as the maximum op: ties give a (select() of Lanes above, of Dual in pointwise_dual.h).
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto max(const A& a, const B& b) requires Operands<A, B> {
  return select(a >= b, a, b);
}
/// min(a, b), as the minimum op: ties give a.
template <class A, class B>
TAPEGRAD_POINTWISE_INLINE auto min(const A& a, const B& b) requires Operands<A, B> {
  return select(a <= b, a, b);
}

// ---- functions ---------------------------------------------------------------------------------
namespace detail {
/// The sigmoid op's formula: with e = exp(-|x|) <= 1 (no term overflows), 1 / (1 + e) for
/// x >= 0 and e / (1 + e) below, here as one division of the chosen numerator.
template <class S, int W>
TAPEGRAD_POINTWISE_INLINE Eigen::Array<S, W, 1> sigmoid_of(const Eigen::Array<S, W, 1>& x) {
  using Array = Eigen::Array<S, W, 1>;
  const Array e = (-x.abs()).exp();
  const Eigen::Array<bool, W, 1> positive = x >= S(0);
  return blend(positive, Array(Array::Constant(S(1))), e) / (S(1) + e);
}
}  // namespace detail

// The functions an expression may call, one row each: F(name, y, dy/dx), the value y of the
// lanes x (an Eigen array of S) and its derivative in x and y, written as in the backward of the
// op of the same name (ops_unary.cpp). Lanes use the value (below), Dual both (pointwise_dual.h).
// clang-format off
#define TAPEGRAD_POINTWISE_FUNCTIONS(F)                  \
  F(exp,     x.exp(),                y)                  \
  F(log,     x.log(),                x.inverse())        \
  F(sqrt,    x.sqrt(),               S(0.5) / y)         \
  F(square,  x.square(),             S(2) * x)           \
  F(abs,     x.abs(),                x.sign())           \
  F(tanh,    x.tanh(),               S(1) - y.square())  \
  F(sigmoid, detail::sigmoid_of(x),  y * (S(1) - y))     \
  F(relu,    x.max(S(0)),            (x > S(0)).template cast<S>())
// clang-format on

#define TAPEGRAD_LANES_FUNCTION(name, value, derivative)                 \
  template <class S, int W>                                              \
  TAPEGRAD_POINTWISE_INLINE Lanes<S, W> name(const Lanes<S, W>& lanes) { \
    const typename Lanes<S, W>::Array& x = lanes.v;                      \
    return {value};                                                      \
  }
TAPEGRAD_POINTWISE_FUNCTIONS(TAPEGRAD_LANES_FUNCTION)
#undef TAPEGRAD_LANES_FUNCTION

}  // namespace tapegrad::pointwise_math
