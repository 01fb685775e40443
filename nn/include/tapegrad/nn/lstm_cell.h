// Long short-term memory cell as a pure step function. The four gates come from ONE product
// each for x and h, against W_ih [in x 4H] and W_hh [H x 4H], in PyTorch's column order
// i, f, g, o (columns [0,H) = input gate, [H,2H) = forget, [2H,3H) = candidate, [3H,4H) = output):
//
//   a = x W_ih + h W_hh + b                      [B x 4H]
//   i = sigmoid(a[:, 0:H])      f = sigmoid(a[:, H:2H])
//   g = tanh(a[:, 2H:3H])       o = sigmoid(a[:, 3H:4H])
//   c' = f * c + i * g          h' = o * tanh(c')
//
// One bias b [1 x 4H] (PyTorch's b_ih + b_hh folded into one).
#pragma once

#include <cstdint>
#include <random>
#include <span>

#include <tapegrad/nn/module.h>
#include <tapegrad/nn/sequence.h>
#include <tapegrad/nn/state.h>

namespace tapegrad::nn {

/// LSTM cell. State: {h, c}, both [B x H].
template <class S>
class LstmCell : public Module<S> {
 public:
  using Scalar = S;
  static constexpr const char* kName = "LstmCell";
  struct Options {
    Index input_size = 0;
    Index hidden_size = 0;
    /// Added to the forget-gate slice of b at init, so the cell starts out remembering.
    double forget_bias = 1.0;
  };
  /// The weights one step reads (same order as named_parameters()).
  struct Weights {
    Var<S> W_ih, W_hh, b;
  };

  /// Per gate: W_ih block xavier-uniform, W_hh block orthogonal; b zeros except forget_bias.
  LstmCell(const Options& options, std::mt19937_64& rng);

  /// One step with the cell's Parameters. s = {h, c}.
  State<S> step(const Var<S>& x, const State<S>& s) { return step(bind(x.tape()), x, s); }
  /// One step with the given weights.
  State<S> step(const Weights& w, const Var<S>& x, const State<S>& s) const;
  /// The whole sequence with the cell's Parameters: x_all [T*B x in] holds the inputs of all T
  /// steps time-major (rows t*B .. t*B+B-1 are step t), s0 = {h0, c0}, each [B x H]. See sequence.h.
  SequenceResult<S> forward_sequence(const Var<S>& x_all, const State<S>& s0, const SequenceOptions& options = {}) {
    return forward_sequence(bind(x_all.tape()), x_all, s0, options);
  }
  /// The whole sequence with the given weights: one affine for every step's input projection,
  /// then the recurrence (one lstm_sequence op when options.fused, else op by op).
  SequenceResult<S> forward_sequence(const Weights& w, const Var<S>& x_all, const State<S>& s0,
                                     const SequenceOptions& options = {}) const;
  /// An embedding followed by the cell, from token ids: the same values and gradients as
  /// forward_sequence(gather_rows(embedding, ids), s0, options), with the embedding folded into
  /// the input projection. One affine makes table = embedding W_ih + b [K x 4H]; the recurrence
  /// reads its rows by id (lstm_sequence_gather when fused, which also keeps no gathered input
  /// or column slices: docs/memory.md; else gather_rows and the op-by-op steps). Cheaper
  /// whenever the vocabulary K is below T*B. embedding [K x in] (e.g. an Embedding's table
  /// leaf), ids: T*B ids in [0, K), time-major; s0 = {h0, c0}, each [B x H].
  SequenceResult<S> forward_tokens(const Var<S>& embedding, std::span<const std::int32_t> ids, const State<S>& s0,
                                   const SequenceOptions& options = {}) {
    return forward_tokens(bind(embedding.tape()), embedding, ids, s0, options);
  }
  /// The same with the given weights.
  SequenceResult<S> forward_tokens(const Weights& w, const Var<S>& embedding, std::span<const std::int32_t> ids,
                                   const State<S>& s0, const SequenceOptions& options = {}) const;
  /// {h = 0, c = 0}, [batch x H] constants.
  State<S> initial_state(Tape<S>& tape, Index batch) const;
  /// What the cell emits for a state: h.
  Var<S> output(const State<S>& s) const { return s.h(); }

  /// The Parameters as leaves of tape.
  Weights bind(Tape<S>& tape);
  /// Given Vars in named_parameters() order (W_ih, W_hh, b); shapes are checked.
  Weights bind(std::span<const Var<S>> vars) const;

  [[nodiscard]] Index input_size() const { return options_.input_size; }
  [[nodiscard]] Index hidden_size() const { return options_.hidden_size; }
  [[nodiscard]] Index output_size() const { return options_.hidden_size; }
  [[nodiscard]] std::size_t state_tensors() const { return 2; }
  [[nodiscard]] std::size_t num_parameter_tensors() const { return 3; }
  [[nodiscard]] const Options& options() const { return options_; }

  void visit_parameters(const ParameterVisitor<S>& v) override;

  Parameter<S> W_ih;  ///< [in x 4H], gate blocks i, f, g, o
  Parameter<S> W_hh;  ///< [H x 4H], gate blocks i, f, g, o
  Parameter<S> b;     ///< [1 x 4H], gate blocks i, f, g, o

 private:
  /// One step's recurrence from its input projection xp = x W_ih + b (the part step() and
  /// forward_sequence share).
  State<S> recur(const Weights& w, const Var<S>& xp, const State<S>& s) const;

  Options options_;
};

extern template class LstmCell<float>;
extern template class LstmCell<double>;

}  // namespace tapegrad::nn
