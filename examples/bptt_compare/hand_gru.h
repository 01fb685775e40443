// Hand-derived BPTT for one GRU layer, in plain Eigen, with PyTorch's equations as in
// nn/gru_cell.h (gate columns r, z, n; two biases because b_hn sits inside the reset product):
//
//   gx = x_t W_ih + b_ih,   gh = h_{t-1} W_hh + b_hh                  (both [B x 3H])
//   r = sigmoid(gx_r + gh_r)   z = sigmoid(gx_z + gh_z)   n = tanh(gx_n + r .* gh_n)
//   h_t = (1 - z) .* n + z .* h_{t-1}
//
// Backward at step t, given dL/dh_t = e_t + (from step t+1):
//
//   dn = dL/dh_t .* (1 - z)     dz = dL/dh_t .* (h_{t-1} - n)     direct = dL/dh_t .* z
//   dan = dn .* (1 - n^2)       dr = dan .* gh_n
//   dgx = [dr .* r(1-r), dz .* z(1-z), dan]        dgh = [dr .* r(1-r), dz .* z(1-z), dan .* r]
//   dW_ih += x_t^T dgx, db_ih += colsum(dgx), dW_hh += h_{t-1}^T dgh, db_hh += colsum(dgh)
//   dL/dh_{t-1} (from step t) = direct + dgh W_hh^T
//
// The z .* h_{t-1} term is the GRU's additive path: where z is near 1 the error passes
// straight through, like the LSTM's cell state.
#pragma once

#include <vector>

#include "common.h"

namespace bptt {

struct GruWeights {
  MatrixXd W_ih, W_hh, b_ih, b_hh;  // in x 3H, H x 3H, 1 x 3H, 1 x 3H
};
struct GruStep {
  MatrixXd r, z, n, gh_n, h;
};
struct GruGrads {
  MatrixXd dW_ih, dW_hh, db_ih, db_hh, dh0;
  std::vector<MatrixXd> dh;  // dL/dh_t
};

inline std::vector<GruStep> gru_forward(const GruWeights& w, const MatrixXd& h0, const std::vector<MatrixXd>& xs) {
  const Eigen::Index H = w.W_hh.rows();
  std::vector<GruStep> steps;
  MatrixXd h = h0;
  for (const MatrixXd& x : xs) {
    MatrixXd gx = x * w.W_ih;
    gx.rowwise() += w.b_ih.row(0);
    MatrixXd gh = h * w.W_hh;
    gh.rowwise() += w.b_hh.row(0);
    GruStep s;
    s.r = sigmoid(gx.middleCols(0, H) + gh.middleCols(0, H));
    s.z = sigmoid(gx.middleCols(H, H) + gh.middleCols(H, H));
    s.gh_n = gh.middleCols(2 * H, H);
    s.n = (gx.middleCols(2 * H, H) + s.r.cwiseProduct(s.gh_n)).array().tanh().matrix();
    s.h = (1.0 - s.z.array()).matrix().cwiseProduct(s.n) + s.z.cwiseProduct(h);
    h = s.h;
    steps.push_back(s);
  }
  return steps;
}

inline GruGrads gru_backward(const GruWeights& w, const std::vector<GruStep>& steps, const MatrixXd& h0,
                             const std::vector<MatrixXd>& xs, const std::vector<MatrixXd>& e) {
  const int T = static_cast<int>(xs.size());
  const Eigen::Index H = w.W_hh.rows();
  GruGrads g;
  g.dW_ih = MatrixXd::Zero(w.W_ih.rows(), w.W_ih.cols());
  g.dW_hh = MatrixXd::Zero(w.W_hh.rows(), w.W_hh.cols());
  g.db_ih = MatrixXd::Zero(1, w.b_ih.cols());
  g.db_hh = MatrixXd::Zero(1, w.b_hh.cols());
  g.dh.resize(static_cast<std::size_t>(T));
  MatrixXd dh_future = MatrixXd::Zero(h0.rows(), H);
  for (int t = T - 1; t >= 0; --t) {
    const auto ti = static_cast<std::size_t>(t);
    const GruStep& s = steps[ti];
    const MatrixXd& h_prev = t > 0 ? steps[ti - 1].h : h0;
    const MatrixXd dh = e[ti] + dh_future;
    const MatrixXd dn = dh.cwiseProduct((1.0 - s.z.array()).matrix());
    const MatrixXd dz = dh.cwiseProduct(h_prev - s.n);
    const MatrixXd dan = dn.cwiseProduct(dtanh(s.n));
    const MatrixXd dar = dan.cwiseProduct(s.gh_n).cwiseProduct(dsigmoid(s.r));
    const MatrixXd daz = dz.cwiseProduct(dsigmoid(s.z));
    MatrixXd dgx(dh.rows(), 3 * H), dgh(dh.rows(), 3 * H);
    dgx << dar, daz, dan;
    dgh << dar, daz, dan.cwiseProduct(s.r);
    g.dW_ih += xs[ti].transpose() * dgx;
    g.db_ih += dgx.colwise().sum();
    g.dW_hh += h_prev.transpose() * dgh;
    g.db_hh += dgh.colwise().sum();
    dh_future = dh.cwiseProduct(s.z) + dgh * w.W_hh.transpose();
    g.dh[ti] = dh;
  }
  g.dh0 = dh_future;
  return g;
}

}  // namespace bptt
