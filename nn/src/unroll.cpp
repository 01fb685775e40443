#include <tapegrad/nn/unroll.h>

namespace tapegrad::nn {

void check_lengths(std::span<const std::int32_t> lengths, Index steps, Index batch) {
  if (lengths.empty()) return;
  TAPEGRAD_CHECK(static_cast<Index>(lengths.size()) == batch, ValueError,
                 "unroll: lengths has {} entries but the batch has {} rows", lengths.size(), batch);
  for (std::size_t b = 0; b < lengths.size(); ++b) {
    TAPEGRAD_CHECK(lengths[b] >= 1 && lengths[b] <= steps, ValueError,
                   "unroll: lengths[{}] = {} is outside 1..{} (the number of steps)", b, lengths[b], steps);
  }
}

template <class S>
std::vector<Matrix<S>> step_masks(std::span<const std::int32_t> lengths, Index steps) {
  TAPEGRAD_CHECK(!lengths.empty(), ValueError, "step_masks: lengths is empty");
  check_lengths(lengths, steps, static_cast<Index>(lengths.size()));
  std::vector<Matrix<S>> masks;
  masks.reserve(static_cast<std::size_t>(steps));
  for (Index t = 0; t < steps; ++t) masks.push_back(detail::active_rows<S>(lengths, t, 1));
  return masks;
}

template std::vector<Matrix<float>> step_masks<float>(std::span<const std::int32_t>, Index);
template std::vector<Matrix<double>> step_masks<double>(std::span<const std::int32_t>, Index);

}  // namespace tapegrad::nn
