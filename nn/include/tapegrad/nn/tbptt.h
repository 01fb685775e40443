// Truncated backpropagation through time (Williams & Peng 1990), one generic driver for
// every recurrent cell. The driver never sees a cell: a StepFn records one step on the tape
// and returns the next State (a flat list of tensors: h, or h and c, ...) and that step's
// loss. The driver decides when to sweep backward, when to call the update (clip +
// optimizer), and where the carried state is detached. See docs/truncation.md.
//
//   Full            one forward over all steps, one backward at the end, one update.
//   Chunked k       forward k steps, backward, update, detach every state tensor, clear the
//                   tape, go on (k1 = k2 = k).
//   Overlapping     every k1 steps, the losses of the last k1 steps are back-propagated
//     k1 < k2       through the last k2 steps. The last k2 steps are re-recorded from the
//                   detached state saved k2 steps back, so every step on the tape uses the
//                   parameters in force now (a kept tape would hold stale parameter copies
//                   after an update, see Tape::leaf): the sweep is the exact gradient of the
//                   window's losses at the current parameters with the window's first state
//                   held fixed. Every window starts k2 - k1 steps before its first loss (a
//                   short last window too). So the StepFn is called again for steps it has
//                   already run: k2 - k1 re-runs per update (TbpttReport::step_calls counts
//                   every call). Anything random in a step must be a function of t to see
//                   the same draw each time: nn::dropout keys its masks by the tape's time step,
//                   which the driver sets to t (dropout.h).
//   PerOutputWindow each loss L_t reaches steps t, t-1, ..., t-tau only (window.h); one
//     tau           update after the sequence.
//
// Every mode reports each step's loss once (TbpttReport::losses) and, with
// TbpttConfig::start_state_grad, the gradient w.r.t. the initial state and, per update, w.r.t.
// the window's detached start state.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <tapegrad/nn/state.h>
#include <tapegrad/tape.h>

namespace tapegrad::nn {

/// Which truncation the driver runs.
enum class TbpttMode { Full, Chunked, Overlapping, PerOutputWindow };

/// "full", "chunked", "overlapping" or "per_output_window".
const char* mode_name(TbpttMode mode);

/// How run_tbptt truncates. Build it with the factories; validate() says what is wrong.
struct TbpttConfig {
  TbpttMode mode = TbpttMode::Full;
  int k1 = 0;    ///< Steps between updates (Chunked, Overlapping).
  int k2 = 0;    ///< Steps a sweep reaches back (Overlapping; equals k1 for Chunked).
  int tau = -1;  ///< Extra steps each loss reaches back (PerOutputWindow).
  /// Also compute dL/d(start state): the window's start state enters as a variable instead of a
  /// constant (one more product per window backward), read into UpdateInfo::start_state_grad
  /// and summed into TbpttReport::initial_state_grad.
  bool start_state_grad = false;

  /// Untruncated BPTT: one backward over the whole sequence.
  static TbpttConfig full() { return {TbpttMode::Full, 0, 0, -1, false}; }
  /// k1 = k2 = k: disjoint chunks of k steps.
  static TbpttConfig chunked(int k) { return {TbpttMode::Chunked, k, k, -1, false}; }
  /// Every k1 steps, the last k1 losses back through the last k2 steps (k2 >= k1).
  static TbpttConfig overlapping(int k1, int k2) { return {TbpttMode::Overlapping, k1, k2, -1, false}; }
  /// Each loss L_t back through steps t..t-tau.
  static TbpttConfig per_output_window(int tau) { return {TbpttMode::PerOutputWindow, 0, 0, tau, false}; }

