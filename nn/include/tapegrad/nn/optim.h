// Optimizers: update rules that read Parameter::grad and write Parameter::value, with the
// semantics of PyTorch's torch.optim (same defaults, same first-step behaviour), so results
// can be compared line by line. Every per-parameter state tensor is named, so a checkpoint
// can save and restore an optimizer exactly (see checkpoint.h).
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include <tapegrad/error.h>
#include <tapegrad/parameter.h>
#include <tapegrad/tensor.h>

namespace tapegrad::nn {

/// Base of every optimizer: a fixed list of parameters, a learning rate, a step counter and
/// named per-parameter state tensors ("<kind>.<slot>.<parameter index>", e.g. "adam.m.0").
template <class S>
class Optimizer {
 public:
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;
  virtual ~Optimizer() = default;

  /// Applies one update from the current gradients and advances step_count().
  void step();
  /// Sets every parameter's gradient to zero.
  void zero_grad();

  [[nodiscard]] double learning_rate() const { return lr_; }
  /// Changes the learning rate (schedules call this); negative or non-finite -> ValueError.
  void set_learning_rate(double lr);
  /// Number of step() calls so far (the t in bias corrections).
  [[nodiscard]] std::int64_t step_count() const { return step_count_; }
  /// The optimizer's kind as used in state names: "sgd", "adam", "adamw", "rmsprop", "adagrad".
  [[nodiscard]] const std::string& kind() const { return kind_; }
  [[nodiscard]] const std::vector<Parameter<S>*>& parameters() const { return params_; }

  /// Every state tensor with its name, in a fixed order (for checkpoints).
  std::vector<std::pair<std::string, Matrix<S>*>> state_tensors();
  /// Hyperparameters by name (informational: written to checkpoint metadata, not restored).
  [[nodiscard]] virtual std::vector<std::pair<std::string, double>> hyperparameters() const = 0;
  /// Restores the scalar state saved in a checkpoint (step count and learning rate).
  void restore_scalars(std::int64_t step_count, double lr);

 protected:
  Optimizer(std::string kind, std::vector<Parameter<S>*> params, double lr);
  /// Adds a state slot: one tensor per parameter, shaped like it, filled with `fill`.
  std::vector<Matrix<S>>& add_state(const std::string& slot, S fill = S(0));
  /// Updates parameter i; t is the 1-based number of this step.
  virtual void update(std::size_t i, Parameter<S>& p, std::int64_t t) = 0;
  /// p's gradient with an L2 penalty: grad + weight_decay * value (a copy; grad is unchanged).
  static Matrix<S> l2_gradient(const Parameter<S>& p, double weight_decay) {
    Matrix<S> g = p.grad;
    if (weight_decay != 0) g += static_cast<S>(weight_decay) * p.value;
    return g;
  }

 private:
  std::string kind_;
  std::vector<Parameter<S>*> params_;
  double lr_;
  std::int64_t step_count_ = 0;
  std::deque<std::pair<std::string, std::vector<Matrix<S>>>> state_;  // deque: slots never move
};

/// Options of Sgd (PyTorch SGD).
struct SgdOptions {
  double lr = 0.01;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;  ///< needs momentum > 0 and dampening == 0
};

/// Stochastic gradient descent. With g = grad + wd p and buffer b (b_1 = g):
/// b_t = mu b_{t-1} + (1 - dampening) g;  d = g + mu b_t (Nesterov) or b_t;  p -= lr d.
template <class S>
class Sgd : public Optimizer<S> {
 public:
  Sgd(std::vector<Parameter<S>*> params, const SgdOptions& options = {});
  [[nodiscard]] std::vector<std::pair<std::string, double>> hyperparameters() const override;

 protected:
  void update(std::size_t i, Parameter<S>& p, std::int64_t t) override;

 private:
  SgdOptions o_;
  std::vector<Matrix<S>>* momentum_ = nullptr;
};

/// Options of Adam and AdamW (PyTorch defaults; AdamW's weight_decay default is 0.01).
struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  bool amsgrad = false;
};

/// Adam: m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2 (g includes wd p, an L2 penalty),
/// p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps). amsgrad uses the running max of v.
template <class S>
class Adam : public Optimizer<S> {
 public:
  Adam(std::vector<Parameter<S>*> params, const AdamOptions& options = {});
  [[nodiscard]] std::vector<std::pair<std::string, double>> hyperparameters() const override;

 protected:
  Adam(std::string kind, std::vector<Parameter<S>*> params, const AdamOptions& options, bool decoupled);
  void update(std::size_t i, Parameter<S>& p, std::int64_t t) override;

 private:
  AdamOptions o_;
  bool decoupled_;
  std::vector<Matrix<S>>* m_ = nullptr;
  std::vector<Matrix<S>>* v_ = nullptr;
  std::vector<Matrix<S>>* v_max_ = nullptr;
};

/// AdamW: decoupled weight decay p *= (1 - lr wd) before the Adam update on the raw gradient.
template <class S>
class AdamW : public Adam<S> {
 public:
  AdamW(std::vector<Parameter<S>*> params, const AdamOptions& options = default_options());
  static AdamOptions default_options() {
    AdamOptions o;
    o.weight_decay = 0.01;
    return o;
  }
};

/// Options of RMSprop (PyTorch defaults).
struct RmspropOptions {
  double lr = 0.01;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0;
  double momentum = 0;
  bool centered = false;
};

/// RMSprop: s = a s + (1-a) g^2; centered: m = a m + (1-a) g, den = sqrt(s - m^2) + eps, else
/// den = sqrt(s) + eps; with momentum b = mu b + g/den, p -= lr b; without, p -= lr g/den.
template <class S>
class Rmsprop : public Optimizer<S> {
 public:
  Rmsprop(std::vector<Parameter<S>*> params, const RmspropOptions& options = {});
  [[nodiscard]] std::vector<std::pair<std::string, double>> hyperparameters() const override;

 protected:
  void update(std::size_t i, Parameter<S>& p, std::int64_t t) override;

 private:
  RmspropOptions o_;
  std::vector<Matrix<S>>* square_avg_ = nullptr;
  std::vector<Matrix<S>>* grad_avg_ = nullptr;
  std::vector<Matrix<S>>* momentum_ = nullptr;
};

/// Options of Adagrad (PyTorch defaults).
struct AdagradOptions {
  double lr = 0.01;
  double lr_decay = 0;
  double weight_decay = 0;
  double initial_accumulator_value = 0;
  double eps = 1e-10;
};

/// Adagrad: s += g^2, p -= lr / (1 + (t-1) lr_decay) * g / (sqrt(s) + eps).
template <class S>
class Adagrad : public Optimizer<S> {
 public:
  Adagrad(std::vector<Parameter<S>*> params, const AdagradOptions& options = {});
  [[nodiscard]] std::vector<std::pair<std::string, double>> hyperparameters() const override;

 protected:
  void update(std::size_t i, Parameter<S>& p, std::int64_t t) override;

 private:
  AdagradOptions o_;
  std::vector<Matrix<S>>* sum_ = nullptr;
};

}  // namespace tapegrad::nn
