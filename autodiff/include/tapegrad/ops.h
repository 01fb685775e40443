// Every differentiable primitive. The ops themselves, with their derivatives, are listed in
// op_list.h, which this header turns into declarations; each op checks its arguments before it
// records anything (errors name the op, the argument and the shapes), computes its value eagerly,
// and records its backward closure next to the forward in ops_<family>.cpp. Every op has a row in
// tests/autodiff/op_cases.cpp, checked by finite differences; docs/ops.md is the user's table.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <type_traits>
#include <vector>

#include <tapegrad/op_list.h>
#include <tapegrad/tape.h>

namespace tapegrad {

/// Which axis a reduction collapses: Rows gives [1 x cols] (e.g. sum over a batch), Cols gives
/// [rows x 1] (e.g. sum over features).
enum class Axis { Rows, Cols };
/// How per-row losses are reduced: to their sum or mean ([1 x 1]), or not at all (None: one
/// loss per row, [N x 1], as PyTorch's reduction='none').
enum class Reduction { Sum, Mean, None };

/// The hidden and cell states of a fused LSTM over T steps, [T*B x H] each, time-major.
template <class S>
struct LstmStates {
  Var<S> h;
  Var<S> c;
};

#define TAPEGRAD_DECLARE_OP(name, ret, params) \
  template <class S>                           \
  ret name params;
TAPEGRAD_OPS(TAPEGRAD_DECLARE_OP, S)
#undef TAPEGRAD_DECLARE_OP

/// A copy of x's value with no history: gradients stop here (stop-gradient).
template <class S>
Var<S> detach(const Var<S>& x) {
  return x.tape().constant(x.value());
}

template <class S>
Var<S> concat_cols(std::initializer_list<Var<S>> parts) {
  return concat_cols<S>(std::span<const Var<S>>(parts.begin(), parts.size()));
}
template <class S>
Var<S> concat_rows(std::initializer_list<Var<S>> parts) {
  return concat_rows<S>(std::span<const Var<S>>(parts.begin(), parts.size()));
}
template <class S>
Var<S> add_n(std::initializer_list<Var<S>> terms) {
  return add_n<S>(std::span<const Var<S>>(terms.begin(), terms.size()));
}

// ---- operators -------------------------------------------------------------------------------
template <class S>
Var<S> operator+(const Var<S>& a, const Var<S>& b) {
  return add(a, b);
}
template <class S>
Var<S> operator-(const Var<S>& a, const Var<S>& b) {
  return sub(a, b);
}
template <class S>
Var<S> operator*(const Var<S>& a, const Var<S>& b) {
  return mul(a, b);
}
template <class S>
Var<S> operator/(const Var<S>& a, const Var<S>& b) {
  return div(a, b);
}
template <class S>
Var<S> operator-(const Var<S>& x) {
  return neg(x);
}
template <class S>
Var<S> operator+(const Var<S>& x, std::type_identity_t<S> c) {
  return add_scalar(x, c);
}
template <class S>
Var<S> operator+(std::type_identity_t<S> c, const Var<S>& x) {
  return add_scalar(x, c);
}
template <class S>
Var<S> operator-(const Var<S>& x, std::type_identity_t<S> c) {
  return add_scalar(x, -c);
}
template <class S>
Var<S> operator-(std::type_identity_t<S> c, const Var<S>& x) {
  return add_scalar(neg(x), c);
}
template <class S>
Var<S> operator*(const Var<S>& x, std::type_identity_t<S> c) {
  return mul_scalar(x, c);
}
template <class S>
Var<S> operator*(std::type_identity_t<S> c, const Var<S>& x) {
  return mul_scalar(x, c);
}
template <class S>
Var<S> operator/(const Var<S>& x, std::type_identity_t<S> c) {
  return mul_scalar(x, S(1) / c);
}

}  // namespace tapegrad
