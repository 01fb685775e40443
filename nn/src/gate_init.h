// Per-gate-block initialisation of fused gate weights (private to nn/src).
#pragma once

#include <random>

#include <tapegrad/nn/init.h>

namespace tapegrad::nn::detail {

/// Each [rows x H] column block of W (W has gates * H columns) gets its own init, so a
/// fused [H x 4H] recurrent weight is four orthogonal blocks rather than one wide matrix.
template <class S, class Init>
void init_gate_blocks(Matrix<S>& w, Index gates, Index hidden, Init init) {
  Matrix<S> block(w.rows(), hidden);
  for (Index g = 0; g < gates; ++g) {
    init(block);
    w.middleCols(g * hidden, hidden) = block;
  }
}

}  // namespace tapegrad::nn::detail
