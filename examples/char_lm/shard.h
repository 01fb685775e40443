// A rank's share of a global batch (Ranks::share_of): a contiguous block of its sequences, the
// first (batch % ranks) ranks one sequence more. Whole sequences stay on one rank for every step, as
// truncated BPTT carries each one's state from chunk to chunk.
#pragma once

#include "corpus.h"

namespace char_lm {

/// Sequences [begin, end) of a global batch.
struct Share {
  int begin = 0;
  int end = 0;
  [[nodiscard]] int rows() const { return end - begin; }
};

/// The share's sequences of a global batch, in order.
inline Batch rows_of(const Batch& global, const Share& share) {
  const auto cut = [&](const auto& steps, auto& out) {
    for (const auto& step : steps) out.emplace_back(step.begin() + share.begin, step.begin() + share.end);
  };
  Batch local;
  cut(global.inputs, local.inputs);
  cut(global.targets, local.targets);
  return local;
}

}  // namespace char_lm
