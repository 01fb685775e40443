// Validation loss: the mean cross-entropy per character on fixed windows of held-out text,
// forward only, each window from the zero state.
#pragma once

#include <cstdint>
#include <vector>

#include <tapegrad/nn/loss.h>

#include "corpus.h"
#include "model.h"

namespace char_lm {

/// Mean loss (nats per character) over n_batches validation batches of batch x seq_len.
template <class Cell>
double validation_loss(Model<Cell>& model, const std::vector<std::int32_t>& ids, int batch, int seq_len,
                       int n_batches) {
  Tape<S> tape;
  double total = 0.0;
  for (int i = 0; i < n_batches; ++i) {
    const Batch b = validation_batch(ids, batch, seq_len, i, n_batches);
    tape.clear();
    auto w = model.bind(tape);
    tapegrad::nn::State<S> s = tapegrad::nn::constant_state(tape, model.zero_state(batch));
    for (int t = 0; t < seq_len; ++t) {
      const auto ti = static_cast<std::size_t>(t);
      auto r = model.step(w, b.inputs[ti], s);
      total += tapegrad::nn::cross_entropy(r.logits, b.targets[ti]).item();
      s = r.next;
    }
  }
  return total / (static_cast<double>(n_batches) * seq_len);
}

}  // namespace char_lm
