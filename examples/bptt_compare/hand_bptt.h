// Hand-derived BPTT for the vanilla RNN in plain Eigen double, written from the equations
// (no tapegrad code), the example's own copy so it does not depend on tests/:
//
//   h_{-1} = h0,  z_t = x_t U + h_{t-1} W + b,  h_t = tanh(z_t),
//   o_t = h_t V + c,  p_t = softmax(o_t) (row-wise),  L = sum_t sum_rows -log p_t[row, target].
//
// Derivatives: dL/do_t = p_t - onehot, dL/dz_t = dL/dh_t .* (1 - h_t^2),
// dU += x_t^T dz, dW += h_{t-1}^T dz, db += colsum(dz), dL/dh_{t-1} += dz W^T,
// dV += h_t^T do, dc += colsum(do), dL/dh_t += do V^T.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace hand {

struct RnnParams {
  Eigen::MatrixXd U, W, V, b, c, h0;  // in x H, H x H, H x K, 1 x H, 1 x K, B x H
};
struct RnnGrads {
  Eigen::MatrixXd dU, dW, dV, db, dc, dh0;
  double loss = 0.0;
};

/// tau < 0: full BPTT. tau >= 0: numpy `bptt_truncate = tau`, the loss of output t reaches
/// steps t .. max(0, t - tau) only.
inline RnnGrads rnn_bptt(const RnnParams& p, const std::vector<Eigen::MatrixXd>& xs,
                         const std::vector<std::vector<std::int32_t>>& targets, int tau) {
  using Eigen::MatrixXd;
  const int T = static_cast<int>(xs.size());
  std::vector<MatrixXd> hs{p.h0};  // hs[t + 1] = h_t
  std::vector<MatrixXd> douts;     // p_t - onehot
  RnnGrads g;
  for (int t = 0; t < T; ++t) {
    MatrixXd z = xs[static_cast<std::size_t>(t)] * p.U + hs.back() * p.W;
    z.rowwise() += p.b.row(0);
    hs.push_back(z.array().tanh().matrix());
    MatrixXd o = hs.back() * p.V;
    o.rowwise() += p.c.row(0);
    for (Eigen::Index r = 0; r < o.rows(); ++r) {
      const double m = o.row(r).maxCoeff();
      const Eigen::RowVectorXd e = (o.row(r).array() - m).exp().matrix();
      const double s = e.sum();
      const int k = targets[static_cast<std::size_t>(t)][static_cast<std::size_t>(r)];
      g.loss += std::log(s) - (o(r, k) - m);
      o.row(r) = e / s;
      o(r, k) -= 1.0;
    }
    douts.push_back(o);
  }
  auto h = [&](int t) -> const MatrixXd& { return hs[static_cast<std::size_t>(t + 1)]; };
  auto x = [&](int t) -> const MatrixXd& { return xs[static_cast<std::size_t>(t)]; };
  auto dtanh = [](const MatrixXd& hv) { return MatrixXd((1.0 - hv.array().square()).matrix()); };
  g.dU = MatrixXd::Zero(p.U.rows(), p.U.cols());
  g.dW = MatrixXd::Zero(p.W.rows(), p.W.cols());
  g.dV = MatrixXd::Zero(p.V.rows(), p.V.cols());
  g.db = MatrixXd::Zero(1, p.b.cols());
  g.dc = MatrixXd::Zero(1, p.c.cols());
  g.dh0 = MatrixXd::Zero(p.h0.rows(), p.h0.cols());
  if (tau < 0) {  // one backward pass carrying dL/dh_t from the future
    MatrixXd dh_future = g.dh0;
    for (int t = T - 1; t >= 0; --t) {
      const MatrixXd& dout = douts[static_cast<std::size_t>(t)];
      g.dV += h(t).transpose() * dout;
      g.dc += dout.colwise().sum();
      const MatrixXd dz = (dout * p.V.transpose() + dh_future).cwiseProduct(dtanh(h(t)));
      g.dU += x(t).transpose() * dz;
      g.dW += h(t - 1).transpose() * dz;
      g.db += dz.colwise().sum();
      dh_future = dz * p.W.transpose();
    }
    g.dh0 = dh_future;
    return g;
  }
  for (int t = T - 1; t >= 0; --t) {  // per output: a delta recursion over its window
    const MatrixXd& dout = douts[static_cast<std::size_t>(t)];
    g.dV += h(t).transpose() * dout;
    g.dc += dout.colwise().sum();
    MatrixXd delta = (dout * p.V.transpose()).cwiseProduct(dtanh(h(t)));
    for (int s = t; s >= (t > tau ? t - tau : 0); --s) {
      g.dW += h(s - 1).transpose() * delta;
      g.dU += x(s).transpose() * delta;
      g.db += delta.colwise().sum();
      const MatrixXd dh_prev = delta * p.W.transpose();
      if (s == 0) {
        g.dh0 += dh_prev;
      } else {
        delta = dh_prev.cwiseProduct(dtanh(h(s - 1)));
      }
    }
  }
  return g;
}

}  // namespace hand
