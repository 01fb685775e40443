// Dense 2-D tensors: Eigen matrices in row-major order (a batch is a stack of rows, as in
// x_t U with x_t of shape B x in), plus the Shape value used in every error message.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <string>

#include <fmt/format.h>

namespace tapegrad {

using Index = Eigen::Index;

/// A dense tensor of scalar S: rows x cols, row-major (C order, like NumPy and safetensors).
template <class S>
using Matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// rows x cols, printed as "[rows x cols]".
struct Shape {
  Index rows = 0;
  Index cols = 0;
  friend bool operator==(const Shape&, const Shape&) = default;
  [[nodiscard]] Index size() const { return rows * cols; }
  [[nodiscard]] std::string str() const { return fmt::format("[{} x {}]", rows, cols); }
};

template <class Derived>
Shape shape_of(const Eigen::DenseBase<Derived>& m) {
  return {m.rows(), m.cols()};
}

}  // namespace tapegrad

template <>
struct fmt::formatter<tapegrad::Shape> : fmt::formatter<std::string> {
  auto format(const tapegrad::Shape& s, format_context& ctx) const {
    return fmt::formatter<std::string>::format(s.str(), ctx);
  }
};
