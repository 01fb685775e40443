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
SequenceResult<S> RnnCell<S>::run_sequence(const Weights& w, const Var<S>& x_all, const State<S>& s0, Index steps,
                                           const SequenceOptions& options) const {
  const Var<S> xp = affine(x_all, w.W_ih, w.b);  // every step's x_t W_ih + b in one GEMM
  if (options.fused && this->options().activation == Activation::Tanh) {
    const Var<S> hs = rnn_sequence(xp, s0.h(), w.W_hh);
    return {hs, {{detail::last_step_rows(hs, s0.h().rows())}}};
  }
  return this->recur_each(w, xp, s0, steps, options);
}

template <class S>
SequenceResult<S> RnnCell<S>::forward_tokens(const Weights& w, const Var<S>& embedding,
                                             std::span<const std::int32_t> ids, const State<S>& s0,
                                             const SequenceOptions& options) const {
  const Index steps = detail::check_tokens<S>(kName, embedding, ids.size(), this->input_size(), s0,
                                              this->kStateNames, this->hidden_size());
  const Var<S> table = affine(embedding, w.W_ih, w.b);  // [K x H]: every token's x W_ih + b
  if (options.fused && this->options().activation == Activation::Tanh) {
    const Var<S> hs = rnn_sequence_gather(table, ids, s0.h(), w.W_hh);
    return {hs, {{detail::last_step_rows(hs, s0.h().rows())}}};
  }
  return this->recur_each(w, gather_rows(table, ids), s0, steps, options);
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
