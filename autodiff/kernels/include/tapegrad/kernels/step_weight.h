// The weight of a recurrence's per-step products and the choice, once per sequence, of the kernel
// that multiplies by it: small_gemm for the batch shapes where it measured faster than Eigen
// (bench_step_product, bench_train_step), the general product otherwise.
#pragma once

#include <cstdint>

#include <tapegrad/kernels/product.h>
#include <tapegrad/kernels/small_gemm.h>
#include <tapegrad/kernels/threads.h>
#include <tapegrad/kernels/transpose_copy.h>
#include <tapegrad/kernels/write.h>
#include <tapegrad/tensor.h>

namespace tapegrad::kernels {

/// W [H x G] of the per-step products lhs W or, transposed, the backward's dA_t W^T. When
/// small_gemm will read W^T, the transposed copy is made once, here.
template <class S>
class StepWeight {
 public:
  /// rows: the batch, the row count of every left operand.
  StepWeight(const Matrix<S>& w, bool transposed, Index rows)
      : w_(w),
        transposed_(transposed),
        small_(step_product_fits(rows, transposed ? w.rows() : w.cols())),
        threads_(small_ ? small_gemm_threads(product_work(rows, w.rows(), w.cols()))
                        : threads_for_work(product_work(rows, w.rows(), w.cols()))) {
    if (small_ && transposed_) copy_ = transpose_of(w);
  }

  /// Whether every step product runs on one thread.
  [[nodiscard]] bool one_thread() const { return threads_ == 1; }

  /// dst (+)= lhs op(W).
  template <class Dst, class Lhs>
  void product(Dst&& dst, const Lhs& lhs, Write write) const {
    if (small_) {
      const Matrix<S>& b = transposed_ ? copy_ : w_;
      eigen_assert(lhs.cols() == b.rows() && dst.rows() == lhs.rows() && dst.cols() == b.cols());
      if (write == Accumulate) {
        small_gemm_on<S, Accumulate>(threads_, dst.data(), dst.outerStride(), lhs.data(), lhs.outerStride(), b.data(),
                                     b.cols(), lhs.rows(), lhs.cols(), b.cols());
      } else {
        small_gemm_on<S, Assign>(threads_, dst.data(), dst.outerStride(), lhs.data(), lhs.outerStride(), b.data(),
                                 b.cols(), lhs.rows(), lhs.cols(), b.cols());
      }
    } else if (transposed_) {
      kernels::product(dst, lhs, w_.transpose(), write);
    } else {
      kernels::product(dst, lhs, w_, write);
    }
  }

 private:
  const Matrix<S>& w_;
  bool transposed_;
  bool small_;
  int threads_;
  Matrix<S> copy_;  // W^T, only when small_gemm reads the transpose
};

}  // namespace tapegrad::kernels
