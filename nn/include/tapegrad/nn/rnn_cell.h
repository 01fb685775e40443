// The vanilla (Elman) recurrent cell:
//   h' = act(x W_ih + h W_hh + b),   x [B x in], h [B x H], W_ih [in x H], W_hh [H x H], b [1 x H].
#pragma once

#include <array>
#include <cstdint>
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

  using Base::forward_tokens;
  /// Token ids through an embedding [K x in] (see sequence.h): table = embedding W_ih + b
  /// [K x H], then rnn_sequence_gather when fused and tanh, else gather_rows and op by op.
  SequenceResult<S> forward_tokens(const Weights& w, const Var<S>& embedding, std::span<const std::int32_t> ids,
                                   const State<S>& s0, const SequenceOptions& options = {}) const;

  Parameter<S> W_ih;  ///< [in x H]
  Parameter<S> W_hh;  ///< [H x H]
  Parameter<S> b;     ///< [1 x H]
  static constexpr std::array kParameters{&RnnCell::W_ih, &RnnCell::W_hh, &RnnCell::b};

 private:
  friend Base;
  State<S> next_state(const Weights& w, const Var<S>& x, const State<S>& s) const {
    return recur(w, affine(x, w.W_ih, w.b), s);
  }
  /// forward_sequence after its checks: one affine for every step's input projection, then
  /// one rnn_sequence op when options.fused and the activation is tanh, else op by op.
  SequenceResult<S> run_sequence(const Weights& w, const Var<S>& x_all, const State<S>& s0, Index steps,
                                 const SequenceOptions& options) const;
  /// One step's recurrence from its input projection xp = x W_ih + b (the part step() and
  /// forward_sequence share).
  State<S> recur(const Weights& w, const Var<S>& xp, const State<S>& s) const;
};

extern template class RnnCell<float>;
extern template class RnnCell<double>;

}  // namespace tapegrad::nn
