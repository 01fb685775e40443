// Hand-derived BPTT for L stacked vanilla tanh layers, in plain Eigen. Layer l reads the
// output of layer l - 1 at the same step (layer 0 reads x_t):
//
//   h^l_t = tanh(z^l_t),   z^l_t = h^{l-1}_t U_l + h^l_{t-1} W_l + b_l,   h^{-1}_t = x_t
//
// The error now flows along two axes. Going back in time (t -> t - 1) it crosses W_l; going
// down the stack (l -> l - 1) it crosses U_l. With e_t the read-out's error into the top layer:
//
//   dL/dh^l_t = [l = top] e_t  +  dL/dz^{l+1}_t U_{l+1}^T  +  dL/dz^l_{t+1} W_l^T
//                 (own output)      (from the layer above)     (from the future)
//   dL/dz^l_t = dL/dh^l_t .* (1 - (h^l_t)^2)
//
// so at each step (latest first) the layers are visited top-down.
#pragma once

#include <vector>

#include "common.h"
#include "hand_rnn.h"

namespace bptt {

struct StackedGrads {
  std::vector<RnnGrads> layers;  // per layer: dU, dW, db, dh0 and dh[t] = dL/dh^l_t
};

/// hs[l][t + 1] = h^l_t, hs[l][0] = layer l's initial state.
inline std::vector<std::vector<MatrixXd>> stacked_forward(const std::vector<RnnWeights>& w,
                                                          const std::vector<MatrixXd>& h0,
                                                          const std::vector<MatrixXd>& xs) {
  std::vector<std::vector<MatrixXd>> hs;
  const std::vector<MatrixXd>* input = &xs;
  std::vector<MatrixXd> below;
  for (std::size_t l = 0; l < w.size(); ++l) {
    hs.push_back(rnn_forward(w[l], h0[l], *input));
    below.assign(hs.back().begin() + 1, hs.back().end());  // this layer's outputs feed the next
    input = &below;
  }
  return hs;
}

inline StackedGrads stacked_backward(const std::vector<RnnWeights>& w, const std::vector<std::vector<MatrixXd>>& hs,
                                     const std::vector<MatrixXd>& xs, const std::vector<MatrixXd>& e) {
  const int T = static_cast<int>(xs.size());
  const int L = static_cast<int>(w.size());
  auto h = [&](int l, int t) -> const MatrixXd& {
    return l < 0 ? xs[static_cast<std::size_t>(t)] : hs[static_cast<std::size_t>(l)][static_cast<std::size_t>(t + 1)];
  };
  StackedGrads g;
  std::vector<MatrixXd> from_future;  // per layer: dL/dz^l_{t+1} W_l^T
  for (int l = 0; l < L; ++l) {
    const RnnWeights& wl = w[static_cast<std::size_t>(l)];
    RnnGrads gl;
    gl.dU = MatrixXd::Zero(wl.U.rows(), wl.U.cols());
    gl.dW = MatrixXd::Zero(wl.W.rows(), wl.W.cols());
    gl.db = MatrixXd::Zero(1, wl.b.cols());
    gl.dh.resize(static_cast<std::size_t>(T));
    g.layers.push_back(gl);
    from_future.push_back(MatrixXd::Zero(e[0].rows(), wl.W.rows()));
  }
  for (int t = T - 1; t >= 0; --t) {
    MatrixXd from_above = e[static_cast<std::size_t>(t)];  // the top layer's own output
    for (int l = L - 1; l >= 0; --l) {
      const auto li = static_cast<std::size_t>(l);
      RnnGrads& gl = g.layers[li];
      const MatrixXd dh = from_above + from_future[li];
      const MatrixXd dz = dh.cwiseProduct(dtanh(h(l, t)));
      gl.dU += h(l - 1, t).transpose() * dz;
      gl.dW += h(l, t - 1).transpose() * dz;
      gl.db += dz.colwise().sum();
      gl.dh[static_cast<std::size_t>(t)] = dh;
      from_future[li] = dz * w[li].W.transpose();
      from_above = dz * w[li].U.transpose();  // into layer l - 1 at the same step
    }
  }
  for (int l = 0; l < L; ++l) g.layers[static_cast<std::size_t>(l)].dh0 = from_future[static_cast<std::size_t>(l)];
  return g;
}

}  // namespace bptt
