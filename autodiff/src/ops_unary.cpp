// Elementwise ops: one row each, the forward value and the derivative side by side.
#include <tapegrad/op.h>
#include <tapegrad/ops.h>

#include "instantiate.h"

namespace tapegrad {
namespace {

// Records y = f(x) elementwise with dL/dx += dL/dy * d(x, y). f and d receive Eigen arrays.
template <class S, class F, class D>
Var<S> elementwise(const char* name, const Var<S>& x, F f, D d) {
  return apply<S>(
      {name, x.shape()}, {x}, [f](OpCtx<S>& c) { c.y().array() = f(c.x(0).array()); },
      [d](OpCtx<S>& c) {
        if (c.needs_grad(0)) c.gx(0).array() += c.gy().array() * d(c.x(0).array(), c.y().array());
      });
}

}  // namespace

// y = tanh(x);  dy/dx = 1 - y^2
template <class S>
Var<S> tanh(const Var<S>& x) {
  return elementwise<S>("tanh", x, [](const auto& a) { return a.tanh(); },
                        [](const auto&, const auto& y) { return S(1) - y.square(); });
}

#define TAPEGRAD_INSTANTIATE_UNARY(S) template Var<S> tanh(const Var<S>&);
TAPEGRAD_FOR_EACH_SCALAR(TAPEGRAD_INSTANTIATE_UNARY)

}  // namespace tapegrad
