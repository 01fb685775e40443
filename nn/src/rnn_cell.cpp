#include <tapegrad/nn/init.h>
#include <tapegrad/nn/rnn_cell.h>

#include "cell_check.h"
#include "sequence_check.h"

namespace tapegrad::nn {

template <class S>
RnnCell<S>::RnnCell(const Options& options, std::mt19937_64& rng) : options_(options) {
  detail::check_sizes(kName, options.input_size, options.hidden_size);
  const Index in = options.input_size;
  const Index h = options.hidden_size;
  W_ih = Parameter<S>(Matrix<S>(in, h), "W_ih");
  W_hh = Parameter<S>(Matrix<S>(h, h), "W_hh");
  b = Parameter<S>(Matrix<S>::Zero(1, h), "b");
  init::xavier_uniform(W_ih, rng);
  if (options.recurrent_init == RecurrentInit::Identity) {
    init::identity(W_hh, options.recurrent_scale);
  } else {
    init::orthogonal(W_hh, rng, options.recurrent_scale);
  }
}

template <class S>
State<S> RnnCell<S>::step(const Weights& w, const Var<S>& x, const State<S>& s) const {
  detail::check_step(kName, x, input_size(), s, {"h"}, hidden_size());
  return recur(w, affine(x, w.W_ih, w.b), s);
}

template <class S>
SequenceResult<S> RnnCell<S>::forward_sequence(const Weights& w, const Var<S>& x_all, const State<S>& s0,
                                               const SequenceOptions& options) const {
  const Index steps = detail::check_sequence(kName, x_all, input_size(), s0, {"h"}, hidden_size());
  const Var<S> xp = affine(x_all, w.W_ih, w.b);  // every step's x_t W_ih + b in one GEMM
  if (options.fused && options_.activation == Activation::Tanh) {
    const Var<S> hs = rnn_sequence(xp, s0.h(), w.W_hh);
    return {hs, {{detail::last_step_rows(hs, s0.h().rows())}}};
  }
  return detail::unrolled_sequence(xp, s0, steps, options.first_step,
                                   [&](const Var<S>& xp_t, const State<S>& s) { return recur(w, xp_t, s); });
}

template <class S>
SequenceResult<S> RnnCell<S>::forward_tokens(const Weights& w, const Var<S>& embedding,
                                             std::span<const std::int32_t> ids, const State<S>& s0,
                                             const SequenceOptions& options) const {
  const Index steps = detail::check_tokens(kName, embedding, ids.size(), input_size(), s0, {"h"}, hidden_size());
  const Var<S> table = affine(embedding, w.W_ih, w.b);  // [K x H]: every token's x W_ih + b
  if (options.fused && options_.activation == Activation::Tanh) {
    const Var<S> hs = rnn_sequence_gather(table, ids, s0.h(), w.W_hh);
    return {hs, {{detail::last_step_rows(hs, s0.h().rows())}}};
  }
  return detail::unrolled_sequence(gather_rows(table, ids), s0, steps, options.first_step,
                                   [&](const Var<S>& xp_t, const State<S>& s) { return recur(w, xp_t, s); });
}

template <class S>
State<S> RnnCell<S>::recur(const Weights& w, const Var<S>& xp, const State<S>& s) const {
  const Var<S> pre = xp + matmul(s.h(), w.W_hh);
  switch (options_.activation) {
    case Activation::Relu:
      return {{relu(pre)}};
    case Activation::Logistic:
      return {{sigmoid(pre)}};
    case Activation::Tanh:
      break;
  }
  return {{tanh(pre)}};
}

template <class S>
State<S> RnnCell<S>::initial_state(Tape<S>& tape, Index batch) const {
  return detail::zero_state(kName, tape, batch, hidden_size(), 1);
}

template <class S>
typename RnnCell<S>::Weights RnnCell<S>::bind(Tape<S>& tape) {
  return {tape.leaf(W_ih), tape.leaf(W_hh), tape.leaf(b)};
}

template <class S>
typename RnnCell<S>::Weights RnnCell<S>::bind(std::span<const Var<S>> vars) const {
  detail::check_bind<S>(kName, vars, {&W_ih, &W_hh, &b}, {"W_ih", "W_hh", "b"});
  return {vars[0], vars[1], vars[2]};
}

template <class S>
void RnnCell<S>::visit_parameters(const ParameterVisitor<S>& v) {
  v("W_ih", W_ih);
  v("W_hh", W_hh);
  v("b", b);
}

template class RnnCell<float>;
template class RnnCell<double>;

}  // namespace tapegrad::nn
