// gradcheck: backward sweeps against central differences of L = <v, f(x)>, in the situations
// of GradcheckCheck. The differences are taken once per input element and shared by every
// projection and every check that evaluates f at the same point.
#include <tapegrad/gradcheck.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <random>

#include <fmt/format.h>

#include <tapegrad/ops.h>

namespace tapegrad {
namespace {

using M = Matrix<double>;
using Fn = std::function<Var<double>(std::span<const Var<double>>)>;
constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();

// How f's arguments are made from the inputs on a tape.
struct Wiring {
  bool alias = false;            // one leaf from inputs[0], passed for each of the n arguments
  std::size_t constant = kNone;  // this input is a constant leaf, the others variables
};

// The n arguments of f, and the distinct leaves behind them (one when aliased).
struct Args {
  std::vector<Var<double>> leaves;
  std::vector<Var<double>> args;
};

Args make_args(Tape<double>& tape, const std::vector<M>& inputs, std::size_t n, const Wiring& w, bool variables) {
  Args a;
  const std::size_t distinct = w.alias ? 1 : n;
  for (std::size_t i = 0; i < distinct; ++i) {
    const bool variable = variables && i != w.constant;
    a.leaves.push_back(variable ? tape.variable(inputs[i]) : tape.constant(inputs[i]));
  }
  if (w.alias) {
    a.args.assign(n, a.leaves[0]);
  } else {
    a.args = a.leaves;
  }
  return a;
}

void check_shape(const Var<double>& y, Shape expected) {
  TAPEGRAD_CHECK(y.shape() == expected, ShapeError,
                 "gradcheck: the function returned {} here but {} at the base point (it must keep its output shape)",
                 y.shape(), expected);
}

// f's value with every argument a constant (no recording needed).
M value_at(const Fn& fn, const std::vector<M>& inputs, std::size_t n, const Wiring& w, const Shape* expected) {
  Tape<double> tape;
  const Args a = make_args(tape, inputs, n, w, false);
  const Var<double> y = fn(a.args);
  if (expected != nullptr) check_shape(y, *expected);
  return y.value();
}

// d<v_k, f>/dx for every element of x = point[which] and every projection v_k, by central
// differences: each element costs two evaluations of f, whatever the number of projections.
std::vector<M> central_differences(const Fn& fn, std::vector<M> point, std::size_t which, std::size_t n,
                                   const Wiring& w, const std::vector<M>& vs, double eps) {
  const Shape out_shape = shape_of(vs[0]);
  M& x = point[which];
  std::vector<M> out(vs.size(), M(x.rows(), x.cols()));
  for (Index r = 0; r < x.rows(); ++r) {
    for (Index c = 0; c < x.cols(); ++c) {
      const double x0 = x(r, c);
      x(r, c) = x0 + eps;
      const M up = value_at(fn, point, n, w, &out_shape);
      x(r, c) = x0 - eps;
      const M down = value_at(fn, point, n, w, &out_shape);
      x(r, c) = x0;
      const M slope = (up - down) / (2 * eps);
      for (std::size_t k = 0; k < vs.size(); ++k) out[k](r, c) = slope.cwiseProduct(vs[k]).sum();
    }
  }
  return out;
}

// One backward sweep: the gradient of <v, f> reaching each distinct leaf. With fan-out weights
// w_i, each input also feeds sum(x_i .* w_i), recorded after f so that its backward runs first;
// its known part w_i is taken off again, leaving what f's backward contributed.
std::vector<M> sweep(const Fn& fn, const std::vector<M>& inputs, std::size_t n, const Wiring& w, const M& v,
                     const std::vector<M>* fan_out) {
  Tape<double> tape;
  const Args a = make_args(tape, inputs, n, w, true);
  const Var<double> y = fn(a.args);
  check_shape(y, shape_of(v));
  if (fan_out != nullptr) {
    Var<double> loss = sum(mul(y, tape.constant(v)));
    for (std::size_t i = 0; i < a.leaves.size(); ++i) {
      loss = add(loss, sum(mul(a.leaves[i], tape.constant((*fan_out)[i]))));
    }
    tape.backward(loss);
  } else if (y.requires_grad()) {
    tape.backward(y, v);
  }
  std::vector<M> grads;
  for (std::size_t i = 0; i < a.leaves.size(); ++i) {
    grads.push_back(a.leaves[i].grad());
    if (fan_out != nullptr) grads.back() -= (*fan_out)[i];
  }
  return grads;
}

// Folds the elements of each projection into one report.
class Tally {
 public:
  Tally(GradcheckCheck check, std::size_t input, std::size_t constant, Shape shape) {
    report_.check = check;
    report_.input = input;
    report_.constant = constant;
    report_.shape = shape;
  }
  void add(const M& analytic, const M& numeric, std::uint64_t seed, const GradcheckOptions& opts) {
    for (Index r = 0; r < numeric.rows(); ++r) {
      for (Index c = 0; c < numeric.cols(); ++c) add_element(r, c, analytic(r, c), numeric(r, c), seed, opts);
    }
  }
  [[nodiscard]] const InputReport& report() const { return report_; }

