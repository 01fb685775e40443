// transpose_copy, the tiled transpose behind the recurrences' W^T copies and the transpose op,
// against element-by-element indexing: every tile remainder (shapes below, at and above one tile
// of a cache line: 16 floats or 8 doubles), empty shapes, and the accumulating form. Copies are exact, so the
// comparison is equality.
#include <gtest/gtest.h>

#include <array>

#include <tapegrad/kernels/transpose_copy.h>

namespace {

using tapegrad::Index;
using tapegrad::Matrix;

template <class S>
void check_shape(Index rows, Index cols) {
  Matrix<S> src(rows, cols);
  for (Index i = 0; i < rows; ++i) {
    for (Index j = 0; j < cols; ++j) src(i, j) = S(i * 1000 + j);
  }
  const Matrix<S> copy = tapegrad::kernels::transpose_of(src);
  ASSERT_EQ(copy.rows(), cols);
  ASSERT_EQ(copy.cols(), rows);
  Matrix<S> sum = Matrix<S>::Constant(cols, rows, S(7));
  tapegrad::kernels::transpose_copy<tapegrad::kernels::Accumulate>(src, sum);
  for (Index i = 0; i < rows; ++i) {
    for (Index j = 0; j < cols; ++j) {
      ASSERT_EQ(copy(j, i), S(i * 1000 + j)) << rows << " x " << cols << " at (" << j << ", " << i << ")";
      ASSERT_EQ(sum(j, i), S(i * 1000 + j + 7)) << rows << " x " << cols << " at (" << j << ", " << i << ")";
    }
  }
}

constexpr std::array<Index, 9> kSizes{0, 1, 3, 7, 8, 9, 16, 17, 41};

TEST(TransposeCopy, EveryTileRemainderFloat) {
  for (const Index r : kSizes) {
    for (const Index c : kSizes) check_shape<float>(r, c);
  }
  check_shape<float>(64, 1024);
  check_shape<float>(1024, 64);
}

TEST(TransposeCopy, EveryTileRemainderDouble) {
  for (const Index r : kSizes) {
    for (const Index c : kSizes) check_shape<double>(r, c);
  }
  check_shape<double>(100, 300);
}

// dst may be a block of a larger matrix: only its own elements change.
TEST(TransposeCopy, IntoABlockLeavesTheRestAlone) {
  const Matrix<float> src = Matrix<float>::Random(19, 23);
  Matrix<float> big = Matrix<float>::Constant(40, 40, 5.0F);
  tapegrad::kernels::transpose_copy<tapegrad::kernels::Assign>(src, big.block(3, 4, 23, 19));
  for (Index i = 0; i < 40; ++i) {
    for (Index j = 0; j < 40; ++j) {
      const bool inside = i >= 3 && i < 26 && j >= 4 && j < 23;
      EXPECT_EQ(big(i, j), inside ? src(j - 4, i - 3) : 5.0F) << i << ", " << j;
    }
  }
}

}  // namespace
