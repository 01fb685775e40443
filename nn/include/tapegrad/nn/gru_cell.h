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
#include <optional>
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

  Parameter<S> W_ih;  ///< [in x 3H], gate blocks r, z, n
  Parameter<S> W_hh;  ///< [H x 3H], gate blocks r, z, n
  Parameter<S> b_ih;  ///< [1 x 3H]
  Parameter<S> b_hh;  ///< [1 x 3H]
  static constexpr std::array kParameters{&GruCell::W_ih, &GruCell::W_hh, &GruCell::b_ih, &GruCell::b_hh};

  /// The part of a step that reads only the input: x W_ih + b_ih, for one step or all of them.
  Var<S> project_input(const Weights& w, const Var<S>& x) const { return affine(x, w.W_ih, w.b_ih); }
  /// The rest of a step, from its input projection xp.
  State<S> recur(const Weights& w, const Var<S>& xp, const State<S>& s) const;

 private:
  friend Base;
  /// forward_sequence and forward_tokens: gru_sequence(_gather) when fused, one tape entry for the whole
  /// recurrence; nullopt otherwise (op by op).
  std::optional<SequenceResult<S>> fused_sequence(const Weights& w, const Var<S>& xp, const State<S>& s0,
                                                  const SequenceOptions& options) const;
  std::optional<SequenceResult<S>> fused_tokens(const Weights& w, const Var<S>& table,
                                                std::span<const std::int32_t> ids, const State<S>& s0,
                                                const SequenceOptions& options) const;
};

extern template class GruCell<float>;
extern template class GruCell<double>;

}  // namespace tapegrad::nn
