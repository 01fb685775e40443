// Long short-term memory cell as a pure step function. The four gates come from ONE product
// each for x and h, against W_ih [in x 4H] and W_hh [H x 4H], in PyTorch's column order
// i, f, g, o (columns [0,H) = input gate, [H,2H) = forget, [2H,3H) = candidate, [3H,4H) = output):
//
//   a = x W_ih + h W_hh + b                      [B x 4H]
//   i = sigmoid(a[:, 0:H])      f = sigmoid(a[:, H:2H])
//   g = tanh(a[:, 2H:3H])       o = sigmoid(a[:, 3H:4H])
//   c' = f * c + i * g          h' = o * tanh(c')
//
// One bias b [1 x 4H] (PyTorch's b_ih + b_hh folded into one), or none with bias = false.
#pragma once

#include <array>
#include <optional>
#include <random>

#include <tapegrad/nn/builtin_cell.h>

namespace tapegrad::nn {

struct LstmCellOptions {
  Index input_size = 0;
  Index hidden_size = 0;
  /// Added to the forget-gate slice of b at init, so the cell starts out remembering (unused
  /// with bias = false).
  double forget_bias = 1.0;
  bool bias = true;  ///< false: no b at all, a = x W_ih + h W_hh.
};

/// LSTM cell. State: {h, c}, both [B x H]. Stepping, binding, sizes: see cell.h.
template <class S>
class LstmCell : public BuiltinCell<LstmCell<S>, S, LstmCellOptions> {
 public:
  static constexpr const char* kName = "LstmCell";
  static constexpr std::array<const char*, 2> kStateNames{"h", "c"};
  /// The weights one step reads (same order as named_parameters()); b is empty with bias = false.
  struct Weights {
    Var<S> W_ih, W_hh, b;
  };

  /// Per gate: W_ih block xavier-uniform, W_hh block orthogonal; b zeros except forget_bias.
  LstmCell(const LstmCellOptions& options, std::mt19937_64& rng);

  Parameter<S> W_ih;  ///< [in x 4H], gate blocks i, f, g, o
  Parameter<S> W_hh;  ///< [H x 4H], gate blocks i, f, g, o
  Parameter<S> b;     ///< [1 x 4H], gate blocks i, f, g, o; empty (no parameter) with bias = false
  static constexpr std::array kParameters{&LstmCell::W_ih, &LstmCell::W_hh, &LstmCell::b};

  /// The gates and the new {h, c} from xp = x W_ih + b (BuiltinCell::project_input).
  State<S> recur(const Weights& w, const Var<S>& xp, const State<S>& s) const;
  /// The whole recurrence as one op, for forward_sequence and forward_tokens: lstm_sequence(_gather).
  std::optional<SequenceResult<S>> fused_recurrence(const Weights& w, const FusedInput<S>& in,
                                                    const State<S>& s0) const {
    const LstmStates<S> hc = in.ids.empty() ? lstm_sequence(in.rows, s0.h(), s0.c(), w.W_hh)
                                            : lstm_sequence_gather(in.rows, in.ids, s0.h(), s0.c(), w.W_hh);
    const Index batch = s0.h().rows();
    return SequenceResult<S>{hc.h, {{detail::last_step_rows(hc.h, batch), detail::last_step_rows(hc.c, batch)}}};
  }
};

extern template class LstmCell<float>;
extern template class LstmCell<double>;

}  // namespace tapegrad::nn
