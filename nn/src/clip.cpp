// Gradient clipping by value, global norm and per-parameter norm, with the non-finite policy.
#include <tapegrad/nn/clip.h>

#include <cmath>
#include <limits>
#include <string>

#include <tapegrad/error.h>

namespace tapegrad::nn {
namespace {

void check_threshold(const char* who, const char* what, double t) {
  TAPEGRAD_CHECK(!std::isnan(t) && t >= 0, ValueError, "{}: {} = {} must be >= 0 (and not NaN)", who, what, t);
}

// The threshold, then every parameter: present, with a gradient shaped like its value.
template <class S>
void check_args(const char* who, const char* what, double threshold, const std::vector<Parameter<S>*>& params) {
  check_threshold(who, what, threshold);
  for (std::size_t i = 0; i < params.size(); ++i) {
    TAPEGRAD_CHECK(params[i] != nullptr, ValueError, "{}: parameter #{} is null", who, i);
    TAPEGRAD_CHECK(shape_of(params[i]->grad) == params[i]->shape(), ShapeError,
                   "{}: parameter '{}' (#{}) has value {} but gradient {}", who, params[i]->full_name(), i,
                   params[i]->shape(), shape_of(params[i]->grad));
  }
}

// L2 norm in double with scaling, so float gradients and huge double ones do not overflow.
template <class S>
double l2_norm(const Matrix<S>& g) {
  if (g.size() == 0) return 0;
  return g.template cast<double>().stableNorm();
}

// Applies the non-finite policy when some gradient holds NaN/Inf. Returns true (and fills r)
// when the step was skipped; throws under NonFinite::Throw.
template <class S>
bool handle_non_finite(const char* who, const std::vector<Parameter<S>*>& params, NonFinite policy, double seen,
                       ClipReport& r) {
  std::string bad;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Matrix<S>& g = params[i]->grad;
    if (g.allFinite()) continue;
    const char* kind = g.hasNaN() ? "NaN" : "Inf";
    const std::string label =
        params[i]->full_name().empty() ? fmt::format("#{}", i) : fmt::format("'{}'", params[i]->full_name());
    bad += fmt::format("{}{} ({})", bad.empty() ? "" : ", ", label, kind);
  }
  if (bad.empty()) return false;
  TAPEGRAD_CHECK(policy == NonFinite::SkipStep, NumericError,
                 "{}: non-finite gradient; parameter(s) holding NaN/Inf: {}. Lower the learning rate, clip "
                 "earlier, or pass NonFinite::SkipStep to skip such steps",
                 who, bad);
  for (Parameter<S>* p : params) p->grad.setZero();
  r.norm_seen = seen;
  r.clipped = false;
  r.scale = 0;
  r.skipped = true;
  return true;
}

}  // namespace

template <class S>
ClipReport clip_grad_value(const std::vector<Parameter<S>*>& params, double value, NonFinite policy) {
  check_args("clip_grad_value", "value", value, params);
  ClipReport r;
  double largest = 0;
  for (const Parameter<S>* p : params) {
    if (p->grad.size() != 0) largest = std::max(largest, static_cast<double>(p->grad.cwiseAbs().maxCoeff()));
  }
  if (handle_non_finite("clip_grad_value", params, policy, std::numeric_limits<double>::quiet_NaN(), r)) return r;
  r.norm_seen = largest;
  r.clipped = largest > value;
  // Clamp in double so a threshold beyond S's range does not overflow to Inf.
  if (r.clipped) {
    for (Parameter<S>* p : params) {
      p->grad = p->grad.template cast<double>().cwiseMax(-value).cwiseMin(value).template cast<S>();
    }
  }
  return r;
}

template <class S>
ClipReport clip_grad_norm(const std::vector<Parameter<S>*>& params, double max_norm, NonFinite policy) {
  check_args("clip_grad_norm", "max_norm", max_norm, params);
  ClipReport r;
  double total = 0;
  for (const Parameter<S>* p : params) total = std::hypot(total, l2_norm(p->grad));
  if (handle_non_finite("clip_grad_norm", params, policy, total, r)) return r;
  r.norm_seen = total;
  r.clipped = total > max_norm;
  if (r.clipped) {
    r.scale = max_norm / (total + 1e-6);
    for (Parameter<S>* p : params) p->grad *= static_cast<S>(r.scale);
  }
  return r;
}

template <class S>
ClipReport clip_grad_norm_per_parameter(const std::vector<Parameter<S>*>& params, double max_norm, NonFinite policy) {
  check_args("clip_grad_norm_per_parameter", "max_norm", max_norm, params);
  ClipReport r;
  std::vector<double> norms;
  norms.reserve(params.size());
  double largest = 0;
  for (const Parameter<S>* p : params) {
    norms.push_back(l2_norm(p->grad));
    largest =
        std::isnan(largest) ? largest : (std::isnan(norms.back()) ? norms.back() : std::max(largest, norms.back()));
  }
  if (handle_non_finite("clip_grad_norm_per_parameter", params, policy, largest, r)) return r;
  r.norm_seen = largest;
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (norms[i] <= max_norm) continue;
    const double scale = max_norm / (norms[i] + 1e-6);
    params[i]->grad *= static_cast<S>(scale);
    r.scale = std::min(r.scale, scale);
    r.clipped = true;
  }
  return r;
}

Clipper::Clipper(Mode mode, double threshold, NonFinite policy) : mode_(mode), threshold_(threshold), policy_(policy) {
  check_threshold("Clipper", "threshold", threshold);
}

#define TAPEGRAD_NN_INSTANTIATE_CLIP(S)                                                      \
  template ClipReport clip_grad_value(const std::vector<Parameter<S>*>&, double, NonFinite); \
  template ClipReport clip_grad_norm(const std::vector<Parameter<S>*>&, double, NonFinite);  \
  template ClipReport clip_grad_norm_per_parameter(const std::vector<Parameter<S>*>&, double, NonFinite);
TAPEGRAD_NN_INSTANTIATE_CLIP(float)
TAPEGRAD_NN_INSTANTIATE_CLIP(double)

}  // namespace tapegrad::nn
