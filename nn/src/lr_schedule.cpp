// Step and cosine schedules with optional linear warmup.
#include <tapegrad/nn/lr_schedule.h>

#include <cmath>
#include <numbers>
#include <utility>

#include "optim_checks.h"

namespace tapegrad::nn {

LrSchedule::LrSchedule(const char* name, double base_lr, Warmup warmup, std::function<double(std::int64_t)> schedule)
    : name_(name), base_lr_(base_lr), warmup_(warmup), schedule_(std::move(schedule)) {
  detail::check_non_negative(name, "base_lr", base_lr);
  TAPEGRAD_CHECK(warmup.steps >= 0, ValueError, "{}: warmup steps = {} must be >= 0", name, warmup.steps);
  TAPEGRAD_CHECK(warmup.start_factor >= 0 && warmup.start_factor <= 1, ValueError,
                 "{}: warmup start_factor = {} must be in [0, 1]", name, warmup.start_factor);
}

double LrSchedule::lr_at(std::int64_t epoch) const {
  TAPEGRAD_CHECK(epoch >= 0, ValueError, "{}: epoch {} must be >= 0", name_, epoch);
  if (epoch < warmup_.steps) {
    const double f = static_cast<double>(epoch) / static_cast<double>(warmup_.steps);
    return base_lr_ * (warmup_.start_factor + (1 - warmup_.start_factor) * f);
  }
  return schedule_(epoch - warmup_.steps);
}

StepLr::StepLr(double base_lr, std::int64_t step_size, double gamma, Warmup warmup)
    : LrSchedule("StepLr", base_lr, warmup,
                 [=](std::int64_t e) { return base_lr * std::pow(gamma, static_cast<double>(e / step_size)); }) {
  TAPEGRAD_CHECK(step_size > 0, ValueError, "StepLr: step_size = {} must be > 0", step_size);
  detail::check_non_negative("StepLr", "gamma", gamma);
}

CosineLr::CosineLr(double base_lr, std::int64_t t_max, double eta_min, Warmup warmup)
    : LrSchedule("CosineLr", base_lr, warmup, [=](std::int64_t e) {
        if (e >= t_max) return eta_min;
        const double phase = std::numbers::pi * static_cast<double>(e) / static_cast<double>(t_max);
        return eta_min + (base_lr - eta_min) * (1 + std::cos(phase)) / 2;
      }) {
  TAPEGRAD_CHECK(t_max > 0, ValueError, "CosineLr: t_max = {} must be > 0", t_max);
  detail::check_non_negative("CosineLr", "eta_min", eta_min);
}

}  // namespace tapegrad::nn
