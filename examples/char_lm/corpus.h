// The text as tokens: bytes mapped to a dense vocabulary, split into training and validation
// parts, and batches of windows that are pure functions of (seed, step).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace char_lm {

/// The distinct bytes of a text, in byte order, and the byte <-> id maps.
class Vocab {
 public:
  /// Every byte that occurs in text.
  explicit Vocab(const std::string& text);
  /// From bytes() of another vocabulary (a checkpoint's).
  static Vocab from_bytes(const std::string& bytes);

  [[nodiscard]] int size() const { return static_cast<int>(bytes_.size()); }
  /// -1 for a byte that is not in the vocabulary.
  [[nodiscard]] int id(unsigned char byte) const { return id_[byte]; }
  [[nodiscard]] char byte(int id) const { return bytes_.at(static_cast<std::size_t>(id)); }
  /// The vocabulary's bytes in id order.
  [[nodiscard]] const std::string& bytes() const { return bytes_; }
  /// Every id as a string of two hex digits per byte (for checkpoint metadata).
  [[nodiscard]] std::string hex() const;
  /// Inverse of hex(); throws std::runtime_error on malformed input.
  static Vocab from_hex(const std::string& hex);

 private:
  Vocab() { id_.fill(-1); }
  std::string bytes_;
  std::array<int, 256> id_{};
};

/// A tokenized text split into training (first 90%) and validation (last 10%) ids.
struct Corpus {
  std::filesystem::path path;
  std::size_t num_bytes = 0;
  Vocab vocab;
  std::vector<std::int32_t> train;
  std::vector<std::int32_t> valid;
};

/// Reads path and tokenizes it with its own vocabulary. Throws std::runtime_error when the
/// file cannot be read or is too short for one sequence of seq_len + 1 bytes in each part.
Corpus load_corpus(const std::filesystem::path& path, int seq_len);

/// The bundled data/tinyshakespeare.txt: the source tree's copy, else the installed one.
/// Throws std::runtime_error (saying to pass --data) when neither exists.
std::filesystem::path default_data_path(const char* argv0);

/// One step's data: ids[t][b] is the input of sequence b at position t, targets[t][b] the
/// character after it.
struct Batch {
  std::vector<std::vector<std::int32_t>> inputs;
  std::vector<std::vector<std::int32_t>> targets;
};

/// Batch of training step `step`: `batch` windows at offsets drawn from an rng seeded by
/// (seed, step) only, so a resumed run sees the same batches as an uninterrupted one.
Batch training_batch(const std::vector<std::int32_t>& ids, int batch, int seq_len, std::uint64_t seed,
                     std::int64_t step);

/// Validation batch i of n: windows at evenly spaced offsets (the same every pass).
Batch validation_batch(const std::vector<std::int32_t>& ids, int batch, int seq_len, int i, int n);

/// A 64-bit mix of (seed, stream, index) for seeding independent rngs (SplitMix64 finalizer).
std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t stream, std::uint64_t index);

}  // namespace char_lm
