// The typed errors of tapegrad::distributed, under the project's tapegrad::Error.
#pragma once

#include <tapegrad/error.h>

namespace tapegrad::distributed {

/// An MPI call that failed, or a collective used against its contract (names the call).
class DistributedError : public Error {
 public:
  using Error::Error;
};
/// The ranks do not hold the same parameter list (count, full names, shapes or scalar type).
/// Thrown on every rank, never a hang: the ranks compare fingerprints before any data moves.
class ParameterMismatchError : public DistributedError {
 public:
  using DistributedError::DistributedError;
};

}  // namespace tapegrad::distributed
