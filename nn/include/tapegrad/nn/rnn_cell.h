// The vanilla (Elman) recurrent cell:
//   h' = act(x W_ih + h W_hh + b),   x [B x in], h [B x H], W_ih [in x H], W_hh [H x H], b [1 x H].
#pragma once

#include <array>
#include <optional>
#include <random>

#include <tapegrad/nn/builtin_cell.h>

namespace tapegrad::nn {

/// The nonlinearity of an RnnCell. Identity makes it a linear RNN, h' = x W_ih + h W_hh + b,
/// whose one-step Jacobian is exactly W_hh^T (gamma = 1 in diagnostics.h).
enum class Activation { Tanh, Relu, Logistic, Identity };

/// How an RnnCell's recurrent weight W_hh starts.
enum class RecurrentInit {
  Orthogonal,  ///< recurrent_scale * a random orthogonal matrix (tanh/logistic default).
  Identity,    ///< recurrent_scale * I: the IRNN recipe for relu cells.
};

struct RnnCellOptions {
  Index input_size = 0;
  Index hidden_size = 0;
  Activation activation = Activation::Tanh;
  RecurrentInit recurrent_init = RecurrentInit::Orthogonal;
  double recurrent_scale = 1.0;  ///< gain of the orthogonal init, or the identity's scale.
  bool bias = true;              ///< false: no b at all, h' = act(x W_ih + h W_hh).
};

/// h' = act(x W_ih + h W_hh + b). State: {h}. Stepping, binding, sizes: see cell.h.
template <class S>
class RnnCell : public BuiltinCell<RnnCell<S>, S, RnnCellOptions> {
 public:
  static constexpr const char* kName = "RnnCell";
  /// The weights one step reads, as Vars on a tape (same order as named_parameters()).
  struct Weights {
    Var<S> W_ih, W_hh, b;  ///< b is empty with bias = false.
  };

  /// W_ih xavier-uniform, W_hh per recurrent_init, b zeros (none with bias = false).
  /// ValueError for non-positive sizes.
  RnnCell(const RnnCellOptions& options, std::mt19937_64& rng);

  Parameter<S> W_ih;  ///< [in x H]
  Parameter<S> W_hh;  ///< [H x H]
  Parameter<S> b;     ///< [1 x H]; empty, and no parameter, with bias = false
  static constexpr std::array kParameters{&RnnCell::W_ih, &RnnCell::W_hh, &RnnCell::b};

  /// The rest of a step, from its input projection xp = x W_ih + b (BuiltinCell::project_input).
  State<S> recur(const Weights& w, const Var<S>& xp, const State<S>& s) const;
  /// The whole recurrence as one op, for forward_sequence and forward_tokens: rnn_sequence(_gather), tanh only.
  std::optional<SequenceResult<S>> fused_recurrence(const Weights& w, const FusedInput<S>& in,
                                                    const State<S>& s0) const {
    if (this->options().activation != Activation::Tanh) return std::nullopt;
    const Var<S> hs =
        in.ids.empty() ? rnn_sequence(in.rows, s0.h(), w.W_hh) : rnn_sequence_gather(in.rows, in.ids, s0.h(), w.W_hh);
    return SequenceResult<S>{hs, {{detail::last_step_rows(hs, s0.h().rows())}}};
  }
};

extern template class RnnCell<float>;
extern template class RnnCell<double>;

}  // namespace tapegrad::nn
