// The truncated-BPTT driver. Full, Chunked and Overlapping are one loop over windows
// [window_begin, end): Full is a single window, Chunked has window_begin = first_loss, and
// Overlapping re-records k2 - k1 steps before first_loss from a saved detached state.
#include <tapegrad/nn/tbptt.h>

#include <algorithm>
#include <utility>

#include <tapegrad/op.h>
#include <tapegrad/window.h>

namespace tapegrad::nn {

const char* mode_name(TbpttMode mode) {
  switch (mode) {
    case TbpttMode::Full:
      return "full";
    case TbpttMode::Chunked:
      return "chunked";
    case TbpttMode::Overlapping:
      return "overlapping";
    case TbpttMode::PerOutputWindow:
      return "per_output_window";
  }
  return "unknown";
}

void TbpttConfig::validate() const {
  switch (mode) {
    case TbpttMode::Full:
      return;
    case TbpttMode::Chunked:
      TAPEGRAD_CHECK(k1 >= 1, ValueError, "TbpttConfig: chunked mode needs k1 >= 1 (the chunk length), got k1 = {}",
                     k1);
      TAPEGRAD_CHECK(k2 == k1 || k2 == 0, ValueError,
                     "TbpttConfig: chunked mode needs k2 == k1 (got k1 = {}, k2 = {}); use overlapping(k1, k2) for "
                     "k2 > k1",
                     k1, k2);
      return;
    case TbpttMode::Overlapping:
      TAPEGRAD_CHECK(k1 >= 1, ValueError,
                     "TbpttConfig: overlapping mode needs k1 >= 1 (steps between updates), got k1 = {}", k1);
      TAPEGRAD_CHECK(k2 >= k1, ValueError,
                     "TbpttConfig: overlapping mode needs k2 >= k1 (a sweep covers at least the k1 new steps), got "
                     "k2 = {} with k1 = {}",
                     k2, k1);
      return;
    case TbpttMode::PerOutputWindow:
      TAPEGRAD_CHECK(tau >= 0, ValueError,
                     "TbpttConfig: per-output-window mode needs tau >= 0 (steps each loss reaches back), got tau = {}",
                     tau);
      return;
  }
  detail::raise<ValueError>("TbpttConfig: unknown mode {}", static_cast<int>(mode));
}

std::string TbpttConfig::describe() const {
  switch (mode) {
    case TbpttMode::Full:
      return "full BPTT";
    case TbpttMode::Chunked:
      return fmt::format("chunked TBPTT k1=k2={}", k1);
    case TbpttMode::Overlapping:
      return fmt::format("overlapping TBPTT k1={} k2={}", k1, k2);
    case TbpttMode::PerOutputWindow:
      return fmt::format("per-output-window TBPTT tau={}", tau);
  }
  return "unknown TBPTT mode";
}

template <class S>
std::string TbpttReport<S>::describe() const {
  return fmt::format("{}: {} steps, {} sweeps, {} updates, loss {:.6g}", config.describe(), num_steps, sweeps, updates,
                     total_loss);
}

namespace {

// Checks what a StepFn returned against the state it started from.
template <class S>
void check_step_result(const StepResult<S>& r, const std::vector<Shape>& shapes, int t) {
  TAPEGRAD_CHECK(r.next.size() == shapes.size(), ShapeError,
                 "run_tbptt: step {} returned a state of {} tensors, but the carried state has {}", t, r.next.size(),
                 shapes.size());
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    TAPEGRAD_CHECK(!r.next.tensors[i].empty(), TapeError, "run_tbptt: step {} returned an empty state tensor {}", t, i);
    TAPEGRAD_CHECK(r.next.tensors[i].shape() == shapes[i], ShapeError,
                   "run_tbptt: step {} returned state tensor {} of shape {}, but the carried one is {}", t, i,
                   r.next.tensors[i].shape(), shapes[i]);
  }
  if (!r.loss.empty()) {
    TAPEGRAD_CHECK(r.loss.shape() == (Shape{1, 1}), ShapeError,
                   "run_tbptt: step {} returned a loss of shape {}, not a scalar [1 x 1]", t, r.loss.shape());
  }
}

// The state entering a window: variables when their gradient is wanted, else constants.
template <class S>
State<S> start_state(Tape<S>& tape, const std::vector<Matrix<S>>& values, bool with_grad) {
  if (!with_grad) return constant_state(tape, values);
  State<S> out;
  for (const Matrix<S>& v : values) out.tensors.push_back(tape.variable(v));
  return out;
}

// d(last sweep)/d(start): added into sum (when given) and returned in double.
template <class S>
std::vector<Matrix<double>> read_start_grad(const State<S>& start, std::vector<Matrix<S>>* sum) {
  std::vector<Matrix<double>> out;
  for (std::size_t i = 0; i < start.size(); ++i) {
    const Matrix<S>& g = start.tensors[i].grad();
    if (sum != nullptr) (*sum)[i] += g;
    out.push_back(g.template cast<double>());
  }
  return out;
}

template <class S>
void record_loss(TbpttReport<S>& report, int t, const Var<S>& loss) {
  if (!loss.empty()) report.losses.push_back({t, static_cast<double>(loss.item())});
}

template <class S>
TbpttReport<S> run_per_output_window(Tape<S>& tape, int num_steps, const std::vector<Matrix<S>>& initial_state,
                                     const std::vector<Shape>& shapes, const StepFn<S>& step, const UpdateFn& update,
                                     TbpttReport<S> report) {
  tape.clear();
  const bool grads = report.config.start_state_grad;
  const State<S> start = start_state(tape, initial_state, grads);
  State<S> state = start;
  // Each sweep replaces the start's gradient: add it up before the next step records (the
  // sweep of step t - 1 has run by then) and after the last.
  bool swept = false;
  const auto collect = [&] {
    if (grads && swept) (void)read_start_grad(start, &report.initial_state_grad);
    swept = false;
  };
  const WindowReport w = backward_per_output_window(tape, num_steps, report.config.tau, [&](int t) -> Var<S> {
    collect();
    StepResult<S> r = step(tape, t, state);
    ++report.step_calls;
    check_step_result(r, shapes, t);
    record_loss(report, t, r.loss);
    state = std::move(r.next);
    swept = !r.loss.empty();
    return r.loss;
  });
  collect();
  report.sweeps = w.sweeps;
  report.total_loss = w.loss;
  if (w.sweeps > 0) {
    UpdateInfo info{.index = 0,
                    .first_loss = 0,
                    .end_step = num_steps,
                    .window_begin = 0,
                    .sweeps = w.sweeps,
                    .loss = w.loss,
                    .start_state_grad = {}};
    if (grads) {
      for (const Matrix<S>& g : report.initial_state_grad) info.start_state_grad.push_back(g.template cast<double>());
    }
    if (update) update(info);
    report.updates = 1;
  }
  report.final_state = values_of(state);
  return report;
}

}  // namespace

