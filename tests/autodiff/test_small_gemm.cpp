// small_gemm, the recurrences' per-step product kernel (kernels/small_gemm.h), against a plain
// triple loop. The operands hold small integers, so every sum is exact in float and double and
// the comparison is equality: any wrong index, missed tail column or lost row shows as a
// difference, not as a rounding question.
#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <vector>

#include <tapegrad/kernels/product.h>
#include <tapegrad/kernels/small_gemm.h>
#include <tapegrad/kernels/step_weight.h>

#include "product_settings.h"

namespace {

using tapegrad::Index;
using tapegrad::Matrix;
using tapegrad::kernels::Accumulate;
using tapegrad::kernels::Assign;
using tapegrad::kernels::Write;

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

template <class S, Write W>
void check_shape(Index m, Index k, Index n, std::mt19937& rng) {
  Strided<S> a(m, k, 3, rng), b(k, n, 5, rng), c(m, n, 2, rng);
  Strided<S> expected = c;
  for (Index i = 0; i < m; ++i) {
    for (Index j = 0; j < n; ++j) {
      S sum(0);
      for (Index p = 0; p < k; ++p) sum += a.at(i, p) * b.at(p, j);
      expected.at(i, j) = W == Accumulate ? expected.at(i, j) + sum : sum;
    }
  }
  tapegrad::kernels::small_gemm<S, W>(c.data.data(), c.stride, a.data.data(), a.stride, b.data.data(), b.stride, m, k,
                                      n);
  ASSERT_EQ(c.data, expected.data) << "m=" << m << " k=" << k << " n=" << n << " accumulate=" << (W == Accumulate);
}

template <class S>
void check_all_shapes() {
  std::mt19937 rng(7);
  // Rows: every remainder of the 4-row blocks; columns: below, at and past one, three, four and
  // five packets of any ISA (4, 8 or 16 lanes), with tails; depth 0 (C unchanged or zeroed) to 300.
  for (const Index m : {0, 1, 2, 3, 4, 5, 7, 9, 16}) {
    for (const Index n : {0, 1, 3, 8, 15, 16, 17, 33, 48, 63, 64, 65, 80, 97, 130}) {
      for (const Index k : {0, 1, 5, 32, 300}) {
        check_shape<S, Accumulate>(m, k, n, rng);
        check_shape<S, Assign>(m, k, n, rng);
      }
    }
  }
}

TEST(SmallGemm, MatchesTheTripleLoopExactlyInFloat) { check_all_shapes<float>(); }
TEST(SmallGemm, MatchesTheTripleLoopExactlyInDouble) { check_all_shapes<double>(); }

// StepWeight gives lhs W and lhs W^T whichever kernel step_product_fits picks: a batch of
// kStepMaxRows goes to small_gemm, one more row to the general product; with the threads in effect.
TEST(SmallGemm, StepWeightMatchesEigenOnBothKernelsAndBothSides) {
  using tapegrad::kernels::kStepMaxRows;
  for (const Index rows : {kStepMaxRows, kStepMaxRows + 1}) {
    const Matrix<double> w = Matrix<double>::Random(64, 96);
    const Matrix<double> h = Matrix<double>::Random(rows, 64);
    const Matrix<double> da = Matrix<double>::Random(rows, 96);
    EXPECT_EQ(tapegrad::kernels::step_product_fits(rows, 96), rows <= kStepMaxRows);

    Matrix<double> fwd = Matrix<double>::Ones(rows, 96);
    tapegrad::kernels::StepWeight<double>(w, false, rows).product(fwd, h, Accumulate);
    const Matrix<double> fwd_expected = (Matrix<double>::Ones(rows, 96) + h * w).eval();
    EXPECT_LT((fwd - fwd_expected).cwiseAbs().maxCoeff(), 1e-12) << "rows " << rows;

    Matrix<double> bwd = Matrix<double>::Ones(rows, 64);
    tapegrad::kernels::StepWeight<double>(w, true, rows).product(bwd, da, Assign);
    const Matrix<double> bwd_expected = da * w.transpose();
    EXPECT_LT((bwd - bwd_expected).cwiseAbs().maxCoeff(), 1e-12) << "rows " << rows;
  }
}

// kernels::product, the product every op calls, takes small_gemm for step shapes of plain
// row-major operands and blocks of them, and the general product for transposed operands and
// batches past kStepMaxRows: exact with the route on and off, for Assign over NaNs and Accumulate.
template <class S>
void check_product_routes() {
  using tapegrad::kernels::kStepMaxRows;
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> value(-3, 3);
  const auto integers = [&](Index r, Index c) {
    return Matrix<S>(Matrix<S>::NullaryExpr(r, c, [&] { return S(value(rng)); }));
  };
  for (const bool small : {true, false}) {
    const tapegrad::test::ProductSettingsScope route{{.small = small}};
    for (const Index m : {Index{1}, Index{5}, kStepMaxRows, kStepMaxRows + 1}) {
      const Matrix<S> a_big = integers(m + 2, 40), b_big = integers(37, 70);
      const auto a = a_big.block(1, 3, m, 33);
      const auto b = b_big.block(2, 1, 33, 66);
      Matrix<S> want = Matrix<S>::Zero(m, 66);
      for (Index i = 0; i < m; ++i)
        for (Index j = 0; j < 66; ++j)
          for (Index p = 0; p < 33; ++p) want(i, j) += a(i, p) * b(p, j);
      Matrix<S> c = Matrix<S>::Constant(m, 66, std::numeric_limits<S>::quiet_NaN());
      tapegrad::kernels::product(c, a, b, Assign);
      EXPECT_EQ(c, want) << "blocks, m=" << m << " small=" << small;
      Matrix<S> d = integers(m + 1, 70);
      Matrix<S> d_want = d;
      d_want.block(1, 2, m, 66) += want;
      tapegrad::kernels::product(d.block(1, 2, m, 66), Matrix<S>(a), Matrix<S>(b), Accumulate);
      EXPECT_EQ(d, d_want) << "plain into a block, m=" << m << " small=" << small;
      const Matrix<S> bt = Matrix<S>(b).transpose();
      tapegrad::kernels::product(c, a, bt.transpose(), Assign);  // transposed rhs: the general product
      EXPECT_EQ(c, want) << "A B^T^T, m=" << m << " small=" << small;
    }
  }
}

TEST(SmallGemm, ProductRoutesStepShapesExactlyInFloat) { check_product_routes<float>(); }
TEST(SmallGemm, ProductRoutesStepShapesExactlyInDouble) { check_product_routes<double>(); }

// The rule of step_product_fits and small_gemm_threads at the edges of their limits, whatever
// their values: every batch up to kStepMaxRows but a single row wider than kStepMaxVectorCols;
// one thread up to kOneThreadStepWork multiply-adds, the general rule above.
TEST(SmallGemm, StepRulesFollowTheirLimits) {
  using tapegrad::kernels::kOneThreadStepWork;
  using tapegrad::kernels::kStepMaxRows;
  using tapegrad::kernels::kStepMaxVectorCols;
  using tapegrad::kernels::small_gemm_threads;
  using tapegrad::kernels::step_product_fits;
  using tapegrad::kernels::threads_for_work;
  EXPECT_TRUE(step_product_fits(kStepMaxRows, 4 * kStepMaxVectorCols));
  EXPECT_FALSE(step_product_fits(kStepMaxRows + 1, 4 * kStepMaxVectorCols));
  EXPECT_TRUE(step_product_fits(2, 4 * kStepMaxVectorCols));
  EXPECT_TRUE(step_product_fits(1, kStepMaxVectorCols));
  EXPECT_FALSE(step_product_fits(1, kStepMaxVectorCols + 1));
  const tapegrad::test::ProductSettingsScope two_threads{{.threads = 2, .min_parallel = 0}};
  EXPECT_EQ(small_gemm_threads(kOneThreadStepWork), 1);  // one thread, the other for dW
  const int split = tapegrad::kernels::kParallelProducts ? 2 : 1;
  EXPECT_EQ(threads_for_work(2 * kOneThreadStepWork), split);
  EXPECT_EQ(small_gemm_threads(2 * kOneThreadStepWork), split);
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
      tapegrad::kernels::small_gemm_on<float, Accumulate>(2, c.data.data(), c.stride, a.data.data(), a.stride,
                                                          b.data.data(), b.stride, m, 300, n);
      ASSERT_EQ(c.data, expected.data) << "m=" << m << " n=" << n;
    }
  }
}

}  // namespace
