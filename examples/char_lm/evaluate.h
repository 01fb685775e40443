// Validation loss: the mean cross-entropy per character on fixed windows of held-out text,
// forward only, each window from the zero state, recorded as one whole-sequence forward.
#pragma once

#include <cstdint>
#include <vector>

#include <tapegrad/nn/loss.h>

#include "chunks.h"
#include "corpus.h"
#include "model.h"

namespace char_lm {

/// Mean loss (nats per character) over n_batches validation batches of batch x seq_len.
template <class Cell>
double validation_loss(Model<Cell>& model, const std::vector<std::int32_t>& ids, int batch, int seq_len,
                       int n_batches) {
  Tape<S> tape;
  double total = 0.0;
  std::vector<std::int32_t> flat_ids, flat_targets;
  for (int i = 0; i < n_batches; ++i) {
    const Batch b = validation_batch(ids, batch, seq_len, i, n_batches);
    tape.clear();
    auto w = model.bind(tape);
    const tapegrad::nn::State<S> s = tapegrad::nn::constant_state(tape, model.zero_state(batch));
    flatten_steps(b, 0, seq_len, flat_ids, flat_targets);
    auto r = model.forward_sequence(w, flat_ids, s);
    // The mean over all seq_len * batch rows, times seq_len: the sum of the per-step means.
    total += static_cast<double>(tapegrad::nn::cross_entropy(r.logits, flat_targets).item()) * seq_len;
  }
  return total / (static_cast<double>(n_batches) * seq_len);
}

}  // namespace char_lm
