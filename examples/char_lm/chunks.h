// The fast training step for chunked (k1 = k2) and full truncation: each chunk of k steps is
// recorded as one Stacked::forward_tokens of its tokens (the embedding folded into layer 0's
// input projection; fused LSTM / tanh RNN ops where there are), one affine head over all T*B
// rows and one softmax cross-entropy, instead of a dozen ops per step. The same truncation as nn::run_tbptt's Chunked
// mode: the state is detached between chunks, and the update runs after each chunk's backward.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include <tapegrad/nn/loss.h>
#include <tapegrad/nn/state.h>
#include <tapegrad/nn/tbptt.h>

#include "corpus.h"
#include "model.h"

namespace char_lm {

/// Inputs and targets of steps [begin, end) of batch, time-major (row t*B + b = sequence b at
/// step begin + t), as forward_sequence and the loss read them.
inline void flatten_steps(const Batch& batch, int begin, int end, std::vector<std::int32_t>& ids,
                          std::vector<std::int32_t>& targets) {
  ids.clear();
  targets.clear();
  for (int t = begin; t < end; ++t) {
    const auto ti = static_cast<std::size_t>(t);
    ids.insert(ids.end(), batch.inputs[ti].begin(), batch.inputs[ti].end());
    targets.insert(targets.end(), batch.targets[ti].begin(), batch.targets[ti].end());
  }
}

/// Trains on batch in chunks of k steps (k >= seq_len: full BPTT) from the state values
/// `initial`, calling update after each chunk's backward. Returns the summed loss: each chunk's
/// mean cross-entropy times (its steps / seq_len), so the total is the mean loss per character,
/// exactly what the per-step path sums. Every loss is also multiplied by weight (a rank's share
/// of the global batch).
template <class Cell>
double train_chunks(Model<Cell>& model, Tape<S>& tape, const Batch& batch, int k, const std::vector<Matrix<S>>& initial,
                    const tapegrad::nn::UpdateFn& update, S weight = S(1)) {
  namespace nn = tapegrad::nn;
  const int seq_len = static_cast<int>(batch.inputs.size());
  std::vector<Matrix<S>> carried = initial;
  std::vector<std::int32_t> ids, targets;
  double total = 0.0;
  int index = 0;
  for (int begin = 0; begin < seq_len; begin += k) {
    const int end = std::min(begin + k, seq_len);
    flatten_steps(batch, begin, end, ids, targets);
    tape.clear();
    auto scope = tape.time_step(begin);
    const auto w = model.bind(tape);
    const auto r = model.forward_sequence(w, ids, nn::constant_state(tape, carried));
    const Var<S> loss =
        nn::cross_entropy(r.logits, targets) * (static_cast<S>(end - begin) / static_cast<S>(seq_len) * weight);
    tape.backward(loss);
    const double value = static_cast<double>(loss.item());
    if (update) update(nn::UpdateInfo{index++, begin, end, begin, 1, value, {}});
    total += value;
    carried = nn::values_of(r.next);
  }
  return total;
}

}  // namespace char_lm
