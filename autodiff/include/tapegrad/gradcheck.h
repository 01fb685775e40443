// Finite-difference gradient checking in float64, in vector-Jacobian product form.
//
// For a function f of several matrix inputs, gradcheck draws a random v of f's output shape
// (seeded, so failures reproduce) and checks the gradient of the scalar L = <v, f(x)>:
// one backward sweep gives the analytic gradient of every input, and central differences
// (L(x + eps e_i) - L(x - eps e_i)) / (2 eps), each evaluated on a fresh tape, give the
// numerical one. An element passes when |analytic - numeric| <= atol + rtol * |numeric|.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <tapegrad/tape.h>
#include <tapegrad/tensor.h>

namespace tapegrad {

/// Step and tolerances of gradcheck.
struct GradcheckOptions {
  double eps = 1e-6;       ///< Central-difference step.
  double atol = 1e-7;      ///< Absolute tolerance.
  double rtol = 1e-5;      ///< Relative tolerance (times |numeric|).
  std::uint64_t seed = 0;  ///< Seed of the random projection v.
};

/// The outcome for one input of the checked function.
struct InputReport {
  std::size_t input;     ///< Position of the input.
  Shape shape;           ///< Its shape.
  double max_abs_error;  ///< max |analytic - numeric| over its elements.
  double max_rel_error;  ///< max |analytic - numeric| / max(|analytic|, |numeric|) (0 when both are 0).
  bool ok;               ///< Every element within atol + rtol * |numeric|.
  Index worst_row = 0;   ///< Element with the largest excess over its tolerance.
  Index worst_col = 0;
  double analytic = 0;  ///< Analytic and numerical gradient at that element.
  double numeric = 0;
};

/// The outcome of gradcheck: true when every input passed.
struct GradcheckResult {
  bool ok = true;
  std::vector<InputReport> inputs;
  /// A readable per-input table (shape, worst errors, worst element, pass/fail).
  [[nodiscard]] std::string message() const;
  explicit operator bool() const { return ok; }
};

/// Checks fn's backward against central differences at the given inputs (see the file comment).
/// fn receives the inputs as variables of one tape and must return a Var on that tape; it must
/// be deterministic. Throws ShapeError if fn's output shape changes between evaluations.
GradcheckResult gradcheck(const std::function<Var<double>(std::span<const Var<double>>)>& fn,
                          const std::vector<Matrix<double>>& inputs, const GradcheckOptions& opts = {});

}  // namespace tapegrad
