// A rank's share of a global batch: a contiguous block of its sequences, the first
// (batch % ranks) ranks one sequence more. Whole sequences stay on one rank for every step, as
// truncated BPTT carries each one's state from chunk to chunk.
#pragma once

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

#include "corpus.h"

namespace char_lm {

/// Sequences [begin, end) of a global batch.
struct Share {
  int begin = 0;
  int end = 0;
  [[nodiscard]] int rows() const { return end - begin; }
};

/// Rank `rank` of `ranks`'s share of `batch` sequences; std::runtime_error when a rank would
/// get none.
inline Share share_of(int batch, int rank, int ranks) {
  if (batch < ranks) {
    throw std::runtime_error(
        fmt::format("--batch {} is smaller than the {} ranks: every rank needs a sequence", batch, ranks));
  }
  const int base = batch / ranks, extra = batch % ranks;
  const int begin = rank * base + std::min(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

/// The share's sequences of a global batch, in order.
inline Batch rows_of(const Batch& global, const Share& share) {
  Batch local;
  for (const auto& step : global.inputs)
    local.inputs.emplace_back(step.begin() + share.begin, step.begin() + share.end);
  for (const auto& step : global.targets) {
    local.targets.emplace_back(step.begin() + share.begin, step.begin() + share.end);
  }
  return local;
}

}  // namespace char_lm
