// Fused recurrences (tanh RNN, LSTM, GRU): a whole recurrent layer over T steps as one tape entry with a hand-written
// backward. Sequences are stacked time-major: row block t (rows t*B .. t*B+B-1) of xp and of the
// output is step t, so each step's block is contiguous in the row-major storage.
//
// Forward, per step: one GEMM h_{t-1} W into the pre-activations (seeded with xp_t), then one
// pass of gate math per batch row. Backward: a reverse loop that turns dL/dh_t, dL/dc_t into the
// pre-activation gradients dA_t (stored for a chunk of steps in an aux scratch) and carries
// dA_t W^T and the cell gradient to step t-1; each finished chunk then adds into dxp with one
// block add and into dW with one GEMM over all its steps (H_prev^T dA), not one per step.
// Nothing is allocated inside the step loops: everything lives in the output and aux slots.
#include <algorithm>

#include <tapegrad/op.h>
#include <tapegrad/ops.h>
#include <tapegrad/threads.h>

#include "instantiate.h"
#include "lstm_kernels.h"
#include "recurrent_kernels.h"
#include "rnn_kernels.h"

namespace tapegrad {
namespace {

using detail::add_weight_grad;
using detail::chunk_steps;
using detail::ConstRowArray;
using detail::RowArray;

// Checks the state h0 [B x H] and the stacked projections xp [T*B x gates*H]; returns T.
template <class S>
Index check_sequence(const char* op, const Var<S>& xp, const Var<S>& h0, Index gates) {
  TAPEGRAD_CHECK(h0.rows() >= 1 && h0.cols() >= 1, ShapeError,
                 "{}: h0 is {}; it must be [B x H] with at least one row (the batch) and one column", op, h0.shape());
  const Index b = h0.rows();
  const Index h = h0.cols();
  TAPEGRAD_CHECK(xp.cols() == gates * h, ShapeError, "{}: xp is {} but h0 is {}; xp must have {} columns ({} x H)", op,
                 xp.shape(), h0.shape(), gates * h, gates);
  TAPEGRAD_CHECK(xp.rows() >= b && xp.rows() % b == 0, ShapeError,
                 "{}: xp is {} but h0 is {}; xp.rows must be T * B, a positive multiple of the batch B = {} "
                 "(steps stacked time-major)",
                 op, xp.shape(), h0.shape(), b);
  return xp.rows() / b;
}

}  // namespace

// h_t = tanh(xp_t + h_{t-1} W).  dA_t = (g_t + dA_{t+1} W^T) * (1 - h_t^2);
// dxp_t = dA_t, dW = sum_t h_{t-1}^T dA_t, dh0 = dA_0 W^T. The step loops are in rnn_kernels.h.
template <class S>
Var<S> rnn_sequence(const Var<S>& xp, const Var<S>& h0, const Var<S>& w) {
  const Index steps = check_sequence("rnn_sequence", xp, h0, 1);
  const Index b = h0.rows();
  const Index h = h0.cols();
  TAPEGRAD_CHECK(w.rows() == h && w.cols() == h, ShapeError, "rnn_sequence: w is {} but h0 is {}; w must be [{} x {}]",
                 w.shape(), h0.shape(), h, h);
  const Index chunk = chunk_steps(steps, b);
  // aux(0): dA for one chunk of steps; aux(1): the carry dL/dh_{t-1} from later steps.
  return apply<S>(
      {"rnn_sequence", xp.shape(), {Shape{chunk * b, h}, Shape{b, h}}}, {xp, h0, w},
      [](OpCtx<S>& c) {
        c.y() = c.x(0);
        detail::rnn_forward_steps(c);
      },
      [](OpCtx<S>& c) {
        detail::rnn_backward_steps(c, [&c](Index first_row, const auto& da_rows) {
          c.gx(0).middleRows(first_row, da_rows.rows()) += da_rows;
        });
      });
}

// a = xp_t + h_{t-1} W_hh; i, f, o = sigmoid, g = tanh; c_t = f c_{t-1} + i g; h_t = o tanh(c_t).
// The step loops are in lstm_kernels.h, the per-row math of both directions in recurrent_kernels.h;
// carry_h = dA_t W_hh^T, carry_c = dc f.
template <class S>
Var<S> lstm_sequence(const Var<S>& xp, const Var<S>& h0, const Var<S>& c0, const Var<S>& w_hh) {
  const Index steps = check_sequence("lstm_sequence", xp, h0, 4);
  const Index b = h0.rows();
  const Index h = h0.cols();
  TAPEGRAD_CHECK(c0.shape() == h0.shape(), ShapeError, "lstm_sequence: c0 is {} but h0 is {}; they must match",
                 c0.shape(), h0.shape());
  TAPEGRAD_CHECK(w_hh.rows() == h && w_hh.cols() == 4 * h, ShapeError,
                 "lstm_sequence: w_hh is {} but h0 is {}; w_hh must be [{} x {}] (H x 4H)", w_hh.shape(), h0.shape(), h,
                 4 * h);
  const Index chunk = chunk_steps(steps, b);
  // aux(0): post-activation gates i, f, g, o of every step; aux(1): dA for one chunk of steps;
  // aux(2): the carries [dL/dh_{t-1} | dL/dc_{t-1}] from later steps.
  return apply<S>(
      {"lstm_sequence", {steps * b, 2 * h}, {xp.shape(), Shape{chunk * b, 4 * h}, Shape{b, 2 * h}}}, {xp, h0, c0, w_hh},
      [](OpCtx<S>& c) {
        c.aux(0) = c.x(0);
        detail::lstm_forward_steps(c, detail::LstmLayout<S>{&c.y(), 0, &c.y(), c.x(1).cols()});
      },
      [](OpCtx<S>& c) {
        const Index nh = c.x(1).cols();
        const detail::LstmLayout<S> io{&c.y(), 0, &c.y(), nh, &c.gy(), 0, &c.gy(), nh};
        detail::lstm_backward_steps(c, io, false, [&c](Index first_row, const auto& da_rows) {
          c.gx(0).middleRows(first_row, da_rows.rows()) += da_rows;
        });
      });
}

// PyTorch's GRU. gh = h_{t-1} W_hh + b_hh; r, z = sigmoid(xp + gh) on [0,2H); n = tanh(xp_n + r gh_n);
// h_t = (1 - z) n + z h_{t-1}. With dh = g_t + carry:
// dA_n = dh (1-z) (1-n^2), dA_z = dh (h_{t-1} - n) z(1-z), dA_r = dA_n gh_n r(1-r);
// dxp_t = [dA_r, dA_z, dA_n], dgh_t = [dA_r, dA_z, dA_n r]; carry = dh z + dgh_t W_hh^T;
// dW_hh = sum_t h_{t-1}^T dgh_t, db_hh = column sums of dgh over all steps.
template <class S>
Var<S> gru_sequence(const Var<S>& xp, const Var<S>& h0, const Var<S>& w_hh, const Var<S>& b_hh) {
  const Index steps = check_sequence("gru_sequence", xp, h0, 3);
  const Index b = h0.rows();
  const Index h = h0.cols();
  TAPEGRAD_CHECK(w_hh.rows() == h && w_hh.cols() == 3 * h, ShapeError,
                 "gru_sequence: w_hh is {} but h0 is {}; w_hh must be [{} x {}] (H x 3H)", w_hh.shape(), h0.shape(), h,
                 3 * h);
  TAPEGRAD_CHECK(b_hh.rows() == 1 && b_hh.cols() == 3 * h, ShapeError,
                 "gru_sequence: b_hh is {} but h0 is {}; b_hh must be a row [1 x {}]", b_hh.shape(), h0.shape(), 3 * h);
  const Index chunk = chunk_steps(steps, b);
  // aux(0): r, z, n and gh_n of every step [T*B x 4H]; aux(1): dgh for one chunk of steps;
  // aux(2): the carry dL/dh_{t-1} from later steps.
  return apply<S>(
      {"gru_sequence", {steps * b, h}, {Shape{steps * b, 4 * h}, Shape{chunk * b, 3 * h}, Shape{b, h}}},
      {xp, h0, w_hh, b_hh},
      [](OpCtx<S>& c) {
        const Matrix<S>& xs = c.x(0);
        const Matrix<S>& x0 = c.x(1);
        const Matrix<S>& w = c.x(2);
        const S* bias = c.x(3).data();
        Matrix<S>& y = c.y();
        Matrix<S>& saved = c.aux(0);
        const Index nb = x0.rows();
        const Index nh = x0.cols();
        const Index n_steps = y.rows() / nb;
        const detail::StepWeight<S> step_w(w, false, nb);
        for (Index t = 0; t < n_steps; ++t) {
          auto gh = saved.block(t * nb, 0, nb, 3 * nh);  // h_{t-1} W_hh, before the bias
          if (t == 0) {
            step_w.assign(gh, x0);
          } else {
            step_w.assign(gh, y.middleRows((t - 1) * nb, nb));
          }
          for (Index r = 0; r < nb; ++r) {
            S* a = saved.row(t * nb + r).data();
            const S* xr = xs.row(t * nb + r).data();
            const S* hp = t == 0 ? x0.row(r).data() : y.row((t - 1) * nb + r).data();
            RowArray<S> rz(a, 2 * nh), rg(a, nh), z(a + nh, nh), n(a + 2 * nh, nh), ghn(a + 3 * nh, nh);
            ghn = n + ConstRowArray<S>(bias + 2 * nh, nh);
            rz = (rz + ConstRowArray<S>(xr, 2 * nh) + ConstRowArray<S>(bias, 2 * nh)).logistic();
            n = (ConstRowArray<S>(xr + 2 * nh, nh) + rg * ghn).tanh();
            RowArray<S>(y.row(t * nb + r).data(), nh) = (S(1) - z) * n + z * ConstRowArray<S>(hp, nh);
          }
        }
      },
      [](OpCtx<S>& c) {
        const Matrix<S>& x0 = c.x(1);
        const Matrix<S>& w = c.x(2);
        const Matrix<S>& y = c.y();
        const Matrix<S>& gy = c.gy();
        const Matrix<S>& saved = c.aux(0);
        Matrix<S>& dgh = c.aux(1);
        Matrix<S>& carry = c.aux(2);
        const Index nb = x0.rows();
        const Index nh = x0.cols();
        const Index n_steps = y.rows() / nb;
        const bool want_h0 = c.needs_grad(1);
        Matrix<S>* gxp = c.needs_grad(0) ? &c.gx(0) : nullptr;
        const detail::StepWeight<S> step_wt(w, true, nb);
        const detail::ChunkPlan plan =
            detail::plan_chunks(dgh.rows() / nb, n_steps, step_wt.one_thread(), detail::product_work(nb, nh, 3 * nh));
        // The dgh rows of the chunk starting at step t0.
        const auto chunk_rows = [&dgh, &plan, nb](Index t0, Index n) {
          return dgh.middleRows(plan.first_row(t0, nb), n * nb);
        };
        carry.setZero();
        detail::walk_back_in_chunks(
            plan, n_steps,
            [&](Index t, Index t0) {
              auto dgt = chunk_rows(t0, t - t0 + 1).bottomRows(nb);
              for (Index r = 0; r < nb; ++r) {
                const S* a = saved.row(t * nb + r).data();
                const ConstRowArray<S> rg(a, nh), z(a + nh, nh), n(a + 2 * nh, nh), ghn(a + 3 * nh, nh);
                const ConstRowArray<S> hp(t == 0 ? x0.row(r).data() : y.row((t - 1) * nb + r).data(), nh);
                RowArray<S> dh(carry.row(r).data(), nh);
                S* d = dgt.row(r).data();
                RowArray<S> drz(d, 2 * nh), dr(d, nh), dz(d + nh, nh), dn(d + 2 * nh, nh);
                dh += ConstRowArray<S>(gy.row(t * nb + r).data(), nh);
                dn = dh * (S(1) - z) * (S(1) - n.square());
                dz = dh * (hp - n) * z * (S(1) - z);
                dr = dn * ghn * rg * (S(1) - rg);
                if (gxp != nullptr) {
                  S* gx = gxp->row(t * nb + r).data();
                  RowArray<S>(gx, 2 * nh) += drz;
                  RowArray<S>(gx + 2 * nh, nh) += dn;
                }
                dn *= rg;     // dgh_n: gh_n enters through r * gh_n
                dh = dh * z;  // the direct path to h_{t-1}; the GEMM part is added below
              }
              if (t > 0 || want_h0) step_wt.add(carry, dgt);
            },
            // A complete chunk's dgh rows feed dW_hh and db_hh in one go.
            [&](Index t0, Index n) {
              const auto dg_chunk = chunk_rows(t0, n);
              const auto prev = [&y](Index first, Index count) { return y.middleRows(first, count); };
              if (c.needs_grad(2)) add_weight_grad(c.gx(2), x0, prev, dg_chunk, t0, n, nb);
              if (c.needs_grad(3)) c.gx(3) += dg_chunk.colwise().sum();
            });
        if (want_h0) c.gx(1) += carry;
      });
}

#define TAPEGRAD_INSTANTIATE_RECURRENT(S)                                                    \
  template Var<S> rnn_sequence(const Var<S>&, const Var<S>&, const Var<S>&);                 \
  template Var<S> lstm_sequence(const Var<S>&, const Var<S>&, const Var<S>&, const Var<S>&); \
  template Var<S> gru_sequence(const Var<S>&, const Var<S>&, const Var<S>&, const Var<S>&);
TAPEGRAD_FOR_EACH_SCALAR(TAPEGRAD_INSTANTIATE_RECURRENT)

}  // namespace tapegrad
