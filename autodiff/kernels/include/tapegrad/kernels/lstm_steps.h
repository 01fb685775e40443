// The LSTM's step loops, shared by lstm_sequence (input xp, output [h | c] per row) and
// lstm_sequence_gather (input read from a table by id, outputs h and c). Both ops have inputs
// {input, h0, c0, w_hh} and aux {gates, dA scratch, carries}; they differ in where h_t, c_t and
// their gradients live (LstmLayout), how the gates are seeded and where the input gradient goes.
#pragma once

#include <tapegrad/kernels/chunks.h>
#include <tapegrad/kernels/step_weight.h>
#include <tapegrad/kernels/write.h>
#include <tapegrad/op.h>

namespace tapegrad::kernels {

// LSTM forward for one batch row. a: the pre-activations [i f g o] (4H), turned into the gates
// in place (i, f, o = sigmoid, g = tanh); c_t = f c_{t-1} + i g and h_t = o tanh(c_t).
template <class S>
void lstm_row_forward(S* a, const S* c_prev, S* h, S* c, Index nh) {
  RowArray<S> io(a, 2 * nh);  // i and f are adjacent
  RowArray<S> i(a, nh), f(a + nh, nh), g(a + 2 * nh, nh), o(a + 3 * nh, nh);
  RowArray<S> hn(h, nh), cn(c, nh);
  io = io.logistic();
  g = g.tanh();
  o = o.logistic();
  cn = f * ConstRowArray<S>(c_prev, nh) + i * g;
  hn = o * cn.tanh();
}

// LSTM backward for one batch row. With dh = gh + carry_h and dc = gc + carry_c + dh o (1 - tanh^2 c_t):
// dA_i = dc g i(1-i), dA_f = dc c_{t-1} f(1-f), dA_g = dc i (1-g^2), dA_o = dh tanh(c_t) o(1-o),
// written to d (4H); the carry to step t-1 leaves dc f in carry_c (the caller adds dA W^T to
// carry_h). gates: i, f, g, o of step t; gc may be null (no gradient reached c_t from outside).
template <class S>
void lstm_row_backward(const S* gates, const S* c_t, const S* c_prev, const S* gh, const S* gc, S* carry_h, S* carry_c,
                       S* d, Index nh) {
  const ConstRowArray<S> i(gates, nh), f(gates + nh, nh), g(gates + 2 * nh, nh), o(gates + 3 * nh, nh);
  const ConstRowArray<S> ct(c_t, nh), cp(c_prev, nh);
  RowArray<S> dh(carry_h, nh), dc(carry_c, nh);
  RowArray<S> di(d, nh), df(d + nh, nh), dg(d + 2 * nh, nh), dout(d + 3 * nh, nh);
  dout = ct.tanh();  // tanh(c_t), parked in dA_o's row until dA_o is computed
  dh += ConstRowArray<S>(gh, nh);
  if (gc != nullptr) {
    dc += ConstRowArray<S>(gc, nh) + dh * o * (S(1) - dout.square());
  } else {
    dc += dh * o * (S(1) - dout.square());
  }
  dout = dh * dout * o * (S(1) - o);
  di = dc * g * i * (S(1) - i);
  df = dc * cp * f * (S(1) - f);
  dg = dc * i * (S(1) - g.square());
  dc *= f;  // the carry to c_{t-1}
}

// Where an LSTM op keeps h_t and c_t of a time-major row (value columns [h_col, h_col + H) of h,
// [c_col, c_col + H) of c), and in backward their incoming gradients (gc null: nothing reached c).
template <class S>
struct LstmLayout {
  Matrix<S>* h;
  Index h_col;
  Matrix<S>* c;
  Index c_col;
  const Matrix<S>* gh = nullptr;
  Index gh_col = 0;
  const Matrix<S>* gc = nullptr;
  Index gc_col = 0;
};

// Forward: aux(0) holds the input projections xp_t; each step adds h_{t-1} W_hh, turns the rows
// into gates and writes h_t and c_t.
template <class S>
void lstm_forward_steps(OpCtx<S>& c, const LstmLayout<S>& io) {
  const Matrix<S>& x0 = c.x(1);
  const Matrix<S>& cell0 = c.x(2);
  const Matrix<S>& w = c.x(3);
  Matrix<S>& gates = c.aux(0);
  Matrix<S>& hm = *io.h;
  Matrix<S>& cm = *io.c;
  const Index nb = x0.rows();
  const Index nh = x0.cols();
  const Index n_steps = gates.rows() / nb;
  const StepWeight<S> step_w(w, false, nb);
  const auto prev = [&hm, &io, nh](Index first, Index count) { return hm.block(first, io.h_col, count, nh); };
  for (Index t = 0; t < n_steps; ++t) {
    auto at = gates.middleRows(t * nb, nb);
    previous_state_product(step_w, at, x0, prev, t, nb, Accumulate);
    for (Index r = 0; r < nb; ++r) {
      const Index row = t * nb + r;
      const S* cp = t == 0 ? cell0.row(r).data() : cm.row(row - nb).data() + io.c_col;
      lstm_row_forward(at.row(r).data(), cp, hm.row(row).data() + io.h_col, cm.row(row).data() + io.c_col, nh);
    }
  }
}

// Backward: lstm_row_backward per row into dA, carry_h = dA_t W_hh^T. Each finished chunk of dA
// rows goes to input_grad(first_row, rows) (if input 0 needs a gradient) and to dW_hh in one
// GEMM. in_place (only in a release sweep, when nothing reads the gates again): dA_t overwrites
// gates_t through a one-step scratch; otherwise dA goes to a chunk scratch.
template <class S, class InputGrad>
void lstm_backward_steps(OpCtx<S>& c, const LstmLayout<S>& io, bool in_place, InputGrad input_grad) {
  const Matrix<S>& x0 = c.x(1);
  const Matrix<S>& cell0 = c.x(2);
  const Matrix<S>& w = c.x(3);
  Matrix<S>& gates = c.aux(0);
  Matrix<S>& scratch = c.aux(1);
  Matrix<S>& carry = c.aux(2);
  const Matrix<S>& hm = *io.h;
  const Matrix<S>& cm = *io.c;
  const Index full_chunk = chunk_steps(gates.rows() / x0.rows(), x0.rows());
  const BackwardSetup<S> setup(x0, w, gates.rows(), full_chunk);
  const Index nb = setup.nb;
  const Index nh = setup.nh;
  const bool want_h0 = c.needs_grad(1);
  const Index scratch_rows = in_place ? nb : full_chunk * nb;
  if (scratch.rows() != scratch_rows || scratch.cols() != 4 * nh) scratch.resize(scratch_rows, 4 * nh);
  // The dA rows of the chunk starting at step t0: in the gates when in place, else in the scratch.
  const auto chunk_rows = [&gates, &scratch, &setup, in_place, nb](Index t0, Index n) {
    return in_place ? gates.middleRows(t0 * nb, n * nb) : scratch.middleRows(setup.plan.first_row(t0, nb), n * nb);
  };
  carry.setZero();
  walk_back_in_chunks(
      setup.plan, setup.n_steps,
      [&](Index t, Index t0) {
        // Step t's dA rows in the scratch (one step, copied over gates_t, when in place).
        auto dat = scratch.middleRows(in_place ? 0 : setup.plan.first_row(t0, nb) + (t - t0) * nb, nb);
        for (Index r = 0; r < nb; ++r) {
          const Index row = t * nb + r;
          const S* cp = t == 0 ? cell0.row(r).data() : cm.row(row - nb).data() + io.c_col;
          const S* gc = io.gc == nullptr ? nullptr : io.gc->row(row).data() + io.gc_col;
          S* k = carry.row(r).data();
          lstm_row_backward(gates.row(row).data(), cm.row(row).data() + io.c_col, cp,
                            io.gh->row(row).data() + io.gh_col, gc, k, k + nh, dat.row(r).data(), nh);
        }
        if (in_place) gates.middleRows(t * nb, nb) = dat;
        if (t > 0 || want_h0) setup.step_wt.product(carry.leftCols(nh), dat, Assign);
      },
      // A complete chunk's dA rows feed the input gradient and dW_hh in one go.
      [&](Index t0, Index n) {
        const auto da_chunk = chunk_rows(t0, n);
        if (c.needs_grad(0)) input_grad(t0 * nb, da_chunk);
        const auto prev = [&hm, &io, nh](Index first, Index count) { return hm.block(first, io.h_col, count, nh); };
        if (c.needs_grad(3)) add_weight_grad(c.gx(3), x0, prev, da_chunk, t0, n, nb);
      });
  if (want_h0) c.gx(1) += carry.leftCols(nh);
  if (c.needs_grad(2)) c.gx(2) += carry.rightCols(nh);
}

}  // namespace tapegrad::kernels
