// Optimizers: update rules that read Parameter::grad and write Parameter::value, with the
// semantics of PyTorch's torch.optim (same defaults, same first-step behaviour), so results
// can be compared line by line. Every per-parameter state tensor is keyed by its parameter's
// name, so a checkpoint restores each moment to its own parameter whatever the order the
// optimizer was built in (see checkpoint.h). A step never applies NaN or Inf.
#pragma once

#include <cstdint>
#include <deque>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include <tapegrad/error.h>
#include <tapegrad/parameter.h>
#include <tapegrad/tensor.h>

namespace tapegrad::nn {

/// The parameters an optimizer updates, with the names its state is keyed by: a module's
/// named_parameters() (full names such as "rnn.layers.0.cell.W"), or plain pointers, named by
/// Parameter::full_name() (the same nested name once a module has listed them).
template <class S>
struct ParameterList {
  ParameterList(std::initializer_list<Parameter<S>*> list) : ParameterList(std::vector<Parameter<S>*>(list)) {}
  ParameterList(std::vector<Parameter<S>*> list);
  ParameterList(const std::vector<std::pair<std::string, Parameter<S>*>>& named_list);

  std::vector<Parameter<S>*> params;
  std::vector<std::string> names;  ///< one per parameter; may be empty
};

/// What Optimizer::step does when a gradient, or the update it computes, holds NaN or Inf.
enum class OnNonFinite {
  Throw,  ///< throw NumericError naming the parameter; nothing changes
  Skip,   ///< change nothing, count the step in skipped_steps() and return
};

/// Base of every optimizer: a fixed list of parameters, a learning rate, a step counter and
/// per-parameter state tensors named "<kind>.<slot>.<parameter name>" (e.g. "adam.m.head.W").
template <class S>
class Optimizer {
 public:
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;
  virtual ~Optimizer() = default;

  /// Applies one update from the current gradients and advances step_count(). All or nothing:
  /// a NaN or Inf in a gradient, or in any value or state the update would produce, leaves
  /// every parameter, gradient and state tensor bit for bit as it was, and then throws
  /// NumericError naming the parameter (OnNonFinite::Throw, the default) or counts a skipped
  /// step (OnNonFinite::Skip). A gradient or state shaped unlike its parameter -> ShapeError;
  /// a step count at INT64_MAX -> ValueError.
  void step();
  /// Sets every parameter's gradient to zero.
  void zero_grad();

  [[nodiscard]] double learning_rate() const { return lr_; }
  /// Changes the learning rate (schedules call this); negative or non-finite -> ValueError.
  void set_learning_rate(double lr);
  /// Number of applied step() calls so far (the t in bias corrections); skipped steps do not count.
  [[nodiscard]] std::int64_t step_count() const { return step_count_; }
  /// Chooses between refusing (the default) and skipping a non-finite step.
  void set_non_finite_policy(OnNonFinite policy) { policy_ = policy; }
  [[nodiscard]] OnNonFinite non_finite_policy() const { return policy_; }
  /// Number of steps skipped under OnNonFinite::Skip.
  [[nodiscard]] std::int64_t skipped_steps() const { return skipped_steps_; }
  /// The optimizer's kind as used in state names: "sgd", "adam", "adamw", "rmsprop", "adagrad".
  [[nodiscard]] const std::string& kind() const { return kind_; }
  [[nodiscard]] const std::vector<Parameter<S>*>& parameters() const { return params_; }
  /// The name of each parameter as given at construction (empty when it had none).
  [[nodiscard]] const std::vector<std::string>& parameter_names() const { return names_; }

  /// Every state tensor with its name "<kind>.<slot>.<parameter name>", in a fixed order (for
  /// checkpoints). A parameter found in `model` (by address) is named as there; any other by
  /// its name at construction. A name that is empty or shared by two parameters -> ValueError.
  std::vector<std::pair<std::string, Matrix<S>*>> state_tensors(
      const std::vector<std::pair<std::string, Parameter<S>*>>& model = {});
  /// Hyperparameters by name (informational: written to checkpoint metadata, not restored).
  [[nodiscard]] virtual std::vector<std::pair<std::string, double>> hyperparameters() const = 0;
  /// Restores the scalar state saved in a checkpoint (step count and learning rate).
  void restore_scalars(std::int64_t step_count, double lr);

