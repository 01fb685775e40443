// Gradient-flow report: norms of dL/dh_k, of the one-step Jacobians and of their products,
// a log-linear fit of the decay, and CSV / JSON / SVG output.
#include <tapegrad/nn/diagnostics.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include <tapegrad/jacobian.h>
#include <tapegrad/nn/svg_plot.h>

namespace tapegrad::nn {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The norms of the block of J that the options ask for (J is over row-major vec() of [B x H]).
JacobianResult block_norms(const Matrix<double>& j, Index n) {
  if (j.rows() == n && j.cols() == n) return jacobian_norms(j);
  return jacobian_norms(j.topLeftCorner(n, n));
}

std::string json_number(double v) { return std::isfinite(v) ? fmt::format("{}", v) : std::string("null"); }

}  // namespace

const char* verdict_name(FlowVerdict v) {
  // In the order of FlowVerdict's enumerators.
  static constexpr std::array<const char*, 4> kNames{"vanishing", "stable", "exploding", "undetermined"};
  const auto i = static_cast<std::size_t>(v);
  return i < kNames.size() ? kNames[i] : "undetermined";
}

const char* block_name(JacobianBlock b) { return b == JacobianBlock::Full ? "full" : "first_row"; }

std::string GradientFlowReport::summary() const {
  if (verdict == FlowVerdict::Undetermined) {
    return fmt::format("undetermined: fewer than two non-zero ||dL/dh_k||; gamma*sigma_max(W) = {:.4g}", bound);
  }
  return fmt::format(
      "{}: ||dL/dh_k|| x{:.4g} per step back ({:+.2f} decades over {} steps); gamma*sigma_max(W) = {:.4g}",
      verdict_name(verdict), decay_rate, decades, fit_end - 1 - fit_begin, bound);
}

namespace {

// fit with end = -1 resolved to last_k + 1, after the checks summarize documents.
FitRange resolve(const char* function, FitRange fit, int last_k) {
  const int end = fit.end == -1 ? last_k + 1 : fit.end;
  TAPEGRAD_CHECK(fit.begin >= 0 && end > fit.begin && end <= last_k + 1, ValueError,
                 "{}: the fit range [{}, {}) must be a non-empty range of the steps 0 .. {} (end -1: through {})",
                 function, fit.begin, fit.end, last_k, last_k);
  return {fit.begin, end};
}

}  // namespace

void summarize(GradientFlowReport& report, double decades_threshold, FitRange fit) {
  const FitRange range = resolve("summarize", fit, report.steps.empty() ? 0 : report.steps.back().k);
  report.fit_begin = report.steps.empty() ? range.begin : std::max(range.begin, report.steps.front().k);
  report.fit_end = range.end;
  // Least squares of ln ||dL/dh_k|| = a + b k over the steps in range with a positive finite norm.
  double n = 0, sk = 0, sy = 0, skk = 0, sky = 0;
  int k_min = std::numeric_limits<int>::max(), k_max = std::numeric_limits<int>::min();
  for (const GradientFlowStep& s : report.steps) {
    if (s.k < range.begin || s.k >= range.end) continue;
    if (!(std::isfinite(s.grad_norm) && s.grad_norm > 0.0)) continue;
    const double k = s.k, y = std::log(s.grad_norm);
    n += 1;
    sk += k;
    sy += y;
    skk += k * k;
    sky += k * y;
    k_min = std::min(k_min, s.k);
    k_max = std::max(k_max, s.k);
  }
  const double denom = n * skk - sk * sk;
  if (n < 2 || !(denom > 0)) {
    report.decay_rate = kNaN;
    report.decades = kNaN;
    report.verdict = FlowVerdict::Undetermined;
    return;
  }
  const double b = (n * sky - sk * sy) / denom;
  report.decay_rate = std::exp(-b);  // one step back in time multiplies by e^-b
  report.decades = -b * (k_max - k_min) / std::log(10.0);
  if (report.decades < -decades_threshold) {
    report.verdict = FlowVerdict::Vanishing;
  } else if (report.decades > decades_threshold) {
    report.verdict = FlowVerdict::Exploding;
  } else {
    report.verdict = FlowVerdict::Stable;
  }
}

