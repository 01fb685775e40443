// RMSprop (optionally centered, optionally with momentum), as torch.optim.RMSprop.
#include <tapegrad/nn/optim.h>

#include "optim_checks.h"

namespace tapegrad::nn {

template <class S>
Rmsprop<S>::Rmsprop(ParameterList<S> params, const RmspropOptions& options)
    : Optimizer<S>("rmsprop", std::move(params), options.lr), o_(options) {
  detail::check_unit_interval("rmsprop", "alpha", o_.alpha);
  detail::check_non_negative("rmsprop", Rmsprop::hyperparameters());
  square_avg_ = this->add_state("square_avg");
  if (o_.centered) grad_avg_ = this->add_state("grad_avg");
  if (o_.momentum > 0) momentum_ = this->add_state("momentum");
}

template <class S>
void Rmsprop<S>::update(std::size_t i, const Parameter<S>& p, Matrix<S>& value, std::int64_t) {
  const S a = static_cast<S>(o_.alpha);
  const S lr = static_cast<S>(this->learning_rate());
  const Matrix<S> g = this->l2_gradient(p, o_.weight_decay);
  Matrix<S>& s = (*square_avg_.next)[i];
  s.array() = a * (*square_avg_.now)[i].array() + (S(1) - a) * g.array().square();
  Matrix<S> den;
  if (grad_avg_.now != nullptr) {
    Matrix<S>& m = (*grad_avg_.next)[i];
    m = a * (*grad_avg_.now)[i] + (S(1) - a) * g;
    // s - m^2 >= 0 in exact arithmetic; the clamp keeps rounding from producing a NaN.
    den = ((s.array() - m.array().square()).cwiseMax(S(0)).sqrt() + static_cast<S>(o_.eps)).matrix();
  } else {
    den = (s.array().sqrt() + static_cast<S>(o_.eps)).matrix();
  }
  if (momentum_.now != nullptr) {
    Matrix<S>& b = (*momentum_.next)[i];
    b.array() = static_cast<S>(o_.momentum) * (*momentum_.now)[i].array() + g.array() / den.array();
    value = p.value - lr * b;
  } else {
    value.array() = p.value.array() - lr * g.array() / den.array();
  }
}

template <class S>
std::vector<std::pair<std::string, double>> Rmsprop<S>::hyperparameters() const {
  return {{"alpha", o_.alpha},
          {"eps", o_.eps},
          {"weight_decay", o_.weight_decay},
          {"momentum", o_.momentum},
          {"centered", o_.centered ? 1.0 : 0.0}};
}

template class Rmsprop<float>;
template class Rmsprop<double>;

}  // namespace tapegrad::nn
