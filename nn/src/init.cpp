// Initializers: draws are made in double and rounded to S, so float and double models built
// from the same seed start from the same numbers (up to rounding).
#include <tapegrad/nn/init.h>

#include <Eigen/QR>
#include <cmath>

#include <tapegrad/error.h>

namespace tapegrad::nn::init {
namespace {

void check_finite(const char* fn, const char* arg, double v) {
  TAPEGRAD_CHECK(std::isfinite(v), ValueError, "init::{}: {} must be finite, got {}", fn, arg, v);
}

void check_not_empty(const char* fn, const Shape& s) {
  TAPEGRAD_CHECK(s.rows > 0 && s.cols > 0, ValueError, "init::{}: the matrix is {}; it needs at least one element", fn,
                 s);
}

// The checks of the initializers that scale by a gain: a non-empty matrix, a finite gain > 0.
void check_gain(const char* fn, const Shape& s, double gain) {
  check_not_empty(fn, s);
  check_finite(fn, "gain", gain);
  TAPEGRAD_CHECK(gain > 0, ValueError, "init::{}: gain must be > 0, got {}", fn, gain);
}

template <class S, class Dist>
void fill(Matrix<S>& m, std::mt19937_64& rng, Dist dist) {
  for (Index i = 0; i < m.rows(); ++i) {
    for (Index j = 0; j < m.cols(); ++j) m(i, j) = static_cast<S>(dist(rng));
  }
}

}  // namespace

template <class S>
void uniform(Matrix<S>& m, std::mt19937_64& rng, double lo, double hi) {
  check_finite("uniform", "lo", lo);
  check_finite("uniform", "hi", hi);
  TAPEGRAD_CHECK(lo <= hi, ValueError, "init::uniform: lo ({}) must not exceed hi ({})", lo, hi);
  if (lo == hi) {
    m.setConstant(static_cast<S>(lo));
    return;
  }
  fill(m, rng, std::uniform_real_distribution<double>(lo, hi));
}

template <class S>
void normal(Matrix<S>& m, std::mt19937_64& rng, double mean, double std) {
  check_finite("normal", "mean", mean);
  check_finite("normal", "std", std);
  TAPEGRAD_CHECK(std >= 0, ValueError, "init::normal: std must be >= 0, got {}", std);
  if (std == 0) {
    m.setConstant(static_cast<S>(mean));
    return;
  }
  fill(m, rng, std::normal_distribution<double>(mean, std));
}

template <class S>
void xavier_uniform(Matrix<S>& m, std::mt19937_64& rng, double gain) {
  check_gain("xavier_uniform", shape_of(m), gain);
  const double a = gain * std::sqrt(6.0 / static_cast<double>(m.rows() + m.cols()));
  fill(m, rng, std::uniform_real_distribution<double>(-a, a));
}

template <class S>
void xavier_normal(Matrix<S>& m, std::mt19937_64& rng, double gain) {
  check_gain("xavier_normal", shape_of(m), gain);
  const double sd = gain * std::sqrt(2.0 / static_cast<double>(m.rows() + m.cols()));
  fill(m, rng, std::normal_distribution<double>(0.0, sd));
}

template <class S>
void orthogonal(Matrix<S>& m, std::mt19937_64& rng, double gain) {
  check_gain("orthogonal", shape_of(m), gain);
  // Factor a tall Gaussian matrix; a wide target gets the transpose.
  const Index r = std::max(m.rows(), m.cols());
  const Index c = std::min(m.rows(), m.cols());
  Eigen::MatrixXd a(r, c);
  std::normal_distribution<double> dist(0.0, 1.0);
  for (Index i = 0; i < r; ++i) {
    for (Index j = 0; j < c; ++j) a(i, j) = dist(rng);
  }
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(a);
  Eigen::MatrixXd q = qr.householderQ() * Eigen::MatrixXd::Identity(r, c);
  const Eigen::MatrixXd rr = qr.matrixQR().topRows(c).template triangularView<Eigen::Upper>();
  // Householder QR leaves R's diagonal signs arbitrary; fixing them makes Q Haar-distributed.
  for (Index j = 0; j < c; ++j) {
    if (rr(j, j) < 0) q.col(j) *= -1.0;
  }
  q *= gain;
  if (m.rows() >= m.cols()) {
    m = q.cast<S>();
  } else {
    m = q.transpose().cast<S>();
  }
}

template <class S>
void identity(Matrix<S>& m, double scale) {
  check_finite("identity", "scale", scale);
  m.setZero();
  for (Index i = 0; i < std::min(m.rows(), m.cols()); ++i) m(i, i) = static_cast<S>(scale);
}

template <class S>
void constant(Matrix<S>& m, double value) {
  check_finite("constant", "value", value);
  m.setConstant(static_cast<S>(value));
}

#define TAPEGRAD_INSTANTIATE_INIT(S)                                   \
  template void uniform(Matrix<S>&, std::mt19937_64&, double, double); \
  template void normal(Matrix<S>&, std::mt19937_64&, double, double);  \
  template void xavier_uniform(Matrix<S>&, std::mt19937_64&, double);  \
  template void xavier_normal(Matrix<S>&, std::mt19937_64&, double);   \
  template void orthogonal(Matrix<S>&, std::mt19937_64&, double);      \
  template void identity(Matrix<S>&, double);                          \
  template void constant(Matrix<S>&, double);
TAPEGRAD_INSTANTIATE_INIT(float)
TAPEGRAD_INSTANTIATE_INIT(double)

}  // namespace tapegrad::nn::init
