// How many threads Eigen may use inside one matrix product. Tapegrad itself never starts
// threads: a tape is single-threaded (one tape per thread is the supported way to use two
// cores for independent work, see docs/reliability.md). Inside one op, Eigen splits a matrix
// product across threads when it is built with OpenMP (option TAPEGRAD_OPENMP).
//
// Note [Product threads]
// Eigen splits every product from 1e5 multiply-adds up, and below about 2.6e5 the second thread
// costs more than it saves (bench_gemm_threads: [25 x 32][32 x 128] took 1.25x as long on two;
// inside a training step LSTM tiny ran 1.1-1.44x slower with 2 threads than with 1;
// docs/performance.md). So every product in Tapegrad's ops goes through add_product / assign_product, which run it on
// one thread below min_parallel_work() multiply-adds and on num_threads() threads from there up. The choice is made per
// call through OpenMP's per-thread thread count (omp_set_num_threads, restored after the product), never through
// Eigen's process-wide setNbThreads, so tapes on different threads do not race on it. Without OpenMP every function
// here is a no-op and products use 1 thread.
#pragma once

#include <atomic>
#include <cstdint>

#include <Eigen/Core>

#include <tapegrad/blas.h>
#include <tapegrad/error.h>
#include <tapegrad/tensor.h>

namespace tapegrad {

/// True when Eigen was compiled with OpenMP, so set_num_threads can take effect.
inline constexpr bool kParallelProducts =
#ifdef EIGEN_HAS_OPENMP
    true;
#else
    false;
#endif

/// The default of min_parallel_work(): products of fewer multiply-adds (m k n) stay on one thread.
inline constexpr std::int64_t kDefaultMinParallelWork = std::int64_t{1} << 19;

namespace detail {
inline std::atomic<int> g_product_threads{0};  // 0: never set, OpenMP's own default applies
inline std::atomic<std::int64_t> g_min_parallel_work{kDefaultMinParallelWork};

// Multiply-adds of [m x k] x [k x n], in double: m k n of three Index values can overflow int64
// for absurd (but valid) shapes.
inline double product_work(Index m, Index k, Index n) {
  return static_cast<double>(m) * static_cast<double>(k) * static_cast<double>(n);
}
}  // namespace detail

/// Sets the threads Tapegrad's matrix products may use (n >= 1), for tapes on every thread, and
/// returns the number in effect: n with OpenMP, 1 without. Products smaller than
/// min_parallel_work() still run on one thread (Note [Product threads]).
inline int set_num_threads(int n) {
  TAPEGRAD_CHECK(n >= 1, ValueError, "set_num_threads: n must be >= 1, got {}", n);
#ifdef EIGEN_HAS_OPENMP
  Eigen::initParallel();
  Eigen::setNbThreads(0);  // Eigen then asks OpenMP, whose per-thread count ProductThreads sets
  omp_set_num_threads(n);  // also for Eigen products written by hand on this thread
  detail::g_product_threads.store(n, std::memory_order_relaxed);
  return n;
#else
  return 1;
#endif
}

/// The threads a large product uses now (1 without OpenMP; OpenMP's default until set).
inline int num_threads() {
#ifdef EIGEN_HAS_OPENMP
  const int set = detail::g_product_threads.load(std::memory_order_relaxed);
  return set > 0 ? set : omp_get_max_threads();
#else
  return 1;
#endif
}

/// Sets the smallest product, in multiply-adds m k n, that may use more than one thread
/// (default kDefaultMinParallelWork; measure with bench_gemm_threads before changing it).
inline void set_min_parallel_work(std::int64_t work) {
  TAPEGRAD_CHECK(work >= 0, ValueError, "set_min_parallel_work: work must be >= 0, got {}", work);
  detail::g_min_parallel_work.store(work, std::memory_order_relaxed);
}
inline std::int64_t min_parallel_work() { return detail::g_min_parallel_work.load(std::memory_order_relaxed); }

namespace detail {
// The threads a product of `work` multiply-adds runs on: 1 below min_parallel_work(), else
// num_threads().
inline int threads_for_work(double work) { return work < static_cast<double>(min_parallel_work()) ? 1 : num_threads(); }
}  // namespace detail

/// The threads a product [m x k] x [k x n] runs on: 1 below min_parallel_work(), else num_threads().
inline int product_threads(Index m, Index k, Index n) {
  return detail::threads_for_work(detail::product_work(m, k, n));
}

/// For its lifetime, Eigen products on this thread use product_threads(m, k, n) threads.
class ProductThreads {
 public:
  ProductThreads(Index m, Index k, Index n) {
#ifdef EIGEN_HAS_OPENMP
    // Eigen 3.4 keeps a product of under 2 x 50,000 multiply-adds on one thread by itself
    // (parallelize_gemm's kMinTaskSize): skip the two OpenMP calls for the many tiny products.
    const double work = detail::product_work(m, k, n);
    if (work < 1e5) return;
    const int want = detail::threads_for_work(work);
    const int now = omp_get_max_threads();
    if (want != now) {
      omp_set_num_threads(want);
      restore_ = now;
    }
#else
    static_cast<void>(m), static_cast<void>(k), static_cast<void>(n);
#endif
  }
  ~ProductThreads() {
#ifdef EIGEN_HAS_OPENMP
    if (restore_ > 0) omp_set_num_threads(restore_);
#endif
  }
  ProductThreads(const ProductThreads&) = delete;
  ProductThreads& operator=(const ProductThreads&) = delete;

 private:
  int restore_ = 0;  // the count to put back, 0 when unchanged
};

/// dst += lhs * rhs (dst must not alias lhs or rhs), on product_threads() threads, in OpenBLAS
/// where Note [BLAS products] sends it, else in Eigen.
template <class Dst, class Lhs, class Rhs>
[[gnu::always_inline]] inline void add_product(Dst&& dst, const Lhs& lhs, const Rhs& rhs) {
  const ProductThreads scope(lhs.rows(), lhs.cols(), rhs.cols());
  if (detail::try_blas_product<1>(dst, lhs, rhs)) return;
  dst.noalias() += lhs * rhs;
}

/// dst = lhs * rhs (dst must not alias lhs or rhs), on product_threads() threads, in OpenBLAS
/// where Note [BLAS products] sends it, else in Eigen.
template <class Dst, class Lhs, class Rhs>
[[gnu::always_inline]] inline void assign_product(Dst&& dst, const Lhs& lhs, const Rhs& rhs) {
  const ProductThreads scope(lhs.rows(), lhs.cols(), rhs.cols());
  if (detail::try_blas_product<0>(dst, lhs, rhs)) return;
  dst.noalias() = lhs * rhs;
}

}  // namespace tapegrad
