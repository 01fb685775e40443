// The vanilla (Elman) recurrent cell as a pure step function:
//   h' = act(x W_ih + h W_hh + b),   x [B x in], h [B x H], W_ih [in x H], W_hh [H x H], b [1 x H].
#pragma once

#include <cstdint>
#include <random>
#include <span>

#include <tapegrad/nn/module.h>
#include <tapegrad/nn/sequence.h>
#include <tapegrad/nn/state.h>

namespace tapegrad::nn {

/// The nonlinearity of an RnnCell.
enum class Activation { Tanh, Relu, Logistic };

/// How an RnnCell's recurrent weight W_hh starts.
enum class RecurrentInit {
  Orthogonal,  ///< recurrent_scale * a random orthogonal matrix (tanh/logistic default).
  Identity,    ///< recurrent_scale * I: the IRNN recipe for relu cells.
};

/// h' = act(x W_ih + h W_hh + b). State: {h}.
///
/// Every cell offers two ways to run: step(x, s) uses the cell's own Parameters (as leaves
/// of x's tape), and step(w, x, s) uses any Vars `w` of the same shapes, e.g. the inputs of a
/// gradcheck function. bind() produces those Weights from either source.
template <class S>
class RnnCell : public Module<S> {
 public:
  using Scalar = S;
  static constexpr const char* kName = "RnnCell";
  struct Options {
    Index input_size = 0;
    Index hidden_size = 0;
    Activation activation = Activation::Tanh;
    RecurrentInit recurrent_init = RecurrentInit::Orthogonal;
    double recurrent_scale = 1.0;  ///< gain of the orthogonal init, or the identity's scale.
  };
  /// The weights one step reads, as Vars on a tape (same order as named_parameters()).
  struct Weights {
    Var<S> W_ih, W_hh, b;
  };

  /// W_ih xavier-uniform, W_hh per recurrent_init, b zeros. ValueError for non-positive sizes.
  RnnCell(const Options& options, std::mt19937_64& rng);

  /// One step with the cell's Parameters. x [B x in], s = {h [B x H]}.
  State<S> step(const Var<S>& x, const State<S>& s) { return step(bind(x.tape()), x, s); }
  /// One step with the given weights.
  State<S> step(const Weights& w, const Var<S>& x, const State<S>& s) const;
  /// The whole sequence with the cell's Parameters: x_all [T*B x in] holds the inputs of all T
  /// steps time-major (rows t*B .. t*B+B-1 are step t), s0 = {h0 [B x H]}. See sequence.h.
  SequenceResult<S> forward_sequence(const Var<S>& x_all, const State<S>& s0, const SequenceOptions& options = {}) {
    return forward_sequence(bind(x_all.tape()), x_all, s0, options);
  }
  /// The whole sequence with the given weights: one affine for every step's input projection,
  /// then the recurrence (one rnn_sequence op when options.fused and the activation is tanh, else op by op).
  SequenceResult<S> forward_sequence(const Weights& w, const Var<S>& x_all, const State<S>& s0,
                                     const SequenceOptions& options = {}) const;
  /// An embedding followed by the cell, from token ids: the same values and gradients as
  /// forward_sequence(gather_rows(embedding, ids), s0, options), with the embedding folded into
  /// the input projection. One affine makes table = embedding W_ih + b [K x H]; the recurrence
  /// reads its rows by id (rnn_sequence_gather when fused and tanh, else gather_rows and the
  /// op-by-op steps). Cheaper whenever the vocabulary K is below T*B. embedding [K x in]
  /// (e.g. an Embedding's table leaf), ids: T*B ids in [0, K), time-major; s0 = {h0 [B x H]}.
  SequenceResult<S> forward_tokens(const Var<S>& embedding, std::span<const std::int32_t> ids, const State<S>& s0,
                                   const SequenceOptions& options = {}) {
    return forward_tokens(bind(embedding.tape()), embedding, ids, s0, options);
  }
  /// The same with the given weights.
  SequenceResult<S> forward_tokens(const Weights& w, const Var<S>& embedding, std::span<const std::int32_t> ids,
                                   const State<S>& s0, const SequenceOptions& options = {}) const;
  /// {zeros [batch x H]} as constants on tape.
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
  [[nodiscard]] std::size_t state_tensors() const { return 1; }
  [[nodiscard]] std::size_t num_parameter_tensors() const { return 3; }
  [[nodiscard]] const Options& options() const { return options_; }

  void visit_parameters(const ParameterVisitor<S>& v) override;

  Parameter<S> W_ih;  ///< [in x H]
  Parameter<S> W_hh;  ///< [H x H]
  Parameter<S> b;     ///< [1 x H]

 private:
  /// One step's recurrence from its input projection xp = x W_ih + b (the part step() and
  /// forward_sequence share).
  State<S> recur(const Weights& w, const Var<S>& xp, const State<S>& s) const;

  Options options_;
};

extern template class RnnCell<float>;
extern template class RnnCell<double>;

}  // namespace tapegrad::nn
