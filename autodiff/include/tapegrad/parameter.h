// Parameters: leaves that outlive a tape. Every use of a parameter on a tape (Tape::leaf)
// feeds one sweep's gradient into Parameter::grad, which accumulates across uses (a weight
// shared by all time steps) and across backward calls until zero_grad().
#pragma once

#include <string>
#include <utility>

#include <tapegrad/tensor.h>

namespace tapegrad {

template <class S>
struct Parameter {
  std::string name;
  Matrix<S> value;
  Matrix<S> grad;  ///< dL/dvalue, same shape as value; summed over uses and backward calls.

  Parameter() = default;
  explicit Parameter(Matrix<S> initial, std::string param_name = {})
      : name(std::move(param_name)), value(std::move(initial)) {
    grad = Matrix<S>::Zero(value.rows(), value.cols());
  }

  [[nodiscard]] Shape shape() const { return shape_of(value); }
  [[nodiscard]] Index size() const { return value.size(); }
  void zero_grad() { grad.setZero(value.rows(), value.cols()); }
};

}  // namespace tapegrad
