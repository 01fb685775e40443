// Hand-derived BPTT for one LSTM layer, in plain Eigen, with the gate layout of
// nn/lstm_cell.h (columns i, f, g, o of one [B x 4H] pre-activation):
//
//   a_t = x_t W_ih + h_{t-1} W_hh + b
//   i = sigmoid(a_i)   f = sigmoid(a_f)   g = tanh(a_g)   o = sigmoid(a_o)
//   c_t = f .* c_{t-1} + i .* g           h_t = o .* tanh(c_t)
//
// Backward at step t, given dL/dh_t = e_t + (from step t+1) and the carried dL/dc from t+1:
//
//   dL/dc_t  = carried + dL/dh_t .* o .* (1 - tanh(c_t)^2)
//   do = dL/dh_t .* tanh(c_t)    di = dL/dc_t .* g    dg = dL/dc_t .* i    df = dL/dc_t .* c_{t-1}
//   da = [di .* i(1-i), df .* f(1-f), dg .* (1-g^2), do .* o(1-o)]
//   carried into t-1:  dL/dc_{t-1} += dL/dc_t .* f        dL/dh_{t-1} += da W_hh^T
//   dW_ih += x_t^T da,  dW_hh += h_{t-1}^T da,  db += colsum(da)
//
// The cell path c_{t-1} -> c_t is multiplied by f only: no weight matrix, no squashing
// derivative. With f near 1 the error crosses many steps unchanged (the constant error carousel).
#pragma once

#include <vector>

#include "common.h"

namespace bptt {

struct LstmWeights {
  MatrixXd W_ih, W_hh, b;  // in x 4H, H x 4H, 1 x 4H
};
struct LstmStep {  // what the forward keeps for the backward
  MatrixXd i, f, g, o, c, tanh_c, h;
};
struct LstmGrads {
  MatrixXd dW_ih, dW_hh, db, dh0, dc0;
  std::vector<MatrixXd> dh, dc;  // dL/dh_t and dL/dc_t (total, c_t's includes the path through h_t)
};

inline std::vector<LstmStep> lstm_forward(const LstmWeights& w, const MatrixXd& h0, const MatrixXd& c0,
                                          const std::vector<MatrixXd>& xs) {
  const Eigen::Index H = w.W_hh.rows();
  std::vector<LstmStep> steps;
  MatrixXd h = h0, c = c0;
  for (const MatrixXd& x : xs) {
    MatrixXd a = x * w.W_ih + h * w.W_hh;
    a.rowwise() += w.b.row(0);
    LstmStep s;
    s.i = sigmoid(a.middleCols(0, H));
    s.f = sigmoid(a.middleCols(H, H));
    s.g = a.middleCols(2 * H, H).array().tanh().matrix();
    s.o = sigmoid(a.middleCols(3 * H, H));
    s.c = s.f.cwiseProduct(c) + s.i.cwiseProduct(s.g);
    s.tanh_c = s.c.array().tanh().matrix();
    s.h = s.o.cwiseProduct(s.tanh_c);
    h = s.h;
    c = s.c;
    steps.push_back(s);
  }
  return steps;
}

inline LstmGrads lstm_backward(const LstmWeights& w, const std::vector<LstmStep>& steps, const MatrixXd& h0,
                               const MatrixXd& c0, const std::vector<MatrixXd>& xs, const std::vector<MatrixXd>& e) {
  const int T = static_cast<int>(xs.size());
  const Eigen::Index H = w.W_hh.rows();
  LstmGrads g;
  g.dW_ih = MatrixXd::Zero(w.W_ih.rows(), w.W_ih.cols());
  g.dW_hh = MatrixXd::Zero(w.W_hh.rows(), w.W_hh.cols());
  g.db = MatrixXd::Zero(1, w.b.cols());
  g.dh.resize(static_cast<std::size_t>(T));
  g.dc.resize(static_cast<std::size_t>(T));
  MatrixXd dh_future = MatrixXd::Zero(h0.rows(), H);  // da_{t+1} W_hh^T
  MatrixXd dc_future = MatrixXd::Zero(c0.rows(), H);  // dL/dc_{t+1} .* f_{t+1}
  for (int t = T - 1; t >= 0; --t) {
    const auto ti = static_cast<std::size_t>(t);
    const LstmStep& s = steps[ti];
    const MatrixXd& h_prev = t > 0 ? steps[ti - 1].h : h0;
    const MatrixXd& c_prev = t > 0 ? steps[ti - 1].c : c0;
    const MatrixXd dh = e[ti] + dh_future;
    const MatrixXd dc = dc_future + dh.cwiseProduct(s.o).cwiseProduct(dtanh(s.tanh_c));
    MatrixXd da(dh.rows(), 4 * H);
    da.middleCols(0, H) = dc.cwiseProduct(s.g).cwiseProduct(dsigmoid(s.i));
    da.middleCols(H, H) = dc.cwiseProduct(c_prev).cwiseProduct(dsigmoid(s.f));
    da.middleCols(2 * H, H) = dc.cwiseProduct(s.i).cwiseProduct(dtanh(s.g));
    da.middleCols(3 * H, H) = dh.cwiseProduct(s.tanh_c).cwiseProduct(dsigmoid(s.o));
    g.dW_ih += xs[ti].transpose() * da;
    g.dW_hh += h_prev.transpose() * da;
    g.db += da.colwise().sum();
    dh_future = da * w.W_hh.transpose();
    dc_future = dc.cwiseProduct(s.f);
    g.dh[ti] = dh;
    g.dc[ti] = dc;
  }
  g.dh0 = dh_future;
  g.dc0 = dc_future;
  return g;
}

}  // namespace bptt
