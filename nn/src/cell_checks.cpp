// The cells' argument checks (declared in cell.h). The list of state names
// for a message is built only when a check fails: these run at every step.
#include <string>

#include <tapegrad/error.h>
#include <tapegrad/nn/cell.h>

namespace tapegrad::nn::detail {

namespace {
std::string joined(std::span<const char* const> names) {
  std::string list;
  for (const char* n : names) list += fmt::format("{}{}", list.empty() ? "" : ", ", n);
  return list;
}
}  // namespace

void check_sizes(std::string_view cell, Index input_size, Index hidden_size) {
  TAPEGRAD_CHECK(input_size > 0 && hidden_size > 0, ValueError,
                 "{}: input_size ({}) and hidden_size ({}) must be positive", cell, input_size, hidden_size);
}

void check_batch(std::string_view cell, Index batch) {
  TAPEGRAD_CHECK(batch > 0, ValueError, "{}.initial_state: batch must be positive, got {}", cell, batch);
}

void check_weight_count(std::string_view cell, std::size_t got, std::size_t expected) {
  TAPEGRAD_CHECK(got == expected, ValueError, "{}.bind: got {} weight tensor(s), expected {}", cell, got, expected);
}

void check_weight_shape(std::string_view cell, std::string_view name, const Shape& got, const Shape& expected) {
  TAPEGRAD_CHECK(got == expected, ShapeError, "{}.bind: weight '{}' is {}, expected {}", cell, name, got, expected);
}

template <class S>
void check_step_inputs(std::string_view cell, const Var<S>& x, Index input_size, const State<S>& s,
                       std::span<const char* const> names, Index hidden) {
  TAPEGRAD_CHECK(x.cols() == input_size, ShapeError, "{}.step: input x is {}, expected [{} x {}] (input_size {})", cell,
                 x.shape(), x.rows(), input_size, input_size);
  TAPEGRAD_CHECK(s.size() == names.size(), ShapeError, "{}.step: the state has {} tensor(s), expected {} ({})", cell,
                 s.size(), names.size(), joined(names));
  for (std::size_t k = 0; k < names.size(); ++k) {
    const Shape got = s.tensors[k].shape();
    const Shape want{x.rows(), hidden};
    TAPEGRAD_CHECK(got == want, ShapeError,
                   "{}.step: state tensor '{}' is {}, expected {} (batch rows of x, hidden_size)", cell, names[k], got,
                   want);
  }
}

template <class S>
Index check_state(std::string_view cell, std::string_view method, const State<S>& s0,
                  std::span<const char* const> names, Index hidden) {
  TAPEGRAD_CHECK(s0.size() == names.size(), ShapeError, "{}.{}: the state s0 has {} tensor(s), expected {} ({})", cell,
                 method, s0.size(), names.size(), joined(names));
  const Index batch = s0.tensors[0].rows();
  for (std::size_t k = 0; k < names.size(); ++k) {
    const Shape got = s0.tensors[k].shape();
    const Shape want{batch, hidden};
    TAPEGRAD_CHECK(batch > 0 && got == want, ShapeError,
                   "{}.{}: state tensor '{}' of s0 is {}, expected {} (batch B = rows of s0's first tensor, "
                   "hidden_size {})",
                   cell, method, names[k], got, want, hidden);
  }
  return batch;
}

template <class S>
Index check_sequence(std::string_view cell, const Var<S>& x_all, Index input_size, const State<S>& s0,
                     std::span<const char* const> names, Index hidden) {
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

template <class S>
Index check_tokens(std::string_view cell, const Var<S>& embedding, std::size_t n_ids, Index input_size,
                   const State<S>& s0, std::span<const char* const> names, Index hidden) {
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

#define TAPEGRAD_INSTANTIATE_CELL_CHECKS(S)                                                            \
  template void check_step_inputs<S>(std::string_view, const Var<S>&, Index, const State<S>&,          \
                                     std::span<const char* const>, Index);                             \
  template Index check_sequence<S>(std::string_view, const Var<S>&, Index, const State<S>&,            \
                                   std::span<const char* const>, Index);                               \
  template Index check_tokens<S>(std::string_view, const Var<S>&, std::size_t, Index, const State<S>&, \
                                 std::span<const char* const>, Index);
TAPEGRAD_INSTANTIATE_CELL_CHECKS(float)
TAPEGRAD_INSTANTIATE_CELL_CHECKS(double)
#undef TAPEGRAD_INSTANTIATE_CELL_CHECKS

}  // namespace tapegrad::nn::detail
