// small_gemm, the recurrences' per-step product kernel (Note [Step products]), against a plain
// triple loop. The operands hold small integers, so every sum is exact in float and double and
// the comparison is equality: any wrong index, missed tail column or lost row shows as a
// difference, not as a rounding question.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include <tapegrad/small_gemm.h>

#include "product_settings.h"

namespace {

using tapegrad::Index;
using tapegrad::Matrix;

// Row-major storage with a row stride wider than the row, filled with integers in [-3, 3]; the
// padding holds a sentinel that must never be read into C or written.
template <class S>
struct Strided {
  Index rows, cols, stride;
  std::vector<S> data;
  Strided(Index r, Index c, Index pad, std::mt19937& rng) : rows(r), cols(c), stride(c + pad), data(r * (c + pad)) {
    std::uniform_int_distribution<int> value(-3, 3);
    for (Index i = 0; i < rows; ++i) {
      for (Index j = 0; j < stride; ++j) data[i * stride + j] = j < cols ? S(value(rng)) : S(1e6);
    }
  }
  S& at(Index i, Index j) { return data[i * stride + j]; }
};

template <class S, bool Accumulate>
void check_shape(Index m, Index k, Index n, std::mt19937& rng) {
  Strided<S> a(m, k, 3, rng), b(k, n, 5, rng), c(m, n, 2, rng);
  Strided<S> expected = c;
  for (Index i = 0; i < m; ++i) {
    for (Index j = 0; j < n; ++j) {
      S sum(0);
      for (Index p = 0; p < k; ++p) sum += a.at(i, p) * b.at(p, j);
      expected.at(i, j) = Accumulate ? expected.at(i, j) + sum : sum;
    }
  }
  tapegrad::detail::small_gemm<S, Accumulate>(c.data.data(), c.stride, a.data.data(), a.stride, b.data.data(), b.stride,
                                              m, k, n);
  ASSERT_EQ(c.data, expected.data) << "m=" << m << " k=" << k << " n=" << n << " accumulate=" << Accumulate;
}

template <class S>
void check_all_shapes() {
  std::mt19937 rng(7);
  // Rows: every remainder of the 4-row blocks; columns: below, at and past one, three, four and
  // five packets of any ISA (4, 8 or 16 lanes), with tails; depth 0 (C unchanged or zeroed) to 300.
  for (const Index m : {0, 1, 2, 3, 4, 5, 7, 9, 16}) {
    for (const Index n : {0, 1, 3, 8, 15, 16, 17, 33, 48, 63, 64, 65, 80, 97, 130}) {
      for (const Index k : {0, 1, 5, 32, 300}) {
        check_shape<S, true>(m, k, n, rng);
        check_shape<S, false>(m, k, n, rng);
      }
    }
  }
}

TEST(SmallGemm, MatchesTheTripleLoopExactlyInFloat) { check_all_shapes<float>(); }
TEST(SmallGemm, MatchesTheTripleLoopExactlyInDouble) { check_all_shapes<double>(); }

// StepWeight gives lhs W and lhs W^T whichever kernel step_product_fits picks: the 16-row batch
// goes to small_gemm, the 80-row batch (m > 64) to Eigen; with the threads in effect.
TEST(SmallGemm, StepWeightMatchesEigenOnBothKernelsAndBothSides) {
  for (const Index rows : {16, 80}) {
    const Matrix<double> w = Matrix<double>::Random(64, 96);
    const Matrix<double> h = Matrix<double>::Random(rows, 64);
    const Matrix<double> da = Matrix<double>::Random(rows, 96);
    EXPECT_EQ(tapegrad::detail::step_product_fits(rows, 96), rows <= 64);

    Matrix<double> fwd = Matrix<double>::Ones(rows, 96);
    tapegrad::detail::StepWeight<double>(w, false, rows).add(fwd, h);
    const Matrix<double> fwd_expected = (Matrix<double>::Ones(rows, 96) + h * w).eval();
    EXPECT_LT((fwd - fwd_expected).cwiseAbs().maxCoeff(), 1e-12) << "rows " << rows;

    Matrix<double> bwd = Matrix<double>::Ones(rows, 64);
    tapegrad::detail::StepWeight<double>(w, true, rows).assign(bwd, da);
    const Matrix<double> bwd_expected = da * w.transpose();
    EXPECT_LT((bwd - bwd_expected).cwiseAbs().maxCoeff(), 1e-12) << "rows " << rows;
  }
}

// The rule of step_product_fits and small_gemm_threads as measured (docs/performance.md): every
// step shape up to 64 rows but a single wide row, on any thread count; one thread up to 2^21
// multiply-adds, split above.
TEST(SmallGemm, FitsTheMeasuredStepShapes) {
  using tapegrad::detail::small_gemm_threads;
  using tapegrad::detail::step_product_fits;
  EXPECT_TRUE(step_product_fits(16, 128));    // RNN small, 1.4x faster
  EXPECT_TRUE(step_product_fits(8, 256));     // LSTM long backward, 2.9x
  EXPECT_TRUE(step_product_fits(64, 4096));   // LSTM large forward, 1.2x
  EXPECT_TRUE(step_product_fits(64, 1024));   // RNN large: equal or faster, 1.9x on two threads
  EXPECT_TRUE(step_product_fits(1, 32));      // RNN tiny backward, 2.5x
  EXPECT_FALSE(step_product_fits(1, 128));    // LSTM tiny forward: Eigen's matrix-vector product
  EXPECT_FALSE(step_product_fits(128, 128));  // more rows than measured
  const tapegrad::test::ProductSettingsScope two_threads{{.threads = 2}};
  EXPECT_EQ(small_gemm_threads(16.0 * 128 * 128), 1);  // one thread, the other for dW
  const int split = tapegrad::kParallelProducts ? 2 : 1;
  EXPECT_EQ(small_gemm_threads(32.0 * 512 * 512), split);    // RNN medium
  EXPECT_EQ(small_gemm_threads(64.0 * 1024 * 1024), split);  // RNN large
}

// small_gemm_on splits the columns over the threads it gets: any split must give the same exact
// sums, including column counts below one register block (a thread with nothing to do).
TEST(SmallGemm, SplitOverTwoThreadsMatchesTheTripleLoopExactly) {
  std::mt19937 rng(11);
  for (const Index n : {1, 17, 64, 65, 130, 200, 520}) {
    for (const Index m : {1, 5, 16}) {
      Strided<float> a(m, 300, 2, rng), b(300, n, 3, rng), c(m, n, 1, rng);
      Strided<float> expected = c;
      for (Index i = 0; i < m; ++i) {
        for (Index j = 0; j < n; ++j) {
          float sum = 0;
          for (Index p = 0; p < 300; ++p) sum += a.at(i, p) * b.at(p, j);
          expected.at(i, j) += sum;
        }
      }
      tapegrad::detail::small_gemm_on<float, true>(2, c.data.data(), c.stride, a.data.data(), a.stride, b.data.data(),
                                                   b.stride, m, 300, n);
      ASSERT_EQ(c.data, expected.data) << "m=" << m << " n=" << n;
    }
  }
}

}  // namespace
