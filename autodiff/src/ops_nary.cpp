// Ops over a variable number of same-shaped inputs.
#include <tapegrad/op.h>
#include <tapegrad/ops.h>

#include "instantiate.h"

namespace tapegrad {

// y = sum_i terms_i;  d/d(terms_i) = g for every term (a term given twice gets 2g).
template <class S>
Var<S> add_n(std::span<const Var<S>> terms) {
  TAPEGRAD_CHECK(!terms.empty(), ValueError, "add_n: terms is empty; it needs at least one tensor");
  const Shape shape = terms[0].shape();
  for (std::size_t i = 1; i < terms.size(); ++i) {
    TAPEGRAD_CHECK(terms[i].shape() == shape, ShapeError, "add_n: terms[{}] is {} but terms[0] is {}; they must match",
                   i, terms[i].shape(), shape);
  }
  return apply<S>(
      {"add_n", shape}, terms,
      [](OpCtx<S>& c) {
        c.y() = c.x(0);
        for (std::size_t i = 1; i < c.num_inputs(); ++i) c.y() += c.x(i);
      },
      [](OpCtx<S>& c) {
        for (std::size_t i = 0; i < c.num_inputs(); ++i) {
          if (c.needs_grad(i)) c.gx(i) += c.gy();
        }
      });
}

TAPEGRAD_INSTANTIATE_OPS(TAPEGRAD_NARY_OPS)

}  // namespace tapegrad
