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

#include <array>
#include <cstdint>
#include <random>
#include <span>

#include <tapegrad/nn/cell.h>

namespace tapegrad::nn {

/// GRU cell. State: {h [B x H]}. Stepping, binding, sizes: see cell.h.
template <class S>
class GruCell : public Cell<GruCell<S>, S> {
  using Base = Cell<GruCell<S>, S>;

 public:
  static constexpr const char* kName = "GruCell";
  /// The weights one step reads (same order as named_parameters()).
  struct Weights {
    Var<S> W_ih, W_hh, b_ih, b_hh;
  };

  /// Per gate: W_ih block xavier-uniform, W_hh block orthogonal; biases zeros.
  GruCell(const CellOptions& options, std::mt19937_64& rng);

  using Base::forward_tokens;
  /// Token ids through an embedding [K x in] (see sequence.h): table = embedding W_ih + b_ih
  /// [K x 3H], then gru_sequence_gather when fused, else gather_rows and op by op.
  SequenceResult<S> forward_tokens(const Weights& w, const Var<S>& embedding, std::span<const std::int32_t> ids,
                                   const State<S>& s0, const SequenceOptions& options = {}) const;

  Parameter<S> W_ih;  ///< [in x 3H], gate blocks r, z, n
  Parameter<S> W_hh;  ///< [H x 3H], gate blocks r, z, n
  Parameter<S> b_ih;  ///< [1 x 3H]
  Parameter<S> b_hh;  ///< [1 x 3H]
  static constexpr std::array kParameters{&GruCell::W_ih, &GruCell::W_hh, &GruCell::b_ih, &GruCell::b_hh};

 private:
  friend Base;
  State<S> next_state(const Weights& w, const Var<S>& x, const State<S>& s) const {
    return recur(w, affine(x, w.W_ih, w.b_ih), s);
  }
  /// forward_sequence after its checks: one affine for every step's input projection, then
  /// one gru_sequence op when options.fused, else op by op.
  SequenceResult<S> run_sequence(const Weights& w, const Var<S>& x_all, const State<S>& s0, Index steps,
                                 const SequenceOptions& options) const;
  /// One step's recurrence from its input projection xp = x W_ih + b_ih (the part step() and
  /// forward_sequence share).
  State<S> recur(const Weights& w, const Var<S>& xp, const State<S>& s) const;
};

extern template class GruCell<float>;
extern template class GruCell<double>;

}  // namespace tapegrad::nn
