#include <tapegrad/nn/init.h>
#include <tapegrad/nn/rnn_cell.h>

#include "sequence_check.h"

namespace tapegrad::nn {

template <class S>
RnnCell<S>::RnnCell(const RnnCellOptions& options, std::mt19937_64& rng)
    : Base(options),
      W_ih(Matrix<S>(options.input_size, options.hidden_size), "W_ih"),
      W_hh(Matrix<S>(options.hidden_size, options.hidden_size), "W_hh"),
      b(Matrix<S>::Zero(1, options.hidden_size), "b") {
  init::xavier_uniform(W_ih, rng);
  if (options.recurrent_init == RecurrentInit::Identity) {
    init::identity(W_hh, options.recurrent_scale);
  } else {
    init::orthogonal(W_hh, rng, options.recurrent_scale);
  }
}

template <class S>
std::optional<SequenceResult<S>> RnnCell<S>::fused_sequence(const Weights& w, const Var<S>& xp, const State<S>& s0,
                                                            const SequenceOptions& options) const {
  if (!options.fused || this->options().activation != Activation::Tanh) return std::nullopt;
  const Var<S> hs = rnn_sequence(xp, s0.h(), w.W_hh);
  return SequenceResult<S>{hs, {{detail::last_step_rows(hs, s0.h().rows())}}};
}

template <class S>
std::optional<SequenceResult<S>> RnnCell<S>::fused_tokens(const Weights& w, const Var<S>& table,
                                                          std::span<const std::int32_t> ids, const State<S>& s0,
                                                          const SequenceOptions& options) const {
  if (!options.fused || this->options().activation != Activation::Tanh) return std::nullopt;
  const Var<S> hs = rnn_sequence_gather(table, ids, s0.h(), w.W_hh);
  return SequenceResult<S>{hs, {{detail::last_step_rows(hs, s0.h().rows())}}};
}

template <class S>
State<S> RnnCell<S>::recur(const Weights& w, const Var<S>& xp, const State<S>& s) const {
  const Var<S> pre = xp + matmul(s.h(), w.W_hh);
  switch (this->options().activation) {
    case Activation::Relu:
      return {{relu(pre)}};
    case Activation::Logistic:
      return {{sigmoid(pre)}};
    case Activation::Tanh:
      break;
  }
  return {{tanh(pre)}};
}

template class RnnCell<float>;
template class RnnCell<double>;

}  // namespace tapegrad::nn