  /// Throws ValueError naming the field and its value: Chunked needs k1 >= 1 and k2 == k1
  /// (or 0, read as k1); Overlapping needs k1 >= 1 and k2 >= k1; PerOutputWindow needs tau >= 0.
  void validate() const;
  /// E.g. "full BPTT", "chunked TBPTT k1=k2=20", "overlapping TBPTT k1=5 k2=20",
  /// "per-output-window TBPTT tau=10".
  [[nodiscard]] std::string describe() const;
};

/// What a StepFn returns: the state after the step and the step's loss ([1 x 1], or an empty
/// `Var<S>{}` when the step has no output, e.g. all but the last step of the adding problem).
template <class S>
struct StepResult {
  State<S> next;
  Var<S> loss;
};

/// Records step t on the tape from state s (the driver has opened tape.time_step(t)).
/// Parameters must enter through tape.leaf(p) at every call (the driver clears the tape).
/// Overlapping mode calls it again for steps it already ran (see the note at the top).
template <class S>
using StepFn = std::function<StepResult<S>(Tape<S>&, int t, const State<S>&)>;

/// What the update callback is told; Parameter::grad holds this update's gradient.
struct UpdateInfo {
  int index = 0;         ///< 0 for the first update.
  int first_loss = 0;    ///< First step whose loss is in this gradient.
  int end_step = 0;      ///< One past the last step whose loss is in this gradient.
  int window_begin = 0;  ///< First step the sweeps reach (the detached state enters here).
  int sweeps = 0;        ///< Backward sweeps behind this gradient.
  double loss = 0.0;     ///< Summed loss of steps [first_loss, end_step).
  /// With TbpttConfig::start_state_grad: d(this update's losses)/d(the state entering at
  /// window_begin), one matrix per state tensor (in double; float gradients convert exactly).
  /// Empty otherwise.
  std::vector<Matrix<double>> start_state_grad;
};

/// Clips and applies the gradient (and zeroes it, if the optimizer expects that). Called
/// after every backward that had at least one loss; a window without any loss runs no
/// sweep and no update.
using UpdateFn = std::function<void(const UpdateInfo&)>;

/// One step's loss.
struct StepLoss {
  int step = 0;
  double loss = 0.0;
};

/// What run_tbptt did.
template <class S>
struct TbpttReport {
  TbpttConfig config;
  int num_steps = 0;
  int step_calls = 0;       ///< StepFn calls: num_steps plus overlapping mode's re-runs.
  int sweeps = 0;           ///< Backward sweeps run.
  int updates = 0;          ///< UpdateFn calls.
  double total_loss = 0.0;  ///< Sum of every step's loss, each step counted once.
  /// Every step that returned a loss, once, in step order: the value in the update that took it
  /// (a re-run of the step in a later window is not counted again).
  std::vector<StepLoss> losses;
  std::vector<Matrix<S>> final_state;  ///< The carried state after the last step.
  /// With TbpttConfig::start_state_grad: the gradient w.r.t. initial_state of every loss the
  /// sweeps back-propagated into it, summed over sweeps, one matrix per state tensor. For
  /// full() (or per_output_window(T - 1)) that is the exact dL_total/dh0; truncated modes reach
  /// h0 only from the windows that start at step 0. Empty otherwise.
  std::vector<Matrix<S>> initial_state_grad;

  /// E.g. "chunked TBPTT k1=k2=20: 100 steps, 5 sweeps, 5 updates, loss 12.5".
  [[nodiscard]] std::string describe() const;
};

/// Runs num_steps steps of a recurrence from initial_state with the truncation in config.
///
/// The driver owns the tape: it clears it at every window (Vars from earlier windows become
/// invalid) and leaves the last window recorded (for Full mode, the whole sequence, which
/// diagnostics can then read). Every tensor of the carried state is detached at a window
/// boundary. Throws ValueError for an invalid config, num_steps < 1 or an empty step
/// function; ShapeError if a step returns a state whose tensor count or shapes differ from
/// initial_state, or a loss that is not [1 x 1].
template <class S>
TbpttReport<S> run_tbptt(Tape<S>& tape, int num_steps, const std::vector<Matrix<S>>& initial_state,
                         const StepFn<S>& step, const UpdateFn& update, const TbpttConfig& config);

}  // namespace tapegrad::nn
