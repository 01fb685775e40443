// gradcheck: one backward sweep against central differences of L = <v, f(x)>.
#include <tapegrad/gradcheck.h>

#include <algorithm>
#include <cmath>
#include <random>

#include <fmt/format.h>

namespace tapegrad {
namespace {

using Fn = std::function<Var<double>(std::span<const Var<double>>)>;

// L = <v, f(x)> on a fresh tape with every input a constant (no recording needed).
double projected(const Fn& fn, const std::vector<Matrix<double>>& inputs, const Matrix<double>& v) {
  Tape<double> tape;
  std::vector<Var<double>> vars;
  vars.reserve(inputs.size());
  for (const Matrix<double>& m : inputs) vars.push_back(tape.constant(m));
  const Var<double> y = fn(vars);
  TAPEGRAD_CHECK(y.shape() == shape_of(v), ShapeError,
                 "gradcheck: the function returned {} for perturbed inputs but {} at the base point", y.shape(),
                 shape_of(v));
  return y.value().cwiseProduct(v).sum();
}

}  // namespace

GradcheckResult gradcheck(const Fn& fn, const std::vector<Matrix<double>>& inputs, const GradcheckOptions& opts) {
  TAPEGRAD_CHECK(static_cast<bool>(fn), ValueError, "gradcheck: the function is empty");
  TAPEGRAD_CHECK(opts.eps > 0 && opts.atol >= 0 && opts.rtol >= 0, ValueError,
                 "gradcheck: eps must be > 0 and atol, rtol >= 0 (got eps {}, atol {}, rtol {})", opts.eps, opts.atol,
                 opts.rtol);

  // Analytic: one sweep seeded with v gives dL/dx for every input.
  Tape<double> tape;
  std::vector<Var<double>> vars;
  vars.reserve(inputs.size());
  for (const Matrix<double>& m : inputs) vars.push_back(tape.variable(m));
  const Var<double> y = fn(vars);
  std::mt19937_64 rng(opts.seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  Matrix<double> v(y.rows(), y.cols());
  for (Index k = 0; k < v.size(); ++k) v.data()[k] = normal(rng);
  std::vector<Matrix<double>> analytic;
  if (y.requires_grad()) tape.backward(y, v);
  for (const Var<double>& x : vars) analytic.push_back(x.grad());

  GradcheckResult result;
  std::vector<Matrix<double>> point = inputs;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    InputReport report{i, shape_of(inputs[i]), 0.0, 0.0, true};
    double worst_excess = -1.0;
    for (Index r = 0; r < inputs[i].rows(); ++r) {
      for (Index c = 0; c < inputs[i].cols(); ++c) {
        const double x0 = inputs[i](r, c);
        point[i](r, c) = x0 + opts.eps;
        const double up = projected(fn, point, v);
        point[i](r, c) = x0 - opts.eps;
        const double down = projected(fn, point, v);
        point[i](r, c) = x0;
        const double numeric = (up - down) / (2 * opts.eps);
        const double a = analytic[i](r, c);
        const double err = std::abs(a - numeric);
        const double scale = std::max(std::abs(a), std::abs(numeric));
        const double rel = scale > 0 ? err / scale : 0.0;
        const double excess = err - (opts.atol + opts.rtol * std::abs(numeric));
        // NaN on either side is a failure, never a pass.
        const bool element_ok = std::isfinite(a) && std::isfinite(numeric) && excess <= 0;
        report.max_abs_error = std::max(report.max_abs_error, std::isfinite(err) ? err : HUGE_VAL);
        report.max_rel_error = std::max(report.max_rel_error, std::isfinite(rel) ? rel : HUGE_VAL);
        report.ok = report.ok && element_ok;
        const double rank = std::isnan(excess) ? HUGE_VAL : excess;  // the worst element, NaN first
        if (rank > worst_excess) {
          worst_excess = rank;
          report.worst_row = r;
          report.worst_col = c;
          report.analytic = a;
          report.numeric = numeric;
        }
      }
    }
    result.ok = result.ok && report.ok;
    result.inputs.push_back(report);
  }
  return result;
}

std::string GradcheckResult::message() const {
  std::string out = fmt::format("gradcheck {}\n", ok ? "passed" : "FAILED");
  out += fmt::format("{:>5}  {:<12} {:>12} {:>12}  {:<12} {:>14} {:>14}  {}\n", "input", "shape", "max abs err",
                     "max rel err", "worst at", "analytic", "numeric", "result");
  for (const InputReport& r : inputs) {
    out += fmt::format("{:>5}  {:<12} {:>12.3e} {:>12.3e}  {:<12} {:>14.6e} {:>14.6e}  {}\n", r.input, r.shape.str(),
                       r.max_abs_error, r.max_rel_error, fmt::format("({}, {})", r.worst_row, r.worst_col), r.analytic,
                       r.numeric, r.ok ? "ok" : "FAIL");
  }
  return out;
}

}  // namespace tapegrad
