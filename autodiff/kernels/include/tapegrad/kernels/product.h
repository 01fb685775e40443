// The one matrix product every op calls. It picks the thread count (threads.h) and hands the
// product to small_gemm when its left operand has the few rows of a recurrence step (a batch),
// to OpenBLAS where blas.h routes it, else to Eigen.
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

#include <tapegrad/kernels/blas.h>
#include <tapegrad/kernels/small_gemm.h>
#include <tapegrad/kernels/threads.h>
#include <tapegrad/kernels/write.h>

namespace tapegrad::kernels {

/// Batches of more rows than this go to Eigen: small_gemm was measured only up to it.
inline constexpr Index kStepMaxRows = 64;
/// A single row wider than this goes to Eigen, whose matrix-vector product keeps more sums in flight.
inline constexpr Index kStepMaxVectorCols = 32;
/// Step products up to this many multiply-adds stay on one thread, leaving the other to the
/// overlapped weight gradients (chunks.h); larger ones split their columns over the threads.
inline constexpr double kOneThreadStepWork = static_cast<double>(std::int64_t{1} << 21);

/// Whether a step product [m x k][k x n] goes to small_gemm rather than the general product.
inline bool step_product_fits(Index m, Index n) { return m <= kStepMaxRows && !(m == 1 && n > kStepMaxVectorCols); }

/// The threads small_gemm_on gets for a product of `work` multiply-adds.
inline int small_gemm_threads(double work) { return work <= kOneThreadStepWork ? 1 : threads_for_work(work); }

inline std::atomic<bool> g_small_products{true};
/// Whether step-shaped products go to small_gemm: on, except where a test of the other routes
/// or a benchmark's A/B (env TAPEGRAD_SMALL_PRODUCTS=0) turns it off.
inline bool small_products() { return g_small_products.load(std::memory_order_relaxed); }
inline void set_small_products(bool on) { g_small_products.store(on, std::memory_order_relaxed); }

inline std::atomic<bool> g_batched_weight_grads{true};
/// Whether a plain sweep batches the weight gradients of leaves (Note [Batched weight gradients]
/// in autodiff/src/shared_weight_products.cpp): on, except for a benchmark's A/B (env
/// TAPEGRAD_BATCHED_WEIGHT_GRADS=0).
inline bool batched_weight_grads() { return g_batched_weight_grads.load(std::memory_order_relaxed); }
inline void set_batched_weight_grads(bool on) { g_batched_weight_grads.store(on, std::memory_order_relaxed); }

/// dst (+)= lhs rhs in small_gemm when the product has a step's shape (step_product_fits) and
/// both operands are row-major in memory, neither transposed (small_gemm reads rows of rhs);
/// returns false, having done nothing, otherwise. Any op's per-step product (a user's cell
/// multiplying h_{t-1} by W_hh) gets the kernel of the fused recurrences this way.
template <class Dst, class Lhs, class Rhs>
bool try_small_product(Dst& dst, const Lhs& lhs, const Rhs& rhs, Write write) {
  using DstPlain = std::remove_cvref_t<Dst>;
  using S = typename DstPlain::Scalar;
  if constexpr (!(std::is_same_v<S, float> || std::is_same_v<S, double>) ||
                !(Eigen::internal::traits<DstPlain>::Flags & Eigen::DirectAccessBit) || !DstPlain::IsRowMajor) {
    static_cast<void>(dst), static_cast<void>(lhs), static_cast<void>(rhs), static_cast<void>(write);
    return false;
  } else {
    const Index m = lhs.rows(), k = lhs.cols(), n = rhs.cols();
    if (m == 0 || k == 0 || n == 0 || !step_product_fits(m, n) || dst.innerStride() != 1 || !small_products())
      return false;
    BlasOperand<S> a{}, b{};
    if (!blas_operand<S>(lhs, a) || !blas_operand<S>(rhs, b) || a.transposed || b.transposed) return false;
    const int threads = small_gemm_threads(product_work(m, k, n));
    if (write == Accumulate) {
      small_gemm_on<S, Accumulate>(threads, dst.data(), dst.outerStride(), a.data, a.ld, b.data, b.ld, m, k, n);
    } else {
      small_gemm_on<S, Assign>(threads, dst.data(), dst.outerStride(), a.data, a.ld, b.data, b.ld, m, k, n);
    }
    return true;
  }
}

/// dst = lhs rhs (Assign) or dst += lhs rhs (Accumulate); dst must not alias lhs or rhs.
template <class Dst, class Lhs, class Rhs>
[[gnu::always_inline]] inline void product(Dst&& dst, const Lhs& lhs, const Rhs& rhs, Write write) {
  if (try_small_product(dst, lhs, rhs, write)) return;
  const ProductThreads scope(lhs.rows(), lhs.cols(), rhs.cols());
  if (try_blas_product(dst, lhs, rhs, write)) return;
  if (write == Accumulate) {
    dst.noalias() += lhs * rhs;
  } else {
    dst.noalias() = lhs * rhs;
  }
}

}  // namespace tapegrad::kernels
