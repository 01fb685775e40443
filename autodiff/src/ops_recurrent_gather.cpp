// The fused recurrences on token inputs: the input projection of step t, batch row r is the row
// ids[t*B + r] of a table ([K x G], e.g. E W_ih + b), read by id inside the op. No [T*B x G]
// projected input exists beside what the op keeps, and in backward each finished chunk of dA
// scatter-adds into the table's gradient instead of filling a dxp.
//   rnn_sequence_gather  : rnn_sequence's step loops (kernels/rnn_steps.h), output h.
//   lstm_sequence_gather : h and c as two outputs, so a head reads h without a slice; in a
//       release sweep dA_t overwrites gates_t. With a head on h, the saved activations are what
//       BPTT strictly needs (docs/memory.md).
//   gru_sequence_gather  : gru_sequence's step loops (kernels/gru_steps.h); its input gradient is
//       added row by row inside the step loop, so it scatter-adds there.
#include <tapegrad/kernels/gru_steps.h>
#include <tapegrad/kernels/lstm_steps.h>
#include <tapegrad/kernels/rnn_steps.h>
#include <tapegrad/op.h>
#include <tapegrad/ops.h>

#include "instantiate.h"
#include "row_lookup.h"

namespace tapegrad {
namespace {

// Checks h0 [B x H], the table [K x gates*H] and the ids (T*B of them, each in [0, K)).
template <class S>
void check_gather_inputs(const char* op, const Var<S>& table, std::span<const std::int32_t> ids, const Var<S>& h0,
                         Index gates) {
  TAPEGRAD_CHECK(h0.rows() >= 1 && h0.cols() >= 1, ShapeError,
                 "{}: h0 is {}; it must be [B x H] with at least one row (the batch) and one column", op, h0.shape());
  const Index b = h0.rows();
  TAPEGRAD_CHECK(table.cols() == gates * h0.cols() && table.rows() >= 1, ShapeError,
                 "{}: table is {} but h0 is {}; table must be [K x {}] (one row of input projections per token)", op,
                 table.shape(), h0.shape(), gates * h0.cols());
  const auto n_ids = static_cast<Index>(ids.size());
  TAPEGRAD_CHECK(n_ids >= b && n_ids % b == 0, ShapeError,
                 "{}: {} ids but h0 is {}; the ids must be T * B, a positive multiple of the batch B = {} (time-major)",
                 op, n_ids, h0.shape(), b);
  detail::check_row_ids(op, "ids", ids, table);
}

using detail::gather_rows_into;
using detail::scatter_add_rows;

}  // namespace

template <class S>
Var<S> rnn_sequence_gather(const Var<S>& table, std::span<const std::int32_t> ids, const Var<S>& h0, const Var<S>& w) {
  check_gather_inputs("rnn_sequence_gather", table, ids, h0, 1);
  const Index b = h0.rows();
  const Index h = h0.cols();
  TAPEGRAD_CHECK(w.rows() == h && w.cols() == h, ShapeError,
                 "rnn_sequence_gather: w is {} but h0 is {}; w must be [{} x {}]", w.shape(), h0.shape(), h, h);
  const auto n_ids = static_cast<Index>(ids.size());
  const Index chunk = kernels::chunk_steps(n_ids / b, b);
  // aux(0): dA for one chunk of steps; aux(1): the carry dL/dh_{t-1} from later steps.
  return apply<S>(
      {"rnn_sequence_gather", {n_ids, h}, {Shape{chunk * b, h}, Shape{b, h}}, ids}, {table, h0, w},
      [](OpCtx<S>& c) {
        gather_rows_into(c.y(), c.x(0), c.ints());
        kernels::rnn_forward_steps(c);
      },
      [](OpCtx<S>& c) {
        kernels::rnn_backward_steps(
            c, [&c](Index first_row, const auto& da_rows) { scatter_add_rows(c.gx(0), c.ints(), first_row, da_rows); });
      });
}

template <class S>
LstmStates<S> lstm_sequence_gather(const Var<S>& table, std::span<const std::int32_t> ids, const Var<S>& h0,
                                   const Var<S>& c0, const Var<S>& w_hh) {
  constexpr const char* kOp = "lstm_sequence_gather";
  check_gather_inputs(kOp, table, ids, h0, 4);
  const Index b = h0.rows();
  const Index h = h0.cols();
  TAPEGRAD_CHECK(c0.shape() == h0.shape(), ShapeError, "{}: c0 is {} but h0 is {}; they must match", kOp, c0.shape(),
                 h0.shape());
  TAPEGRAD_CHECK(w_hh.rows() == h && w_hh.cols() == 4 * h, ShapeError,
                 "{}: w_hh is {} but h0 is {}; w_hh must be [{} x {}] (H x 4H)", kOp, w_hh.shape(), h0.shape(), h,
                 4 * h);
  const auto n_ids = static_cast<Index>(ids.size());
  // aux(0): the gates i, f, g, o of every step; aux(1): the dA scratch, sized by backward;
  // aux(2): the carries [dL/dh_{t-1} | dL/dc_{t-1}]. Outputs: h [T*B x H] (main), c [T*B x H].
  const std::vector<Var<S>> out = apply_outputs<S>(
      {kOp, {n_ids, h}, {Shape{n_ids, 4 * h}, Shape{0, 0}, Shape{b, 2 * h}}, ids, {Shape{n_ids, h}}},
      {table, h0, c0, w_hh},
      [](OpCtx<S>& c) {
        gather_rows_into(c.aux(0), c.x(0), c.ints());
        kernels::lstm_forward_steps(c, kernels::LstmLayout<S>{&c.y(), 0, &c.y(1), 0});
      },
      [](OpCtx<S>& c) {
        const kernels::LstmLayout<S> io{&c.y(), 0, &c.y(1), 0, &c.gy(), 0, c.gy_or_null(1), 0};
        // A release sweep never reads the gates again: dA may overwrite them.
        kernels::lstm_backward_steps(c, io, c.releasing(), [&c](Index first_row, const auto& da_rows) {
          scatter_add_rows(c.gx(0), c.ints(), first_row, da_rows);
        });
      });
  return {out[0], out[1]};
}

template <class S>
Var<S> gru_sequence_gather(const Var<S>& table, std::span<const std::int32_t> ids, const Var<S>& h0, const Var<S>& w_hh,
                           const Var<S>& b_hh) {
  constexpr const char* kOp = "gru_sequence_gather";
  check_gather_inputs(kOp, table, ids, h0, 3);
  const Index b = h0.rows();
  const Index h = h0.cols();
  TAPEGRAD_CHECK(w_hh.rows() == h && w_hh.cols() == 3 * h, ShapeError,
                 "{}: w_hh is {} but h0 is {}; w_hh must be [{} x {}] (H x 3H)", kOp, w_hh.shape(), h0.shape(), h,
                 3 * h);
  TAPEGRAD_CHECK(b_hh.rows() == 1 && b_hh.cols() == 3 * h, ShapeError,
                 "{}: b_hh is {} but h0 is {}; b_hh must be a row [1 x {}]", kOp, b_hh.shape(), h0.shape(), 3 * h);
  const auto n_ids = static_cast<Index>(ids.size());
  const Index chunk = kernels::chunk_steps(n_ids / b, b);
  // aux(0): r, z, n and gh_n of every step [T*B x 4H]; aux(1): dgh for one chunk of steps;
  // aux(2): the carry dL/dh_{t-1} from later steps.
  return apply<S>(
      {kOp, {n_ids, h}, {Shape{n_ids, 4 * h}, Shape{chunk * b, 3 * h}, Shape{b, h}}, ids}, {table, h0, w_hh, b_hh},
      [](OpCtx<S>& c) {
        const Matrix<S>& tab = c.x(0);
        const std::span<const std::int32_t> row_ids = c.ints();
        kernels::gru_forward_steps(
            c, [&tab, row_ids](Index row) { return tab.row(row_ids[static_cast<std::size_t>(row)]).data(); });
      },
      [](OpCtx<S>& c) {
        const std::span<const std::int32_t> row_ids = c.ints();
        kernels::gru_backward_steps(c, [&c, row_ids](Index row, const S* d) {
          Matrix<S>& g = c.gx(0);
          kernels::RowArray<S>(g.row(row_ids[static_cast<std::size_t>(row)]).data(), g.cols()) +=
              kernels::ConstRowArray<S>(d, g.cols());
        });
      });
}

TAPEGRAD_INSTANTIATE_OPS(TAPEGRAD_RECURRENT_GATHER_OPS)

}  // namespace tapegrad
