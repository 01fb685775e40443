#include <tapegrad/nn/gru_cell.h>
#include <tapegrad/nn/init.h>

#include "gate_init.h"

namespace tapegrad::nn {

template <class S>
GruCell<S>::GruCell(const GruCellOptions& options, std::mt19937_64& rng)
    : BuiltinCell<GruCell<S>, S, GruCellOptions>(options),
      W_ih(Matrix<S>(options.input_size, 3 * options.hidden_size), "W_ih"),
      W_hh(Matrix<S>(options.hidden_size, 3 * options.hidden_size), "W_hh") {
  const Index h = options.hidden_size;
  if (options.bias) {
    b_ih = Parameter<S>(Matrix<S>::Zero(1, 3 * h), "b_ih");
    b_hh = Parameter<S>(Matrix<S>::Zero(1, 3 * h), "b_hh");
  }
  detail::init_gate_blocks<S>(W_ih.value, 3, h, [&](Matrix<S>& m) { init::xavier_uniform(m, rng); });
  detail::init_gate_blocks<S>(W_hh.value, 3, h, [&](Matrix<S>& m) { init::orthogonal(m, rng); });
}

template <class S>
State<S> GruCell<S>::recur(const Weights& w, const Var<S>& gi, const State<S>& s) const {
  const Index h = this->hidden_size();
  const Var<S> gh = affine_or_matmul(s.h(), w.W_hh, w.b_hh);  // [B x 3H]: h W_h* + b_h*
  const Var<S> rz = sigmoid(slice_cols(gi, 0, 2 * h) + slice_cols(gh, 0, 2 * h));
  const Var<S> r = slice_cols(rz, 0, h);
  const Var<S> z = slice_cols(rz, h, h);
  const Var<S> n = tanh(slice_cols(gi, 2 * h, h) + r * slice_cols(gh, 2 * h, h));
  // (1 - z) * n + z * h, written as n + z * (h - n): same value, two fewer ops.
  const Var<S> h_next = n + z * (s.h() - n);
  return {{h_next}};
}

template class GruCell<float>;
template class GruCell<double>;

}  // namespace tapegrad::nn
