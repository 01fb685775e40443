// A growable array whose elements never move: storage comes in fixed power-of-two chunks.
// The tape keeps values and gradients here so a reference to one slot (an input being read
// while an output slot is appended) stays valid while the tape grows.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace tapegrad::detail {

template <class T, std::size_t ChunkBits = 8>
class StableVector {
 public:
  static constexpr std::size_t kChunk = std::size_t{1} << ChunkBits;

  [[nodiscard]] std::size_t size() const { return size_; }
  T& operator[](std::size_t i) { return chunks_[i >> ChunkBits][i & (kChunk - 1)]; }
  const T& operator[](std::size_t i) const { return chunks_[i >> ChunkBits][i & (kChunk - 1)]; }

  /// Grows to at least n elements; existing elements (and their buffers) are kept.
  void grow_to(std::size_t n) {
    while (chunks_.size() * kChunk < n) chunks_.push_back(std::make_unique<T[]>(kChunk));
    if (n > size_) size_ = n;
  }

 private:
  std::vector<std::unique_ptr<T[]>> chunks_;
  std::size_t size_ = 0;
};

}  // namespace tapegrad::detail
