// Counter-based random numbers for dropout masks. A draw is a pure function of
// (seed, sequence, stream, step, element): nothing is consumed by drawing, so the mask of a
// step is the same however often the step is recorded (truncated BPTT re-records steps), and
// the whole state a checkpoint must keep is two integers (the seed and the sequence counter).
//
// The hash is SplitMix64 (Steele, Lea & Flood 2014): the draw key (seed, sequence, stream,
// step) is absorbed word by word into one 64-bit state, and element k of the draw is output
// k of the SplitMix64 generator started at that state.
#pragma once

#include <cstdint>
#include <limits>

namespace tapegrad::nn {

/// SplitMix64's output function: a bijection of 64-bit words with full avalanche.
constexpr std::uint64_t splitmix64_mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
/// Output `index` (0 first) of the SplitMix64 generator whose state starts at `state`.
constexpr std::uint64_t splitmix64(std::uint64_t state, std::uint64_t index) {
  return splitmix64_mix(state + (index + 1) * 0x9E3779B97F4A7C15ULL);
}

/// Which draw: one site of a model (stream: a layer, the input or the state of a cell...) at one
/// time step. Different keys give independent masks.
struct DrawKey {
  std::uint64_t stream = 0;
  std::int64_t step = 0;
};
/// The step of a per-sequence (variational) mask: the same mask at every time step.
inline constexpr std::int64_t kWholeSequence = std::numeric_limits<std::int64_t>::min();

/// Everything a Generator holds; what checkpoints save.
struct GeneratorState {
  std::uint64_t seed = 0;
  std::uint64_t sequence = 0;  ///< Which sequence (batch) masks are drawn for.
  friend bool operator==(const GeneratorState&, const GeneratorState&) = default;
};

/// The seedable source of every mask. Masks of one sequence are fixed by (seed, sequence): call
/// next_sequence() once per new batch or sequence for fresh masks (the counterpart of drawing
/// from a stateful rng), and save state() with the model to resume bit for bit.
class Generator {
 public:
  /// Names this generator's algorithm in checkpoints; a file with another kind is refused.
  static constexpr const char* kKind = "splitmix64-keyed-v1";

  explicit Generator(std::uint64_t seed = 0, std::uint64_t sequence = 0) : state_{seed, sequence} {}
  explicit Generator(const GeneratorState& state) : state_(state) {}

  [[nodiscard]] std::uint64_t seed() const { return state_.seed; }
  [[nodiscard]] std::uint64_t sequence() const { return state_.sequence; }
  /// Fresh masks from here on: the sequence counter goes up by one.
  void next_sequence() { ++state_.sequence; }
  void set_sequence(std::uint64_t sequence) { state_.sequence = sequence; }
  [[nodiscard]] const GeneratorState& state() const { return state_; }
  void set_state(const GeneratorState& state) { state_ = state; }

  /// The SplitMix64 state of a draw: a hash of (seed, sequence, key.stream, key.step).
  [[nodiscard]] std::uint64_t draw_state(const DrawKey& key) const;
  /// 64 random bits: element `index` of draw `key` in the current sequence.
  [[nodiscard]] std::uint64_t bits(const DrawKey& key, std::uint64_t index) const {
    return splitmix64(draw_state(key), index);
  }
  /// A uniform in [0, 1) from the top 53 bits of bits(key, index).
  [[nodiscard]] double uniform(const DrawKey& key, std::uint64_t index) const { return to_unit(bits(key, index)); }
  /// The top 53 bits of a word as a double in [0, 1).
  static constexpr double to_unit(std::uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

 private:
  GeneratorState state_;
};

}  // namespace tapegrad::nn
