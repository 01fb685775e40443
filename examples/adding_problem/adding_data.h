// The adding problem (Hochreiter & Schmidhuber 1997, experiment 4). Each input step is a pair
// (value, marker): values are uniform in [0, 1], exactly two steps carry marker 1, one in the
// first half of the sequence and one in the second. The target is the sum of the two marked
// values. Answering the mean, 1.0, always gives MSE = Var(v1 + v2) = 2/12 = 0.1667, so a model
// only beats that baseline when it carries a value across up to T steps.
#pragma once

#include <random>
#include <vector>

#include <tapegrad/tensor.h>

namespace adding {

using M = tapegrad::Matrix<double>;

/// The MSE of always answering 1.0.
inline constexpr double kBaselineMse = 2.0 / 12.0;

/// B sequences of T steps: xs[t] is [B x 2] (value, marker), target is [B x 1].
struct Batch {
  std::vector<M> xs;
  M target;
};

inline Batch make_batch(std::mt19937_64& rng, int batch, int steps) {
  std::uniform_real_distribution<double> value(0.0, 1.0);
  const int half = steps / 2;
  std::uniform_int_distribution<int> first(0, half - 1), second(half, steps - 1);
  Batch b;
  b.xs.assign(static_cast<std::size_t>(steps), M::Zero(batch, 2));
  b.target = M::Zero(batch, 1);
  for (int r = 0; r < batch; ++r) {
    for (int t = 0; t < steps; ++t) b.xs[static_cast<std::size_t>(t)](r, 0) = value(rng);
    for (int t : {first(rng), second(rng)}) {
      b.xs[static_cast<std::size_t>(t)](r, 1) = 1.0;
      b.target(r, 0) += b.xs[static_cast<std::size_t>(t)](r, 0);
    }
  }
  return b;
}

}  // namespace adding