 private:
  void add_element(Index r, Index c, double a, double numeric, std::uint64_t seed, const GradcheckOptions& opts) {
    const double err = std::abs(a - numeric);
    const double scale = std::max(std::abs(a), std::abs(numeric));
    const double rel = scale > 0 ? err / scale : 0.0;
    const double tol = opts.atol + opts.rtol * std::abs(numeric);
    // NaN or Inf on either side is a failure, never a pass.
    const bool finite = std::isfinite(a) && std::isfinite(numeric);
    const bool element_ok = finite && err <= tol;
    report_.max_abs_error = std::max(report_.max_abs_error, std::isfinite(err) ? err : HUGE_VAL);
    report_.max_rel_error = std::max(report_.max_rel_error, std::isfinite(rel) ? rel : HUGE_VAL);
    report_.ok = report_.ok && element_ok;
    // The worst element has the largest error over its tolerance (non-finite first, ties by error),
    // so a failing input always names a failing element.
    const double ratio = !finite ? HUGE_VAL : tol > 0 ? err / tol : (err > 0 ? HUGE_VAL : 0.0);
    if (!any_ || ratio > worst_ratio_ || (ratio == worst_ratio_ && err > worst_error_)) {
      any_ = true;
      worst_ratio_ = ratio;
      worst_error_ = err;
      report_.worst_row = r;
      report_.worst_col = c;
      report_.analytic = a;
      report_.numeric = numeric;
      report_.seed = seed;
    }
  }
  InputReport report_;
  bool any_ = false;
  double worst_ratio_ = 0;
  double worst_error_ = 0;
};

// The random directions of one projection: v over f's output, w_i over each input (fan-out).
struct Projection {
  std::uint64_t seed;
  M v;
  std::vector<M> w;
};

M normal_matrix(Index rows, Index cols, std::mt19937_64& rng) {
  std::normal_distribution<double> normal(0.0, 1.0);
  M m(rows, cols);
  for (Index k = 0; k < m.size(); ++k) m.data()[k] = normal(rng);
  return m;
}

std::vector<Projection> draw_projections(Shape out, const std::vector<M>& inputs, const GradcheckOptions& opts) {
  std::vector<Projection> ps;
  for (int k = 0; k < opts.projections; ++k) {
    const std::uint64_t seed = opts.seed + static_cast<std::uint64_t>(k);
    std::mt19937_64 rng(seed);
    Projection p{seed, normal_matrix(out.rows, out.cols, rng), {}};
    for (const M& x : inputs) p.w.push_back(normal_matrix(x.rows(), x.cols(), rng));
    ps.push_back(std::move(p));
  }
  return ps;
}

std::vector<M> directions(const std::vector<Projection>& ps) {
  std::vector<M> vs;
  for (const Projection& p : ps) vs.push_back(p.v);
  return vs;
}

bool aliasable(const std::vector<M>& inputs) {
  return inputs.size() >= 2 &&
         std::all_of(inputs.begin(), inputs.end(), [&](const M& m) { return shape_of(m) == shape_of(inputs[0]); });
}

}  // namespace

std::string_view to_string(GradcheckCheck check) {
  static constexpr std::string_view kNames[] = {"plain", "fan-out", "alias", "constant"};  // in the enum's order
  static_assert(std::size(kNames) == static_cast<std::size_t>(GradcheckCheck::Constant) + 1);
  const auto k = static_cast<std::size_t>(check);
  return k < std::size(kNames) ? kNames[k] : "?";
}

GradcheckResult gradcheck(const Fn& fn, const std::vector<M>& inputs, const GradcheckOptions& opts) {
  TAPEGRAD_CHECK(static_cast<bool>(fn), ValueError, "gradcheck: the function is empty");
  TAPEGRAD_CHECK(opts.eps > 0 && opts.atol >= 0 && opts.rtol >= 0, ValueError,
                 "gradcheck: eps must be > 0 and atol, rtol >= 0 (got eps {}, atol {}, rtol {})", opts.eps, opts.atol,
                 opts.rtol);
  TAPEGRAD_CHECK(opts.projections >= 1, ValueError, "gradcheck: projections must be >= 1 (got {})", opts.projections);
  const std::size_t n = inputs.size();
  const Wiring plain;
  const Shape out_shape = shape_of(value_at(fn, inputs, n, plain, nullptr));
  const std::vector<Projection> ps = draw_projections(out_shape, inputs, opts);
  const std::vector<M> vs = directions(ps);

  std::vector<std::vector<M>> numeric;  // numeric[i][k]: input i, projection k
  for (std::size_t i = 0; i < n; ++i) numeric.push_back(central_differences(fn, inputs, i, n, plain, vs, opts.eps));

  GradcheckResult result;
  // One report per input of a check whose wiring gives one gradient per input.
  auto check_inputs = [&](GradcheckCheck check, const Wiring& w, bool fan_out) {
    std::vector<Tally> tallies;
    const std::size_t constant = w.constant == kNone ? 0 : w.constant;
    for (std::size_t i = 0; i < n; ++i) tallies.emplace_back(check, i, constant, shape_of(inputs[i]));
    for (std::size_t k = 0; k < ps.size(); ++k) {
      const std::vector<M> grads = sweep(fn, inputs, n, w, ps[k].v, fan_out ? &ps[k].w : nullptr);
      for (std::size_t i = 0; i < n; ++i) {
        const M expected = i == w.constant ? M(M::Zero(inputs[i].rows(), inputs[i].cols())) : numeric[i][k];
        tallies[i].add(grads[i], expected, ps[k].seed, opts);
      }
    }
    for (const Tally& t : tallies) result.reports.push_back(t.report());
  };

  check_inputs(GradcheckCheck::Plain, plain, false);
  if (opts.fan_out) check_inputs(GradcheckCheck::FanOut, plain, true);
  if (opts.alias && aliasable(inputs)) {
    const Wiring alias{true, kNone};
    const std::vector<M> x{inputs[0]};
    if (!value_at(fn, x, n, alias, &out_shape).allFinite()) {
      result.notes.push_back("alias check skipped: f(x, x, ...) is not finite at x = input 0");
    } else {
      const std::vector<M> alias_numeric = central_differences(fn, x, 0, n, alias, vs, opts.eps);
      Tally t(GradcheckCheck::Alias, 0, 0, shape_of(inputs[0]));
      for (std::size_t k = 0; k < ps.size(); ++k)
        t.add(sweep(fn, x, n, alias, ps[k].v, nullptr)[0], alias_numeric[k], ps[k].seed, opts);
      result.reports.push_back(t.report());
    }
  }
  if (opts.constant_inputs) {
    for (std::size_t c = 0; c < n; ++c) check_inputs(GradcheckCheck::Constant, Wiring{false, c}, false);
  }
  for (const InputReport& r : result.reports) result.ok = result.ok && r.ok;
  return result;
}

const InputReport* GradcheckResult::find(GradcheckCheck check, std::size_t input, std::size_t constant) const {
  for (const InputReport& r : reports) {
    if (r.check == check && r.input == input && (check != GradcheckCheck::Constant || r.constant == constant))
      return &r;
  }
  return nullptr;
}

bool GradcheckResult::passed(GradcheckCheck check) const {
  bool ran = false;
  for (const InputReport& r : reports) {
    if (r.check != check) continue;
    ran = true;
    if (!r.ok) return false;
  }
  return ran;
}

namespace {
// "fan-out", or "constant(1)" for the constant check with input 1 a constant.
std::string check_label(const InputReport& r) {
  if (r.check == GradcheckCheck::Constant) return fmt::format("constant({})", r.constant);
  return std::string(to_string(r.check));
}
}  // namespace

std::string GradcheckResult::message() const {
  std::string failed;
  for (const InputReport& r : reports) {
    if (r.ok) continue;
    failed += fmt::format("{}{} check, input {}", failed.empty() ? "" : "; ", to_string(r.check), r.input);
    if (r.check == GradcheckCheck::Constant) failed += fmt::format(" (input {} constant)", r.constant);
  }
  std::string out = ok ? "gradcheck passed\n" : fmt::format("gradcheck FAILED: {}\n", failed);
  out += fmt::format("{:<11} {:>5}  {:<12} {:>12} {:>12}  {:<12} {:>14} {:>14} {:>5}  {}\n", "check", "input", "shape",
                     "max abs err", "max rel err", "worst at", "analytic", "numeric", "seed", "result");
  for (const InputReport& r : reports) {
    out += fmt::format("{:<11} {:>5}  {:<12} {:>12.3e} {:>12.3e}  {:<12} {:>14.6e} {:>14.6e} {:>5}  {}\n",
                       check_label(r), r.input, r.shape.str(), r.max_abs_error, r.max_rel_error,
                       fmt::format("({}, {})", r.worst_row, r.worst_col), r.analytic, r.numeric, r.seed,
                       r.ok ? "ok" : "FAIL");
  }
  for (const std::string& note : notes) out += fmt::format("note: {}\n", note);
  return out;
}

}  // namespace tapegrad
