// Running a cell over a whole sequence at once. The inputs of all T steps are stacked
// time-major in one matrix, x_all [T*B x in] (rows t*B .. t*B+B-1 are step t).
//
//   auto r = lstm.forward_sequence(x_all, s0);   // r.outputs [T*B x H], r.final_state {h_T, c_T}
//
// A cell whose step is split into project_input and recur (cell.h; the built-in cells are)
// makes the input projection of every step ONE op (a single large GEMM forward and backward);
// the built-in cells then record the recurrence as one fused op (rnn_sequence for tanh,
// lstm_sequence, gru_sequence in ops.h) with a hand-written backward.
//
// forward_tokens(embedding, ids, s0) of every cell (and Stacked of them) is an embedding
// followed by the cell, from token ids: the same values and gradients as
// forward_sequence(gather_rows(embedding, ids), s0). For a split cell the embedding is folded
// into the input projection: project_input makes the table [K x G] and the recurrence reads its
// rows by id (a fused *_sequence_gather op, or gather_rows and op by op). Cheaper whenever the
// vocabulary K is below T*B. embedding [K x in] (e.g. an Embedding's table leaf); ids: T*B ids
// in [0, K), time-major. The op-by-op
// recurrence (SequenceOptions{.fused = false}) records exactly the ops step() does, one
// time_step(t) scope per step, so diagnostics and hooks see every step; both paths give the
// same values and gradients (tests/nn/test_sequence.cpp).
#pragma once

#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include <tapegrad/nn/state.h>
#include <tapegrad/ops.h>

namespace tapegrad::nn {

/// How forward_sequence records the recurrence.
struct SequenceOptions {
  /// Use the fused whole-sequence op where one exists (RnnCell with Activation::Tanh, LstmCell,
  /// GruCell);
  /// otherwise, or when false, the op-by-op recurrence after the batched input projection.
  bool fused = true;
  /// Time tag of the first step in the op-by-op recurrence (step k is tagged first_step + k).
  int first_step = 0;
};

/// What forward_sequence returns.
template <class S>
struct SequenceResult {
  Var<S> outputs;        ///< [T*B x H], time-major: row block t is the output (h) after step t.
  State<S> final_state;  ///< The state after the last step (h_T, and c_T for an LSTM).
};

namespace detail {
/// The op-by-op recurrence: step t reads row block t of xs (recorded inside
/// time_step(first_step + t)); outputs are the h of every step, stacked time-major.
template <class S, class Step>
SequenceResult<S> unrolled_sequence(const Var<S>& xs, const State<S>& s0, Index steps, int first_step, Step step) {
  Tape<S>& tape = xs.tape();
  const Index batch = s0.tensors[0].rows();
  std::vector<Var<S>> hs;
  hs.reserve(static_cast<std::size_t>(steps));
  State<S> s = s0;
  for (Index t = 0; t < steps; ++t) {
    auto scope = tape.time_step(first_step + static_cast<int>(t));
    s = step(steps == 1 ? xs : slice_rows(xs, t * batch, batch), s);
    hs.push_back(s.h());
  }
  Var<S> outputs = steps == 1 ? hs[0] : concat_rows<S>(std::span<const Var<S>>(hs));
  return {std::move(outputs), std::move(s)};
}
}  // namespace detail

}  // namespace tapegrad::nn
