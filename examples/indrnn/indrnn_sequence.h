// The IndRNN recurrence as ONE hand-written op (docs/extending.md), the way a user fuses a cell
// whose generic path is not fast enough: all T steps of h_t = relu(xp_t + u * h_{t-1}) in one
// forward loop and one backward loop, a single tape entry instead of T steps of ops.
//   xp [T*B x H]  the projected inputs x_t W + b of every step, time-major (row t*B + b)
//   u  [1 x H]    the recurrent weight of each unit
//   h0 [B x H]    the initial state
// Returns every hidden state, [T*B x H]. IndRnnCell (indrnn_cell.h) is the same model through
// the generic cell API; bench_train_step times the two side by side (`indrnn/<config>/fused`
// against `indrnn/<config>/cell`), and the test suite gradchecks this op.
#pragma once

#include <utility>

#include <tapegrad/tapegrad.h>

namespace example {

template <class S>
tapegrad::Var<S> indrnn_sequence(const tapegrad::Var<S>& xp, const tapegrad::Var<S>& u, const tapegrad::Var<S>& h0) {
  using tapegrad::Index;
  const Index B = h0.rows(), H = h0.cols();
  TAPEGRAD_CHECK(B > 0 && xp.cols() == H && xp.rows() % B == 0 && u.rows() == 1 && u.cols() == H, tapegrad::ShapeError,
                 "indrnn_sequence: xp {}, u {} and h0 {} must be [T*B x H], [1 x H], [B x H]", xp.shape(), u.shape(),
                 h0.shape());
  return tapegrad::apply<S>(
      {"indrnn_sequence", xp.shape()}, {xp, u, h0},
      [B](tapegrad::OpCtx<S>& c) {
        const Index T = c.x(0).rows() / B;
        for (Index t = 0; t < T; ++t) {
          const auto prev = t == 0 ? c.x(2).middleRows(0, B) : std::as_const(c.y()).middleRows((t - 1) * B, B);
          c.y().middleRows(t * B, B) =
              (c.x(0).middleRows(t * B, B).array() + prev.array().rowwise() * c.x(1).array().row(0)).cwiseMax(S(0));
        }
      },
      [B](tapegrad::OpCtx<S>& c) {
        const Index T = c.x(0).rows() / B;
        // carry = dL/dh_{t-1} through the recurrence, added to the step's own gradient gy_t.
        tapegrad::Matrix<S> carry = tapegrad::Matrix<S>::Zero(B, c.x(0).cols());
        tapegrad::Matrix<S> da(B, c.x(0).cols());  // dL/d(pre-activation) of step t
        for (Index t = T - 1; t >= 0; --t) {
          const auto prev = t == 0 ? c.x(2).middleRows(0, B) : std::as_const(c.y()).middleRows((t - 1) * B, B);
          da.array() = (c.gy().middleRows(t * B, B).array() + carry.array()) *
                       (c.y().middleRows(t * B, B).array() > S(0)).template cast<S>();
          if (c.needs_grad(0)) c.gx(0).middleRows(t * B, B) += da;
          if (c.needs_grad(1)) c.gx(1) += (da.array() * prev.array()).colwise().sum().matrix();
          carry.array() = da.array().rowwise() * c.x(1).array().row(0);
        }
        if (c.needs_grad(2)) c.gx(2) += carry;
      });
}

}  // namespace example
