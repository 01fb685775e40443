// Hand-derived BPTT for one vanilla (Elman) tanh layer, in plain Eigen, from the equations:
//
//   h_{-1} = h0,   z_t = x_t U + h_{t-1} W + b,   h_t = tanh(z_t)        (rows = batch)
//
// Given e_t = dL_t/dh_t, the error the read-out sends into h_t at step t (common.h):
//
//   dL/dh_t   = e_t + dL/dz_{t+1} W^T            (its own output + everything later)
//   dL/dz_t   = dL/dh_t .* (1 - h_t^2)
//   dU += x_t^T dL/dz_t,   dW += h_{t-1}^T dL/dz_t,   db += colsum(dL/dz_t)
//
// Truncated (tau >= 0, numpy's bptt_truncate): the error of output t runs its own delta
// recursion back through steps t, t-1, ..., max(0, t - tau) and stops there.
#pragma once

#include <algorithm>
#include <vector>

#include "common.h"

namespace bptt {

struct RnnWeights {
  MatrixXd U, W, b;  // in x H, H x H, 1 x H
};
struct RnnGrads {
  MatrixXd dU, dW, db, dh0;
  std::vector<MatrixXd> dh;  // dh[t] = dL/dh_t (full BPTT only)
};

/// hs[0] = h0, hs[t + 1] = h_t.
inline std::vector<MatrixXd> rnn_forward(const RnnWeights& w, const MatrixXd& h0, const std::vector<MatrixXd>& xs) {
  std::vector<MatrixXd> hs{h0};
  for (const MatrixXd& x : xs) {
    MatrixXd z = x * w.U + hs.back() * w.W;
    z.rowwise() += w.b.row(0);
    hs.push_back(z.array().tanh().matrix());
  }
  return hs;
}

/// tau < 0: full BPTT; tau >= 0: each output's error reaches back tau steps.
inline RnnGrads rnn_backward(const RnnWeights& w, const std::vector<MatrixXd>& hs, const std::vector<MatrixXd>& xs,
                             const std::vector<MatrixXd>& e, int tau) {
  const int T = static_cast<int>(xs.size());
  auto h = [&](int t) -> const MatrixXd& { return hs[static_cast<std::size_t>(t + 1)]; };
  auto x = [&](int t) -> const MatrixXd& { return xs[static_cast<std::size_t>(t)]; };
  RnnGrads g;
  g.dU = MatrixXd::Zero(w.U.rows(), w.U.cols());
  g.dW = MatrixXd::Zero(w.W.rows(), w.W.cols());
  g.db = MatrixXd::Zero(1, w.b.cols());
  g.dh0 = MatrixXd::Zero(hs[0].rows(), hs[0].cols());
  auto accumulate = [&](int t, const MatrixXd& dz) {
    g.dU += x(t).transpose() * dz;
    g.dW += h(t - 1).transpose() * dz;
    g.db += dz.colwise().sum();
  };
  if (tau < 0) {  // one sweep carrying dL/dh from the future
    g.dh.resize(static_cast<std::size_t>(T));
    MatrixXd from_future = g.dh0;  // dL/dz_{t+1} W^T, zero after the last step
    for (int t = T - 1; t >= 0; --t) {
      const MatrixXd dh = e[static_cast<std::size_t>(t)] + from_future;
      const MatrixXd dz = dh.cwiseProduct(dtanh(h(t)));
      accumulate(t, dz);
      from_future = dz * w.W.transpose();
      g.dh[static_cast<std::size_t>(t)] = dh;
    }
    g.dh0 = from_future;
    return g;
  }
  for (int t = T - 1; t >= 0; --t) {  // per output: its own window
    MatrixXd dz = e[static_cast<std::size_t>(t)].cwiseProduct(dtanh(h(t)));
    for (int s = t; s >= std::max(0, t - tau); --s) {
      accumulate(s, dz);
      const MatrixXd dh_prev = dz * w.W.transpose();
      if (s == 0) {
        g.dh0 += dh_prev;
      } else {
        dz = dh_prev.cwiseProduct(dtanh(h(s - 1)));
      }
    }
  }
  return g;
}

}  // namespace bptt
