// Running a cell over a whole sequence at once. The inputs of all T steps are stacked
// time-major in one matrix, x_all [T*B x in] (rows t*B .. t*B+B-1 are step t), so the input
// projection x_t W_ih + b of every step is ONE affine op, a single large GEMM forward and
// backward. Only the recurrence h_{t-1} W_hh is left per step, and for the tanh RNN and the
// LSTM a fused op (rnn_sequence, lstm_sequence in ops.h) records that too as one tape entry
// with a hand-written backward.
//
//   auto r = lstm.forward_sequence(x_all, s0);   // r.outputs [T*B x H], r.final_state {h_T, c_T}
//
// The op-by-op recurrence (SequenceOptions{.fused = false}) records exactly the ops step()
// does, one time_step(t) scope per step, so diagnostics and hooks see every step; both paths
// give the same values and gradients (tests/nn/test_sequence.cpp).
#pragma once

#include <cstddef>

#include <tapegrad/nn/state.h>
#include <tapegrad/ops.h>

namespace tapegrad::nn {

/// How forward_sequence records the recurrence.
struct SequenceOptions {
  /// Use the fused whole-sequence op where one exists (RnnCell with Activation::Tanh, LstmCell);
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

}  // namespace tapegrad::nn
