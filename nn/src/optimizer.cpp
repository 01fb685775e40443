// The optimizer base: parameter list checks, the step loop, state slots.
#include <tapegrad/nn/optim.h>

#include <cmath>
#include <unordered_set>

#include <tapegrad/error.h>

namespace tapegrad::nn {
namespace {

std::string param_label(std::size_t i, const std::string& name) {
  return name.empty() ? fmt::format("#{}", i) : fmt::format("'{}' (#{})", name, i);
}

}  // namespace

template <class S>
Optimizer<S>::Optimizer(std::string kind, std::vector<Parameter<S>*> params, double lr)
    : kind_(std::move(kind)), params_(std::move(params)), lr_(0) {
  std::unordered_set<const Parameter<S>*> seen;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    TAPEGRAD_CHECK(params_[i] != nullptr, ValueError, "{}: parameter #{} is null", kind_, i);
    TAPEGRAD_CHECK(seen.insert(params_[i]).second, ValueError,
                   "{}: parameter {} is given twice; each parameter may appear once", kind_,
                   param_label(i, params_[i]->name));
  }
  set_learning_rate(lr);
}

template <class S>
void Optimizer<S>::set_learning_rate(double lr) {
  TAPEGRAD_CHECK(std::isfinite(lr) && lr >= 0, ValueError, "{}: learning rate {} must be finite and >= 0", kind_, lr);
  lr_ = lr;
}

template <class S>
void Optimizer<S>::step() {
  // Check every gradient before touching any value, so a bad one leaves all parameters as they were.
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Parameter<S>& p = *params_[i];
    TAPEGRAD_CHECK(shape_of(p.grad) == p.shape(), ShapeError, "{}.step: parameter {} has value {} but gradient {}",
                   kind_, param_label(i, p.name), p.shape(), shape_of(p.grad));
    for (const auto& [slot, tensors] : state_) {
      TAPEGRAD_CHECK(shape_of(tensors[i]) == p.shape(), ShapeError,
                     "{}.step: state '{}.{}.{}' is {} but parameter {} is {}", kind_, kind_, slot, i,
                     shape_of(tensors[i]), param_label(i, p.name), p.shape());
    }
  }
  ++step_count_;
  for (std::size_t i = 0; i < params_.size(); ++i) update(i, *params_[i], step_count_);
}

template <class S>
void Optimizer<S>::zero_grad() {
  for (Parameter<S>* p : params_) p->zero_grad();
}

template <class S>
std::vector<std::pair<std::string, Matrix<S>*>> Optimizer<S>::state_tensors() {
  std::vector<std::pair<std::string, Matrix<S>*>> out;
  for (auto& [slot, tensors] : state_) {
    for (std::size_t i = 0; i < tensors.size(); ++i)
      out.emplace_back(fmt::format("{}.{}.{}", kind_, slot, i), &tensors[i]);
  }
  return out;
}

template <class S>
void Optimizer<S>::restore_scalars(std::int64_t step_count, double lr) {
  TAPEGRAD_CHECK(step_count >= 0, ValueError, "{}: step count {} must be >= 0", kind_, step_count);
  set_learning_rate(lr);
  step_count_ = step_count;
}

template <class S>
std::vector<Matrix<S>>& Optimizer<S>::add_state(const std::string& slot, S fill) {
  std::vector<Matrix<S>> tensors;
  tensors.reserve(params_.size());
  for (const Parameter<S>* p : params_) tensors.push_back(Matrix<S>::Constant(p->value.rows(), p->value.cols(), fill));
  return state_.emplace_back(slot, std::move(tensors)).second;
}

template class Optimizer<float>;
template class Optimizer<double>;

}  // namespace tapegrad::nn
