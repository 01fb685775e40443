#include <cmath>

#include <tapegrad/nn/init.h>
#include <tapegrad/nn/lstm_cell.h>

#include "gate_init.h"

namespace tapegrad::nn {

template <class S>
LstmCell<S>::LstmCell(const LstmCellOptions& options, std::mt19937_64& rng)
    : BuiltinCell<LstmCell<S>, S, LstmCellOptions>(options),
      W_ih(Matrix<S>(options.input_size, 4 * options.hidden_size), "W_ih"),
      W_hh(Matrix<S>(options.hidden_size, 4 * options.hidden_size), "W_hh") {
  TAPEGRAD_CHECK(std::isfinite(options.forget_bias), ValueError, "{}: forget_bias must be finite, got {}", kName,
                 options.forget_bias);
  const Index h = options.hidden_size;
  detail::init_gate_blocks<S>(W_ih.value, 4, h, [&](Matrix<S>& m) { init::xavier_uniform(m, rng); });
  detail::init_gate_blocks<S>(W_hh.value, 4, h, [&](Matrix<S>& m) { init::orthogonal(m, rng); });
  if (options.bias) {
    b = Parameter<S>(Matrix<S>::Zero(1, 4 * h), "b");
    b.value.middleCols(h, h).setConstant(static_cast<S>(options.forget_bias));
  }
}

template <class S>
State<S> LstmCell<S>::recur(const Weights& w, const Var<S>& xp, const State<S>& s) const {
  const Index h = this->hidden_size();
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

template class LstmCell<float>;
template class LstmCell<double>;

}  // namespace tapegrad::nn
