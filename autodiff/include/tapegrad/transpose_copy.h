// A transposed copy of a matrix, in tiles of one cache line by one cache line.
//
// Eigen's `dst = src.transpose()` walks dst in order and src down its columns: for a 1024 x 1024
// float matrix every read of src touches a new cache line, and the copy took 3.4 ms here, as long
// as eight of RNN large's split step products. Copying square tiles of 64 bytes a side reads and
// writes whole lines that stay in L1: 0.28 ms for the same matrix, 2.1 ms against 16.2 for LSTM
// large's 1024 x 4096 (bench_step_product's BM_TransposeCopy; 8- and 32-wide tiles measured 0.60
// and 0.76 ms on 1024 x 1024). The recurrences make such a copy of W once per backward sweep
// (StepWeight in tapegrad/small_gemm.h), and the transpose op makes one per call.
#pragma once

#include <algorithm>

#include <tapegrad/tensor.h>

namespace tapegrad::detail {

/// dst (+)= src^T for row-major matrices; dst must already be [src.cols() x src.rows()] and must
/// not overlap src. Accumulate: add to dst; otherwise overwrite it.
template <bool Accumulate, class S, class Dst>
void transpose_copy(const Matrix<S>& src, Dst&& dst) {
  constexpr Index kTile = std::max<Index>(1, 64 / static_cast<Index>(sizeof(S)));  // one cache line of S
  const Index rows = src.rows();
  const Index cols = src.cols();
  for (Index i = 0; i < rows; i += kTile) {
    const Index tile_rows = std::min(kTile, rows - i);
    for (Index j = 0; j < cols; j += kTile) {
      const Index tile_cols = std::min(kTile, cols - j);
      if constexpr (Accumulate) {
        dst.block(j, i, tile_cols, tile_rows) += src.block(i, j, tile_rows, tile_cols).transpose();
      } else {
        dst.block(j, i, tile_cols, tile_rows) = src.block(i, j, tile_rows, tile_cols).transpose();
      }
    }
  }
}

/// src^T as a new matrix, through transpose_copy.
template <class S>
Matrix<S> transpose_of(const Matrix<S>& src) {
  Matrix<S> out(src.cols(), src.rows());
  transpose_copy<false>(src, out);
  return out;
}

}  // namespace tapegrad::detail
