// Adam and AdamW, as torch.optim.Adam / AdamW (bias correction, eps outside the sqrt).
#include <cmath>

#include <tapegrad/nn/optim.h>

#include "optim_checks.h"

namespace tapegrad::nn {

template <class S>
Adam<S>::Adam(ParameterList<S> params, const AdamOptions& options) : Adam("adam", std::move(params), options, false) {}

template <class S>
Adam<S>::Adam(std::string kind, ParameterList<S> params, const AdamOptions& options, bool decoupled)
    : Optimizer<S>(std::move(kind), std::move(params), options.lr), o_(options), decoupled_(decoupled) {
  const char* who = decoupled ? "adamw" : "adam";
  detail::check_unit_interval(who, "beta1", o_.beta1);
  detail::check_unit_interval(who, "beta2", o_.beta2);
  detail::check_non_negative(who, Adam::hyperparameters());
  m_ = this->add_state("m");
  v_ = this->add_state("v");
  if (o_.amsgrad) v_max_ = this->add_state("v_max");
}

template <class S>
void Adam<S>::update(std::size_t i, const Parameter<S>& p, Matrix<S>& value, std::int64_t t) {
  const double lr = this->learning_rate();
  const S b1 = static_cast<S>(o_.beta1);
  const S b2 = static_cast<S>(o_.beta2);
  // AdamW decays the value and updates from the raw gradient; Adam adds an L2 penalty.
  const Matrix<S> g = this->l2_gradient(p, decoupled_ ? 0.0 : o_.weight_decay);
  Matrix<S>& m = (*m_.next)[i];
  Matrix<S>& v = (*v_.next)[i];
  m = b1 * (*m_.now)[i] + (S(1) - b1) * g;
  v.array() = b2 * (*v_.now)[i].array() + (S(1) - b2) * g.array().square();
  const double td = static_cast<double>(t);
  const S bc1 = static_cast<S>(1 - std::pow(o_.beta1, td));
  const S bc2_sqrt = static_cast<S>(std::sqrt(1 - std::pow(o_.beta2, td)));
  const Matrix<S>* second = &v;
  if (v_max_.now != nullptr) {
    Matrix<S>& vmax = (*v_max_.next)[i];
    vmax = (*v_max_.now)[i].cwiseMax(v);
    second = &vmax;
  }
  const S step_size = static_cast<S>(lr) / bc1;
  const auto delta = step_size * m.array() / (second->array().sqrt() / bc2_sqrt + static_cast<S>(o_.eps));
  if (decoupled_ && o_.weight_decay != 0) {
    value.array() = p.value.array() * static_cast<S>(1 - lr * o_.weight_decay) - delta;
  } else {
    value.array() = p.value.array() - delta;
  }
}

template <class S>
std::vector<std::pair<std::string, double>> Adam<S>::hyperparameters() const {
  return {{"beta1", o_.beta1},
          {"beta2", o_.beta2},
          {"eps", o_.eps},
          {"weight_decay", o_.weight_decay},
          {"amsgrad", o_.amsgrad ? 1.0 : 0.0}};
}

template <class S>
AdamW<S>::AdamW(ParameterList<S> params, const AdamOptions& options)
    : Adam<S>("adamw", std::move(params), options, true) {}

template class Adam<float>;
template class Adam<double>;
template class AdamW<float>;
template class AdamW<double>;

}  // namespace tapegrad::nn
