// The vanilla (Elman) recurrent cell:
//   h' = act(x W_ih + h W_hh + b),   x [B x in], h [B x H], W_ih [in x H], W_hh [H x H], b [1 x H].
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <random>
#include <span>

#include <tapegrad/nn/cell.h>

namespace tapegrad::nn {

/// The nonlinearity of an RnnCell.
enum class Activation { Tanh, Relu, Logistic };

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
};

/// h' = act(x W_ih + h W_hh + b). State: {h}. Stepping, binding, sizes: see cell.h.
template <class S>
class RnnCell : public Cell<RnnCell<S>, S, RnnCellOptions> {
  using Base = Cell<RnnCell<S>, S, RnnCellOptions>;

 public:
  static constexpr const char* kName = "RnnCell";
  /// The weights one step reads, as Vars on a tape (same order as named_parameters()).
  struct Weights {
    Var<S> W_ih, W_hh, b;
  };

  /// W_ih xavier-uniform, W_hh per recurrent_init, b zeros. ValueError for non-positive sizes.
  RnnCell(const RnnCellOptions& options, std::mt19937_64& rng);

  Parameter<S> W_ih;  ///< [in x H]
  Parameter<S> W_hh;  ///< [H x H]
  Parameter<S> b;     ///< [1 x H]
  static constexpr std::array kParameters{&RnnCell::W_ih, &RnnCell::W_hh, &RnnCell::b};

  /// The part of a step that reads only the input: x W_ih + b, for one step or all of them.
  Var<S> project_input(const Weights& w, const Var<S>& x) const { return affine(x, w.W_ih, w.b); }
  /// The rest of a step, from its input projection xp.
  State<S> recur(const Weights& w, const Var<S>& xp, const State<S>& s) const;

 private:
  friend Base;
  /// forward_sequence and forward_tokens: rnn_sequence(_gather) when fused and tanh, one tape entry for the whole
  /// recurrence; nullopt otherwise (op by op).
  std::optional<SequenceResult<S>> fused_sequence(const Weights& w, const Var<S>& xp, const State<S>& s0,
                                                  const SequenceOptions& options) const;
  std::optional<SequenceResult<S>> fused_tokens(const Weights& w, const Var<S>& table,
                                                std::span<const std::int32_t> ids, const State<S>& s0,
                                                const SequenceOptions& options) const;
};

extern template class RnnCell<float>;
extern template class RnnCell<double>;

}  // namespace tapegrad::nn
