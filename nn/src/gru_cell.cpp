#include <tapegrad/nn/gru_cell.h>
#include <tapegrad/nn/init.h>

#include "cell_check.h"
#include "gate_init.h"
#include "sequence_check.h"

namespace tapegrad::nn {

template <class S>
GruCell<S>::GruCell(const Options& options, std::mt19937_64& rng) : options_(options) {
  detail::check_sizes(kName, options.input_size, options.hidden_size);
  const Index in = options.input_size;
  const Index h = options.hidden_size;
  W_ih = Parameter<S>(Matrix<S>(in, 3 * h), "W_ih");
  W_hh = Parameter<S>(Matrix<S>(h, 3 * h), "W_hh");
  b_ih = Parameter<S>(Matrix<S>::Zero(1, 3 * h), "b_ih");
  b_hh = Parameter<S>(Matrix<S>::Zero(1, 3 * h), "b_hh");
  detail::init_gate_blocks<S>(W_ih.value, 3, h, [&](Matrix<S>& m) { init::xavier_uniform(m, rng); });
  detail::init_gate_blocks<S>(W_hh.value, 3, h, [&](Matrix<S>& m) { init::orthogonal(m, rng); });
}

template <class S>
State<S> GruCell<S>::step(const Weights& w, const Var<S>& x, const State<S>& s) const {
  detail::check_step(kName, x, input_size(), s, {"h"}, hidden_size());
  return recur(w, affine(x, w.W_ih, w.b_ih), s);
}

template <class S>
SequenceResult<S> GruCell<S>::forward_sequence(const Weights& w, const Var<S>& x_all, const State<S>& s0,
                                               const SequenceOptions& options) const {
  const Index steps = detail::check_sequence(kName, x_all, input_size(), s0, {"h"}, hidden_size());
  const Var<S> xp = affine(x_all, w.W_ih, w.b_ih);  // every step's x_t W_i* + b_i* in one GEMM
  if (options.fused) {
    const Var<S> hs = gru_sequence(xp, s0.h(), w.W_hh, w.b_hh);
    return {hs, {{detail::last_step_rows(hs, s0.h().rows())}}};
  }
  return detail::unrolled_sequence(xp, s0, steps, options.first_step,
                                   [&](const Var<S>& xp_t, const State<S>& s) { return recur(w, xp_t, s); });
}

template <class S>
SequenceResult<S> GruCell<S>::forward_tokens(const Weights& w, const Var<S>& embedding,
                                             std::span<const std::int32_t> ids, const State<S>& s0,
                                             const SequenceOptions& options) const {
  const Index steps = detail::check_tokens(kName, embedding, ids.size(), input_size(), s0, {"h"}, hidden_size());
  const Var<S> table = affine(embedding, w.W_ih, w.b_ih);  // [K x 3H]: every token's x W_i* + b_i*
  if (options.fused) {
    const Var<S> hs = gru_sequence_gather(table, ids, s0.h(), w.W_hh, w.b_hh);
    return {hs, {{detail::last_step_rows(hs, s0.h().rows())}}};
  }
  return detail::unrolled_sequence(gather_rows(table, ids), s0, steps, options.first_step,
                                   [&](const Var<S>& xp_t, const State<S>& s) { return recur(w, xp_t, s); });
}

template <class S>
State<S> GruCell<S>::recur(const Weights& w, const Var<S>& gi, const State<S>& s) const {
  const Index h = hidden_size();
  const Var<S> gh = affine(s.h(), w.W_hh, w.b_hh);  // [B x 3H]: h W_h* + b_h*
  const Var<S> rz = sigmoid(slice_cols(gi, 0, 2 * h) + slice_cols(gh, 0, 2 * h));
  const Var<S> r = slice_cols(rz, 0, h);
  const Var<S> z = slice_cols(rz, h, h);
  const Var<S> n = tanh(slice_cols(gi, 2 * h, h) + r * slice_cols(gh, 2 * h, h));
  // (1 - z) * n + z * h, written as n + z * (h - n): same value, two fewer ops.
  const Var<S> h_next = n + z * (s.h() - n);
  return {{h_next}};
}

template <class S>
State<S> GruCell<S>::initial_state(Tape<S>& tape, Index batch) const {
  return detail::zero_state(kName, tape, batch, hidden_size(), 1);
}

template <class S>
typename GruCell<S>::Weights GruCell<S>::bind(Tape<S>& tape) {
  return {tape.leaf(W_ih), tape.leaf(W_hh), tape.leaf(b_ih), tape.leaf(b_hh)};
}

template <class S>
typename GruCell<S>::Weights GruCell<S>::bind(std::span<const Var<S>> vars) const {
  detail::check_bind<S>(kName, vars, {&W_ih, &W_hh, &b_ih, &b_hh}, {"W_ih", "W_hh", "b_ih", "b_hh"});
  return {vars[0], vars[1], vars[2], vars[3]};
}

template <class S>
void GruCell<S>::visit_parameters(const ParameterVisitor<S>& v) {
  v("W_ih", W_ih);
  v("W_hh", W_hh);
  v("b_ih", b_ih);
  v("b_hh", b_hh);
}

template class GruCell<float>;
template class GruCell<double>;

}  // namespace tapegrad::nn
