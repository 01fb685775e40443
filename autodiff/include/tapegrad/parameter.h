// Parameters: leaves that outlive a tape. Every use of a parameter on a tape (Tape::leaf)
// feeds one sweep's gradient into Parameter::grad, which accumulates across uses (a weight
// shared by all time steps) and across backward calls until zero_grad().
//
// A tape remembers the parameters it recorded by address, so it must learn when that address
// stops being the parameter: each Parameter a tape records gets an anchor, shared with the tape,
// that the Parameter retires when it is moved from, moved or copied over, or destroyed. The
// tape then refuses to touch the old address (TapeError) instead of writing through it.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include <tapegrad/tensor.h>

namespace tapegrad {

namespace detail {
struct ParamAnchor {
  bool alive = true;
};
struct ParamAccess;
}  // namespace detail

template <class S>
struct Parameter {
  std::string name;  ///< Its own name, as given at construction (e.g. "W").
  Matrix<S> value;
  Matrix<S> grad;  ///< dL/dvalue, same shape as value; summed over uses and backward calls.

  Parameter() = default;
  explicit Parameter(Matrix<S> initial, std::string param_name = {})
      : name(std::move(param_name)), value(std::move(initial)) {
    grad = Matrix<S>::Zero(value.rows(), value.cols());
  }
  // A copy, or the target of a move, is a new parameter to every tape; so is the moved-from one.
  Parameter(const Parameter& other)
      : name(other.name), value(other.value), grad(other.grad), nested_name_(other.nested_name_) {}
  Parameter(Parameter&& other) noexcept
      : name(std::move(other.name)),
        value(std::move(other.value)),
        grad(std::move(other.grad)),
        nested_name_(std::move(other.nested_name_)) {
    other.retire();
  }
  Parameter& operator=(const Parameter& other) {
    if (this != &other) {
      name = other.name;
      value = other.value;
      grad = other.grad;
      nested_name_ = other.nested_name_;
      retire();
    }
    return *this;
  }
  Parameter& operator=(Parameter&& other) noexcept {
    if (this != &other) {
      name = std::move(other.name);
      value = std::move(other.value);
      grad = std::move(other.grad);
      nested_name_ = std::move(other.nested_name_);
      retire();
      other.retire();
    }
    return *this;
  }
  ~Parameter() { retire(); }

  /// The name the tape (its leaf), errors and reports show: the nested name the module holding
  /// it gave it (e.g. "layers.1.cell.W", the name checkpoints use), or `name` before any did.
  [[nodiscard]] const std::string& full_name() const { return nested_name_.empty() ? name : nested_name_; }
  /// Sets the nested name (modules do, when they list their parameters: nn/module.h).
  void set_full_name(std::string full) { nested_name_ = std::move(full); }

  [[nodiscard]] Shape shape() const { return shape_of(value); }
  [[nodiscard]] Index size() const { return value.size(); }
  void zero_grad() { grad.setZero(value.rows(), value.cols()); }

 private:
  friend struct detail::ParamAccess;
  void retire() noexcept {
    if (anchor_) anchor_->alive = false;
    anchor_.reset();
  }
  std::string nested_name_;                      // empty until a module names it
  std::shared_ptr<detail::ParamAnchor> anchor_;  // made by the first Tape::leaf that records it
};

namespace detail {
struct ParamAccess {
  template <class S>
  static const ParamAnchor* peek(const Parameter<S>& p) {
    return p.anchor_.get();
  }
  template <class S>
  static std::shared_ptr<const ParamAnchor> anchor(Parameter<S>& p) {
    if (!p.anchor_) p.anchor_ = std::make_shared<ParamAnchor>();
    return p.anchor_;
  }
};
}  // namespace detail

}  // namespace tapegrad
