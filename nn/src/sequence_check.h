// Shared by the cells' forward_sequence and forward_tokens (private to nn/src): the argument checks and the
// op-by-op recurrence over a batched input projection.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include <tapegrad/error.h>
#include <tapegrad/nn/sequence.h>
#include <tapegrad/nn/state.h>

namespace tapegrad::nn::detail {

/// Checks s0 holds exactly `names` tensors, each [B x hidden]; returns B. Errors name
/// `cell`.`method`.
template <class S>
Index check_state(std::string_view cell, std::string_view method, const State<S>& s0,
                  std::initializer_list<const char*> names, Index hidden) {
  std::string list;
  for (const char* n : names) list += fmt::format("{}{}", list.empty() ? "" : ", ", n);
  TAPEGRAD_CHECK(s0.size() == names.size(), ShapeError, "{}.{}: the state s0 has {} tensor(s), expected {} ({})", cell,
                 method, s0.size(), names.size(), list);
  const Index batch = s0.tensors[0].rows();
  std::size_t k = 0;
  for (const char* n : names) {
    const Shape got = s0.tensors[k++].shape();
    const Shape want{batch, hidden};
    TAPEGRAD_CHECK(batch > 0 && got == want, ShapeError,
                   "{}.{}: state tensor '{}' of s0 is {}, expected {} (batch B = rows of s0's first tensor, "
                   "hidden_size {})",
                   cell, method, n, got, want, hidden);
  }
  return batch;
}

/// Checks s0 (check_state) and that x_all is [T*B x input_size] with T >= 1. Returns T.
template <class S>
Index check_sequence(std::string_view cell, const Var<S>& x_all, Index input_size, const State<S>& s0,
                     std::initializer_list<const char*> names, Index hidden) {
  const Index batch = check_state(cell, "forward_sequence", s0, names, hidden);
  TAPEGRAD_CHECK(x_all.cols() == input_size, ShapeError,
                 "{}.forward_sequence: input x_all is {}, expected [T*B x {}] (input_size {})", cell, x_all.shape(),
                 input_size, input_size);
  TAPEGRAD_CHECK(x_all.rows() >= batch && x_all.rows() % batch == 0, ShapeError,
                 "{}.forward_sequence: input x_all is {}, its rows must be T*B for some T >= 1 with B = {} (the "
                 "batch rows of s0); steps are stacked time-major",
                 cell, x_all.shape(), batch);
  return x_all.rows() / batch;
}

/// Checks s0 (check_state), that the embedding is [K x input_size] and that there are T*B ids
/// with T >= 1 (their range is checked by the gather ops). Returns T.
template <class S>
Index check_tokens(std::string_view cell, const Var<S>& embedding, std::size_t n_ids, Index input_size,
                   const State<S>& s0, std::initializer_list<const char*> names, Index hidden) {
  const Index batch = check_state(cell, "forward_tokens", s0, names, hidden);
  TAPEGRAD_CHECK(embedding.cols() == input_size && embedding.rows() > 0, ShapeError,
                 "{}.forward_tokens: embedding is {}, expected [K x {}] with K >= 1 (input_size {})", cell,
                 embedding.shape(), input_size, input_size);
  const auto ids = static_cast<Index>(n_ids);
  TAPEGRAD_CHECK(ids >= batch && ids % batch == 0, ShapeError,
                 "{}.forward_tokens: got {} ids, expected T*B for some T >= 1 with B = {} (the batch rows of s0); "
                 "ids are stacked time-major",
                 cell, ids, batch);
  return ids / batch;
}

/// The last step's row block of a time-major [T*B x .] result: the result itself when T = 1
/// (no slice op recorded).
template <class S>
Var<S> last_step_rows(const Var<S>& rows, Index batch) {
  return rows.rows() == batch ? rows : slice_rows(rows, rows.rows() - batch, batch);
}

/// The op-by-op recurrence: step t reads row block t of the projection xp (recorded inside
/// time_step(first_step + t)); outputs are the h of every step, stacked time-major.
template <class S, class Recur>
SequenceResult<S> unrolled_sequence(const Var<S>& xp, const State<S>& s0, Index steps, int first_step, Recur recur) {
  Tape<S>& tape = xp.tape();
  const Index batch = s0.tensors[0].rows();
  std::vector<Var<S>> hs;
  hs.reserve(static_cast<std::size_t>(steps));
  State<S> s = s0;
  for (Index t = 0; t < steps; ++t) {
    auto scope = tape.time_step(first_step + static_cast<int>(t));
    s = recur(steps == 1 ? xp : slice_rows(xp, t * batch, batch), s);
    hs.push_back(s.h());
  }
  Var<S> outputs = steps == 1 ? hs[0] : concat_rows<S>(std::span<const Var<S>>(hs));
  return {std::move(outputs), std::move(s)};
}

}  // namespace tapegrad::nn::detail
