// Initializers: moments of large samples against the distributions' closed forms,
// orthogonality, exact identity/constant values, reproducibility and argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include <tapegrad/error.h>
#include <tapegrad/nn/init.h>
#include "support/test_names.h"

namespace init = tapegrad::nn::init;
using Mat = tg::Matrix<double>;

namespace {

double mean_of(const Mat& m) { return m.mean(); }
double var_of(const Mat& m) { return (m.array() - m.mean()).square().mean(); }

// 200k samples: the standard error of a mean is sd / 447, of a variance about var * 0.0032
// (Gaussian) or less (uniform); the tolerances below are 5 or more standard errors.
constexpr Index kRows = 400;
constexpr Index kCols = 500;

TEST(Init, UniformMomentsAndBounds) {
  std::mt19937_64 rng(1);
  Mat m(kRows, kCols);
  init::uniform(m, rng, -0.5, 1.5);
  EXPECT_GE(m.minCoeff(), -0.5);
  EXPECT_LT(m.maxCoeff(), 1.5);
  EXPECT_NEAR(mean_of(m), 0.5, 0.01);         // (lo + hi) / 2; se 0.0013
  EXPECT_NEAR(var_of(m), 4.0 / 12.0, 0.005);  // (hi - lo)^2 / 12
}

TEST(Init, NormalMoments) {
  std::mt19937_64 rng(2);
  Mat m(kRows, kCols);
  init::normal(m, rng, 3.0, 2.0);
  EXPECT_NEAR(mean_of(m), 3.0, 0.025);  // se 0.0045
  EXPECT_NEAR(var_of(m), 4.0, 0.07);    // se 0.0126
}

TEST(Init, XavierUniformBoundAndVariance) {
  std::mt19937_64 rng(3);
  Mat m(kRows, kCols);
  init::xavier_uniform(m, rng);
  const double bound = std::sqrt(6.0 / (kRows + kCols));
  EXPECT_LE(m.cwiseAbs().maxCoeff(), bound);
  EXPECT_GT(m.cwiseAbs().maxCoeff(), 0.99 * bound);  // the support is actually used
  EXPECT_NEAR(mean_of(m), 0.0, 5 * bound / std::sqrt(3.0 * kRows * kCols));
  EXPECT_NEAR(var_of(m), 2.0 / (kRows + kCols), 0.02 * 2.0 / (kRows + kCols));
  Mat g(kRows, kCols);
  init::xavier_uniform(g, rng, 2.0);
  EXPECT_LE(g.cwiseAbs().maxCoeff(), 2.0 * bound);
  EXPECT_NEAR(var_of(g), 4.0 * 2.0 / (kRows + kCols), 0.02 * 8.0 / (kRows + kCols));
}

TEST(Init, XavierNormalVariance) {
  std::mt19937_64 rng(4);
  Mat m(kRows, kCols);
  init::xavier_normal(m, rng);
  const double var = 2.0 / (kRows + kCols);
  EXPECT_NEAR(mean_of(m), 0.0, 5 * std::sqrt(var / (kRows * kCols)));
  EXPECT_NEAR(var_of(m), var, 0.02 * var);
}

void expect_identity(const Mat& m, double tol) {
  EXPECT_LE((m - Mat::Identity(m.rows(), m.cols())).cwiseAbs().maxCoeff(), tol);
}

TEST(Init, OrthogonalSquareTallAndWide) {
  std::mt19937_64 rng(5);
  Mat sq(32, 32);
  init::orthogonal(sq, rng);
  expect_identity(sq.transpose() * sq, 1e-12);
  expect_identity(sq * sq.transpose(), 1e-12);
  Mat tall(40, 16);
  init::orthogonal(tall, rng);
  expect_identity(tall.transpose() * tall, 1e-12);  // orthonormal columns
  Mat wide(16, 40);
  init::orthogonal(wide, rng);
  expect_identity(wide * wide.transpose(), 1e-12);  // orthonormal rows
  Mat scaled(8, 8);
  init::orthogonal(scaled, rng, 0.5);
  expect_identity(scaled.transpose() * scaled / 0.25, 1e-12);
  tg::Matrix<float> f(24, 24);
  init::orthogonal(f, rng);
  EXPECT_LE((f.transpose() * f - tg::Matrix<float>::Identity(24, 24)).cwiseAbs().maxCoeff(), 1e-5f);
}

TEST(Init, OrthogonalIsNotBiasedInSign) {
  // With the sign correction, Q is Haar-distributed: each entry has mean 0 and variance 1/n.
  // (Without it, Householder QR tends to give a diagonal of one sign.)
  std::mt19937_64 rng(6);
  const Index n = 8;
  const int draws = 4000;
  double diag_sum = 0, sq_sum = 0;
  for (int k = 0; k < draws; ++k) {
    Mat q(n, n);
    init::orthogonal(q, rng);
    diag_sum += q.diagonal().sum();
    sq_sum += q.squaredNorm();
  }
  // sum of n diagonal entries each with variance 1/n: sd of diag_sum is sqrt(draws).
  EXPECT_LT(std::abs(diag_sum), 5 * std::sqrt(static_cast<double>(draws)));
  EXPECT_NEAR(sq_sum / draws, static_cast<double>(n), 1e-9);  // rows have unit norm
}

TEST(Init, IdentityAndConstantAreExact) {
  Mat m = Mat::Random(5, 5);
  init::identity(m, 0.5);
  EXPECT_EQ(m, 0.5 * Mat::Identity(5, 5));
  Mat r = Mat::Random(3, 5);
  init::identity(r);
  EXPECT_EQ(r, Mat::Identity(3, 5));
  Mat c(2, 3);
  init::constant(c, -1.25);
  EXPECT_EQ(c, Mat::Constant(2, 3, -1.25));
}

TEST(Init, SameSeedSameValuesAndParameterOverloads) {
  std::mt19937_64 a(42), b(42);
  tg::Parameter<double> p(Mat::Zero(6, 7), "W");
  p.grad.setOnes();
  init::xavier_uniform(p, a);
  Mat m(6, 7);
  init::xavier_uniform(m, b);
  EXPECT_EQ(p.value, m);
  EXPECT_EQ(p.grad, Mat::Zero(6, 7));  // the gradient is reset with the value
  init::constant(p, 2.0);
  EXPECT_EQ(p.value, Mat::Constant(6, 7, 2.0));
}

TEST(Init, BadArgumentsThrowValueError) {
  std::mt19937_64 rng(7);
  Mat m(3, 3);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(init::uniform(m, rng, 1.0, 0.0), tg::ValueError);
  EXPECT_THROW(init::uniform(m, rng, nan, 1.0), tg::ValueError);
  EXPECT_THROW(init::normal(m, rng, 0.0, -1.0), tg::ValueError);
  EXPECT_THROW(init::normal(m, rng, nan, 1.0), tg::ValueError);
  EXPECT_THROW(init::xavier_uniform(m, rng, 0.0), tg::ValueError);
  EXPECT_THROW(init::xavier_normal(m, rng, -1.0), tg::ValueError);
  EXPECT_THROW(init::orthogonal(m, rng, 0.0), tg::ValueError);
  EXPECT_THROW(init::identity(m, std::numeric_limits<double>::infinity()), tg::ValueError);
  EXPECT_THROW(init::constant(m, nan), tg::ValueError);
  Mat empty(0, 4);
  EXPECT_THROW(init::xavier_uniform(empty, rng), tg::ValueError);
  EXPECT_THROW(init::orthogonal(empty, rng), tg::ValueError);
  try {
    init::uniform(m, rng, 2.0, 1.0);
    FAIL() << "no throw";
  } catch (const tg::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("init::uniform"), std::string::npos) << e.what();
  }
}

}  // namespace
