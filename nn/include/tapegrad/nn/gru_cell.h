// Gated recurrent unit as a pure step function, with PyTorch's equations exactly. Gate
// blocks are in the column order r, z, n; W_ih [in x 3H], W_hh [H x 3H], b_ih and b_hh [1 x 3H]:
//
//   r  = sigmoid(x W_ir + b_ir + h W_hr + b_hr)
//   z  = sigmoid(x W_iz + b_iz + h W_hz + b_hz)
//   n  = tanh(x W_in + b_in + r * (h W_hn + b_hn))
//   h' = (1 - z) * n + z * h
//
// The two biases are not redundant: b_hn sits inside the reset gate's product.
#pragma once

#include <cstdint>
#include <random>
#include <span>

#include <tapegrad/nn/module.h>
#include <tapegrad/nn/sequence.h>
#include <tapegrad/nn/state.h>

namespace tapegrad::nn {

/// GRU cell. State: {h [B x H]}.
template <class S>
class GruCell : public Module<S> {
 public:
  using Scalar = S;
  static constexpr const char* kName = "GruCell";
  struct Options {
    Index input_size = 0;
    Index hidden_size = 0;
  };
  /// The weights one step reads (same order as named_parameters()).
  struct Weights {
    Var<S> W_ih, W_hh, b_ih, b_hh;
  };

  /// Per gate: W_ih block xavier-uniform, W_hh block orthogonal; biases zeros.
  GruCell(const Options& options, std::mt19937_64& rng);

  /// One step with the cell's Parameters. s = {h}.
  State<S> step(const Var<S>& x, const State<S>& s) { return step(bind(x.tape()), x, s); }
  /// One step with the given weights.
  State<S> step(const Weights& w, const Var<S>& x, const State<S>& s) const;
  /// The whole sequence with the cell's Parameters: x_all [T*B x in] holds the inputs of all T
  /// steps time-major (rows t*B .. t*B+B-1 are step t), s0 = {h0 [B x H]}. See sequence.h.
  SequenceResult<S> forward_sequence(const Var<S>& x_all, const State<S>& s0, const SequenceOptions& options = {}) {
    return forward_sequence(bind(x_all.tape()), x_all, s0, options);
  }
  /// The whole sequence with the given weights: one affine for every step's input projection,
  /// then the recurrence (one gru_sequence op when options.fused, else op by op).
  SequenceResult<S> forward_sequence(const Weights& w, const Var<S>& x_all, const State<S>& s0,
                                     const SequenceOptions& options = {}) const;
  /// An embedding followed by the cell, from token ids: the same values and gradients as
  /// forward_sequence(gather_rows(embedding, ids), s0, options), with the embedding folded into
  /// the input projection. One affine makes table = embedding W_ih + b_ih [K x 3H]; the
  /// recurrence reads its rows by id (gru_sequence_gather when fused, else gather_rows and the
  /// op-by-op steps). Cheaper whenever the vocabulary K is below T*B. embedding [K x in],
  /// ids: T*B ids in [0, K), time-major; s0 = {h0 [B x H]}.
  SequenceResult<S> forward_tokens(const Var<S>& embedding, std::span<const std::int32_t> ids, const State<S>& s0,
                                   const SequenceOptions& options = {}) {
    return forward_tokens(bind(embedding.tape()), embedding, ids, s0, options);
  }
  /// The same with the given weights.
  SequenceResult<S> forward_tokens(const Weights& w, const Var<S>& embedding, std::span<const std::int32_t> ids,
                                   const State<S>& s0, const SequenceOptions& options = {}) const;
  /// {h = 0} [batch x H] constant.
  State<S> initial_state(Tape<S>& tape, Index batch) const;
  /// What the cell emits for a state: h.
  Var<S> output(const State<S>& s) const { return s.h(); }

  /// The Parameters as leaves of tape.
  Weights bind(Tape<S>& tape);
  /// Given Vars in named_parameters() order (W_ih, W_hh, b_ih, b_hh); shapes are checked.
  Weights bind(std::span<const Var<S>> vars) const;

  [[nodiscard]] Index input_size() const { return options_.input_size; }
  [[nodiscard]] Index hidden_size() const { return options_.hidden_size; }
  [[nodiscard]] Index output_size() const { return options_.hidden_size; }
  [[nodiscard]] std::size_t state_tensors() const { return 1; }
  [[nodiscard]] std::size_t num_parameter_tensors() const { return 4; }
  [[nodiscard]] const Options& options() const { return options_; }

  void visit_parameters(const ParameterVisitor<S>& v) override;

  Parameter<S> W_ih;  ///< [in x 3H], gate blocks r, z, n
  Parameter<S> W_hh;  ///< [H x 3H], gate blocks r, z, n
  Parameter<S> b_ih;  ///< [1 x 3H]
  Parameter<S> b_hh;  ///< [1 x 3H]

 private:
  /// One step's recurrence from its input projection xp = x W_ih + b_ih (the part step() and
  /// forward_sequence share).
  State<S> recur(const Weights& w, const Var<S>& xp, const State<S>& s) const;

  Options options_;
};

extern template class GruCell<float>;
extern template class GruCell<double>;

}  // namespace tapegrad::nn
