// Gradient-flow diagnostics for an unrolled recurrence: how the gradient of the loss shrinks
// or grows as it travels back through h_T, h_{T-1}, ..., h_0. See docs/diagnostics.md.
//
// For h_k = f(x_k U + h_{k-1} W + b) with |f'| <= gamma, the one-step Jacobian is
// dh_k/dh_{k-1} = W^T diag(f'(a_k)) (row-vector convention), so its spectral norm is at most
// gamma * sigma_max(W), and the norm of the product dh_T/dh_k is at most that bound to the
// power T - k: below 1 the gradient vanishes geometrically, above 1 it may explode.
#pragma once

#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <tapegrad/tape.h>

namespace tapegrad::nn {

/// Largest slope of tanh (at 0): the gamma of a tanh recurrence.
inline constexpr double kTanhGamma = 1.0;
/// Largest slope of the logistic sigmoid (at 0): the gamma of a sigmoid recurrence.
inline constexpr double kLogisticGamma = 0.25;

/// Which block of a Jacobian between two [B x H] states the norms are taken of.
enum class JacobianBlock {
  FirstRow,  ///< The H x H block of batch row 0 (rows of a batch do not interact in a cell).
  Full,      ///< The whole BH x BH Jacobian (block diagonal for a cell: spectral = max over rows).
};

/// What the fitted decay of ||dL/dh_k|| says.
enum class FlowVerdict { Vanishing, Stable, Exploding, Undetermined };

/// "vanishing", "stable", "exploding" or "undetermined".
const char* verdict_name(FlowVerdict v);
/// "first_row" or "full".
const char* block_name(JacobianBlock b);

/// The steps k whose ||dL/dh_k|| the decay is fitted over: [begin, end); end = -1 means through
/// the last step T. E.g. {5, 20} fits k = 5 .. 19 only, leaving out a transient near the loss.
struct FitRange {
  int begin = 0;
  int end = -1;
};

/// How gradient_flow works.
struct GradientFlowOptions {
  JacobianBlock block = JacobianBlock::FirstRow;
  /// Compute ||dh_T/dh_k|| (one reverse sweep per element of h_T's block).
  bool product_norms = true;
  /// Verdict: vanishing (exploding) when the fitted ||dL/dh_k|| falls (rises) by more than
  /// this many decades from k = T back to the first k; stable otherwise.
  double decades_threshold = 1.0;
  /// The steps the decay rate, decades and verdict are fitted over.
  FitRange fit;
};

/// The numbers for one time step k (h_k is the state after k steps; h_0 the initial state).
/// A value that does not exist or cannot be computed is NaN (e.g. the step Jacobian at k = 0,
/// or anything involving an h_k that does not require a gradient).
struct GradientFlowStep {
  int k = 0;
  double grad_norm = 0.0;         ///< ||dL/dh_k||_F.
  double step_spectral = 0.0;     ///< ||dh_k/dh_{k-1}||_2 (largest singular value).
  double step_frobenius = 0.0;    ///< ||dh_k/dh_{k-1}||_F.
  double product_spectral = 0.0;  ///< ||dh_T/dh_k||_2 (1 at k = T).
  double bound = 0.0;             ///< gamma * sigma_max(W), the same for every k.
};

/// The per-step table and its summary.
struct GradientFlowReport {
  std::vector<GradientFlowStep> steps;
  JacobianBlock block = JacobianBlock::FirstRow;
  double gamma = 0.0;
  double sigma_max_w = 0.0;  ///< Largest singular value of W.
  double bound = 0.0;        ///< gamma * sigma_max_w.
  /// Geometric decay per step back in time: ||dL/dh_{k-1}|| ~ decay_rate * ||dL/dh_k||, from a
  /// least-squares line through log ||dL/dh_k||. Below 1 vanishing, above 1 exploding.
  double decay_rate = 0.0;
  double decades = 0.0;  ///< log10 change of the fitted line from the last k back to the first.
  FlowVerdict verdict = FlowVerdict::Undetermined;
  /// The steps fitted over, [fit_begin, fit_end): all of them unless options.fit says otherwise.
  int fit_begin = 0;
  int fit_end = 0;

  /// One line, e.g. "vanishing: ||dL/dh_k|| x0.81 per step back (-4.6 decades over 50 steps);
  /// gamma*sigma_max(W) = 0.9".
  [[nodiscard]] std::string summary() const;
};

/// Measures gradient flow through the states hs = {h_0, ..., h_T} of an unrolled recurrence
/// recorded on tape, for the scalar loss. W is the recurrent matrix (the one multiplying h)
/// and gamma the activation's largest slope (kTanhGamma, kLogisticGamma, 1 for a linear RNN).
/// For an LSTM pass the h states and W_hh restricted to one gate; the bound then is only a
/// reference line. hs may be any contiguous range of Vars (a std::vector, a span), and S is
/// deduced from the tape.
///
/// Runs one backward sweep for dL/dh_k, one node_jacobian (jacobian.h) per step, and, for the
/// products, one sweep per element of h_T's block reading dh_T/dh_k for every k at once. No
/// sweep touches Parameter::grad or runs hooks; Var::grad() values on the tape are
/// overwritten. ||dL/dh_k|| is over the whole [B x H] gradient; the Jacobian norms over the
/// block options.block selects. To get numbers for h_0, record it with tape.variable().
/// Throws ValueError if hs has fewer than 2 states, gamma <= 0 or options.fit is not a
/// non-empty range within 0 .. T; ShapeError if the loss is not [1 x 1], the states differ
/// in shape or W is not [H x H]; TapeError for a stale Var or one of another tape.
template <class S>
GradientFlowReport gradient_flow(Tape<S>& tape, const Var<S>& loss, std::span<const std::type_identity_t<Var<S>>> hs,
                                 const std::type_identity_t<Matrix<S>>& W, double gamma,
                                 const GradientFlowOptions& options = {});

/// Fits log ||dL/dh_k|| on k over the steps in fit and fills decay_rate, decades, verdict and
/// the fit range (used by gradient_flow; public so a report built elsewhere can be summarised
/// the same way). ValueError if fit starts below 0, ends at or before its start, or ends past
/// the last step + 1.
void summarize(GradientFlowReport& report, double decades_threshold = 1.0, FitRange fit = {});

/// CSV with a header row: k,grad_norm,step_spectral,step_frobenius,product_spectral,bound.
/// Numbers are written in the shortest form that reads back to the same double; NaN as "nan".
std::string to_csv(const GradientFlowReport& report);
/// JSON object with the summary fields and a "steps" array; NaN and Inf become null.
std::string to_json(const GradientFlowReport& report);
/// The report as a log-scale SVG chart: one line per series against k, with the bound.
std::string to_svg(const GradientFlowReport& report, const std::string& title = {});

/// Write to_csv / to_json / to_svg to path atomically (a temp file renamed over path).
void write_csv(const GradientFlowReport& report, const std::string& path);
void write_json(const GradientFlowReport& report, const std::string& path);
void write_svg(const GradientFlowReport& report, const std::string& path, const std::string& title = {});

}  // namespace tapegrad::nn
