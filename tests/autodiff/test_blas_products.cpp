// The OpenBLAS route (kernels/blas.h): which products kernels::product hands to
// OpenBLAS, that those give the exact product, and the whole op table's gradients and values with
// every product in OpenBLAS. Operands are small integers, so every sum is exact in float and double
// and the products are compared for equality with a triple loop. In a build without
// TAPEGRAD_OPENBLAS the route tests skip and the settings tests check that nothing goes to it.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <tapegrad/kernels/blas.h>
#include <tapegrad/kernels/product.h>
#include <tapegrad/tapegrad.h>

#include "op_cases.h"
#include "product_settings.h"

using namespace tapegrad;
using kernels::Accumulate;
using kernels::Assign;
using kernels::kBlasProducts;
using kernels::kNoBlasWork;

namespace {

template <class S>
Matrix<S> integers(Index rows, Index cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(-4, 4);
  Matrix<S> m(rows, cols);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<S>(d(rng));
  return m;
}

// The exact product of integer matrices, one multiply-add at a time.
template <class S, class A, class B>
Matrix<S> triple_loop(const A& a, const B& b) {
  Matrix<S> c = Matrix<S>::Zero(a.rows(), b.cols());
  for (Index i = 0; i < a.rows(); ++i)
    for (Index j = 0; j < b.cols(); ++j)
      for (Index p = 0; p < a.cols(); ++p) c(i, j) += a(i, p) * b(p, j);
  return c;
}

// Restores the product settings after each test.
class BlasSettings : public ::testing::Test {
 protected:
  const std::int64_t before_ = min_blas_work();

 private:
  const test::ProductSettingsScope restore_{{}};
};

// Every product in OpenBLAS (skipped without it), none in small_gemm.
class BlasRoute : public BlasSettings {
 protected:
  void SetUp() override {
    if (!kBlasProducts) GTEST_SKIP() << "built without TAPEGRAD_OPENBLAS";
    set_min_blas_work(0);
    kernels::set_small_products(false);
  }
};

TEST_F(BlasSettings, NegativeMinimumIsAValueErrorAndChangesNothing) {
  EXPECT_THROW(set_min_blas_work(-1), ValueError);
  EXPECT_EQ(min_blas_work(), before_);
}

TEST_F(BlasSettings, SettingTheMinimumTakesEffectOnlyWithOpenBlas) {
  EXPECT_EQ(set_min_blas_work(12345), kBlasProducts ? 12345 : kNoBlasWork);
  EXPECT_EQ(min_blas_work(), kBlasProducts ? 12345 : kNoBlasWork);
}

// The default follows OpenBLAS's kernels: AVX-512 ones take some products, any other (e.g.
// "Haswell", as OPENBLAS_CORETYPE=Haswell selects) none.
TEST(BlasDefault, FollowsTheKernelsOpenBlasRuns) {
  const std::string name = kernels::blas_name();
  if (!kBlasProducts) {
    EXPECT_EQ(name, "");
    EXPECT_EQ(min_blas_work(), kNoBlasWork);
    return;
  }
  ASSERT_EQ(name.rfind("OpenBLAS ", 0), 0U) << name;
  const std::string core = name.substr(name.rfind(' ') + 1);
  const bool avx512 = core == "SkylakeX" || core == "Cooperlake" || core == "SapphireRapids";
  if (avx512) {
    EXPECT_LT(min_blas_work(), kNoBlasWork) << name;
  } else {
    EXPECT_EQ(min_blas_work(), kNoBlasWork) << name;
  }
}

template <class S>
void check_operand_kinds() {
  // Remainders in every dimension; one-row and one-column operands too.
  for (const auto [m, k, n] : {std::array<Index, 3>{7, 13, 5}, {1, 9, 6}, {6, 9, 1}, {33, 17, 40}}) {
    const Matrix<S> a = integers<S>(m, k, 1), b = integers<S>(k, n, 2);
    const Matrix<S> at = a.transpose(), bt = b.transpose();
    const Matrix<S> want = triple_loop<S>(a, b);
    const auto count = [] { return kernels::blas_product_count(); };

    Matrix<S> c = Matrix<S>::Constant(m, n, std::numeric_limits<S>::quiet_NaN());
    std::int64_t before = count();
    kernels::product(c, a, b, Assign);  // beta 0: the NaNs in c must not survive
    EXPECT_EQ(count(), before + 1);
    EXPECT_EQ(c, want) << "A B, " << m << "x" << k << "x" << n;

    before = count();
    kernels::product(c, at.transpose(), b, Assign);
    EXPECT_EQ(count(), before + 1);
    EXPECT_EQ(c, want) << "A^T^T B";

    before = count();
    kernels::product(c, a, bt.transpose(), Assign);
    EXPECT_EQ(count(), before + 1);
    EXPECT_EQ(c, want) << "A B^T^T";

    before = count();
    kernels::product(c, at.transpose(), bt.transpose(), Assign);
    EXPECT_EQ(count(), before + 1);
    EXPECT_EQ(c, want) << "both transposed";

    // Blocks inside larger matrices (leading dimensions above the widths), into a block whose
    // neighbours must stay as they were; Accumulate adds.
    const Matrix<S> big_a = integers<S>(m + 3, k + 5, 3);
    const Matrix<S> big_bt = integers<S>(n + 2, k + 4, 4);
    const auto a_block = big_a.block(2, 3, m, k);
    const auto b_block = big_bt.block(1, 2, n, k).transpose();
    Matrix<S> d = integers<S>(m + 2, n + 3, 5);
    const Matrix<S> d_before = d;
    before = count();
    kernels::product(d.block(1, 2, m, n), a_block, b_block, Accumulate);
    EXPECT_EQ(count(), before + 1);
    Matrix<S> d_want = d_before;
    d_want.block(1, 2, m, n) += triple_loop<S>(Matrix<S>(a_block), Matrix<S>(b_block));
    EXPECT_EQ(d, d_want) << "blocks, " << m << "x" << k << "x" << n;
  }
}

TEST_F(BlasRoute, EveryOperandKindGivesTheExactProductFloat) { check_operand_kinds<float>(); }
TEST_F(BlasRoute, EveryOperandKindGivesTheExactProductDouble) { check_operand_kinds<double>(); }

// What OpenBLAS cannot take, or should not, stays in Eigen and is still right.
TEST_F(BlasRoute, ExpressionsStridedViewsEmptyAndSmallProductsStayInEigen) {
  const Matrix<double> a = integers<double>(6, 8, 6), b = integers<double>(8, 5, 7);
  Matrix<double> c(6, 5);
  std::int64_t before = kernels::blas_product_count();
  kernels::product(c, a * 2.0, b, Assign);  // an expression, not memory
  EXPECT_EQ(c, triple_loop<double>(Matrix<double>(a * 2.0), b));
  const Matrix<double> wide = integers<double>(8, 10, 8);
  using Strided = Eigen::Stride<Eigen::Dynamic, 2>;  // every other column: inner stride 2
  const Eigen::Map<const Matrix<double>, 0, Strided> every_other(wide.data(), 8, 5, Strided(10, 2));
  kernels::product(c, a, every_other, Assign);
  EXPECT_EQ(c, triple_loop<double>(a, Matrix<double>(every_other)));
  Matrix<double> zero_depth = Matrix<double>::Constant(6, 5, 3.0);
  kernels::product(zero_depth, a.leftCols(0), b.topRows(0), Assign);  // k = 0: the product is zero
  EXPECT_EQ(zero_depth, Matrix<double>::Zero(6, 5));
  set_min_blas_work(6 * 8 * 5 + 1);  // one multiply-add short
  kernels::product(c, a, b, Assign);
  EXPECT_EQ(c, triple_loop<double>(a, b));
  EXPECT_EQ(kernels::blas_product_count(), before);
  set_min_blas_work(6 * 8 * 5);  // exactly the minimum: OpenBLAS
  kernels::product(c, a, b, Assign);
  EXPECT_EQ(kernels::blas_product_count(), before + 1);
}

// Two threads: the OpenMP variant takes OpenMP's thread count per call; same exact result.
TEST_F(BlasRoute, TwoThreadProductIsExact) {
  const test::ProductSettingsScope two_threads{{.threads = 2, .min_parallel = 0}};
  const Matrix<float> a = integers<float>(300, 200, 9), b = integers<float>(200, 260, 10);
  Matrix<float> c(300, 260);
  const std::int64_t before = kernels::blas_product_count();
  kernels::product(c, a, b, Assign);
  EXPECT_EQ(kernels::blas_product_count(), before + 1);
  EXPECT_EQ(c, triple_loop<float>(a, b));
}

// The op table (op_cases.cpp) with every product in OpenBLAS: gradients against central
// differences and values against the plain-Eigen references, as test_gradcheck checks them.
class OpGradBlas : public ::testing::TestWithParam<optest::OpCase> {
 protected:
  void SetUp() override {
    if (!kBlasProducts) GTEST_SKIP() << "built without TAPEGRAD_OPENBLAS";
  }

