// Weight initializers. Each writes into a Matrix (or a Parameter's value) in place and takes
// the random engine explicitly, so a model built from one seed is reproducible.
//
// Shapes follow the library's convention: a weight maps rows to columns (y = x W), so a
// [fan_in x fan_out] matrix has fan_in = rows and fan_out = cols.
#pragma once

#include <random>
#include <utility>

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

// Each initializer also writes into a Parameter's value, with the same arguments after it (its
// gradient is reset to zeros of that shape): init::xavier_uniform(cell.W_ih, rng).
#define TAPEGRAD_INIT_PARAMETER(name)           \
  template <class S, class... Args>             \
  void name(Parameter<S>& p, Args&&... args) {  \
    name(p.value, std::forward<Args>(args)...); \
    p.zero_grad();                              \
  }
TAPEGRAD_INIT_PARAMETER(uniform)
TAPEGRAD_INIT_PARAMETER(normal)
TAPEGRAD_INIT_PARAMETER(xavier_uniform)
TAPEGRAD_INIT_PARAMETER(xavier_normal)
TAPEGRAD_INIT_PARAMETER(orthogonal)
TAPEGRAD_INIT_PARAMETER(identity)
TAPEGRAD_INIT_PARAMETER(constant)
#undef TAPEGRAD_INIT_PARAMETER

}  // namespace tapegrad::nn::init
