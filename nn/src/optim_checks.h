// Hyperparameter checks shared by the optimizers and schedules; errors name the optimizer,
// the option and the bad value.
#pragma once

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include <tapegrad/error.h>

namespace tapegrad::nn::detail {

/// value must be finite and >= 0.
inline void check_non_negative(const char* who, const char* option, double value) {
  TAPEGRAD_CHECK(std::isfinite(value) && value >= 0, ValueError, "{}: {} = {} must be finite and >= 0", who, option,
                 value);
}

/// Every (option, value) of an optimizer's hyperparameters() must be finite and >= 0 (flags
/// are 0 or 1); checked in order, so the first bad one is named.
inline void check_non_negative(const char* who, const std::vector<std::pair<std::string, double>>& options) {
  for (const auto& [option, value] : options) check_non_negative(who, option.c_str(), value);
}

/// value must lie in [0, 1).
inline void check_unit_interval(const char* who, const char* option, double value) {
  TAPEGRAD_CHECK(value >= 0 && value < 1, ValueError, "{}: {} = {} must be in [0, 1)", who, option, value);
}

}  // namespace tapegrad::nn::detail
