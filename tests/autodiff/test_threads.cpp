// set_num_threads: the number in effect, a bad count, and that a product large enough for Eigen
// to split across threads gives the single-thread numbers (to float rounding: Eigen's blocking
// depends on the thread count, so the summation order may differ), and the rule that keeps
// products below min_parallel_work() on one thread (kernels/threads.h).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <thread>

#include <tapegrad/kernels/threads.h>
#include <tapegrad/tapegrad.h>

#include "product_settings.h"

namespace {

using tapegrad::Matrix;
using tapegrad::kernels::kParallelProducts;
using tapegrad::kernels::product_threads;

TEST(Threads, SetNumThreadsReportsTheCountInEffect) {
  const int before = tapegrad::num_threads();
  EXPECT_EQ(tapegrad::set_num_threads(1), 1);
  EXPECT_EQ(tapegrad::num_threads(), 1);
  EXPECT_EQ(tapegrad::set_num_threads(2), kParallelProducts ? 2 : 1);
  EXPECT_EQ(tapegrad::num_threads(), kParallelProducts ? 2 : 1);
  tapegrad::set_num_threads(before);
}

TEST(Threads, ZeroOrNegativeCountIsAValueErrorAndChangesNothing) {
  const int before = tapegrad::num_threads();
  EXPECT_THROW(tapegrad::set_num_threads(0), tapegrad::ValueError);
  EXPECT_THROW(tapegrad::set_num_threads(-3), tapegrad::ValueError);
  EXPECT_EQ(tapegrad::num_threads(), before);
}

TEST(Threads, TwoThreadProductMatchesOneThreadProduct) {
  const int before = tapegrad::num_threads();
  tapegrad::Tape<float> tape;
  const Matrix<float> a = Matrix<float>::Random(256, 384);
  const Matrix<float> b = Matrix<float>::Random(384, 320);
  tapegrad::set_num_threads(1);
  const Matrix<float> one = tapegrad::matmul(tape.constant(a), tape.constant(b)).value();
  tapegrad::set_num_threads(2);
  const Matrix<float> two = tapegrad::matmul(tape.constant(a), tape.constant(b)).value();
  tapegrad::set_num_threads(before);
  // Entries are sums of 384 products of numbers in [-1, 1]: |entry| <~ 40, float eps ~ 1.2e-7.
  EXPECT_LT((one - two).cwiseAbs().maxCoeff(), 1e-3F);
  // And both are the product (a double-precision reference, computed independently).
  const Matrix<double> ref = a.cast<double>() * b.cast<double>();
  EXPECT_LT((two.cast<double>() - ref).cwiseAbs().maxCoeff(), 1e-3);
}

// Restores the thread settings a test changes.
class ThreadSettings : public ::testing::Test {
 private:
  const tapegrad::test::ProductSettingsScope restore_{{}};
};

TEST_F(ThreadSettings, ProductsBelowTheMinimumWorkRunOnOneThread) {
  const int two = tapegrad::set_num_threads(2);
  tapegrad::set_min_parallel_work(1000);
  EXPECT_EQ(tapegrad::min_parallel_work(), 1000);
  EXPECT_EQ(product_threads(10, 10, 9), 1);      // 900 multiply-adds
  EXPECT_EQ(product_threads(10, 10, 10), two);   // 1,000: the minimum itself may split
  EXPECT_EQ(product_threads(0, 1000, 1000), 1);  // empty result: nothing to split
  // m k n overflows int64 here; the rule must still say "large".
  EXPECT_EQ(product_threads(Eigen::Index{1} << 40, Eigen::Index{1} << 20, Eigen::Index{1} << 20), two);
}

// Whatever the default minimum is, products on either side of it follow the rule.
TEST_F(ThreadSettings, DefaultMinimumSplitsOnlyFromItself) {
  const int two = tapegrad::set_num_threads(2);
  const std::int64_t minimum = tapegrad::min_parallel_work();
  ASSERT_GT(minimum, 1);
  EXPECT_EQ(product_threads(1, 1, minimum - 1), 1);
  EXPECT_EQ(product_threads(1, 1, minimum), two);
  // The same work as a square-ish shape, as the ops ask for it.
  const auto side = static_cast<tapegrad::Index>(std::cbrt(static_cast<double>(minimum))) + 1;
  EXPECT_EQ(product_threads(side, side, side), two);
}

TEST_F(ThreadSettings, NegativeMinimumWorkIsAValueErrorAndChangesNothing) {
  const std::int64_t before = tapegrad::min_parallel_work();
  EXPECT_THROW(tapegrad::set_min_parallel_work(-1), tapegrad::ValueError);
  EXPECT_EQ(tapegrad::min_parallel_work(), before);
}

#ifdef EIGEN_HAS_OPENMP
// What Eigen reads (OpenMP's per-thread count) inside and after a ProductThreads scope, on the
// thread that called set_num_threads and on another one.
TEST_F(ThreadSettings, ProductScopeSetsAndRestoresOpenMPsThreadCount) {
  tapegrad::set_num_threads(2);
  tapegrad::set_min_parallel_work(std::int64_t{1} << 19);  // between the two shapes below
  {
    const tapegrad::kernels::ProductThreads small(25, 32, 128);
    EXPECT_EQ(omp_get_max_threads(), 1);
  }
  EXPECT_EQ(omp_get_max_threads(), 2);
  int seen_small = 0, seen_large = 0;
  std::thread other([&] {
    {
      const tapegrad::kernels::ProductThreads small(25, 32, 128);
      seen_small = omp_get_max_threads();
    }
    const tapegrad::kernels::ProductThreads large(64, 1024, 1024);
    seen_large = omp_get_max_threads();
  });
  other.join();
  EXPECT_EQ(seen_small, 1);
  EXPECT_EQ(seen_large, 2);  // set_num_threads applies to tapes on every thread
}
#endif

TEST_F(ThreadSettings, SmallAndLargeProductsGiveTheProductOnTwoThreads) {
  tapegrad::set_num_threads(2);
  tapegrad::Tape<double> tape;
  tapegrad::set_min_parallel_work(std::int64_t{1} << 16);  // between the two sizes below
  for (const int n : {16, 200}) {  // 4,096 and 8,000,000 multiply-adds: one thread, then two
    const Matrix<double> a = Matrix<double>::Random(n, n);
    const Matrix<double> b = Matrix<double>::Random(n, n);
    const auto x = tape.variable(a);
    const auto y = tape.variable(b);
    const auto c = tapegrad::matmul(x, y);
    tape.backward(c, Matrix<double>::Ones(n, n));
    // Independent reference: the products entry by entry.
    for (const auto& [i, j] : {std::pair{0, 0}, std::pair{n - 1, n / 2}}) {
      double ref = 0, ref_ga = 0;
      for (int k = 0; k < n; ++k) ref += a(i, k) * b(k, j), ref_ga += b(j, k);  // dA = 1 B^T: row sums of B
      EXPECT_NEAR(c.value()(i, j), ref, 1e-12 * n) << n;
      EXPECT_NEAR(x.grad()(i, j), ref_ga, 1e-12 * n) << n;
    }
    tape.clear();
  }
}

}  // namespace
