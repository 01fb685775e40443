#include <algorithm>
#include <numeric>

#include <tapegrad/distributed/sampler.h>
#include <tapegrad/error.h>
#include <tapegrad/nn/random.h>

namespace tapegrad::distributed {

namespace {
void check_rank(const char* fn, int rank, int size) {
  TAPEGRAD_CHECK(size >= 1, ValueError, "{}: size must be at least 1, got {}", fn, size);
  TAPEGRAD_CHECK(rank >= 0 && rank < size, ValueError, "{}: rank must be in [0, {}), got {}", fn, size, rank);
}
}  // namespace

BatchSharder::BatchSharder(std::uint64_t seed, int rank, int size, bool shuffle)
    : seed_(seed), rank_(rank), size_(size), shuffle_(shuffle) {
  check_rank("BatchSharder", rank, size);
}

std::pair<Index, Index> BatchSharder::share(Index global_rows, int rank, int size) {
  check_rank("BatchSharder::share", rank, size);
  TAPEGRAD_CHECK(global_rows >= 0, ValueError, "BatchSharder::share: global_rows must be >= 0, got {}", global_rows);
  const Index base = global_rows / size;
  const Index extra = global_rows % size;
  const Index begin = rank * base + std::min<Index>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

std::vector<Index> BatchSharder::rows(std::uint64_t batch, Index global_rows) const {
  TAPEGRAD_CHECK(global_rows >= 0, ValueError, "BatchSharder::rows: global_rows must be >= 0, got {}", global_rows);
  std::vector<Index> order(static_cast<std::size_t>(global_rows));
  std::iota(order.begin(), order.end(), Index{0});
  if (shuffle_) {
    // Fisher-Yates with draws keyed by (seed, batch, position): the same on every rank and
    // platform (std::shuffle's draws are left to the standard library).
    const std::uint64_t key = nn::splitmix64(seed_, batch);
    for (std::size_t i = order.size(); i > 1; --i) {
      const std::size_t j = static_cast<std::size_t>(nn::splitmix64(key, i) % i);
      std::swap(order[i - 1], order[j]);
    }
  }
  const auto [begin, end] = share(global_rows, rank_, size_);
  return {order.begin() + begin, order.begin() + end};
}

}  // namespace tapegrad::distributed
