// The one matrix product every op calls. It picks the thread count (threads.h) and hands the
// product to OpenBLAS where blas.h routes it, else to Eigen.
#pragma once

#include <tapegrad/kernels/blas.h>
#include <tapegrad/kernels/threads.h>
#include <tapegrad/kernels/write.h>

namespace tapegrad::kernels {

/// dst = lhs rhs (Assign) or dst += lhs rhs (Accumulate); dst must not alias lhs or rhs.
template <class Dst, class Lhs, class Rhs>
[[gnu::always_inline]] inline void product(Dst&& dst, const Lhs& lhs, const Rhs& rhs, Write write) {
  const ProductThreads scope(lhs.rows(), lhs.cols(), rhs.cols());
  if (try_blas_product(dst, lhs, rhs, write)) return;
  if (write == Accumulate) {
    dst.noalias() += lhs * rhs;
  } else {
    dst.noalias() = lhs * rhs;
  }
}

}  // namespace tapegrad::kernels
