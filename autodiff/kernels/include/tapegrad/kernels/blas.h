// The route of large products to OpenBLAS, Note [BLAS products] (a TAPEGRAD_OPENBLAS build): its AVX-512
// beat Eigen's at the projection and gradient shapes, its AVX2 ones do not (docs/performance.md).
// A product goes to cblas_?gemm when
//   - its operands and destination are float or double matrices in memory (a Matrix, a block of
//     one, a transpose of either), each with unit inner stride, the destination row-major; and
//   - it has at least min_blas_work() multiply-adds (by default: kDefaultMinBlasWork while
//     OpenBLAS runs AVX-512 kernels, none otherwise).
// The build links OpenBLAS's OpenMP variant, which takes its thread count from OpenMP per call
// and runs on one thread inside a parallel region, so ProductThreads holds for it unchanged.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <type_traits>

#include <Eigen/Core>

#include <tapegrad/kernels/write.h>
#include <tapegrad/tensor.h>

namespace tapegrad::kernels {

/// True when the library was built with TAPEGRAD_OPENBLAS.
inline constexpr bool kBlasProducts =
#ifdef TAPEGRAD_HAS_OPENBLAS
    true;
#else
    false;
#endif

/// The default of min_blas_work() while OpenBLAS runs AVX-512 kernels: below it, OpenBLAS's call
/// costs more than Eigen's product (bench_train_step with TAPEGRAD_MIN_BLAS_WORK measures it).
inline constexpr std::int64_t kDefaultMinBlasWork = std::int64_t{1} << 13;

/// min_blas_work() when no product goes to OpenBLAS.
inline constexpr std::int64_t kNoBlasWork = INT64_MAX;

/// "OpenBLAS <version> <core>" when built with TAPEGRAD_OPENBLAS, else "" (for reports).
std::string blas_name();

/// How many products blas_gemm has run in this process (tests check the route is taken).
std::int64_t blas_product_count();

// -1 until first read; the default is then asked of OpenBLAS (blas.cpp).
inline std::atomic<std::int64_t> g_min_blas_work{-1};
std::int64_t init_min_blas_work();

/// tapegrad::min_blas_work(), inline: try_blas_product reads it for every product.
inline std::int64_t blas_threshold() {
  const std::int64_t work = g_min_blas_work.load(std::memory_order_relaxed);
  return work >= 0 ? work : init_min_blas_work();
}

// One operand as cblas sees it: row-major storage with leading dimension ld, transposed or not.
template <class S>
struct BlasOperand {
  const S* data;
  Index ld;
  bool transposed;
};

// C = op(A) op(B) + beta C, all row-major; op(A) is m x k, op(B) k x n, C m x n.
void blas_gemm(Index m, Index n, Index k, BlasOperand<float> a, BlasOperand<float> b, float beta, float* c, Index ldc);
void blas_gemm(Index m, Index n, Index k, BlasOperand<double> a, BlasOperand<double> b, double beta, double* c,
               Index ldc);

// The OpenBLAS view of an Eigen operand, or false when it has none (an expression, a strided
// view, a leading dimension cblas would reject).
template <class S, class X>
bool blas_operand(const X& x, BlasOperand<S>& out) {
  using Plain = std::remove_cvref_t<X>;
  if constexpr (!std::is_same_v<typename Plain::Scalar, S> ||
                !(Eigen::internal::traits<Plain>::Flags & Eigen::DirectAccessBit)) {
    static_cast<void>(x), static_cast<void>(out);
    return false;
  } else {
    if (x.innerStride() != 1) return false;
    // Row-major X is stored as itself; column-major X (a transpose of a row-major block) is stored
    // as its transpose, a cols x rows row-major matrix.
    const Index stored_cols = Plain::IsRowMajor ? x.cols() : x.rows();
    const Index ld = x.outerStride();
    if (ld < stored_cols || ld < 1) return false;
    out = {x.data(), ld, !Plain::IsRowMajor};
    return true;
  }
}

// dst (+)= lhs rhs in OpenBLAS when the route above allows; returns false, having done nothing,
// otherwise.
template <class Dst, class Lhs, class Rhs>
bool try_blas_product(Dst& dst, const Lhs& lhs, const Rhs& rhs, Write write) {
#ifdef TAPEGRAD_HAS_OPENBLAS
  using DstPlain = std::remove_cvref_t<Dst>;
  using S = typename DstPlain::Scalar;
  if constexpr (!(std::is_same_v<S, float> || std::is_same_v<S, double>) ||
                !(Eigen::internal::traits<DstPlain>::Flags & Eigen::DirectAccessBit) || !DstPlain::IsRowMajor) {
    static_cast<void>(write);
    return false;
  } else {
    const Index m = lhs.rows(), k = lhs.cols(), n = rhs.cols();
    if (m == 0 || k == 0 || n == 0) return false;  // Eigen's own handling (zero fill) is exact
    if (static_cast<double>(m) * static_cast<double>(k) * static_cast<double>(n) <
        static_cast<double>(blas_threshold()))
      return false;
    if (dst.innerStride() != 1 || dst.outerStride() < n) return false;
    BlasOperand<S> a{}, b{};
    if (!blas_operand<S>(lhs, a) || !blas_operand<S>(rhs, b)) return false;
    blas_gemm(m, n, k, a, b, write == Accumulate ? S(1) : S(0), dst.data(), dst.outerStride());
    return true;
  }
#else
  static_cast<void>(dst), static_cast<void>(lhs), static_cast<void>(rhs), static_cast<void>(write);
  return false;
#endif
}

}  // namespace tapegrad::kernels
