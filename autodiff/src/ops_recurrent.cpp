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

#include <tapegrad/kernels/gru_steps.h>
#include <tapegrad/kernels/lstm_steps.h>
#include <tapegrad/kernels/rnn_steps.h>
#include <tapegrad/op.h>
#include <tapegrad/ops.h>

#include "instantiate.h"

namespace tapegrad {
namespace {

using kernels::chunk_steps;
using kernels::ConstRowArray;
using kernels::RowArray;

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
// dxp_t = dA_t, dW = sum_t h_{t-1}^T dA_t, dh0 = dA_0 W^T. The step loops are in kernels/rnn_steps.h.
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
        kernels::rnn_forward_steps(c);
      },
      [](OpCtx<S>& c) {
        kernels::rnn_backward_steps(c, [&c](Index first_row, const auto& da_rows) {
          c.gx(0).middleRows(first_row, da_rows.rows()) += da_rows;
        });
      });
}

// a = xp_t + h_{t-1} W_hh; i, f, o = sigmoid, g = tanh; c_t = f c_{t-1} + i g; h_t = o tanh(c_t).
// The step loops and the per-row math of both directions are in kernels/lstm_steps.h;
// carry_h = dA_t W_hh^T, carry_c = dc f.
template <class S>
LstmStates<S> lstm_sequence(const Var<S>& xp, const Var<S>& h0, const Var<S>& c0, const Var<S>& w_hh) {
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
  // aux(2): the carries [dL/dh_{t-1} | dL/dc_{t-1}] from later steps. Outputs: h (main), c.
  const std::vector<Var<S>> out = apply_outputs<S>(
      {"lstm_sequence",
       {steps * b, h},
       {xp.shape(), Shape{chunk * b, 4 * h}, Shape{b, 2 * h}},
       {},
       {Shape{steps * b, h}}},
      {xp, h0, c0, w_hh},
      [](OpCtx<S>& c) {
        c.aux(0) = c.x(0);
        kernels::lstm_forward_steps(c, kernels::LstmLayout<S>{&c.y(), 0, &c.y(1), 0});
      },
      [](OpCtx<S>& c) {
        const kernels::LstmLayout<S> io{&c.y(), 0, &c.y(1), 0, &c.gy(), 0, c.gy_or_null(1), 0};
        kernels::lstm_backward_steps(c, io, false, [&c](Index first_row, const auto& da_rows) {
          c.gx(0).middleRows(first_row, da_rows.rows()) += da_rows;
        });
      });
  return {out[0], out[1]};
}

// PyTorch's GRU: the equations and the step loops are in kernels/gru_steps.h.
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
        kernels::gru_forward_steps(c, [&xs](Index row) { return xs.row(row).data(); });
      },
      [](OpCtx<S>& c) {
        kernels::gru_backward_steps(c, [&c](Index row, const S* d) {
          RowArray<S>(c.gx(0).row(row).data(), c.gx(0).cols()) += ConstRowArray<S>(d, c.gx(0).cols());
        });
      });
}

TAPEGRAD_INSTANTIATE_OPS(TAPEGRAD_RECURRENT_OPS)

}  // namespace tapegrad
