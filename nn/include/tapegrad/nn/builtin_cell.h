// What the built-in cells (RnnCell, LstmCell, GruCell) share: a split step whose input
// projection is x W_ih plus an optional bias, and a whole recurrence that one fused op can run
// for forward_sequence and forward_tokens.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include <tapegrad/nn/cell.h>

namespace tapegrad::nn {

/// What a fused recurrence reads: the input projections of all T steps, [T*B x G] (ids empty),
/// or a projected table [K x G] whose rows the T*B ids pick, time-major.
template <class S>
struct FusedInput {
  Var<S> rows;
  std::span<const std::int32_t> ids;
};

namespace detail {
/// The last step's row block of a time-major [T*B x .] result: the result itself when T = 1
/// (no slice op recorded).
template <class S>
Var<S> last_step_rows(const Var<S>& rows, Index batch) {
  return rows.rows() == batch ? rows : slice_rows(rows, rows.rows() - batch, batch);
}
}  // namespace detail

/// x w + b, or x w when b is empty (a module built with bias = false).
template <class S>
Var<S> affine_or_matmul(const Var<S>& x, const Var<S>& w, const Var<S>& b) {
  return b.empty() ? matmul(x, w) : affine(x, w, b);
}

/// Base of the built-in cells: it gives project_input; Derived defines recur (cell.h) and
///   std::optional<SequenceResult<S>> fused_recurrence(const Weights& w, const FusedInput<S>& in,
///                                                     const State<S>& s0) const;
/// the whole recurrence as one tape entry, or nullopt where its fused op does not apply.
template <class Derived, class S, class Options>
class BuiltinCell : public Cell<Derived, S, Options> {
 public:
  using Cell<Derived, S, Options>::Cell;

  /// The part of a step that reads only the input, for one step or all of them: x W_ih plus the
  /// input bias (b, or a GRU's b_ih) unless the cell has none.
  template <class D = Derived>
  Var<S> project_input(const typename D::Weights& w, const Var<S>& x) const {
    if constexpr (requires { w.b_ih; }) {
      return affine_or_matmul(x, w.W_ih, w.b_ih);
    } else {
      return affine_or_matmul(x, w.W_ih, w.b);
    }
  }

 private:
  friend Cell<Derived, S, Options>;
  // forward_sequence and forward_tokens: the fused recurrence unless options.fused is off.
  template <class D = Derived>
  std::optional<SequenceResult<S>> fused_sequence(const typename D::Weights& w, const Var<S>& xp, const State<S>& s0,
                                                  const SequenceOptions& options) const {
    if (!options.fused) return std::nullopt;
    return derived().fused_recurrence(w, FusedInput<S>{xp, {}}, s0);
  }
  template <class D = Derived>
  std::optional<SequenceResult<S>> fused_tokens(const typename D::Weights& w, const Var<S>& table,
                                                std::span<const std::int32_t> ids, const State<S>& s0,
                                                const SequenceOptions& options) const {
    if (!options.fused) return std::nullopt;
    return derived().fused_recurrence(w, FusedInput<S>{table, ids}, s0);
  }
  const Derived& derived() const { return static_cast<const Derived&>(*this); }
};

}  // namespace tapegrad::nn
