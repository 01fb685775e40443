// The size check of a module's constructor (private to nn/src): both sizes positive, and an
// error that names the module and both options.
#pragma once

#include <tapegrad/error.h>
#include <tapegrad/tensor.h>

namespace tapegrad::nn::detail {

inline void check_positive_sizes(const char* module, const char* a, Index a_value, const char* b, Index b_value) {
  TAPEGRAD_CHECK(a_value > 0 && b_value > 0, ValueError, "{}: {} ({}) and {} ({}) must be positive", module, a, a_value,
                 b, b_value);
}

}  // namespace tapegrad::nn::detail
