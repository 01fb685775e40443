#include <tapegrad/nn/init.h>
#include <tapegrad/nn/linear.h>

#include "cell_check.h"
#include "size_check.h"

namespace tapegrad::nn {

template <class S>
Linear<S>::Linear(const Options& options, std::mt19937_64& rng) : options_(options) {
  detail::check_positive_sizes("Linear", "input_size", options.input_size, "output_size", options.output_size);
  W = Parameter<S>(Matrix<S>(options.input_size, options.output_size), "W");
  if (options.bias) b = Parameter<S>(Matrix<S>::Zero(1, options.output_size), "b");
  init::xavier_uniform(W, rng);
}

template <class S>
Var<S> Linear<S>::forward(const Weights& w, const Var<S>& x) const {
  TAPEGRAD_CHECK(x.cols() == input_size(), ShapeError, "Linear.forward: input x is {}, expected [{} x {}]", x.shape(),
                 x.rows(), input_size());
  return w.b.empty() ? matmul(x, w.W) : affine(x, w.W, w.b);
}

template <class S>
typename Linear<S>::Weights Linear<S>::bind(std::span<const Var<S>> vars) const {
  if (!has_bias()) {
    detail::check_bind<S>(kName, vars, {&W}, {"W"});
    return {vars[0], Var<S>()};
  }
  detail::check_bind<S>(kName, vars, {&W, &b}, {"W", "b"});
  return {vars[0], vars[1]};
}

template class Linear<float>;
template class Linear<double>;

}  // namespace tapegrad::nn
