#include <tapegrad/nn/init.h>
#include <tapegrad/nn/lstm_cell.h>

#include "cell_check.h"
#include "gate_init.h"
#include "sequence_check.h"

namespace tapegrad::nn {

template <class S>
LstmCell<S>::LstmCell(const Options& options, std::mt19937_64& rng) : options_(options) {
  detail::check_sizes(kName, options.input_size, options.hidden_size);
  TAPEGRAD_CHECK(std::isfinite(options.forget_bias), ValueError, "{}: forget_bias must be finite, got {}", kName,
                 options.forget_bias);
  const Index in = options.input_size;
  const Index h = options.hidden_size;
  W_ih = Parameter<S>(Matrix<S>(in, 4 * h), "W_ih");
  W_hh = Parameter<S>(Matrix<S>(h, 4 * h), "W_hh");
  b = Parameter<S>(Matrix<S>::Zero(1, 4 * h), "b");
  detail::init_gate_blocks<S>(W_ih.value, 4, h, [&](Matrix<S>& m) { init::xavier_uniform(m, rng); });
  detail::init_gate_blocks<S>(W_hh.value, 4, h, [&](Matrix<S>& m) { init::orthogonal(m, rng); });
  b.value.middleCols(h, h).setConstant(static_cast<S>(options.forget_bias));
}

template <class S>
State<S> LstmCell<S>::step(const Weights& w, const Var<S>& x, const State<S>& s) const {
  detail::check_step(kName, x, input_size(), s, {"h", "c"}, hidden_size());
  return recur(w, affine(x, w.W_ih, w.b), s);
}

template <class S>
SequenceResult<S> LstmCell<S>::forward_sequence(const Weights& w, const Var<S>& x_all, const State<S>& s0,
                                                const SequenceOptions& options) const {
  const Index steps = detail::check_sequence(kName, x_all, input_size(), s0, {"h", "c"}, hidden_size());
  const Var<S> xp = affine(x_all, w.W_ih, w.b);  // every step's x_t W_ih + b in one GEMM
  if (options.fused) {
    const Index h = hidden_size();
    const Var<S> hc = lstm_sequence(xp, s0.h(), s0.c(), w.W_hh);  // [T*B x 2H]: h_t | c_t
    const Var<S> last = detail::last_step_rows(hc, s0.h().rows());
    return {slice_cols(hc, 0, h), {{slice_cols(last, 0, h), slice_cols(last, h, h)}}};
  }
  return detail::unrolled_sequence(xp, s0, steps, options.first_step,
                                   [&](const Var<S>& xp_t, const State<S>& s) { return recur(w, xp_t, s); });
}

template <class S>
SequenceResult<S> LstmCell<S>::forward_tokens(const Weights& w, const Var<S>& embedding,
                                              std::span<const std::int32_t> ids, const State<S>& s0,
                                              const SequenceOptions& options) const {
  const Index steps = detail::check_tokens(kName, embedding, ids.size(), input_size(), s0, {"h", "c"}, hidden_size());
  const Var<S> table = affine(embedding, w.W_ih, w.b);  // [K x 4H]: every token's x W_ih + b
  if (options.fused) {
    const LstmStates<S> hc = lstm_sequence_gather(table, ids, s0.h(), s0.c(), w.W_hh);
    const Index batch = s0.h().rows();
    return {hc.h, {{detail::last_step_rows(hc.h, batch), detail::last_step_rows(hc.c, batch)}}};
  }
  return detail::unrolled_sequence(gather_rows(table, ids), s0, steps, options.first_step,
                                   [&](const Var<S>& xp_t, const State<S>& s) { return recur(w, xp_t, s); });
}

template <class S>
State<S> LstmCell<S>::recur(const Weights& w, const Var<S>& xp, const State<S>& s) const {
  const Index h = hidden_size();
  const Var<S> a = xp + matmul(s.h(), w.W_hh);
  // One sigmoid over all four blocks is cheaper on the tape than three; g's block is unused.
  const Var<S> gates = sigmoid(a);
  const Var<S> i = slice_cols(gates, 0, h);
  const Var<S> f = slice_cols(gates, h, h);
  const Var<S> g = tanh(slice_cols(a, 2 * h, h));
  const Var<S> o = slice_cols(gates, 3 * h, h);
  const Var<S> c_next = f * s.c() + i * g;
  const Var<S> h_next = o * tanh(c_next);
  return {{h_next, c_next}};
}

template <class S>
State<S> LstmCell<S>::initial_state(Tape<S>& tape, Index batch) const {
  return detail::zero_state(kName, tape, batch, hidden_size(), 2);
}

template <class S>
typename LstmCell<S>::Weights LstmCell<S>::bind(Tape<S>& tape) {
  return {tape.leaf(W_ih), tape.leaf(W_hh), tape.leaf(b)};
}

template <class S>
typename LstmCell<S>::Weights LstmCell<S>::bind(std::span<const Var<S>> vars) const {
  detail::check_bind<S>(kName, vars, {&W_ih, &W_hh, &b}, {"W_ih", "W_hh", "b"});
  return {vars[0], vars[1], vars[2]};
}

template <class S>
void LstmCell<S>::visit_parameters(const ParameterVisitor<S>& v) {
  v("W_ih", W_ih);
  v("W_hh", W_hh);
  v("b", b);
}

template class LstmCell<float>;
template class LstmCell<double>;

}  // namespace tapegrad::nn
