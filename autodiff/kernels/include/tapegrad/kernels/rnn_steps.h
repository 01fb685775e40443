// The tanh RNN's step loops, shared by rnn_sequence (inputs xp) and rnn_sequence_gather (inputs
// picked from a table by id): both ops have inputs {input, h0, w}, output h [T*B x H] and aux
// {dA chunk, carry}, and differ only in how the input is read and where its gradient goes.
#pragma once

#include <tapegrad/kernels/chunks.h>
#include <tapegrad/kernels/step_weight.h>
#include <tapegrad/op.h>

namespace tapegrad::kernels {

// Forward: y holds the input projections xp_t; each step adds h_{t-1} W and applies tanh.
template <class S>
void rnn_forward_steps(OpCtx<S>& c) {
  const Matrix<S>& x0 = c.x(1);
  Matrix<S>& y = c.y();
  const Index nb = x0.rows();
  const Index n_steps = y.rows() / nb;
  const StepWeight<S> step_w(c.x(2), false, nb);
  const auto prev = [&y](Index first, Index count) { return y.middleRows(first, count); };
  for (Index t = 0; t < n_steps; ++t) {
    auto yt = y.middleRows(t * nb, nb);
    previous_state_product(step_w, yt, x0, prev, t, nb, Accumulate);
    yt.array() = yt.array().tanh();
  }
}

// Backward: dA_t = (g_t + carry) (1 - h_t^2), carry = dA_t W^T. Each finished chunk of dA rows
// goes to input_grad(first_row, rows) (if input 0 needs a gradient) and to dW in one GEMM, on the
// other thread when overlapped (Note [Overlapped chunk gradients]: the scratch then holds two
// chunks of half the size, used in turn).
template <class S, class InputGrad>
void rnn_backward_steps(OpCtx<S>& c, InputGrad input_grad) {
  const Matrix<S>& x0 = c.x(1);
  const Matrix<S>& y = c.y();
  const Matrix<S>& gy = c.gy();
  Matrix<S>& da = c.aux(0);
  Matrix<S>& carry = c.aux(1);
  const BackwardSetup<S> setup(x0, c.x(2), y.rows(), da.rows() / x0.rows());
  const Index nb = setup.nb;
  const bool want_h0 = c.needs_grad(1);
  carry.setZero();
  walk_back_in_chunks(
      setup.plan, setup.n_steps,
      [&](Index t, Index t0) {
        auto dat = setup.chunk_rows(da, t0, t - t0 + 1).bottomRows(nb);
        dat.array() =
            (gy.middleRows(t * nb, nb).array() + carry.array()) * (S(1) - y.middleRows(t * nb, nb).array().square());
        if (t > 0 || want_h0) setup.step_wt.product(carry, dat, Assign);
      },
      // A complete chunk's dA rows feed the input gradient and dW in one go.
      [&](Index t0, Index n) {
        const auto da_chunk = setup.chunk_rows(da, t0, n);
        if (c.needs_grad(0)) input_grad(t0 * nb, da_chunk);
        const auto prev = [&y](Index first, Index count) { return y.middleRows(first, count); };
        if (c.needs_grad(2)) add_weight_grad(c.gx(2), x0, prev, da_chunk, t0, n, nb);
      });
  if (want_h0) c.gx(1) += carry;
}

}  // namespace tapegrad::kernels
