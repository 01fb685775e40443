// What every comparison in bptt_compare shares: the random problem (inputs, class targets,
// a softmax read-out), the hand-derived read-out gradient, and the result tables.
//
// Every model reads out its top hidden state the same way, o_t = h_t V + c, and the loss is
// L = sum_t sum_rows -log softmax(o_t)[row, target]. So dL/do_t = p_t - onehot, and the
// error each model's recurrence receives from its own output at step t is (p_t - onehot) V^T.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace bptt {

using Eigen::MatrixXd;

/// Every comparison passes when each max abs difference is at most this (float64).
constexpr double kTolerance = 1e-9;

/// Deterministic uniform random matrices.
class Rng {
 public:
  explicit Rng(std::uint32_t seed) : gen_(seed) {}
  MatrixXd matrix(Eigen::Index r, Eigen::Index c, double scale) {
    std::uniform_real_distribution<double> u(-scale, scale);
    return MatrixXd::NullaryExpr(r, c, [&] { return u(gen_); });
  }
  std::int32_t label(std::int32_t k) { return std::uniform_int_distribution<std::int32_t>(0, k - 1)(gen_); }

 private:
  std::mt19937 gen_;
};

/// A sequence of T inputs [B x in] with one class target per row and step.
struct Sequence {
  std::vector<MatrixXd> xs;
  std::vector<std::vector<std::int32_t>> targets;
  [[nodiscard]] int steps() const { return static_cast<int>(xs.size()); }
};

inline Sequence make_sequence(Rng& rng, int T, int B, int in, int K) {
  Sequence s;
  for (int t = 0; t < T; ++t) {
    s.xs.push_back(rng.matrix(B, in, 1.0));
    std::vector<std::int32_t> y(static_cast<std::size_t>(B));
    for (auto& k : y) k = rng.label(K);
    s.targets.push_back(y);
  }
  return s;
}

/// The read-out o_t = h_t V + c and its hand-derived gradients.
struct Head {
  MatrixXd V, c;  // H x K, 1 x K
};
struct HeadGrads {
  MatrixXd dV, dc;
  std::vector<MatrixXd> dh_out;  // dh_out[t] = dL_t/dh_t = (p_t - onehot) V^T
  double loss = 0.0;
};

/// Softmax cross-entropy summed over rows and steps, for the top hidden states hs[t].
inline HeadGrads head_backward(const Head& head, const std::vector<MatrixXd>& hs, const Sequence& seq) {
  HeadGrads g;
  g.dV = MatrixXd::Zero(head.V.rows(), head.V.cols());
  g.dc = MatrixXd::Zero(1, head.c.cols());
  for (std::size_t t = 0; t < hs.size(); ++t) {
    MatrixXd o = hs[t] * head.V;
    o.rowwise() += head.c.row(0);
    for (Eigen::Index r = 0; r < o.rows(); ++r) {  // o becomes dL/do = softmax - onehot
      const double m = o.row(r).maxCoeff();
      const Eigen::RowVectorXd e = (o.row(r).array() - m).exp().matrix();
      const int k = seq.targets[t][static_cast<std::size_t>(r)];
      g.loss += std::log(e.sum()) - (o(r, k) - m);
      o.row(r) = e / e.sum();
      o(r, k) -= 1.0;
    }
    g.dV += hs[t].transpose() * o;
    g.dc += o.colwise().sum();
    g.dh_out.push_back(o * head.V.transpose());
  }
  return g;
}

inline MatrixXd sigmoid(const MatrixXd& a) { return (1.0 / (1.0 + (-a.array()).exp())).matrix(); }
inline MatrixXd dsigmoid(const MatrixXd& y) { return (y.array() * (1.0 - y.array())).matrix(); }  // from y
inline MatrixXd dtanh(const MatrixXd& y) { return (1.0 - y.array().square()).matrix(); }          // from y

// ---- results -------------------------------------------------------------------------------

/// max |autodiff - hand| of one parameter.
struct ParamDiff {
  std::string name;
  double diff = 0.0;
};
/// One truncation mode's parameter differences.
struct ModeResult {
  std::string mode;  // "full" or "tau=k"
  std::vector<ParamDiff> params;
};
/// max |autodiff - hand| of dL/d(state tensor) at one step (t = -1: the initial state).
struct StepDiff {
  int t = 0;
  std::vector<double> diff;  // one per ModelResult::state_names
};
/// Everything one model's comparison found.
struct ModelResult {
  std::string model;        // "rnn", "stacked", "lstm", "gru"
  std::string description;  // equations and sizes
  std::vector<ModeResult> modes;
  std::vector<std::string> state_names;  // e.g. {"h"}, {"h", "c"}, {"h(layer 0)", "h(layer 1)"}
  std::vector<StepDiff> steps;           // full BPTT, t = -1 .. T-1
  double loss = 0.0;

  /// Every difference within kTolerance (a NaN fails).
  [[nodiscard]] bool pass() const {
    for (const ModeResult& m : modes) {
      for (const ParamDiff& p : m.params) {
        if (!(p.diff <= kTolerance)) return false;
      }
    }
    for (const StepDiff& s : steps) {
      for (double d : s.diff) {
        if (!(d <= kTolerance)) return false;
      }
    }
    return true;
  }
};

inline double max_abs_diff(const MatrixXd& a, const MatrixXd& b) {
  if (a.rows() != b.rows() || a.cols() != b.cols()) return std::nan("");  // a shape mismatch fails
  return a.size() == 0 ? 0.0 : (a - b).cwiseAbs().maxCoeff();
}

}  // namespace bptt
