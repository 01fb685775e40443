// Running a cell over a sequence. A "cell" here is anything with
//   State<S> step(const Var<S>& x, const State<S>& s);   Var<S> output(const State<S>& s);
// (RnnCell, LstmCell, GruCell, Stacked<...>, or a cell bound to explicit weights with
// with_weights). Every step is recorded inside tape.time_step(t), t the sequence position.
//
// Variable-length batches: row b of the batch is a sequence of lengths[b] real steps (1..T)
// followed by padding. At a padded step the new state is discarded row by row:
//   state_t = where(active_t, step(x_t, state_{t-1}), state_{t-1}),  active_t[b] = t < lengths[b]
// so a finished sequence's state stays at its value after its own last step, and nothing
// flows back through the padded inputs (their gradients are exactly zero). The same rule
// in the reverse direction keeps the initial state until a sequence's last real step.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <tapegrad/nn/state.h>
#include <tapegrad/ops.h>

namespace tapegrad::nn {

/// A cell together with explicit weights: step(x, s) runs cell.step(weights, x, s). Lets the
/// unroll helpers run a cell on weights that are not its own Parameters (e.g. gradcheck inputs).
template <class Cell>
class BoundCell {
 public:
  using Scalar = typename Cell::Scalar;
  using S = Scalar;
  BoundCell(Cell& cell, typename Cell::Weights weights) : cell_(&cell), weights_(std::move(weights)) {}
  State<S> step(const Var<S>& x, const State<S>& s) { return cell_->step(weights_, x, s); }
  Var<S> output(const State<S>& s) const { return cell_->output(s); }

 private:
  Cell* cell_;
  typename Cell::Weights weights_;
};

/// cell bound to the given weights (see BoundCell).
template <class Cell>
BoundCell<Cell> with_weights(Cell& cell, typename Cell::Weights weights) {
  return BoundCell<Cell>(cell, std::move(weights));
}

/// Which way a sequence is read.
enum class Direction { Forward, Reverse };

/// What many_to_many returns.
template <class S>
struct Unrolled {
  std::vector<Var<S>> outputs;  ///< outputs[t] = cell.output(state after position t), for t = 0..T-1.
  State<S> final_state;         ///< The state after the last step taken (per sequence, its own last).
};

/// ValueError unless lengths is empty or has `batch` entries, each in 1..T.
void check_lengths(std::span<const std::int32_t> lengths, Index steps, Index batch);

/// Per-step row masks for masking losses: masks[t] is [B x 1], 1 where t < lengths[b], else 0.
template <class S>
std::vector<Matrix<S>> step_masks(std::span<const std::int32_t> lengths, Index steps);

namespace detail {
/// [B x cols] matrix: row b all ones if t < lengths[b], else zeros.
template <class S>
Matrix<S> active_rows(std::span<const std::int32_t> lengths, Index t, Index cols) {
  Matrix<S> m(static_cast<Index>(lengths.size()), cols);
  for (Index b = 0; b < m.rows(); ++b) m.row(b).setConstant(t < lengths[static_cast<std::size_t>(b)] ? S(1) : S(0));
  return m;
}

inline bool all_active(std::span<const std::int32_t> lengths, Index t) {
  for (std::int32_t n : lengths) {
    if (t >= n) return false;
  }
  return true;
}

/// The shared loop: steps over xs in `dir` order; with lengths, padded rows keep their state.
template <class Cell, class S>
State<S> run(Cell& cell, const std::vector<Var<S>>& xs, const State<S>& s0, std::span<const std::int32_t> lengths,
             Direction dir, std::vector<Var<S>>* outputs) {
  TAPEGRAD_CHECK(!xs.empty(), ValueError, "unroll: the sequence xs is empty");
  const Index steps = static_cast<Index>(xs.size());
  const Index batch = xs[0].rows();
  for (std::size_t t = 0; t < xs.size(); ++t) {
    TAPEGRAD_CHECK(xs[t].rows() == batch, ShapeError, "unroll: xs[{}] is {} but xs[0] has {} rows (the batch)", t,
                   xs[t].shape(), batch);
  }
  check_lengths(lengths, steps, batch);
  if (outputs != nullptr) outputs->assign(xs.size(), Var<S>());
  Tape<S>& tape = xs[0].tape();
  State<S> s = s0;
  for (Index k = 0; k < steps; ++k) {
    const Index t = dir == Direction::Forward ? k : steps - 1 - k;
    auto scope = tape.time_step(static_cast<int>(t));
    State<S> next = cell.step(xs[static_cast<std::size_t>(t)], s);
    if (!lengths.empty() && !all_active(lengths, t)) {
      for (std::size_t j = 0; j < next.tensors.size(); ++j) {
        const Matrix<S> cond = active_rows<S>(lengths, t, next.tensors[j].cols());
        next.tensors[j] = where(cond, next.tensors[j], s.tensors[j]);
      }
    }
    s = std::move(next);
    if (outputs != nullptr) (*outputs)[static_cast<std::size_t>(t)] = cell.output(s);
  }
  return s;
}
}  // namespace detail

/// Runs cell over xs (each [B x in]) from s0; returns every step's output and the final state.
/// lengths (optional, one per batch row, each 1..T) marks padding; see the file comment.
/// With Direction::Reverse the steps run from T-1 down to 0 and outputs[t] still belongs to
/// position t.
template <class Cell, class S>
Unrolled<S> many_to_many(Cell&& cell, const std::vector<Var<S>>& xs, const State<S>& s0,
                         std::span<const std::int32_t> lengths = {}, Direction dir = Direction::Forward) {
  Unrolled<S> out;
  out.final_state = detail::run(cell, xs, s0, lengths, dir, &out.outputs);
  return out;
}

/// Runs cell over xs from s0 and returns only the final state (for a variable-length batch,
/// each row's state after its own last step).
template <class Cell, class S>
State<S> many_to_one(Cell&& cell, const std::vector<Var<S>>& xs, const State<S>& s0,
                     std::span<const std::int32_t> lengths = {}, Direction dir = Direction::Forward) {
  return detail::run(cell, xs, s0, lengths, dir, static_cast<std::vector<Var<S>>*>(nullptr));
}

}  // namespace tapegrad::nn
