// Argument checks shared by the recurrent cells (private to nn/src).
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include <tapegrad/error.h>
#include <tapegrad/nn/state.h>

namespace tapegrad::nn::detail {

/// Checks x is [B x input_size] and s holds exactly `names` tensors, each [B x hidden].
template <class S>
void check_step(std::string_view cell, const Var<S>& x, Index input_size, const State<S>& s,
                std::initializer_list<const char*> names, Index hidden) {
  TAPEGRAD_CHECK(x.cols() == input_size, ShapeError, "{}.step: input x is {}, expected [{} x {}] (input_size {})", cell,
                 x.shape(), x.rows(), input_size, input_size);
  std::string list;
  for (const char* n : names) list += fmt::format("{}{}", list.empty() ? "" : ", ", n);
  TAPEGRAD_CHECK(s.size() == names.size(), ShapeError, "{}.step: the state has {} tensor(s), expected {} ({})", cell,
                 s.size(), names.size(), list);
  std::size_t k = 0;
  for (const char* n : names) {
    const Shape got = s.tensors[k++].shape();
    const Shape want{x.rows(), hidden};
    TAPEGRAD_CHECK(got == want, ShapeError,
                   "{}.step: state tensor '{}' is {}, expected {} (batch rows of x, hidden_size)", cell, n, got, want);
  }
}

/// Checks that `vars` (given weights, in parameter order) match the parameters' shapes.
template <class S>
void check_bind(std::string_view cell, std::span<const Var<S>> vars, std::initializer_list<const Parameter<S>*> params,
                std::initializer_list<const char*> names) {
  TAPEGRAD_CHECK(vars.size() == params.size(), ValueError, "{}.bind: got {} weight tensor(s), expected {}", cell,
                 vars.size(), params.size());
  std::size_t k = 0;
  auto name = names.begin();
  for (const Parameter<S>* p : params) {
    TAPEGRAD_CHECK(vars[k].shape() == p->shape(), ShapeError, "{}.bind: weight '{}' is {}, expected {}", cell, *name,
                   vars[k].shape(), p->shape());
    ++k;
    ++name;
  }
}

inline void check_sizes(std::string_view cell, Index input_size, Index hidden_size) {
  TAPEGRAD_CHECK(input_size > 0 && hidden_size > 0, ValueError,
                 "{}: input_size ({}) and hidden_size ({}) must be positive", cell, input_size, hidden_size);
}

template <class S>
State<S> zero_state(std::string_view cell, Tape<S>& tape, Index batch, Index hidden, std::size_t count) {
  TAPEGRAD_CHECK(batch > 0, ValueError, "{}.initial_state: batch must be positive, got {}", cell, batch);
  State<S> s;
  for (std::size_t k = 0; k < count; ++k) s.tensors.push_back(tape.constant(Matrix<S>::Zero(batch, hidden)));
  return s;
}

}  // namespace tapegrad::nn::detail
