// Per-output truncated backpropagation through time, built only from tape marks.
//
// The classic numpy `bptt(x, y)` with `bptt_truncate = tau` sends the loss of output t back
// through steps t, t-1, ..., max(0, t - tau) only. On a tape that is one mark per step and one
// sweep per output: the sweep for L_t starts at the mark taken before step max(0, t - tau), so
// entries of earlier steps never run, while the parameters (leaves, invariant 6 of tape.h)
// still collect every sweep's contribution into Parameter::grad. The engine knows nothing
// about time; this file is the whole feature.
#pragma once

#include <algorithm>
#include <utility>
#include <vector>

#include <tapegrad/error.h>
#include <tapegrad/tape.h>

namespace tapegrad {

/// What backward_per_output_window did: the summed loss and the number of sweeps run.
struct WindowReport {
  double loss = 0.0;  ///< Sum of every L_t returned by the step function.
  int sweeps = 0;     ///< Number of backward sweeps (steps that returned a loss).
};

/// Records num_steps steps and back-propagates each output's loss through a window of at
/// most tau + 1 steps, exactly like the numpy `bptt(x, y)` with `bptt_truncate = tau`.
///
/// For t = 0 .. num_steps - 1: takes a mark m_t, opens `tape.time_step(t)`, calls `step(t)`
/// (which records step t and returns its loss L_t as a [1 x 1] Var, or an empty `Var<S>{}`
/// when step t has no loss), then immediately runs
/// `tape.backward(L_t, {.from = m_{max(0, t - tau)}})`. So L_t reaches the entries of steps
/// t, t-1, ..., t - tau and nothing older; a tau >= num_steps - 1 gives full BPTT (with the
/// same total gradient as one backward of sum_t L_t). Parameter::grad accumulates across the
/// sweeps (call zero_grad first if needed); Var::grad() afterwards holds the last sweep only.
/// The tape is not cleared. Throws ValueError if tau < 0 or num_steps < 0; ShapeError if a
/// loss is not [1 x 1]; TapeError if a loss is not a live node of this tape.
template <class S, class StepFn>
WindowReport backward_per_output_window(Tape<S>& tape, int num_steps, int tau, StepFn&& step) {
  TAPEGRAD_CHECK(tau >= 0, ValueError, "backward_per_output_window: tau (the truncation length) is {}; it must be >= 0",
                 tau);
  TAPEGRAD_CHECK(num_steps >= 0, ValueError, "backward_per_output_window: num_steps is {}; it must be >= 0", num_steps);
  std::vector<Mark> marks;  // marks[t] = tape position before step t
  marks.reserve(static_cast<std::size_t>(num_steps));
  WindowReport report;
  for (int t = 0; t < num_steps; ++t) {
    marks.push_back(tape.mark());
    Var<S> loss;
    {
      auto scope = tape.time_step(t);
      loss = step(t);
    }
    if (loss.empty()) continue;  // a step without an output
    report.loss += static_cast<double>(loss.item());
    BackwardOptions opts;
    opts.from = marks[static_cast<std::size_t>(std::max(0, t - tau))];
    tape.backward(loss, opts);
    ++report.sweeps;
  }
  return report;
}

}  // namespace tapegrad
