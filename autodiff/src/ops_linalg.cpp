// Matrix products and layout. The products write straight into their destination: no
// temporary for the forward value or for either input gradient.
#include <tapegrad/kernels/product.h>
#include <tapegrad/kernels/transpose_copy.h>
#include <tapegrad/op.h>
#include <tapegrad/ops.h>

#include "broadcast.h"
#include "instantiate.h"

namespace tapegrad {

// y = a b, [n x k] [k x m] -> [n x m];  da = g b^T, db = a^T g
template <class S>
Var<S> matmul(const Var<S>& a, const Var<S>& b) {
  TAPEGRAD_CHECK(a.cols() == b.rows(), ShapeError, "matmul: a is {} but b is {}; a.cols must equal b.rows", a.shape(),
                 b.shape());
  return apply<S>(
      {"matmul", {a.rows(), b.cols()}}, {a, b},
      [](OpCtx<S>& c) {
        c.y().setZero();  // well defined (zeros) when the inner dimension is 0
        kernels::product(c.y(), c.x(0), c.x(1), kernels::Accumulate);
      },
      [](OpCtx<S>& c) {
        if (c.needs_grad(0)) c.add_input_grad(0, 1);   // g W^T, from one copy of W^T per sweep for a leaf W
        if (c.needs_grad(1)) c.add_weight_grad(1, 0);  // x^T g, batched over steps for a leaf W
      });
}

// y = a^T;  da = g^T
template <class S>
Var<S> transpose(const Var<S>& a) {
  return apply<S>(
      {"transpose", {a.cols(), a.rows()}}, {a},
      [](OpCtx<S>& c) { kernels::transpose_copy<kernels::Assign>(c.x(0), c.y()); },
      [](OpCtx<S>& c) {
        if (c.needs_grad(0)) kernels::transpose_copy<kernels::Accumulate>(c.gy(), c.gx(0));
      });
}

// y = x W + 1 b, x [n x k], W [k x m], b [1 x m];  dx = g W^T, dW = x^T g, db = sum of g's rows
template <class S>
Var<S> affine(const Var<S>& x, const Var<S>& w, const Var<S>& b) {
  TAPEGRAD_CHECK(x.cols() == w.rows(), ShapeError, "affine: x is {} but w is {}; x.cols must equal w.rows", x.shape(),
                 w.shape());
  TAPEGRAD_CHECK(b.rows() == 1 && b.cols() == w.cols(), ShapeError,
                 "affine: b is {} but must be a row [1 x {}] to match w {}", b.shape(), w.cols(), w.shape());
  return apply<S>(
      {"affine", {x.rows(), w.cols()}}, {x, w, b},
      [](OpCtx<S>& c) {
        c.y().rowwise() = c.x(2).row(0);
        kernels::product(c.y(), c.x(0), c.x(1), kernels::Accumulate);
      },
      [](OpCtx<S>& c) {
        if (c.needs_grad(0)) c.add_input_grad(0, 1);   // g W^T, from one copy of W^T per sweep for a leaf W
        if (c.needs_grad(1)) c.add_weight_grad(1, 0);  // x^T g, batched over steps for a leaf W
        // b is broadcast over the rows: the same reduction as a broadcasting add, which also
        // handles an empty batch (fuzz_graph found Eigen's column sum of [0 x m] to be UB).
        if (c.needs_grad(2)) detail::reduce_to(c.gx(2), c.gy().array());
      });
}

TAPEGRAD_INSTANTIATE_OPS(TAPEGRAD_LINALG_OPS)

}  // namespace tapegrad
