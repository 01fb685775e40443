// Binary elementwise ops with broadcasting. Each op: one forward expression and one backward
// closure; every input gradient goes through reduce_to, which sums it back to the input's
// shape when that input was broadcast (a [1 x H] bias, a [B x 1] column, a [1 x 1] scalar).
#include <tapegrad/op.h>
#include <tapegrad/ops.h>

#include "broadcast.h"
#include "instantiate.h"

namespace tapegrad {
namespace {

using detail::broadcast_apply;
using detail::broadcast_shape;
using detail::reduce_to;

// Records y = f(A, B) (A, B the inputs broadcast to the output shape); backward(c, A, B, gy)
// adds the input gradients through reduce_to.
template <class S, class F, class Bwd>
Var<S> binary(const char* name, const Var<S>& a, const Var<S>& b, F f, Bwd bwd) {
  const Shape out = broadcast_shape(name, a.shape(), b.shape());
  return apply<S>(
      {name, out}, {a, b},
      [f, out](OpCtx<S>& c) {
        broadcast_apply<S>(c.x(0), c.x(1), out, [&](const auto& x0, const auto& x1) { c.y().array() = f(x0, x1); });
      },
      [bwd, out](OpCtx<S>& c) {
        const auto gy = c.gy().array();
        broadcast_apply<S>(c.x(0), c.x(1), out, [&](const auto& x0, const auto& x1) { bwd(c, x0, x1, gy); });
      });
}

}  // namespace

// y = a + b;  da = g, db = g
template <class S>
Var<S> add(const Var<S>& a, const Var<S>& b) {
  return binary<S>(
      "add", a, b, [](const auto& x0, const auto& x1) { return x0 + x1; },
      [](OpCtx<S>& c, const auto&, const auto&, const auto& g) {
        if (c.needs_grad(0)) reduce_to(c.gx(0), g);
        if (c.needs_grad(1)) reduce_to(c.gx(1), g);
      });
}

// y = a - b;  da = g, db = -g
template <class S>
Var<S> sub(const Var<S>& a, const Var<S>& b) {
  return binary<S>(
      "sub", a, b, [](const auto& x0, const auto& x1) { return x0 - x1; },
      [](OpCtx<S>& c, const auto&, const auto&, const auto& g) {
        if (c.needs_grad(0)) reduce_to(c.gx(0), g);
        if (c.needs_grad(1)) reduce_to(c.gx(1), -g);
      });
}

// y = a * b;  da = g b, db = g a
template <class S>
Var<S> mul(const Var<S>& a, const Var<S>& b) {
  return binary<S>(
      "mul", a, b, [](const auto& x0, const auto& x1) { return x0 * x1; },
      [](OpCtx<S>& c, const auto& x0, const auto& x1, const auto& g) {
        if (c.needs_grad(0)) reduce_to(c.gx(0), g * x1);
        if (c.needs_grad(1)) reduce_to(c.gx(1), g * x0);
      });
}

// y = a / b;  da = g / b, db = -g a / b^2
template <class S>
Var<S> div(const Var<S>& a, const Var<S>& b) {
  return binary<S>(
      "div", a, b, [](const auto& x0, const auto& x1) { return x0 / x1; },
      [](OpCtx<S>& c, const auto& x0, const auto& x1, const auto& g) {
        if (c.needs_grad(0)) reduce_to(c.gx(0), g / x1);
        if (c.needs_grad(1)) reduce_to(c.gx(1), -g * x0 / x1.square());
      });
}

// y = max(a, b);  da = g [a >= b], db = g [a < b]  (ties go to a)
template <class S>
Var<S> maximum(const Var<S>& a, const Var<S>& b) {
  return binary<S>(
      "maximum", a, b, [](const auto& x0, const auto& x1) { return (x0 >= x1).select(x0, x1); },
      [](OpCtx<S>& c, const auto& x0, const auto& x1, const auto& g) {
        if (c.needs_grad(0)) reduce_to(c.gx(0), (x0 >= x1).select(g, S(0)));
        if (c.needs_grad(1)) reduce_to(c.gx(1), (x0 >= x1).select(S(0), g));
      });
}

// y = min(a, b);  da = g [a <= b], db = g [a > b]  (ties go to a)
template <class S>
Var<S> minimum(const Var<S>& a, const Var<S>& b) {
  return binary<S>(
      "minimum", a, b, [](const auto& x0, const auto& x1) { return (x0 <= x1).select(x0, x1); },
      [](OpCtx<S>& c, const auto& x0, const auto& x1, const auto& g) {
        if (c.needs_grad(0)) reduce_to(c.gx(0), (x0 <= x1).select(g, S(0)));
        if (c.needs_grad(1)) reduce_to(c.gx(1), (x0 <= x1).select(S(0), g));
      });
}

TAPEGRAD_INSTANTIATE_OPS(TAPEGRAD_BINARY_OPS)

}  // namespace tapegrad
