// SGD with momentum, dampening, Nesterov and L2 weight decay, as torch.optim.SGD.
#include <tapegrad/nn/optim.h>

#include "optim_checks.h"

namespace tapegrad::nn {

template <class S>
Sgd<S>::Sgd(ParameterList<S> params, const SgdOptions& options)
    : Optimizer<S>("sgd", std::move(params), options.lr), o_(options) {
  detail::check_non_negative("sgd", Sgd::hyperparameters());
  TAPEGRAD_CHECK(!o_.nesterov || (o_.momentum > 0 && o_.dampening == 0), ValueError,
                 "sgd: nesterov needs momentum > 0 and dampening == 0 (got momentum = {}, dampening = {})", o_.momentum,
                 o_.dampening);
  if (o_.momentum != 0) momentum_ = this->add_state("momentum");
}

template <class S>
void Sgd<S>::update(std::size_t i, const Parameter<S>& p, Matrix<S>& value, std::int64_t t) {
  Matrix<S> g = this->l2_gradient(p, o_.weight_decay);
  if (momentum_.now != nullptr) {
    const S mu = static_cast<S>(o_.momentum);
    Matrix<S>& b = (*momentum_.next)[i];
    if (t == 1) {
      b = g;  // PyTorch starts the buffer at the first gradient, undamped
    } else {
      b = mu * (*momentum_.now)[i] + static_cast<S>(1 - o_.dampening) * g;
    }
    if (o_.nesterov) {
      g += mu * b;
    } else {
      g = b;
    }
  }
  value = p.value - static_cast<S>(this->learning_rate()) * g;
}

template <class S>
std::vector<std::pair<std::string, double>> Sgd<S>::hyperparameters() const {
  return {{"momentum", o_.momentum},
          {"dampening", o_.dampening},
          {"weight_decay", o_.weight_decay},
          {"nesterov", o_.nesterov ? 1.0 : 0.0}};
}

template class Sgd<float>;
template class Sgd<double>;

}  // namespace tapegrad::nn
