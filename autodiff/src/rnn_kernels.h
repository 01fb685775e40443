// The tanh RNN's step loops, shared by rnn_sequence (inputs xp) and rnn_sequence_gather (inputs
// picked from a table by id): both ops have inputs {input, h0, w}, output h [T*B x H] and aux
// {dA chunk, carry}, and differ only in how the input is read and where its gradient goes.
#pragma once

#include <algorithm>

#include <tapegrad/op.h>
#include <tapegrad/threads.h>

#include "recurrent_kernels.h"

namespace tapegrad::detail {

// Forward: y holds the input projections xp_t; each step adds h_{t-1} W and applies tanh.
template <class S>
void rnn_forward_steps(OpCtx<S>& c) {
  const Matrix<S>& x0 = c.x(1);
  const Matrix<S>& wt = c.x(2);
  Matrix<S>& y = c.y();
  const Index nb = x0.rows();
  const Index n_steps = y.rows() / nb;
  for (Index t = 0; t < n_steps; ++t) {
    auto yt = y.middleRows(t * nb, nb);
    if (t == 0) {
      add_product(yt, x0, wt);
    } else {
      add_product(yt, y.middleRows((t - 1) * nb, nb), wt);
    }
    yt.array() = yt.array().tanh();
  }
}

// Backward: dA_t = (g_t + carry) (1 - h_t^2), carry = dA_t W^T. Each finished chunk of dA rows
// goes to input_grad(first_row, rows) (if input 0 needs a gradient) and to dW in one GEMM.
template <class S, class InputGrad>
void rnn_backward_steps(OpCtx<S>& c, InputGrad input_grad) {
  const Matrix<S>& x0 = c.x(1);
  const Matrix<S>& wt = c.x(2);
  const Matrix<S>& y = c.y();
  const Matrix<S>& gy = c.gy();
  Matrix<S>& da = c.aux(0);
  Matrix<S>& carry = c.aux(1);
  const Index nb = x0.rows();
  const Index n_steps = y.rows() / nb;
  const Index per_chunk = da.rows() / nb;
  const bool want_h0 = c.needs_grad(1);
  carry.setZero();
  for (Index t = n_steps; t-- > 0;) {
    const Index t0 = t / per_chunk * per_chunk;  // first step of t's chunk
    auto dat = da.middleRows((t - t0) * nb, nb);
    dat.array() =
        (gy.middleRows(t * nb, nb).array() + carry.array()) * (S(1) - y.middleRows(t * nb, nb).array().square());
    if (t > 0 || want_h0) assign_product(carry, dat, wt.transpose());
    if (t != t0) continue;
    // The chunk [t0, t1) is complete: its dA rows feed the input gradient and dW in one go.
    const Index n = std::min(t0 + per_chunk, n_steps) - t0;
    const auto da_chunk = da.topRows(n * nb);
    if (c.needs_grad(0)) input_grad(t0 * nb, da_chunk);
    const auto prev = [&y](Index first, Index count) { return y.middleRows(first, count); };
    if (c.needs_grad(2)) add_weight_grad(c.gx(2), x0, prev, da_chunk, t0, n, nb);
  }
  if (want_h0) c.gx(1) += carry;
}

}  // namespace tapegrad::detail
