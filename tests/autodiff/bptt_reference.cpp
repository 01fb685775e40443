// Hand-derived BPTT (see bptt_reference.h). Derivatives used:
//   dL/do_t = p_t - onehot(target_t)                  (softmax + cross-entropy, per row)
//   dL/dz_t = dL/dh_t .* (1 - h_t^2)                  (tanh)
//   dU += x_t^T dz_t,  dW += h_{t-1}^T dz_t,  db += colsum(dz_t),  dL/dh_{t-1} += dz_t W^T
//   dV += h_t^T do_t,  dc += colsum(do_t),  dL/dh_t += do_t V^T
#include "bptt_reference.h"

#include <cmath>
#include <cstddef>

namespace tapegrad::reference {
namespace {

using Eigen::MatrixXd;

struct Forward {
  std::vector<MatrixXd> h;     // h[0] = h0, h[t + 1] = h_t
  std::vector<MatrixXd> dout;  // dL/do_t = p_t - onehot
  double loss = 0.0;
};

Forward forward(const RnnParams& p, const std::vector<MatrixXd>& xs,
                const std::vector<std::vector<std::int32_t>>& targets) {
  Forward f;
  f.h.push_back(p.h0);
  for (std::size_t t = 0; t < xs.size(); ++t) {
    MatrixXd z = xs[t] * p.U + f.h.back() * p.W;
    z.rowwise() += p.b.row(0);
    MatrixXd h = z.array().tanh().matrix();
    MatrixXd o = h * p.V;
    o.rowwise() += p.c.row(0);
    MatrixXd d(o.rows(), o.cols());
    for (Eigen::Index r = 0; r < o.rows(); ++r) {
      const double m = o.row(r).maxCoeff();
      const Eigen::RowVectorXd e = (o.row(r).array() - m).exp().matrix();
      const double s = e.sum();
      d.row(r) = e / s;
      const int k = targets[t][static_cast<std::size_t>(r)];
      f.loss += -(o(r, k) - m - std::log(s));
      d(r, k) -= 1.0;
    }
    f.h.push_back(h);
    f.dout.push_back(d);
  }
  return f;
}

MatrixXd colsum(const MatrixXd& m) { return m.colwise().sum(); }
MatrixXd tanh_grad(const MatrixXd& h) { return (1.0 - h.array().square()).matrix(); }

}  // namespace

RnnGrads rnn_bptt(const RnnParams& p, const std::vector<MatrixXd>& xs,
                  const std::vector<std::vector<std::int32_t>>& targets, int tau) {
  const Forward f = forward(p, xs, targets);
  const int T = static_cast<int>(xs.size());
  RnnGrads g;
  g.loss = f.loss;
  g.dU = MatrixXd::Zero(p.U.rows(), p.U.cols());
  g.dW = MatrixXd::Zero(p.W.rows(), p.W.cols());
  g.dV = MatrixXd::Zero(p.V.rows(), p.V.cols());
  g.db = MatrixXd::Zero(1, p.b.cols());
  g.dc = MatrixXd::Zero(1, p.c.cols());
  g.dh0 = MatrixXd::Zero(p.h0.rows(), p.h0.cols());
  auto h = [&](int t) -> const MatrixXd& { return f.h[static_cast<std::size_t>(t + 1)]; };  // h(-1) = h0
  auto x = [&](int t) -> const MatrixXd& { return xs[static_cast<std::size_t>(t)]; };

  if (tau < 0) {
    // Full BPTT: one pass from the last step, carrying dL/dh_t from the future.
    MatrixXd dh_future = MatrixXd::Zero(p.h0.rows(), p.h0.cols());
    for (int t = T - 1; t >= 0; --t) {
      const MatrixXd& dout = f.dout[static_cast<std::size_t>(t)];
      g.dV += h(t).transpose() * dout;
      g.dc += colsum(dout);
      const MatrixXd dh = dout * p.V.transpose() + dh_future;
      const MatrixXd dz = dh.cwiseProduct(tanh_grad(h(t)));
      g.dU += x(t).transpose() * dz;
      g.dW += h(t - 1).transpose() * dz;
      g.db += colsum(dz);
      dh_future = dz * p.W.transpose();
    }
    g.dh0 = dh_future;
    return g;
  }

  // Per-output truncation (numpy bptt with bptt_truncate = tau): for each output t, a delta
  // recursion through steps t .. max(0, t - tau) only.
  for (int t = T - 1; t >= 0; --t) {
    const MatrixXd& dout = f.dout[static_cast<std::size_t>(t)];
    g.dV += h(t).transpose() * dout;
    g.dc += colsum(dout);
    MatrixXd delta = (dout * p.V.transpose()).cwiseProduct(tanh_grad(h(t)));  // dL_t/dz_t
    const int oldest = t - tau > 0 ? t - tau : 0;
    for (int s = t; s >= oldest; --s) {
      g.dW += h(s - 1).transpose() * delta;
      g.dU += x(s).transpose() * delta;
      g.db += colsum(delta);
      const MatrixXd dh_prev = delta * p.W.transpose();  // dL_t/dh_{s-1}
      if (s == 0) {
        g.dh0 += dh_prev;
      } else {
        delta = dh_prev.cwiseProduct(tanh_grad(h(s - 1)));  // dL_t/dz_{s-1}
      }
    }
  }
  return g;
}

}  // namespace tapegrad::reference