template <class S>
GradientFlowReport gradient_flow(Tape<S>& tape, const Var<S>& loss, std::span<const std::type_identity_t<Var<S>>> hs,
                                 const std::type_identity_t<Matrix<S>>& W, double gamma,
                                 const GradientFlowOptions& options) {
  TAPEGRAD_CHECK(hs.size() >= 2, ValueError, "gradient_flow: hs holds {} states; it needs h_0 .. h_T with T >= 1",
                 hs.size());
  TAPEGRAD_CHECK(std::isfinite(gamma) && gamma > 0.0, ValueError,
                 "gradient_flow: gamma is {}; it must be the activation's largest slope (> 0)", gamma);
  tape.check(loss, "gradient_flow", "loss");
  TAPEGRAD_CHECK(loss.shape() == (Shape{1, 1}), ShapeError, "gradient_flow: the loss is {}, not a scalar [1 x 1]",
                 loss.shape());
  for (std::size_t k = 0; k < hs.size(); ++k) {
    tape.check(hs[k], "gradient_flow", fmt::format("hs[{}]", k));
    TAPEGRAD_CHECK(hs[k].shape() == hs[0].shape(), ShapeError, "gradient_flow: hs[{}] is {} but hs[0] is {}", k,
                   hs[k].shape(), hs[0].shape());
  }
  const Index batch = hs[0].rows(), width = hs[0].cols();
  TAPEGRAD_CHECK(W.rows() == width && W.cols() == width, ShapeError,
                 "gradient_flow: W is {} but the states are {}; W must be the [H x H] matrix multiplying h",
                 shape_of(W), hs[0].shape());
  const int T = static_cast<int>(hs.size()) - 1;
  resolve("gradient_flow", options.fit, T);  // before the sweeps, so a bad range costs nothing
  const Index n = options.block == JacobianBlock::FirstRow ? width : batch * width;

  GradientFlowReport report;
  report.block = options.block;
  report.gamma = gamma;
  report.sigma_max_w = jacobian_norms(W.template cast<double>()).spectral_norm;
  report.bound = gamma * report.sigma_max_w;
  report.steps.resize(hs.size());
  for (int k = 0; k <= T; ++k) {
    GradientFlowStep& s = report.steps[static_cast<std::size_t>(k)];
    s.k = k;
    s.bound = report.bound;
    s.step_spectral = s.step_frobenius = s.product_spectral = kNaN;
  }
  auto on_path = [&](int k) { return hs[static_cast<std::size_t>(k)].requires_grad(); };

  // ||dL/dh_k||: one probe sweep from the loss (no Parameter::grad, no hooks).
  BackwardOptions probe;
  probe.accumulate_parameters = false;
  probe.run_hooks = false;
  tape.backward(loss, probe);
  for (int k = 0; k <= T; ++k) {
    const Var<S>& h = hs[static_cast<std::size_t>(k)];
    report.steps[static_cast<std::size_t>(k)].grad_norm =
        on_path(k) ? static_cast<double>(tape.grad(h.id()).norm()) : kNaN;
  }

  // ||dh_k/dh_{k-1}||: the exact one-step Jacobian (jacobian.h).
  for (int k = 1; k <= T; ++k) {
    if (!on_path(k - 1)) continue;
    const JacobianResult j = node_jacobian(hs[static_cast<std::size_t>(k)], hs[static_cast<std::size_t>(k - 1)]);
    const JacobianResult b = block_norms(j.J, n);
    report.steps[static_cast<std::size_t>(k)].step_spectral = b.spectral_norm;
    report.steps[static_cast<std::size_t>(k)].step_frobenius = b.frobenius_norm;
  }

  // ||dh_T/dh_k||: one sweep per element i of h_T's block gives row i of dh_T/dh_k for every k.
  if (options.product_norms) {
    report.steps[static_cast<std::size_t>(T)].product_spectral = 1.0;  // dh_T/dh_T = I
    std::vector<Matrix<double>> products(static_cast<std::size_t>(T), Matrix<double>::Zero(n, n));
    const Var<S>& h_last = hs[static_cast<std::size_t>(T)];
    probe.from = Mark{.entries = tape.first_entry_after(hs[0].id())};  // nothing before h_0 matters
    Matrix<S> seed = Matrix<S>::Zero(batch, width);
    for (Index i = 0; i < n; ++i) {
      seed.data()[i] = S(1);
      tape.backward(h_last, seed, probe);
      seed.data()[i] = S(0);
      for (int k = 0; k < T; ++k) {
        if (!on_path(k)) continue;
        const Matrix<S>& g = tape.grad(hs[static_cast<std::size_t>(k)].id());
        for (Index j = 0; j < n; ++j) products[static_cast<std::size_t>(k)](i, j) = static_cast<double>(g.data()[j]);
      }
    }
    for (int k = 0; k < T; ++k) {
      if (on_path(k)) {
        report.steps[static_cast<std::size_t>(k)].product_spectral =
            jacobian_norms(std::move(products[static_cast<std::size_t>(k)])).spectral_norm;
      }
    }
  }
  summarize(report, options.decades_threshold, options.fit);
  return report;
}

