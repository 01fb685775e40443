// The typed errors every Tapegrad function throws. Nothing aborts: every misuse reaches the
// caller as one of these, with a message naming the op, the argument and the shapes involved.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace tapegrad {

/// Base of every error Tapegrad throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
/// Shapes that do not fit the op (names the op, the arguments and their shapes).
class ShapeError : public Error {
 public:
  using Error::Error;
};
/// Misuse of the tape: stale handles, released windows, hooks on consumed nodes.
class TapeError : public Error {
 public:
  using Error::Error;
};
/// A value out of its domain: class targets out of range, negative thresholds, bad options.
class ValueError : public Error {
 public:
  using Error::Error;
};
/// A NaN or Inf found in anomaly mode or by gradient clipping.
class NumericError : public Error {
 public:
  using Error::Error;
};
/// A checkpoint that cannot be read or written (truncated, corrupt, mismatched).
class CheckpointError : public Error {
 public:
  using Error::Error;
};

namespace detail {
template <class E, class... Args>
[[noreturn]] void raise(fmt::format_string<Args...> f, Args&&... args) {
  throw E(fmt::format(f, std::forward<Args>(args)...));
}
}  // namespace detail

}  // namespace tapegrad

/// Throws ErrorType with a formatted message when cond is false. Checks run before an op is
/// recorded, so the error fires at the line that built the bad op.
#define TAPEGRAD_CHECK(cond, ErrorType, ...)                        \
  do {                                                              \
    if (!(cond)) ::tapegrad::detail::raise<ErrorType>(__VA_ARGS__); \
  } while (false)
