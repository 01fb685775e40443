// The GRU's step loops, shared by gru_sequence (input xp) and gru_sequence_gather (input rows
// picked from a table by id). Both ops have inputs {input, h0, w_hh, b_hh}, output h [T*B x H]
// and aux {r, z, n, gh_n of every step; dgh for one chunk; carry}; they differ only in where a
// row's input projection is read and where its gradient goes.
//
// PyTorch's GRU. gh = h_{t-1} W_hh + b_hh; r, z = sigmoid(xp + gh) on [0,2H); n = tanh(xp_n + r gh_n);
// h_t = (1 - z) n + z h_{t-1}. With dh = g_t + carry:
// dA_n = dh (1-z) (1-n^2), dA_z = dh (h_{t-1} - n) z(1-z), dA_r = dA_n gh_n r(1-r);
// dxp_t = [dA_r, dA_z, dA_n], dgh_t = [dA_r, dA_z, dA_n r]; carry = dh z + dgh_t W_hh^T;
// dW_hh = sum_t h_{t-1}^T dgh_t, db_hh = column sums of dgh over all steps.
#pragma once

#include <tapegrad/kernels/chunks.h>
#include <tapegrad/kernels/step_weight.h>
#include <tapegrad/kernels/write.h>
#include <tapegrad/op.h>

namespace tapegrad::kernels {

// Forward. input_row(row) points at the 3H input projections of time-major row `row`.
template <class S, class InputRow>
void gru_forward_steps(OpCtx<S>& c, InputRow input_row) {
  const Matrix<S>& x0 = c.x(1);
  const Matrix<S>& w = c.x(2);
  const S* bias = c.x(3).data();
  Matrix<S>& y = c.y();
  Matrix<S>& saved = c.aux(0);
  const Index nb = x0.rows();
  const Index nh = x0.cols();
  const Index n_steps = y.rows() / nb;
  const StepWeight<S> step_w(w, false, nb);
  const auto prev = [&y](Index first, Index count) { return y.middleRows(first, count); };
  for (Index t = 0; t < n_steps; ++t) {
    auto gh = saved.block(t * nb, 0, nb, 3 * nh);  // h_{t-1} W_hh, before the bias
    previous_state_product(step_w, gh, x0, prev, t, nb, Assign);
    for (Index r = 0; r < nb; ++r) {
      S* a = saved.row(t * nb + r).data();
      const S* xr = input_row(t * nb + r);
      const S* hp = t == 0 ? x0.row(r).data() : y.row((t - 1) * nb + r).data();
      RowArray<S> rz(a, 2 * nh), rg(a, nh), z(a + nh, nh), n(a + 2 * nh, nh), ghn(a + 3 * nh, nh);
      ghn = n + ConstRowArray<S>(bias + 2 * nh, nh);
      rz = (rz + ConstRowArray<S>(xr, 2 * nh) + ConstRowArray<S>(bias, 2 * nh)).logistic();
      n = (ConstRowArray<S>(xr + 2 * nh, nh) + rg * ghn).tanh();
      RowArray<S>(y.row(t * nb + r).data(), nh) = (S(1) - z) * n + z * ConstRowArray<S>(hp, nh);
    }
  }
}

// Backward. If input 0 needs a gradient, input_grad(row, d) adds the 3H values d = dxp of
// time-major row `row` where they belong; it runs on the calling thread, inside the step loop.
template <class S, class InputGrad>
void gru_backward_steps(OpCtx<S>& c, InputGrad input_grad) {
  const Matrix<S>& x0 = c.x(1);
  const Matrix<S>& w = c.x(2);
  const Matrix<S>& y = c.y();
  const Matrix<S>& gy = c.gy();
  const Matrix<S>& saved = c.aux(0);
  Matrix<S>& dgh = c.aux(1);
  Matrix<S>& carry = c.aux(2);
  const BackwardSetup<S> setup(x0, w, y.rows(), dgh.rows() / x0.rows());
  const Index nb = setup.nb;
  const Index nh = setup.nh;
  const bool want_h0 = c.needs_grad(1);
  const bool want_input = c.needs_grad(0);
  carry.setZero();
  walk_back_in_chunks(
      setup.plan, setup.n_steps,
      [&](Index t, Index t0) {
        auto dgt = setup.chunk_rows(dgh, t0, t - t0 + 1).bottomRows(nb);
        for (Index r = 0; r < nb; ++r) {
          const S* a = saved.row(t * nb + r).data();
          const ConstRowArray<S> rg(a, nh), z(a + nh, nh), n(a + 2 * nh, nh), ghn(a + 3 * nh, nh);
          const ConstRowArray<S> hp(t == 0 ? x0.row(r).data() : y.row((t - 1) * nb + r).data(), nh);
          RowArray<S> dh(carry.row(r).data(), nh);
          S* d = dgt.row(r).data();
          RowArray<S> dr(d, nh), dz(d + nh, nh), dn(d + 2 * nh, nh);
          dh += ConstRowArray<S>(gy.row(t * nb + r).data(), nh);
          dn = dh * (S(1) - z) * (S(1) - n.square());
          dz = dh * (hp - n) * z * (S(1) - z);
          dr = dn * ghn * rg * (S(1) - rg);
          if (want_input) input_grad(t * nb + r, static_cast<const S*>(d));
          dn *= rg;     // dgh_n: gh_n enters through r * gh_n
          dh = dh * z;  // the direct path to h_{t-1}; the GEMM part is added below
        }
        if (t > 0 || want_h0) setup.step_wt.product(carry, dgt, Accumulate);
      },
      // A complete chunk's dgh rows feed dW_hh and db_hh in one go.
      [&](Index t0, Index n) {
        const auto dg_chunk = setup.chunk_rows(dgh, t0, n);
        const auto prev = [&y](Index first, Index count) { return y.middleRows(first, count); };
        if (c.needs_grad(2)) add_weight_grad(c.gx(2), x0, prev, dg_chunk, t0, n, nb);
        if (c.needs_grad(3)) c.gx(3) += dg_chunk.colwise().sum();
      });
  if (want_h0) c.gx(1) += carry;
}

}  // namespace tapegrad::kernels
