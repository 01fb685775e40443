// Weight initializers. Each writes into a Matrix (or a Parameter's value) in place and takes
// the random engine explicitly, so a model built from one seed is reproducible.
//
// Shapes follow the library's convention: a weight maps rows to columns (y = x W), so a
// [fan_in x fan_out] matrix has fan_in = rows and fan_out = cols.
#pragma once

#include <random>

#include <tapegrad/parameter.h>
#include <tapegrad/tensor.h>

namespace tapegrad::nn::init {

/// Every entry drawn from U(lo, hi). ValueError unless lo <= hi, both finite.
template <class S>
void uniform(Matrix<S>& m, std::mt19937_64& rng, double lo, double hi);
/// Every entry drawn from N(mean, std^2). ValueError unless std >= 0, both finite.
template <class S>
void normal(Matrix<S>& m, std::mt19937_64& rng, double mean, double std);
/// Glorot uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)); variance 2/(in+out).
template <class S>
void xavier_uniform(Matrix<S>& m, std::mt19937_64& rng, double gain = 1.0);
/// Glorot normal: N(0, gain^2 * 2 / (fan_in + fan_out)).
template <class S>
void xavier_normal(Matrix<S>& m, std::mt19937_64& rng, double gain = 1.0);
/// gain * Q from the QR decomposition of a Gaussian matrix, with Q's columns' signs fixed by
/// R's diagonal so Q is uniformly (Haar) distributed. Square: Q^T Q = I. Tall [r x c]
/// (r > c): orthonormal columns. Wide (r < c): orthonormal rows. For recurrent weights.
template <class S>
void orthogonal(Matrix<S>& m, std::mt19937_64& rng, double gain = 1.0);
/// scale * I (ones on the main diagonal, zeros elsewhere; rectangular allowed). IRNN init.
template <class S>
void identity(Matrix<S>& m, double scale = 1.0);
/// Every entry = value.
template <class S>
void constant(Matrix<S>& m, double value);

// The same, writing into a Parameter's value (its gradient is reset to zeros of that shape).
template <class S>
void uniform(Parameter<S>& p, std::mt19937_64& rng, double lo, double hi) {
  uniform(p.value, rng, lo, hi);
  p.zero_grad();
}
template <class S>
void normal(Parameter<S>& p, std::mt19937_64& rng, double mean, double std) {
  normal(p.value, rng, mean, std);
  p.zero_grad();
}
template <class S>
void xavier_uniform(Parameter<S>& p, std::mt19937_64& rng, double gain = 1.0) {
  xavier_uniform(p.value, rng, gain);
  p.zero_grad();
}
template <class S>
void xavier_normal(Parameter<S>& p, std::mt19937_64& rng, double gain = 1.0) {
  xavier_normal(p.value, rng, gain);
  p.zero_grad();
}
template <class S>
void orthogonal(Parameter<S>& p, std::mt19937_64& rng, double gain = 1.0) {
  orthogonal(p.value, rng, gain);
  p.zero_grad();
}
template <class S>
void identity(Parameter<S>& p, double scale = 1.0) {
  identity(p.value, scale);
  p.zero_grad();
}
template <class S>
void constant(Parameter<S>& p, double value) {
  constant(p.value, value);
  p.zero_grad();
}

}  // namespace tapegrad::nn::init
