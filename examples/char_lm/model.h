// The language model: Embedding -> Stacked<Cell> -> Linear head over the vocabulary, float32.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include <tapegrad/nn/dropout.h>
#include <tapegrad/nn/embedding.h>
#include <tapegrad/nn/linear.h>
#include <tapegrad/nn/module.h>
#include <tapegrad/nn/sequence.h>
#include <tapegrad/nn/stacked.h>
#include <tapegrad/nn/state.h>

namespace char_lm {

using tapegrad::Matrix;
using tapegrad::Tape;
using tapegrad::Var;
using S = float;

/// Sizes of the model (the rest of Options is about training).
struct ModelShape {
  int vocab = 0;
  int embed = 0;
  int hidden = 0;
  int layers = 1;
  double dropout = 0.0;  ///< on every layer's output in training (Stacked between layers, here before the head)
  std::uint64_t dropout_seed = 0;  ///< the masks' Generator seed
};

/// Embedding, L recurrent layers of Cell, and a linear head producing next-byte logits. With
/// dropout p > 0 in training, every layer's output is dropped (Zaremba et al. 2014: the
/// non-recurrent connections only): Stacked's masks between layers, stream L before the head.
/// Parameter names: "embed.table", "rnn.layers.<l>.cell.<w>", "head.W", "head.b".
template <class Cell>
class Model : public tapegrad::nn::Module<S> {
 public:
  /// The weights one step reads, bound once per tape.
  struct Weights {
    Var<S> table;
    typename tapegrad::nn::Stacked<Cell>::Weights rnn;
    typename tapegrad::nn::Linear<S>::Weights head;
  };

  Model(const ModelShape& shape, std::mt19937_64& rng)
      : embed_({shape.vocab, shape.embed, 0.5}, rng),
        rnn_(stacked_options(shape), rng),
        head_({shape.hidden, shape.vocab}, rng),
        dropout_(shape.dropout) {}

  /// Binds every Parameter as a leaf of tape (idempotent while the tape keeps the leaves).
  Weights bind(Tape<S>& tape) { return {tape.leaf(embed_.table), rnn_.bind(tape), head_.bind(tape)}; }

  /// One step: reads ids (one per batch row) and the state, returns the next state and logits.
  struct Step {
    tapegrad::nn::State<S> next;
    Var<S> logits;  ///< [B x vocab] (forward_sequence: [T*B x vocab])
  };
  Step step(const Weights& w, std::span<const std::int32_t> ids, const tapegrad::nn::State<S>& s) {
    Var<S> x = embed_.forward(w.table, ids);
    tapegrad::nn::State<S> next = rnn_.step(w.rnn, x, s);
    const Var<S> top = rnn_.output(next);
    return {next,
            head_.forward(w.head, dropout_ > 0 ? tapegrad::nn::dropout(top, rnn_.generator(), head_site()) : top)};
  }

  /// T steps at once: ids holds the inputs time-major (ids[t * B + b] is sequence b at step t),
  /// s the state before them. The recurrence takes the tokens with the embedding folded into
  /// layer 0's input projection (Stacked::forward_tokens), then one affine head; the logits are
  /// [T*B x vocab], time-major like ids.
  Step forward_sequence(const Weights& w, std::span<const std::int32_t> ids, const tapegrad::nn::State<S>& s) {
    tapegrad::nn::SequenceResult<S> r = rnn_.forward_tokens(w.rnn, w.table, ids, s);
    const Var<S> top = dropout_ > 0 ? tapegrad::nn::dropout_sequence(r.outputs, s.tensors.front().rows(),
                                                                     rnn_.generator(), head_site())
                                    : r.outputs;
    return {r.final_state, head_.forward(w.head, top)};
  }

  /// The zero state's values for a batch (what a cleared tape starts from).
  std::vector<Matrix<S>> zero_state(int batch) const {
    Tape<S> scratch;
    return tapegrad::nn::values_of(rnn_.initial_state(scratch, batch));
  }

  /// Dropout on (training, the default) or off (validation and sampling).
  void train(bool on) { rnn_.train(on); }
  /// Selects the dropout masks of training step `step` (each step draws its own).
  void set_mask_step(std::int64_t step) { rnn_.generator().set_sequence(static_cast<std::uint64_t>(step)); }
  /// This model's batch is rows [first_row, ...) of a larger global batch (one rank's share):
  /// every dropout mask is that of the same rows of the global batch.
  void set_mask_first_row(int first_row) { rnn_.set_mask_first_row(first_row); }

  /// The recurrent layers.
  tapegrad::nn::Stacked<Cell>& rnn() { return rnn_; }

  void visit_parameters(const tapegrad::nn::ParameterVisitor<S>& v) override {
    v.child("embed", embed_);
    v.child("rnn", rnn_);
    v.child("head", head_);
  }

 private:
  static typename tapegrad::nn::Stacked<Cell>::Options stacked_options(const ModelShape& shape) {
    typename tapegrad::nn::Stacked<Cell>::Options o;
    o.cell.input_size = shape.embed;
    o.cell.hidden_size = shape.hidden;
    o.num_layers = shape.layers;
    o.dropout = shape.layers > 1 ? shape.dropout : 0.0;
    o.seed = shape.dropout_seed;
    return o;
  }
  // The head's dropout site: the stream after Stacked's (0 .. L-2), the mode of the layers.
  tapegrad::nn::DropoutOptions head_site() const {
    return {
        .p = dropout_, .stream = rnn_.num_layers(), .training = rnn_.training(), .first_row = rnn_.mask_first_row()};
  }

  tapegrad::nn::Embedding<S> embed_;
  tapegrad::nn::Stacked<Cell> rnn_;
  tapegrad::nn::Linear<S> head_;
  double dropout_;
};

}  // namespace char_lm
