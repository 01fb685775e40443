// Learning-rate schedules: pure functions of the epoch (or step) number, applied by calling
// schedule.apply(optimizer, epoch), which sets the optimizer's learning rate. No hidden
// state, so a resumed run gets the same rate by calling apply with the restored counter.
#pragma once

#include <cstdint>
#include <functional>

#include <tapegrad/nn/optim.h>

namespace tapegrad::nn {

/// Optional linear warmup in front of a schedule: over the first `steps` epochs the rate goes
/// linearly from start_factor * base_lr (epoch 0) towards base_lr; the schedule proper then
/// starts at its own epoch 0.
struct Warmup {
  std::int64_t steps = 0;     ///< 0 disables warmup
  double start_factor = 0.0;  ///< in [0, 1]
};

/// A learning-rate schedule: lr_at(epoch) gives the rate for that epoch (epoch >= 0).
class LrSchedule {
 public:
  /// The learning rate for `epoch`, warmup included; epoch < 0 -> ValueError.
  [[nodiscard]] double lr_at(std::int64_t epoch) const;
  /// Sets opt's learning rate to lr_at(epoch).
  template <class S>
  void apply(Optimizer<S>& opt, std::int64_t epoch) const {
    opt.set_learning_rate(lr_at(epoch));
  }
  [[nodiscard]] double base_lr() const { return base_lr_; }
  [[nodiscard]] const Warmup& warmup() const { return warmup_; }

 protected:
  /// `schedule`: the rate without warmup at epoch e >= 0 (counted from the end of the warmup).
  LrSchedule(const char* name, double base_lr, Warmup warmup, std::function<double(std::int64_t e)> schedule);

 private:
  const char* name_;
  double base_lr_;
  Warmup warmup_;
  std::function<double(std::int64_t)> schedule_;
};

/// Step decay: lr = base_lr * gamma^floor(e / step_size).
class StepLr final : public LrSchedule {
 public:
  StepLr(double base_lr, std::int64_t step_size, double gamma = 0.1, Warmup warmup = {});
};

/// Cosine annealing: lr = eta_min + (base_lr - eta_min) (1 + cos(pi e / t_max)) / 2 for
/// e <= t_max, and eta_min after (no restarts).
class CosineLr final : public LrSchedule {
 public:
  CosineLr(double base_lr, std::int64_t t_max, double eta_min = 0, Warmup warmup = {});
};

}  // namespace tapegrad::nn
