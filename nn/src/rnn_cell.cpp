#include <tapegrad/nn/init.h>
#include <tapegrad/nn/rnn_cell.h>

namespace tapegrad::nn {

template <class S>
RnnCell<S>::RnnCell(const RnnCellOptions& options, std::mt19937_64& rng)
    : BuiltinCell<RnnCell<S>, S, RnnCellOptions>(options),
      W_ih(Matrix<S>(options.input_size, options.hidden_size), "W_ih"),
      W_hh(Matrix<S>(options.hidden_size, options.hidden_size), "W_hh") {
  if (options.bias) b = Parameter<S>(Matrix<S>::Zero(1, options.hidden_size), "b");
  init::xavier_uniform(W_ih, rng);
  if (options.recurrent_init == RecurrentInit::Identity) {
    init::identity(W_hh, options.recurrent_scale);
  } else {
    init::orthogonal(W_hh, rng, options.recurrent_scale);
  }
}

template <class S>
State<S> RnnCell<S>::recur(const Weights& w, const Var<S>& xp, const State<S>& s) const {
  const Var<S> pre = xp + matmul(s.h(), w.W_hh);
  switch (this->options().activation) {
    case Activation::Relu:
      return {{relu(pre)}};
    case Activation::Logistic:
      return {{sigmoid(pre)}};
    case Activation::Identity:
      return {{pre}};
    case Activation::Tanh:
      break;
  }
  return {{tanh(pre)}};
}

template class RnnCell<float>;
template class RnnCell<double>;

}  // namespace tapegrad::nn
