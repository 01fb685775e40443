// Broadcasting shared by every binary op (ops_binary.cpp) and by mask_mul / where (ops_shape.cpp).
// Each dimension broadcasts when the sizes are equal or one of them is 1; the gradient of a
// broadcast input is summed back to its own shape by reduce_to.
#pragma once

#include <tapegrad/error.h>
#include <tapegrad/tensor.h>

namespace tapegrad::detail {

/// The shape of a op b under broadcasting, or ShapeError "op: cannot broadcast a [..] with b [..]".
inline Shape broadcast_shape(const char* op, Shape a, Shape b, const char* a_name = "a", const char* b_name = "b") {
  auto dim = [](Index x, Index y, Index& out) {
    if (x == y || y == 1) {
      out = x;
    } else if (x == 1) {
      out = y;
    } else {
      return false;
    }
    return true;
  };
  Shape out;
  const bool ok = dim(a.rows, b.rows, out.rows) && dim(a.cols, b.cols, out.cols);
  TAPEGRAD_CHECK(ok, ShapeError, "{}: cannot broadcast {} {} with {} {}", op, a_name, a, b_name, b);
  return out;
}

/// m repeated up to shape out (m's dims are equal to out's or 1), as an Eigen expression.
template <class S>
auto expand(const Matrix<S>& m, Shape out) {
  return m.replicate(m.rows() == out.rows ? 1 : out.rows, m.cols() == out.cols ? 1 : out.cols);
}

/// Calls f(A, B) with a and b as Eigen arrays of shape out: the plain arrays when no broadcast
/// is needed (the common, fast case), replicated expressions otherwise.
template <class S, class F>
void broadcast_apply(const Matrix<S>& a, const Matrix<S>& b, Shape out, F&& f) {
  if (shape_of(a) == out && shape_of(b) == out) {
    f(a.array(), b.array());
  } else {
    f(expand(a, out).array(), expand(b, out).array());
  }
}

/// acc += g summed over the dimensions where acc was broadcast (size 1 in acc, larger in g).
/// g is an array expression of the op's output shape; acc is an input's gradient slot.
template <class S, class G>
void reduce_to(Matrix<S>& acc, const G& g) {
  if (g.size() == 0) return;  // nothing to add; Eigen's partial sums of an empty array offset a null pointer
  const bool rows = acc.rows() != g.rows();
  const bool cols = acc.cols() != g.cols();
  if (rows && cols) {
    acc(0, 0) += g.sum();
  } else if (rows) {
    acc.array() += g.colwise().sum();
  } else if (cols) {
    acc.array() += g.rowwise().sum();
  } else {
    acc.array() += g;
  }
}

}  // namespace tapegrad::detail
