// Gradient clipping for exploding gradients in BPTT. Every clip reports what it saw and did,
// and a NaN/Inf gradient is never silently applied: it throws (naming the parameters that
// hold it, by the name the tape and the optimizer show: Parameter::full_name()) or, on request,
// zeroes the gradients and reports the step as skipped. The names follow PyTorch:
// clip_grad_norm is torch.nn.utils.clip_grad_norm_ (one norm over all parameters).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

#include <tapegrad/error.h>
#include <tapegrad/parameter.h>

namespace tapegrad::nn {

/// What to do when a gradient holds NaN or Inf.
enum class NonFinite {
  Throw,     ///< throw NumericError naming the parameter(s) holding NaN/Inf
  SkipStep,  ///< zero every gradient and report skipped = true (the caller skips the update)
};

/// What one clip call saw and did.
struct ClipReport {
  double norm_seen = 0;  ///< before clipping: the joint L2 norm (clip_grad_norm), the largest
                         ///< per-parameter L2 norm (per parameter), or the largest |g| (by value);
                         ///< NaN/Inf if skipped
  bool clipped = false;  ///< some gradient was changed
  double scale = 1;      ///< the factor applied (clip_grad_norm), the smallest one applied (per parameter);
                         ///< 1 for clipping by value; 0 when skipped
  bool skipped = false;  ///< a non-finite gradient was found and NonFinite::SkipStep zeroed all gradients
};

/// Clamps every gradient element to [-value, value]. value < 0 or NaN -> ValueError.
template <class S>
ClipReport clip_grad_value(const std::vector<Parameter<S>*>& params, double value, NonFinite policy = NonFinite::Throw);

/// Global norm, as torch.nn.utils.clip_grad_norm_: n = sqrt(sum of every gradient element
/// squared, over all params); when n > max_norm, scales every gradient by max_norm / (n + 1e-6).
/// max_norm < 0 or NaN -> ValueError.
template <class S>
ClipReport clip_grad_norm(const std::vector<Parameter<S>*>& params, double max_norm,
                          NonFinite policy = NonFinite::Throw);

/// Per parameter: when a gradient's own L2 norm n exceeds max_norm, scales that gradient alone
/// by max_norm / (n + 1e-6). max_norm < 0 or NaN -> ValueError.
template <class S>
ClipReport clip_grad_norm_per_parameter(const std::vector<Parameter<S>*>& params, double max_norm,
                                        NonFinite policy = NonFinite::Throw);

// The same for a braced list of parameter pointers, e.g. clip_grad_norm({&w, &b}, 1.0).
template <class S>
ClipReport clip_grad_value(std::initializer_list<Parameter<S>*> params, double value,
                           NonFinite policy = NonFinite::Throw) {
  return clip_grad_value(std::vector<Parameter<S>*>(params), value, policy);
}
template <class S>
ClipReport clip_grad_norm(std::initializer_list<Parameter<S>*> params, double max_norm,
                          NonFinite policy = NonFinite::Throw) {
  return clip_grad_norm(std::vector<Parameter<S>*>(params), max_norm, policy);
}
template <class S>
ClipReport clip_grad_norm_per_parameter(std::initializer_list<Parameter<S>*> params, double max_norm,
                                        NonFinite policy = NonFinite::Throw) {
  return clip_grad_norm_per_parameter(std::vector<Parameter<S>*>(params), max_norm, policy);
}

/// A clipping rule applied every step, with counters of what it did.
class Clipper {
 public:
  /// Value: clip_grad_value. Norm: clip_grad_norm (global). NormPerParameter: clip_grad_norm_per_parameter.
  enum class Mode { Value, Norm, NormPerParameter };
  /// threshold < 0 or NaN -> ValueError.
  Clipper(Mode mode, double threshold, NonFinite policy = NonFinite::Throw);

  /// Clips params' gradients, counts the step, returns the report. A step that throws counts as
  /// seen only.
  template <class S>
  ClipReport operator()(const std::vector<Parameter<S>*>& params) {
    ++steps_seen_;
    ClipReport r;
    switch (mode_) {
      case Mode::Value:
        r = clip_grad_value(params, threshold_, policy_);
        break;
      case Mode::Norm:
        r = clip_grad_norm(params, threshold_, policy_);
        break;
      case Mode::NormPerParameter:
        r = clip_grad_norm_per_parameter(params, threshold_, policy_);
        break;
    }
    if (r.clipped) ++steps_clipped_;
    if (r.skipped) ++steps_skipped_;
    last_ = r;
    return r;
  }
  /// The same for a braced list, e.g. clipper({&w, &b}).
  template <class S>
  ClipReport operator()(std::initializer_list<Parameter<S>*> params) {
    return (*this)(std::vector<Parameter<S>*>(params));
  }

  [[nodiscard]] std::int64_t steps_seen() const { return steps_seen_; }
  [[nodiscard]] std::int64_t steps_clipped() const { return steps_clipped_; }
  [[nodiscard]] std::int64_t steps_skipped() const { return steps_skipped_; }
  /// The report of the latest step that returned.
  [[nodiscard]] const ClipReport& last() const { return last_; }
  void reset_counters() { steps_seen_ = steps_clipped_ = steps_skipped_ = 0; }

 private:
  Mode mode_;
  double threshold_;
  NonFinite policy_;
  std::int64_t steps_seen_ = 0;
  std::int64_t steps_clipped_ = 0;
  std::int64_t steps_skipped_ = 0;
  ClipReport last_;
};

}  // namespace tapegrad::nn
