// Checked arithmetic on sizes computed from user input (shape products, concatenated widths):
// a signed overflow is undefined behaviour, and a wrapped size would pass the checks built on it.
// Each helper throws ShapeError naming the op instead.
#pragma once

#include <cstddef>
#include <limits>

#include <tapegrad/error.h>
#include <tapegrad/tensor.h>

namespace tapegrad::detail {

/// a + b for two sizes (a concatenation's width); ShapeError naming op if it overflows.
[[nodiscard]] inline Index checked_add(const char* op, Index a, Index b) {
  Index sum = 0;
  if (__builtin_add_overflow(a, b, &sum)) [[unlikely]]
    raise<ShapeError>("{}: the combined size {} + {} overflows a 64-bit index", op, a, b);
  return sum;
}

/// Throws ShapeError naming op (and what, e.g. "output") unless a tensor of shape s has a size
/// rows * cols, and a byte count, that fit in an index: the product is computed without overflow.
template <class S>
void check_tensor_size(const char* op, const char* what, const Shape& s) {
  Index n = 0;
  if (s.rows < 0 || s.cols < 0 || __builtin_mul_overflow(s.rows, s.cols, &n) ||
      n > std::numeric_limits<Index>::max() / static_cast<Index>(sizeof(S))) [[unlikely]]
    raise<ShapeError>("{}: the {} shape {} has more elements than a tensor can hold", op, what, s);
}

}  // namespace tapegrad::detail