template <class S>
TbpttReport<S> run_tbptt(Tape<S>& tape, int num_steps, const std::vector<Matrix<S>>& initial_state,
                         const StepFn<S>& step, const UpdateFn& update, const TbpttConfig& config) {
  config.validate();
  TAPEGRAD_CHECK(num_steps >= 1, ValueError, "run_tbptt: num_steps is {}; a sequence needs at least one step",
                 num_steps);
  TAPEGRAD_CHECK(static_cast<bool>(step), ValueError, "run_tbptt: the step function is empty");
  TbpttReport<S> report;
  report.config = config;
  report.num_steps = num_steps;
  std::vector<Shape> shapes;
  for (const Matrix<S>& m : initial_state) shapes.push_back(shape_of(m));
  if (config.start_state_grad) {
    for (const Matrix<S>& m : initial_state) report.initial_state_grad.push_back(Matrix<S>::Zero(m.rows(), m.cols()));
  }
  if (config.mode == TbpttMode::PerOutputWindow) {
    return run_per_output_window(tape, num_steps, initial_state, shapes, step, update, std::move(report));
  }

  // k1: steps whose losses one update covers; k2: steps one sweep reaches.
  int k1 = num_steps;
  int k2 = num_steps;
  if (config.mode != TbpttMode::Full) {
    k1 = config.k1;
    k2 = std::max(config.k1, config.k2);
  }
  // (step s, the carried state values before step s), detached copies, sorted by s: the
  // starts of windows still to come.
  std::vector<std::pair<int, std::vector<Matrix<S>>>> saved{{0, initial_state}};
  std::vector<Var<S>> losses;

  for (int first_loss = 0; first_loss < num_steps;) {
    const int end = std::min(first_loss + k1, num_steps);
    // Every window reaches k2 - k1 steps behind its first loss (a short last window too).
    const int begin = std::max(0, first_loss - (k2 - k1));
    // The next window's first step (none after the last window).
    const int next_begin = end == num_steps ? num_steps + 1 : std::max(0, end - (k2 - k1));
    std::erase_if(saved, [&](const auto& e) { return e.first < begin; });
    TAPEGRAD_CHECK(!saved.empty() && saved.front().first == begin, TapeError,
                   "run_tbptt: internal error, no saved state for step {}", begin);

    tape.clear();
    // Every tensor detached: no gradient crosses into the last window.
    const State<S> start = start_state(tape, saved.front().second, config.start_state_grad);
    State<S> state = start;
    losses.clear();
    double window_loss = 0.0;
    for (int t = begin; t < end; ++t) {
      StepResult<S> r;
      {
        auto scope = tape.time_step(t);
        r = step(tape, t, state);
      }
      ++report.step_calls;
      check_step_result(r, shapes, t);
      state = std::move(r.next);
      if (t >= first_loss && !r.loss.empty()) {
        losses.push_back(r.loss);
        window_loss += static_cast<double>(r.loss.item());
        record_loss(report, t, r.loss);
      }
      // Keep the state before step t + 1 if a later window starts there. A re-recorded step
      // replaces the value computed under older parameters (see the note in tbptt.h).
      if (t + 1 >= next_begin) {
        auto it = std::find_if(saved.begin(), saved.end(), [&](const auto& e) { return e.first == t + 1; });
        if (it != saved.end()) {
          it->second = values_of(state);
        } else {
          saved.emplace_back(t + 1, values_of(state));
        }
      }
    }
    if (!losses.empty()) {
      tape.backward(add_n(std::span<const Var<S>>(losses)));  // one entry: one sweep per window
      ++report.sweeps;
      UpdateInfo info{.index = report.updates,
                      .first_loss = first_loss,
                      .end_step = end,
                      .window_begin = begin,
                      .sweeps = 1,
                      .loss = window_loss,
                      .start_state_grad = {}};
      if (config.start_state_grad) {
        info.start_state_grad = read_start_grad(start, begin == 0 ? &report.initial_state_grad : nullptr);
      }
      if (update) update(info);
      ++report.updates;
    }
    report.total_loss += window_loss;
    if (end == num_steps) report.final_state = values_of(state);
    first_loss = end;
  }
  return report;
}

#define TAPEGRAD_NN_INSTANTIATE_TBPTT(S)                                                                             \
  template struct TbpttReport<S>;                                                                                    \
  template TbpttReport<S> run_tbptt(Tape<S>&, int, const std::vector<Matrix<S>>&, const StepFn<S>&, const UpdateFn&, \
                                    const TbpttConfig&);
TAPEGRAD_NN_INSTANTIATE_TBPTT(float)
TAPEGRAD_NN_INSTANTIATE_TBPTT(double)

}  // namespace tapegrad::nn
