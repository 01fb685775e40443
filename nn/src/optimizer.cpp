// The optimizer base: parameter list checks, the all-or-nothing step, named state slots.
#include <tapegrad/nn/optim.h>

#include <cmath>
#include <limits>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include <tapegrad/error.h>

namespace tapegrad::nn {
namespace {

std::string param_label(std::size_t i, const std::string& name) {
  return name.empty() ? fmt::format("#{}", i) : fmt::format("'{}' (#{})", name, i);
}

// "nan at [r, c]" for the first non-finite element of m, or "" when every element is finite.
template <class S>
std::string first_non_finite(const Matrix<S>& m) {
  // A NaN or Inf element makes the sum NaN or Inf, so a finite sum proves every element finite;
  // the vectorised sum is several times faster than allFinite(). A sum that overflows from
  // finite elements only costs the exact scan below.
  if (std::isfinite(m.sum())) return {};
  for (Index r = 0; r < m.rows(); ++r) {
    for (Index c = 0; c < m.cols(); ++c) {
      if (!std::isfinite(m(r, c))) return fmt::format("{} at [{}, {}]", m(r, c), r, c);
    }
  }
  return {};
}

}  // namespace

template <class S>
ParameterList<S>::ParameterList(std::vector<Parameter<S>*> list) : params(std::move(list)) {
  names.reserve(params.size());
  for (const Parameter<S>* p : params) names.push_back(p != nullptr ? p->full_name() : std::string());
}

template <class S>
ParameterList<S>::ParameterList(const std::vector<std::pair<std::string, Parameter<S>*>>& named_list) {
  for (const auto& [name, p] : named_list) {
    names.push_back(name);
    params.push_back(p);
  }
}

template <class S>
Optimizer<S>::Optimizer(std::string kind, ParameterList<S> params, double lr)
    : kind_(std::move(kind)), params_(std::move(params.params)), names_(std::move(params.names)), lr_(0) {
  std::unordered_set<const Parameter<S>*> seen;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    TAPEGRAD_CHECK(params_[i] != nullptr, ValueError, "{}: parameter {} is null", kind_, param_label(i, names_[i]));
    TAPEGRAD_CHECK(seen.insert(params_[i]).second, ValueError,
                   "{}: parameter {} is given twice; each parameter may appear once", kind_, label(i));
  }
  set_learning_rate(lr);
}

template <class S>
std::string Optimizer<S>::label(std::size_t i) const {
  return param_label(i, names_[i]);
}

template <class S>
void Optimizer<S>::set_learning_rate(double lr) {
  TAPEGRAD_CHECK(std::isfinite(lr) && lr >= 0, ValueError, "{}: learning rate {} must be finite and >= 0", kind_, lr);
  lr_ = lr;
}

template <class S>
void Optimizer<S>::check_shapes() const {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Parameter<S>& p = *params_[i];
    TAPEGRAD_CHECK(shape_of(p.grad) == p.shape(), ShapeError, "{}.step: parameter {} has value {} but gradient {}",
                   kind_, label(i), p.shape(), shape_of(p.grad));
    for (const auto& [slot, tensors] : state_) {
      TAPEGRAD_CHECK(shape_of(tensors[i]) == p.shape(), ShapeError,
                     "{}.step: state '{}' of parameter {} is {} but the parameter is {}", kind_, slot, label(i),
                     shape_of(tensors[i]), p.shape());
    }
  }
}

template <class S>
std::string Optimizer<S>::non_finite_gradient() const {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (std::string bad = first_non_finite(params_[i]->grad); !bad.empty()) {
      return fmt::format("parameter {} has a non-finite gradient ({})", label(i), bad);
    }
  }
  return {};
}

template <class S>
std::string Optimizer<S>::non_finite_update(std::size_t i) const {
  if (std::string bad = first_non_finite(next_value_[i]); !bad.empty()) {
    return fmt::format("the update of parameter {} is not finite ({} in its new value)", label(i), bad);
  }
  for (std::size_t s = 0; s < state_.size(); ++s) {
    if (std::string bad = first_non_finite(next_state_[s][i]); !bad.empty()) {
      return fmt::format("the update of parameter {} is not finite ({} in its state '{}')", label(i), bad,
                         state_[s].first);
    }
  }
  return {};
}

