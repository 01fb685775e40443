// Adagrad with optional learning-rate decay and initial accumulator, as torch.optim.Adagrad.
#include <tapegrad/nn/optim.h>

#include "optim_checks.h"

namespace tapegrad::nn {

template <class S>
Adagrad<S>::Adagrad(ParameterList<S> params, const AdagradOptions& options)
    : Optimizer<S>("adagrad", std::move(params), options.lr), o_(options) {
  detail::check_non_negative("adagrad", Adagrad::hyperparameters());
  sum_ = this->add_state("sum", static_cast<S>(o_.initial_accumulator_value));
}

template <class S>
void Adagrad<S>::update(std::size_t i, const Parameter<S>& p, Matrix<S>& value, std::int64_t t) {
  const Matrix<S> g = this->l2_gradient(p, o_.weight_decay);
  const double clr = this->learning_rate() / (1 + static_cast<double>(t - 1) * o_.lr_decay);
  Matrix<S>& s = (*sum_.next)[i];
  s.array() = (*sum_.now)[i].array() + g.array().square();
  value.array() = p.value.array() - static_cast<S>(clr) * g.array() / (s.array().sqrt() + static_cast<S>(o_.eps));
}

template <class S>
std::vector<std::pair<std::string, double>> Adagrad<S>::hyperparameters() const {
  return {{"lr_decay", o_.lr_decay},
          {"weight_decay", o_.weight_decay},
          {"initial_accumulator_value", o_.initial_accumulator_value},
          {"eps", o_.eps}};
}

template class Adagrad<float>;
template class Adagrad<double>;

}  // namespace tapegrad::nn
