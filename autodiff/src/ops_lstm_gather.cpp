// lstm_sequence_gather: a fused LSTM whose input projections are rows of a table picked by token
// ids, with the hidden and cell sequences as two outputs. Nothing of size T*B x 4H exists but
// the gates the backward needs: no gathered input, no input projection, and in backward no
// dxp (each finished chunk of dA scatter-adds into the table's gradient). With a head that
// reads h directly, the saved activations are what BPTT strictly needs (docs/memory.md).
#include <tapegrad/op.h>
#include <tapegrad/ops.h>
#include <tapegrad/threads.h>

#include "instantiate.h"
#include "recurrent_kernels.h"

namespace tapegrad {

template <class S>
LstmStates<S> lstm_sequence_gather(const Var<S>& table, std::span<const std::int32_t> ids, const Var<S>& h0,
                                   const Var<S>& c0, const Var<S>& w_hh) {
  constexpr const char* kOp = "lstm_sequence_gather";
  TAPEGRAD_CHECK(h0.rows() >= 1 && h0.cols() >= 1, ShapeError,
                 "{}: h0 is {}; it must be [B x H] with at least one row (the batch) and one column", kOp, h0.shape());
  const Index b = h0.rows();
  const Index h = h0.cols();
  TAPEGRAD_CHECK(c0.shape() == h0.shape(), ShapeError, "{}: c0 is {} but h0 is {}; they must match", kOp, c0.shape(),
                 h0.shape());
  TAPEGRAD_CHECK(w_hh.rows() == h && w_hh.cols() == 4 * h, ShapeError,
                 "{}: w_hh is {} but h0 is {}; w_hh must be [{} x {}] (H x 4H)", kOp, w_hh.shape(), h0.shape(), h,
                 4 * h);
  TAPEGRAD_CHECK(table.cols() == 4 * h && table.rows() >= 1, ShapeError,
                 "{}: table is {} but h0 is {}; table must be [K x {}] (one row of input projections per token)", kOp,
                 table.shape(), h0.shape(), 4 * h);
  const auto n_ids = static_cast<Index>(ids.size());
  TAPEGRAD_CHECK(n_ids >= b && n_ids % b == 0, ShapeError,
                 "{}: {} ids but h0 is {}; the ids must be T * B, a positive multiple of the batch B = {} (time-major)",
                 kOp, n_ids, h0.shape(), b);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    TAPEGRAD_CHECK(ids[i] >= 0 && ids[i] < table.rows(), ValueError,
                   "{}: ids[{}] = {} is out of range for a table {} of {} rows", kOp, i, ids[i], table.shape(),
                   table.rows());
  }
  // aux(0): the gates i, f, g, o of every step; aux(1): the dA scratch, sized by backward;
  // aux(2): the carries [dL/dh_{t-1} | dL/dc_{t-1}]. Outputs: h [T*B x H] (main), c [T*B x H].
  const std::vector<Var<S>> out = apply_outputs<S>(
      {kOp, {n_ids, h}, {Shape{n_ids, 4 * h}, Shape{0, 0}, Shape{b, 2 * h}}, ids, {Shape{n_ids, h}}},
      {table, h0, c0, w_hh},
      [](OpCtx<S>& c) {
        const Matrix<S>& tab = c.x(0);
        const Matrix<S>& x0 = c.x(1);
        const Matrix<S>& cell0 = c.x(2);
        const Matrix<S>& w = c.x(3);
        Matrix<S>& hs = c.y();
        Matrix<S>& cs = c.y(1);
        Matrix<S>& gates = c.aux(0);
        const auto idx = c.ints();
        const Index nb = x0.rows();
        const Index nh = x0.cols();
        const Index n_steps = hs.rows() / nb;
        for (std::size_t i = 0; i < idx.size(); ++i) gates.row(static_cast<Index>(i)) = tab.row(idx[i]);
        for (Index t = 0; t < n_steps; ++t) {
          auto at = gates.middleRows(t * nb, nb);
          add_product(at, t == 0 ? x0 : hs.middleRows((t - 1) * nb, nb), w);
          for (Index r = 0; r < nb; ++r) {
            const S* cp = t == 0 ? cell0.row(r).data() : cs.row((t - 1) * nb + r).data();
            detail::lstm_row_forward(at.row(r).data(), cp, hs.row(t * nb + r).data(), cs.row(t * nb + r).data(), nh);
          }
        }
      },
      [](OpCtx<S>& c) {
        const Matrix<S>& x0 = c.x(1);
        const Matrix<S>& cell0 = c.x(2);
        const Matrix<S>& w = c.x(3);
        const Matrix<S>& hs = c.y();
        const Matrix<S>& cs = c.y(1);
        const Matrix<S>& gh = c.gy();
        const Matrix<S>* gc = c.gy_or_null(1);
        Matrix<S>& gates = c.aux(0);
        Matrix<S>& scratch = c.aux(1);
        Matrix<S>& carry = c.aux(2);
        const auto idx = c.ints();
        const Index nb = x0.rows();
        const Index nh = x0.cols();
        const Index n_steps = hs.rows() / nb;
        const Index per_chunk = detail::chunk_steps(n_steps, nb);
        // A release sweep never reads the gates again, so dA_t overwrites gates_t (through a
        // one-step scratch) and no [chunk x 4H] dA buffer is needed; otherwise dA goes to a chunk.
        const bool in_place = c.tape().sweep_options().release;
        const Index scratch_rows = in_place ? nb : per_chunk * nb;
        if (scratch.rows() != scratch_rows || scratch.cols() != 4 * nh) scratch.resize(scratch_rows, 4 * nh);
        const bool want_h0 = c.needs_grad(1);
        carry.setZero();
        for (Index t = n_steps; t-- > 0;) {
          const Index t0 = t / per_chunk * per_chunk;     // first step of t's chunk
          const Index at = in_place ? 0 : (t - t0) * nb;  // step t's first row in the scratch
          for (Index r = 0; r < nb; ++r) {
            const Index row = t * nb + r;
            const S* cp = t == 0 ? cell0.row(r).data() : cs.row(row - nb).data();
            S* k = carry.row(r).data();
            detail::lstm_row_backward(gates.row(row).data(), cs.row(row).data(), cp, gh.row(row).data(),
                                      gc == nullptr ? nullptr : gc->row(row).data(), k, k + nh,
                                      scratch.row(at + r).data(), nh);
          }
          if (in_place) gates.middleRows(t * nb, nb) = scratch;
          const auto dat = in_place ? gates.middleRows(t * nb, nb) : scratch.middleRows(at, nb);
          if (t > 0 || want_h0) assign_product(carry.leftCols(nh), dat, w.transpose());
          if (t != t0) continue;
          // The chunk [t0, t1) is complete: its dA rows scatter into the table and feed dW_hh.
          const Index n = std::min(t0 + per_chunk, n_steps) - t0;
          const auto da_chunk = in_place ? gates.middleRows(t0 * nb, n * nb) : scratch.topRows(n * nb);
          if (c.needs_grad(0)) {
            Matrix<S>& gt = c.gx(0);
            for (Index i = 0; i < n * nb; ++i) gt.row(idx[static_cast<std::size_t>(t0 * nb + i)]) += da_chunk.row(i);
          }
          const auto prev = [&hs](Index first, Index count) { return hs.middleRows(first, count); };
          if (c.needs_grad(3)) detail::add_weight_grad(c.gx(3), x0, prev, da_chunk, t0, n, nb);
        }
        if (want_h0) c.gx(1) += carry.leftCols(nh);
        if (c.needs_grad(2)) c.gx(2) += carry.rightCols(nh);
      });
  return {out[0], out[1]};
}

#define TAPEGRAD_INSTANTIATE_LSTM_GATHER(S)                                                                \
  template LstmStates<S> lstm_sequence_gather(const Var<S>&, std::span<const std::int32_t>, const Var<S>&, \
                                              const Var<S>&, const Var<S>&);
TAPEGRAD_FOR_EACH_SCALAR(TAPEGRAD_INSTANTIATE_LSTM_GATHER)

}  // namespace tapegrad
