// A transposed copy of a row-major matrix in square tiles of one cache line a side. Eigen's
// `dst = src.transpose()` reads src down its columns, touching a new cache line per element of a
// large matrix; whole-line tiles stay in L1 (bench_step_product's BM_TransposeCopy measures it).
// The recurrences copy W^T once per backward sweep (step_weight.h), the transpose op once a call.
#pragma once

#include <algorithm>

#include <tapegrad/kernels/write.h>
#include <tapegrad/tensor.h>

namespace tapegrad::kernels {

/// dst (+)= src^T; dst must already be [src.cols() x src.rows()] and must not overlap src.
template <Write W, class S, class Dst>
void transpose_copy(const Matrix<S>& src, Dst&& dst) {
  constexpr Index kTile = std::max<Index>(1, 64 / static_cast<Index>(sizeof(S)));  // one cache line of S
  const Index rows = src.rows();
  const Index cols = src.cols();
  for (Index i = 0; i < rows; i += kTile) {
    const Index tile_rows = std::min(kTile, rows - i);
    for (Index j = 0; j < cols; j += kTile) {
      const Index tile_cols = std::min(kTile, cols - j);
      if constexpr (W == Accumulate) {
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
  transpose_copy<Assign>(src, out);
  return out;
}

}  // namespace tapegrad::kernels
