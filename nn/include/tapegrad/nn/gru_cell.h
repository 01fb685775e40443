// Gated recurrent unit as a pure step function, with PyTorch's equations exactly. Gate
// blocks are in the column order r, z, n; W_ih [in x 3H], W_hh [H x 3H], b_ih and b_hh [1 x 3H]:
//
//   r  = sigmoid(x W_ir + b_ir + h W_hr + b_hr)
//   z  = sigmoid(x W_iz + b_iz + h W_hz + b_hz)
//   n  = tanh(x W_in + b_in + r * (h W_hn + b_hn))
//   h' = (1 - z) * n + z * h
//
// The two biases are not redundant: b_hn sits inside the reset gate's product. With
// bias = false there are neither (every b term above is dropped).
#pragma once

#include <array>
#include <optional>
#include <random>

#include <tapegrad/nn/builtin_cell.h>

namespace tapegrad::nn {

struct GruCellOptions {
  Index input_size = 0;
  Index hidden_size = 0;
  bool bias = true;  ///< false: no b_ih and no b_hh.
};

/// GRU cell. State: {h [B x H]}. Stepping, binding, sizes: see cell.h.
template <class S>
class GruCell : public BuiltinCell<GruCell<S>, S, GruCellOptions> {
 public:
  static constexpr const char* kName = "GruCell";
  /// The weights one step reads (same order as named_parameters()); the biases are empty with
  /// bias = false.
  struct Weights {
    Var<S> W_ih, W_hh, b_ih, b_hh;
  };

  /// Per gate: W_ih block xavier-uniform, W_hh block orthogonal; biases zeros.
  GruCell(const GruCellOptions& options, std::mt19937_64& rng);

  Parameter<S> W_ih;  ///< [in x 3H], gate blocks r, z, n
  Parameter<S> W_hh;  ///< [H x 3H], gate blocks r, z, n
  Parameter<S> b_ih;  ///< [1 x 3H]; empty (no parameter) with bias = false, as is b_hh
  Parameter<S> b_hh;  ///< [1 x 3H]
  static constexpr std::array kParameters{&GruCell::W_ih, &GruCell::W_hh, &GruCell::b_ih, &GruCell::b_hh};

  /// The gates and the new h from the input half gi = x W_ih + b_ih (BuiltinCell::project_input).
  State<S> recur(const Weights& w, const Var<S>& gi, const State<S>& s) const;
  /// The whole recurrence as one op, for forward_sequence and forward_tokens: gru_sequence(_gather); without b_hh it
  /// reads a constant zero row, the same values as dropping b_hh.
  std::optional<SequenceResult<S>> fused_recurrence(const Weights& w, const FusedInput<S>& in,
                                                    const State<S>& s0) const {
    const Var<S> recurrent_bias = w.b_hh.empty() ? s0.h().tape().constant(Matrix<S>::Zero(1, w.W_hh.cols())) : w.b_hh;
    const Var<S> hs = in.ids.empty() ? gru_sequence(in.rows, s0.h(), w.W_hh, recurrent_bias)
                                     : gru_sequence_gather(in.rows, in.ids, s0.h(), w.W_hh, recurrent_bias);
    return SequenceResult<S>{hs, {{detail::last_step_rows(hs, s0.h().rows())}}};
  }
};

extern template class GruCell<float>;
extern template class GruCell<double>;

}  // namespace tapegrad::nn
