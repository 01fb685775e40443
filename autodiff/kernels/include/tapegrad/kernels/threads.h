// The thread count of each product. Eigen splits a product across threads from 1e5
// multiply-adds when built with OpenMP, but below min_parallel_work() the second thread costs
// more than it saves (docs/performance.md). So every product runs on one thread below it and on
// num_threads() from there up, chosen per call through OpenMP's per-thread count, never through
// Eigen's process-wide setNbThreads, so tapes on different threads do not race on it.
#pragma once

#include <cstdint>

#include <tapegrad/tensor.h>
#include <tapegrad/threading.h>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tapegrad::kernels {

/// True when Eigen was compiled with OpenMP, so set_num_threads can take effect.
inline constexpr bool kParallelProducts =
#ifdef EIGEN_HAS_OPENMP
    true;
#else
    false;
#endif

/// The default of min_parallel_work() (bench_gemm_threads measures the crossover).
inline constexpr std::int64_t kDefaultMinParallelWork = std::int64_t{1} << 19;

/// Multiply-adds of [m x k] x [k x n], in double: m k n of three Index values can overflow int64.
inline double product_work(Index m, Index k, Index n) {
  return static_cast<double>(m) * static_cast<double>(k) * static_cast<double>(n);
}

/// The threads a product of `work` multiply-adds runs on: 1 below min_parallel_work(), else
/// num_threads().
inline int threads_for_work(double work) { return work < static_cast<double>(min_parallel_work()) ? 1 : num_threads(); }

/// The threads a product [m x k] x [k x n] runs on.
inline int product_threads(Index m, Index k, Index n) { return threads_for_work(product_work(m, k, n)); }

/// For its lifetime, Eigen products on this thread use product_threads(m, k, n) threads.
class ProductThreads {
 public:
  ProductThreads(Index m, Index k, Index n) {
#ifdef EIGEN_HAS_OPENMP
    // Eigen keeps a product below 2 x 50,000 multiply-adds on one thread by itself
    // (parallelize_gemm's kMinTaskSize): skip the two OpenMP calls for the many tiny products.
    const double work = product_work(m, k, n);
    if (work < 1e5) return;
    const int want = threads_for_work(work);
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

}  // namespace tapegrad::kernels
