// How many threads Eigen may use inside one large matrix product. Tapegrad itself never starts
// threads: a tape is single-threaded (one tape per thread is the supported way to use two
// cores for independent work, see docs/reliability.md). Inside one op, Eigen splits a matrix
// product across threads when it is built with OpenMP (option TAPEGRAD_OPENMP) and the product
// is large enough to pay for it (Eigen keeps small products on one thread).
#pragma once

#include <Eigen/Core>

#include <tapegrad/error.h>

namespace tapegrad {

/// True when Eigen was compiled with OpenMP, so set_num_threads can take effect.
inline constexpr bool kParallelProducts =
#ifdef EIGEN_HAS_OPENMP
    true;
#else
    false;
#endif

/// Sets the threads Eigen's matrix products may use (n >= 1) and returns the number in effect:
/// n with OpenMP, 1 without. Call it before starting threads of your own: it sets one global.
inline int set_num_threads(int n) {
  TAPEGRAD_CHECK(n >= 1, ValueError, "set_num_threads: n must be >= 1, got {}", n);
  if constexpr (kParallelProducts) {
    Eigen::initParallel();
    Eigen::setNbThreads(n);
    return Eigen::nbThreads();
  }
  return 1;
}

/// The threads Eigen's matrix products use now (1 without OpenMP).
inline int num_threads() { return kParallelProducts ? Eigen::nbThreads() : 1; }

}  // namespace tapegrad
