// Large matrix products in OpenBLAS, where it is faster than Eigen's own kernels.
//
// Note [BLAS products]
// On the AMD EPYC (Zen 5) this project is measured on, OpenBLAS 0.3.21 with its AVX-512 kernels
// runs the projection, weight-gradient and input-gradient GEMMs of every training-step config at
// 206-253 GFLOP/s per thread against Eigen 3.4's 68-186 (1.15-1.7x faster on two threads), and the
// heads at 0.95-1.34x (bench_gemm_rate, docs/performance.md "OpenBLAS for the large products").
// At the per-step shapes it mostly loses to small_gemm, which keeps those of up to 64 rows (Note
// [Step products]).
// It picks its AVX-512 "Cooperlake" kernels here by itself; its AVX2 kernels ("Haswell", which
// this machine's environment forces through OPENBLAS_CORETYPE=Haswell) are about 1.5x slower and
// slower than Eigen. So when the library is built with TAPEGRAD_OPENBLAS, add_product and
// assign_product (threads.h) hand a product to cblas_?gemm when
//   - its operands and destination are float or double matrices in memory (a Matrix, a block of
//     one, a transpose of either), each with unit inner stride, the destination row-major; and
//   - it has at least min_blas_work() multiply-adds. The default is kDefaultMinBlasWork when
//     OpenBLAS runs AVX-512 kernels, and "never" otherwise (measured only on this machine:
//     call set_min_blas_work after measuring with bench_gemm_rate to opt in elsewhere).
// Everything else stays in Eigen. The build links OpenBLAS's OpenMP variant, which takes its
// thread count from OpenMP per call and runs on one thread inside a parallel region, so
// ProductThreads and the overlapped backward (Note [Product threads]) hold for it unchanged.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <type_traits>

#include <Eigen/Core>

#include <tapegrad/error.h>
#include <tapegrad/tensor.h>

namespace tapegrad {

/// True when the library was built with TAPEGRAD_OPENBLAS (large products may go to OpenBLAS).
inline constexpr bool kBlasProducts =
#ifdef TAPEGRAD_HAS_OPENBLAS
    true;
#else
    false;
#endif

/// The default of min_blas_work() when OpenBLAS runs AVX-512 kernels: products from 2^13
/// multiply-adds (e.g. [8 x 32][32 x 32]) go to OpenBLAS. Below that its call costs more than
/// Eigen's product ([1 x 32][32 x 32]: 0.05 us against 0.02); from there up it was faster or
/// equal in every training step measured (bench_train_step, TAPEGRAD_MIN_BLAS_WORK=0 .. 2^21).
inline constexpr std::int64_t kDefaultMinBlasWork = std::int64_t{1} << 13;

/// min_blas_work() when no product goes to OpenBLAS.
inline constexpr std::int64_t kNoBlasWork = INT64_MAX;

/// "OpenBLAS <version> <core>" when built with TAPEGRAD_OPENBLAS, else "" (for reports).
std::string blas_name();

namespace detail {
inline std::atomic<std::int64_t> g_min_blas_work{-1};  // -1 until first read: the default is then set
std::int64_t init_min_blas_work();                     // sets and returns the default (blas.cpp)
}  // namespace detail

/// The smallest product, in multiply-adds m k n, that add_product / assign_product hand to
/// OpenBLAS (Note [BLAS products]); kNoBlasWork when none is, and always without TAPEGRAD_OPENBLAS.
inline std::int64_t min_blas_work() {
  const std::int64_t work = detail::g_min_blas_work.load(std::memory_order_relaxed);
  return work >= 0 ? work : detail::init_min_blas_work();
}

/// Sets min_blas_work() (work >= 0; kNoBlasWork turns the route off). Without TAPEGRAD_OPENBLAS
/// the call is accepted and changes nothing. Returns the value in effect.
std::int64_t set_min_blas_work(std::int64_t work);

namespace detail {

// One operand as cblas sees it: row-major storage with leading dimension ld, transposed or not.
template <class S>
struct BlasOperand {
  const S* data;
  Index ld;
  bool transposed;
};

// How many products blas_gemm has run in this process (tests check the route is taken).
std::int64_t blas_product_count();

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

// dst = lhs rhs (Beta 0) or dst += lhs rhs (Beta 1) in OpenBLAS when Note [BLAS products] allows;
// returns false, having done nothing, otherwise.
template <int Beta, class Dst, class Lhs, class Rhs>
bool try_blas_product(Dst& dst, const Lhs& lhs, const Rhs& rhs) {
#ifdef TAPEGRAD_HAS_OPENBLAS
  using DstPlain = std::remove_cvref_t<Dst>;
  using S = typename DstPlain::Scalar;
  if constexpr (!(std::is_same_v<S, float> || std::is_same_v<S, double>) ||
                !(Eigen::internal::traits<DstPlain>::Flags & Eigen::DirectAccessBit) || !DstPlain::IsRowMajor) {
    return false;
  } else {
    const Index m = lhs.rows(), k = lhs.cols(), n = rhs.cols();
    if (m == 0 || k == 0 || n == 0) return false;  // Eigen's own handling (zero fill) is exact
    if (static_cast<double>(m) * static_cast<double>(k) * static_cast<double>(n) < static_cast<double>(min_blas_work()))
      return false;
    if (dst.innerStride() != 1 || dst.outerStride() < n) return false;
    BlasOperand<S> a{}, b{};
    if (!blas_operand<S>(lhs, a) || !blas_operand<S>(rhs, b)) return false;
    blas_gemm(m, n, k, a, b, static_cast<S>(Beta), dst.data(), dst.outerStride());
    return true;
  }
#else
  static_cast<void>(dst), static_cast<void>(lhs), static_cast<void>(rhs);
  return false;
#endif
}

}  // namespace detail
}  // namespace tapegrad