std::string to_csv(const GradientFlowReport& report) {
  std::string out = "k,grad_norm,step_spectral,step_frobenius,product_spectral,bound\n";
  for (const GradientFlowStep& s : report.steps) {
    out += fmt::format("{},{},{},{},{},{}\n", s.k, s.grad_norm, s.step_spectral, s.step_frobenius, s.product_spectral,
                       s.bound);
  }
  return out;
}

std::string to_json(const GradientFlowReport& report) {
  std::string out = "{\n";
  out += fmt::format("  \"verdict\": \"{}\",\n", verdict_name(report.verdict));
  out += fmt::format("  \"decay_rate\": {},\n", json_number(report.decay_rate));
  out += fmt::format("  \"decades\": {},\n", json_number(report.decades));
  out += fmt::format("  \"fit_begin\": {},\n  \"fit_end\": {},\n", report.fit_begin, report.fit_end);
  out += fmt::format("  \"gamma\": {},\n", json_number(report.gamma));
  out += fmt::format("  \"sigma_max_w\": {},\n", json_number(report.sigma_max_w));
  out += fmt::format("  \"bound\": {},\n", json_number(report.bound));
  out += fmt::format("  \"jacobian_block\": \"{}\",\n", block_name(report.block));
  out += "  \"steps\": [";
  for (std::size_t i = 0; i < report.steps.size(); ++i) {
    const GradientFlowStep& s = report.steps[i];
    out += fmt::format(
        "{}\n    {{\"k\": {}, \"grad_norm\": {}, \"step_spectral\": {}, \"step_frobenius\": {}, "
        "\"product_spectral\": {}, \"bound\": {}}}",
        i == 0 ? "" : ",", s.k, json_number(s.grad_norm), json_number(s.step_spectral), json_number(s.step_frobenius),
        json_number(s.product_spectral), json_number(s.bound));
  }
  out += "\n  ]\n}\n";
  return out;
}

std::string to_svg(const GradientFlowReport& report, const std::string& title) {
  std::vector<PlotSeries> series(5);
  series[0].name = "||dL/dh_k||";
  series[1].name = "||dh_k/dh_k-1||  spectral";
  series[2].name = "||dh_k/dh_k-1||  Frobenius";
  series[3].name = "||dh_T/dh_k||  spectral";
  series[4].name = "bound  \u03b3\u00b7\u03c3max(W)";
  series[4].dashed = true;
  for (const GradientFlowStep& s : report.steps) {
    const double values[] = {s.grad_norm, s.step_spectral, s.step_frobenius, s.product_spectral, s.bound};
    for (std::size_t i = 0; i < series.size(); ++i) {
      series[i].x.push_back(s.k);
      series[i].y.push_back(values[i]);
    }
  }
  PlotOptions options;
  options.title =
      title.empty() ? fmt::format("Gradient flow: {}", report.summary().substr(0, report.summary().find(';'))) : title;
  options.y_label = "norm (log scale)";
  return plot_log_svg(series, options);
}

void write_csv(const GradientFlowReport& report, const std::string& path) {
  write_text_file_atomic(path, to_csv(report));
}
void write_json(const GradientFlowReport& report, const std::string& path) {
  write_text_file_atomic(path, to_json(report));
}
void write_svg(const GradientFlowReport& report, const std::string& path, const std::string& title) {
  write_text_file_atomic(path, to_svg(report, title));
}

#define TAPEGRAD_NN_INSTANTIATE_FLOW(S)                                                                            \
  template GradientFlowReport gradient_flow<S>(Tape<S>&, const Var<S>&, std::span<const Var<S>>, const Matrix<S>&, \
                                               double, const GradientFlowOptions&);
TAPEGRAD_NN_INSTANTIATE_FLOW(float)
TAPEGRAD_NN_INSTANTIATE_FLOW(double)

}  // namespace tapegrad::nn
