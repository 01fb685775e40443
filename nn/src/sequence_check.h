// Shared by the built-in cells' fused paths (private to nn/src).
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include <tapegrad/nn/sequence.h>
#include <tapegrad/nn/state.h>

namespace tapegrad::nn::detail {

/// The last step's row block of a time-major [T*B x .] result: the result itself when T = 1
/// (no slice op recorded).
template <class S>
Var<S> last_step_rows(const Var<S>& rows, Index batch) {
  return rows.rows() == batch ? rows : slice_rows(rows, rows.rows() - batch, batch);
}

}  // namespace tapegrad::nn::detail
