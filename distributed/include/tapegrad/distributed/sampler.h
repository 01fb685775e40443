// Which rows of each global batch a rank reads. Every rank computes the same permutation of the
// global batch from (seed, batch index) and takes its own contiguous part of it, so the ranks'
// shares are disjoint, together cover the batch exactly, and differ in size by at most one row.
// Needs no communication: the shares follow from (seed, rank, size) alone.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <tapegrad/tensor.h>

namespace tapegrad::distributed {

class BatchSharder {
 public:
  /// size < 1 or rank outside [0, size) -> ValueError. shuffle = false keeps the rows in order
  /// (rank r reads one contiguous block of the batch).
  BatchSharder(std::uint64_t seed, int rank, int size, bool shuffle = true);

  /// The rows of global batch `batch` (global_rows rows) this rank reads, in the order to read
  /// them. global_rows < 0 -> ValueError.
  [[nodiscard]] std::vector<Index> rows(std::uint64_t batch, Index global_rows) const;
  /// The half-open range [begin, end) of positions in a batch's permutation rank `rank` of
  /// `size` takes: the first global_rows % size ranks take one row more.
  [[nodiscard]] static std::pair<Index, Index> share(Index global_rows, int rank, int size);

  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return size_; }

 private:
  std::uint64_t seed_;
  int rank_;
  int size_;
  bool shuffle_;
};

}  // namespace tapegrad::distributed