 private:
  const test::ProductSettingsScope settings_{{.min_blas = 0, .small = false}};
};

TEST_P(OpGradBlas, MatchesFiniteDifferences) {
  const optest::OpCase& c = GetParam();
  GradcheckOptions o;
  o.atol = c.atol;
  o.rtol = c.rtol;
  o.seed = 7;
  const std::int64_t before = kernels::blas_product_count();
  const GradcheckResult r = gradcheck(c.fn, optest::sample_inputs(c), o);
  EXPECT_TRUE(r) << c.name << "\n" << r.message();
  // The product ops' forward and backward products went to OpenBLAS.
  if (c.name.rfind("matmul", 0) == 0 || c.name.rfind("affine", 0) == 0) {
    EXPECT_GT(kernels::blas_product_count(), before) << c.name;
  }
}

TEST_P(OpGradBlas, ValueMatchesReference) {
  const optest::OpCase& c = GetParam();
  if (!c.reference) GTEST_SKIP() << "no reference";
  const auto inputs = optest::sample_inputs(c);
  Tape<double> tape;
  std::vector<Var<double>> vars;
  for (const Matrix<double>& m : inputs) vars.push_back(tape.constant(m));
  const Matrix<double> got = c.fn(vars).value();
  const Matrix<double> want = c.reference(inputs);
  ASSERT_EQ(shape_of(got), shape_of(want)) << c.name;
  for (Index k = 0; k < got.size(); ++k) {
    EXPECT_NEAR(got.data()[k], want.data()[k], 1e-12 * (1 + std::abs(want.data()[k]))) << c.name << " element " << k;
  }
}

std::string test_name(const ::testing::TestParamInfo<optest::OpCase>& info) {
  std::string s = info.param.name;
  if (const auto slash = s.find('/'); slash != std::string::npos) s.replace(slash, 1, "__");
  return s;
}

INSTANTIATE_TEST_SUITE_P(Ops, OpGradBlas, ::testing::ValuesIn(optest::op_cases()), test_name);

}  // namespace
