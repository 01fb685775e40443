// The public thread settings (tapegrad/threading.h) behind kernels/threads.h.
#include <tapegrad/kernels/threads.h>

#include <atomic>

#include <Eigen/Core>

#include <tapegrad/error.h>
#include <tapegrad/threading.h>

namespace tapegrad {
namespace {
std::atomic<int> g_product_threads{0};  // 0: never set, OpenMP's own default applies
std::atomic<std::int64_t> g_min_parallel_work{kernels::kDefaultMinParallelWork};
}  // namespace

int set_num_threads(int n) {
  TAPEGRAD_CHECK(n >= 1, ValueError, "set_num_threads: n must be >= 1, got {}", n);
#ifdef EIGEN_HAS_OPENMP
  Eigen::initParallel();
  Eigen::setNbThreads(0);  // Eigen then asks OpenMP, whose per-thread count ProductThreads sets
  omp_set_num_threads(n);  // also for Eigen products written by hand on this thread
  g_product_threads.store(n, std::memory_order_relaxed);
  return n;
#else
  return 1;
#endif
}

int num_threads() {
#ifdef EIGEN_HAS_OPENMP
  const int set = g_product_threads.load(std::memory_order_relaxed);
  return set > 0 ? set : omp_get_max_threads();
#else
  return 1;
#endif
}

void set_min_parallel_work(std::int64_t work) {
  TAPEGRAD_CHECK(work >= 0, ValueError, "set_min_parallel_work: work must be >= 0, got {}", work);
  g_min_parallel_work.store(work, std::memory_order_relaxed);
}

std::int64_t min_parallel_work() { return g_min_parallel_work.load(std::memory_order_relaxed); }

}  // namespace tapegrad
