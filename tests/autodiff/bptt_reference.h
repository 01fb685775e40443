// An independent, hand-derived BPTT for the vanilla RNN, in plain Eigen double, written from
// the equations (the delta recursion of the classic tutorial), with no tapegrad code in it:
//
//   h_{-1} = h0,  z_t = x_t U + h_{t-1} W + b,  h_t = tanh(z_t),
//   o_t = h_t V + c,  p_t = softmax(o_t) (row-wise),  L = sum_t sum_rows -log p_t[row, target].
//
// Rows are batch entries (x_t is B x in, h_t is B x H); b and c are rows broadcast over the batch.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <vector>

namespace tapegrad::reference {

/// The RNN's weights and initial state (h0 is B x H).
struct RnnParams {
  Eigen::MatrixXd U;   ///< in x H
  Eigen::MatrixXd W;   ///< H x H
  Eigen::MatrixXd V;   ///< H x K
  Eigen::MatrixXd b;   ///< 1 x H
  Eigen::MatrixXd c;   ///< 1 x K
  Eigen::MatrixXd h0;  ///< B x H
};

/// dL/d(every parameter) and the loss.
struct RnnGrads {
  Eigen::MatrixXd dU, dW, dV, db, dc, dh0;
  double loss = 0.0;
};

/// BPTT for the sequence xs[t] (B x in) with class targets[t] (B entries in [0, K)).
/// tau < 0: full BPTT (one backward recursion carrying dL/dh_t from the future).
/// tau >= 0: per-output truncation exactly as numpy `bptt(x, y)` with `bptt_truncate = tau`:
/// the loss of output t reaches the steps t, t-1, ..., max(0, t - tau) and nothing older
/// (h0 only when t - tau <= 0).
RnnGrads rnn_bptt(const RnnParams& p, const std::vector<Eigen::MatrixXd>& xs,
                  const std::vector<std::vector<std::int32_t>>& targets, int tau = -1);

}  // namespace tapegrad::reference
