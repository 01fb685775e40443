// The draw key's hash: each word is mixed into the running state through SplitMix64's bijection.
#include <tapegrad/nn/random.h>

#include <initializer_list>

namespace tapegrad::nn {

std::uint64_t Generator::draw_state(const DrawKey& key) const {
  std::uint64_t h = splitmix64(state_.seed, 0);
  for (const std::uint64_t word : {state_.sequence, key.stream, static_cast<std::uint64_t>(key.step)}) {
    h = splitmix64(h ^ word, 0);
  }
  return h;
}

}  // namespace tapegrad::nn
