// Shared by the built-in cells' forward_sequence and forward_tokens (private to nn/src).
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include <tapegrad/nn/sequence.h>
#include <tapegrad/nn/state.h>

namespace tapegrad::nn::detail {

/// Checks s0 (as forward_sequence does), that the embedding is [K x input_size] and that there
/// are T*B ids with T >= 1 (their range is checked by the gather ops). Returns T.
template <class S>
Index check_tokens(std::string_view cell, const Var<S>& embedding, std::size_t n_ids, Index input_size,
                   const State<S>& s0, std::span<const char* const> names, Index hidden);

/// The last step's row block of a time-major [T*B x .] result: the result itself when T = 1
/// (no slice op recorded).
template <class S>
Var<S> last_step_rows(const Var<S>& rows, Index batch) {
  return rows.rows() == batch ? rows : slice_rows(rows, rows.rows() - batch, batch);
}

}  // namespace tapegrad::nn::detail
