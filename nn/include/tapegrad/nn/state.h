// The state a recurrence carries from step to step: one tensor for vanilla and GRU cells
// (h), two for an LSTM (h, c), and a stack of those for multi-layer models. Kept as a flat
// list so that generic code (truncated BPTT, detaching at chunk boundaries, checkpointing a
// carried state) treats every cell alike.
#pragma once

#include <vector>

#include <tapegrad/ops.h>
#include <tapegrad/tape.h>

namespace tapegrad::nn {

template <class S>
struct State {
  std::vector<Var<S>> tensors;  ///< h for RNN/GRU; h, c for LSTM; concatenated per layer for stacks.

  [[nodiscard]] const Var<S>& h() const { return tensors.at(0); }
  [[nodiscard]] const Var<S>& c() const { return tensors.at(1); }
  [[nodiscard]] std::size_t size() const { return tensors.size(); }
};

/// The state's values, to carry across a tape clear.
template <class S>
std::vector<Matrix<S>> values_of(const State<S>& s) {
  std::vector<Matrix<S>> out;
  out.reserve(s.tensors.size());
  for (const Var<S>& v : s.tensors) out.push_back(v.value());
  return out;
}

/// The same state with its history cut: gradients stop at these values.
template <class S>
State<S> detach(const State<S>& s) {
  State<S> out;
  out.tensors.reserve(s.tensors.size());
  for (const Var<S>& v : s.tensors) out.tensors.push_back(tapegrad::detach(v));
  return out;
}

/// Constants on `tape` holding the given values (a state carried in from a cleared tape).
template <class S>
State<S> constant_state(Tape<S>& tape, const std::vector<Matrix<S>>& values) {
  State<S> out;
  out.tensors.reserve(values.size());
  for (const Matrix<S>& v : values) out.tensors.push_back(tape.constant(v));
  return out;
}

}  // namespace tapegrad::nn