 protected:
  Optimizer(std::string kind, ParameterList<S> params, double lr);
  /// A state slot: per parameter, the tensor after the last step (`now`) and the one update()
  /// writes for the running step (`next`); the step swaps them in once every update is finite.
  struct Slot {
    std::vector<Matrix<S>>* now = nullptr;
    std::vector<Matrix<S>>* next = nullptr;
  };
  /// Adds a state slot: one tensor per parameter, shaped like it, filled with `fill`.
  Slot add_state(const std::string& slot, S fill = S(0));
  /// Computes parameter i's new value into `value` and every slot's next[i] from p and the
  /// slots' now[i], changing neither; t is the 1-based number of this step.
  virtual void update(std::size_t i, const Parameter<S>& p, Matrix<S>& value, std::int64_t t) = 0;
  /// p's gradient with an L2 penalty: grad + weight_decay * value (a copy; grad is unchanged).
  static Matrix<S> l2_gradient(const Parameter<S>& p, double weight_decay) {
    Matrix<S> g = p.grad;
    if (weight_decay != 0) g += static_cast<S>(weight_decay) * p.value;
    return g;
  }

 private:
  [[nodiscard]] std::string label(std::size_t i) const;
  void check_shapes() const;
  /// The first NaN/Inf in a gradient, or in parameter i's computed value or state, as a message
  /// ("" if none).
  [[nodiscard]] std::string non_finite_gradient() const;
  [[nodiscard]] std::string non_finite_update(std::size_t i) const;
  void refuse_or_skip(const std::string& what);

  std::string kind_;
  std::vector<Parameter<S>*> params_;
  std::vector<std::string> names_;
  double lr_;
  std::int64_t step_count_ = 0;
  std::int64_t skipped_steps_ = 0;
  OnNonFinite policy_ = OnNonFinite::Throw;
  std::deque<std::pair<std::string, std::vector<Matrix<S>>>> state_;  // deque: slots never move
  std::deque<std::vector<Matrix<S>>> next_state_;                     // per slot, the running step's
  std::vector<Matrix<S>> next_value_;                                 // per parameter, its new value
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
  Sgd(ParameterList<S> params, const SgdOptions& options = {});
  [[nodiscard]] std::vector<std::pair<std::string, double>> hyperparameters() const override;

 protected:
  void update(std::size_t i, const Parameter<S>& p, Matrix<S>& value, std::int64_t t) override;

 private:
  SgdOptions o_;
  typename Optimizer<S>::Slot momentum_;
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
  Adam(ParameterList<S> params, const AdamOptions& options = {});
  [[nodiscard]] std::vector<std::pair<std::string, double>> hyperparameters() const override;

 protected:
  Adam(std::string kind, ParameterList<S> params, const AdamOptions& options, bool decoupled);
  void update(std::size_t i, const Parameter<S>& p, Matrix<S>& value, std::int64_t t) override;

 private:
  AdamOptions o_;
  bool decoupled_;
  typename Optimizer<S>::Slot m_;
  typename Optimizer<S>::Slot v_;
  typename Optimizer<S>::Slot v_max_;
};

/// AdamW: decoupled weight decay p *= (1 - lr wd) before the Adam update on the raw gradient.
template <class S>
class AdamW : public Adam<S> {
 public:
  AdamW(ParameterList<S> params, const AdamOptions& options = default_options());
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
  Rmsprop(ParameterList<S> params, const RmspropOptions& options = {});
  [[nodiscard]] std::vector<std::pair<std::string, double>> hyperparameters() const override;

 protected:
  void update(std::size_t i, const Parameter<S>& p, Matrix<S>& value, std::int64_t t) override;

 private:
  RmspropOptions o_;
  typename Optimizer<S>::Slot square_avg_;
  typename Optimizer<S>::Slot grad_avg_;
  typename Optimizer<S>::Slot momentum_;
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
  Adagrad(ParameterList<S> params, const AdagradOptions& options = {});
  [[nodiscard]] std::vector<std::pair<std::string, double>> hyperparameters() const override;

 protected:
  void update(std::size_t i, const Parameter<S>& p, Matrix<S>& value, std::int64_t t) override;

 private:
  AdagradOptions o_;
  typename Optimizer<S>::Slot sum_;
};

}  // namespace tapegrad::nn