template <class S>
void Optimizer<S>::refuse_or_skip(const std::string& what) {
  if (policy_ == OnNonFinite::Skip) {
    ++skipped_steps_;
    return;
  }
  throw NumericError(
      fmt::format("{}.step: {}; no parameter or optimizer state was changed (clip the gradients, or call "
                  "set_non_finite_policy(OnNonFinite::Skip) to skip such steps)",
                  kind_, what));
}

template <class S>
void Optimizer<S>::step() {
  // Every check runs before any value changes, so a refused step leaves everything as it was.
  check_shapes();
  TAPEGRAD_CHECK(step_count_ < std::numeric_limits<std::int64_t>::max(), ValueError,
                 "{}.step: the step count {} is at its maximum; another step would overflow it", kind_, step_count_);
  if (const std::string bad = non_finite_gradient(); !bad.empty()) return refuse_or_skip(bad);
  // Finite gradients can still give a non-finite update (overflow, corrupt state): every update
  // is computed beside the live tensors and checked before any of them is committed.
  next_value_.resize(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    update(i, *params_[i], next_value_[i], step_count_ + 1);
    if (const std::string bad = non_finite_update(i); !bad.empty()) return refuse_or_skip(bad);
  }
  // Commit: values are copied (Parameter::value keeps its buffer), state is swapped (O(1)).
  for (std::size_t i = 0; i < params_.size(); ++i) {
    params_[i]->value = next_value_[i];
    for (std::size_t s = 0; s < state_.size(); ++s) state_[s].second[i].swap(next_state_[s][i]);
  }
  ++step_count_;
}

template <class S>
void Optimizer<S>::zero_grad() {
  for (Parameter<S>* p : params_) p->zero_grad();
}

template <class S>
std::vector<std::pair<std::string, Matrix<S>*>> Optimizer<S>::state_tensors(
    const std::vector<std::pair<std::string, Parameter<S>*>>& model) {
  std::unordered_map<const Parameter<S>*, const std::string*> model_name;
  for (const auto& [name, p] : model) model_name.emplace(p, &name);
  std::vector<std::string> keys(params_.size());
  std::map<std::string, std::size_t> owner;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const auto it = model_name.find(params_[i]);
    keys[i] = it != model_name.end() ? *it->second : names_[i];
    TAPEGRAD_CHECK(!keys[i].empty(), ValueError,
                   "{}: parameter #{} has no name, and its state is saved under its parameter's name (name it, or "
                   "build the optimizer from module.named_parameters())",
                   kind_, i);
    const auto [prev, fresh] = owner.emplace(keys[i], i);
    TAPEGRAD_CHECK(fresh, ValueError,
                   "{}: parameters #{} and #{} are both named '{}', so their state could be swapped on restore (build "
                   "the optimizer from module.named_parameters() for full names)",
                   kind_, prev->second, i, keys[i]);
  }
  std::vector<std::pair<std::string, Matrix<S>*>> out;
  for (auto& [slot, tensors] : state_) {
    for (std::size_t i = 0; i < tensors.size(); ++i)
      out.emplace_back(fmt::format("{}.{}.{}", kind_, slot, keys[i]), &tensors[i]);
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
typename Optimizer<S>::Slot Optimizer<S>::add_state(const std::string& slot, S fill) {
  std::vector<Matrix<S>> tensors;
  tensors.reserve(params_.size());
  for (const Parameter<S>* p : params_) tensors.push_back(Matrix<S>::Constant(p->value.rows(), p->value.cols(), fill));
  next_state_.push_back(tensors);
  return {&state_.emplace_back(slot, std::move(tensors)).second, &next_state_.back()};
}

template struct ParameterList<float>;
template struct ParameterList<double>;
template class Optimizer<float>;
template class Optimizer<double>;

}  // namespace tapegrad::nn
