// Finite-difference gradient checking in float64, in vector-Jacobian product form.
//
// For a function f of several matrix inputs, gradcheck draws random projections v of f's output
// shape (seeded, so failures reproduce) and checks the gradient of each scalar L = <v, f(x)>:
// one backward sweep per v gives the analytic gradient of every input, and central differences
// (f(x + eps e_i) - f(x - eps e_i)) / (2 eps), each evaluated on a fresh tape and shared by every
// v, give the numerical one. An element passes when |analytic - numeric| <= atol + rtol * |numeric|.
//
// Besides that plain check, the same numbers check the situations a backward meets in a real
// graph (GradcheckCheck): an input with a second consumer (fan-out), one Var passed for several
// inputs (alias), and inputs that need no gradient (constant).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <tapegrad/tape.h>
#include <tapegrad/tensor.h>

namespace tapegrad {

/// The situations gradcheck puts the function in. Each compares the gradients one backward sweep
/// gives against central differences of the same function.
enum class GradcheckCheck {
  Plain,     ///< every input a variable, f its only consumer
  FanOut,    ///< each input also feeds a second consumer, recorded after f so its backward runs
             ///< first: f's backward must add into gx(i); one that assigns erases that part
  Alias,     ///< f(x, x, ...): one Var passed for every input (all inputs of one shape)
  Constant,  ///< one input at a time a constant: f still runs, the other inputs' gradients
             ///< stay right and no gradient reaches the constant
};

/// "plain", "fan-out", "alias", "constant".
std::string_view to_string(GradcheckCheck check);

/// Step, tolerances, projections and checks of gradcheck. The plain check costs two evaluations
/// of f per input element; every other check reuses those differences, so it costs only
/// backward sweeps, except alias, which adds two evaluations per element of input 0.
struct GradcheckOptions {
  double eps = 1e-6;       ///< Central-difference step.
  double atol = 1e-7;      ///< Absolute tolerance.
  double rtol = 1e-5;      ///< Relative tolerance (times |numeric|).
  std::uint64_t seed = 0;  ///< Seed of the first projection; projection k uses seed + k.
  int projections = 2;     ///< Number of random projections v (>= 1), one backward sweep each per check.
  bool fan_out = true;     ///< Run the fan-out check.
  /// Run the alias check when f has two or more inputs, all of one shape (the shared value is
  /// input 0). Skipped, with a note, where f(x, x, ...) is not finite at that value.
  bool alias = true;
  bool constant_inputs = true;  ///< Run the constant check, once per input.
};

/// The outcome of one check for one input, over every projection.
struct InputReport {
  GradcheckCheck check = GradcheckCheck::Plain;
  std::size_t input = 0;     ///< Position of the input (alias: 0, the Var passed for every input).
  std::size_t constant = 0;  ///< Constant check: the input that was a constant (its own expected gradient is 0).
  Shape shape;               ///< The input's shape.
  double max_abs_error = 0;  ///< max |analytic - numeric| over its elements and the projections.
  double max_rel_error = 0;  ///< max |analytic - numeric| / max(|analytic|, |numeric|) (0 when both are 0).
  bool ok = true;            ///< Every element within atol + rtol * |numeric|.
  /// The element with the largest error relative to its tolerance, |analytic - numeric| /
  /// (atol + rtol |numeric|) (NaN or Inf first), in the projection of seed `seed`, with both
  /// gradients there: on a failed input, always a failing element.
  Index worst_row = 0;
  Index worst_col = 0;
  double analytic = 0;
  double numeric = 0;
  std::uint64_t seed = 0;
};

/// The outcome of gradcheck: true when every check of every input passed.
struct GradcheckResult {
  bool ok = true;
  /// The plain check's reports (one per input, in order) first, then fan-out, alias, constant.
  std::vector<InputReport> reports;
  std::vector<std::string> notes;  ///< Checks that were skipped, and why.
  /// The report of `check` for `input` (constant check: with input `constant` held constant), or
  /// nullptr when that check did not run.
  [[nodiscard]] const InputReport* find(GradcheckCheck check, std::size_t input, std::size_t constant = 0) const;
  /// True when `check` ran for at least one input and every such report passed.
  [[nodiscard]] bool passed(GradcheckCheck check) const;
  /// A summary naming the failed checks, then a table: check ("constant(k)": input k was the
  /// constant), input, shape, worst errors, worst element with its gradients and projection
  /// seed, pass/fail; then the notes.
  [[nodiscard]] std::string message() const;
  explicit operator bool() const { return ok; }
};

/// Checks fn's backward against central differences at the given inputs (see the file comment).
/// fn receives the inputs as Vars of one tape and must return a Var on that tape; it must be
/// deterministic. Throws ShapeError if fn's output shape changes between evaluations, ValueError
/// for bad options.
GradcheckResult gradcheck(const std::function<Var<double>(std::span<const Var<double>>)>& fn,
                          const std::vector<Matrix<double>>& inputs, const GradcheckOptions& opts = {});

}  // namespace tapegrad
