// set_num_threads: the number in effect, a bad count, and that a product large enough for Eigen
// to split across threads gives the single-thread numbers (to float rounding: Eigen's blocking
// depends on the thread count, so the summation order may differ).
#include <gtest/gtest.h>

#include <tapegrad/tapegrad.h>

namespace {

using tapegrad::Matrix;

TEST(Threads, SetNumThreadsReportsTheCountInEffect) {
  const int before = tapegrad::num_threads();
  EXPECT_EQ(tapegrad::set_num_threads(1), 1);
  EXPECT_EQ(tapegrad::num_threads(), 1);
  EXPECT_EQ(tapegrad::set_num_threads(2), tapegrad::kParallelProducts ? 2 : 1);
  EXPECT_EQ(tapegrad::num_threads(), tapegrad::kParallelProducts ? 2 : 1);
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

}  // namespace
