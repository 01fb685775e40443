// Process-wide performance settings: how many threads a large matrix product may use, which
// products go to OpenBLAS, and whether freed memory stays in the heap. Every setting applies to
// tapes on every thread; a tape itself is single-threaded (docs/reliability.md).
#pragma once

#include <cstddef>
#include <cstdint>

namespace tapegrad {

/// Sets the threads a large matrix product may use (n >= 1) and returns the number in effect:
/// n when the library was built with TAPEGRAD_OPENMP, 1 otherwise. Products smaller than
/// min_parallel_work() multiply-adds stay on one thread whatever n is.
int set_num_threads(int n);

/// The threads a large product uses now (1 without TAPEGRAD_OPENMP; OpenMP's default until set).
int num_threads();

/// Sets the smallest product, in multiply-adds m k n, that may use more than one thread
/// (work >= 0). The default is measured; change it only after measuring (bench_gemm_threads).
void set_min_parallel_work(std::int64_t work);
std::int64_t min_parallel_work();

/// Sets the smallest product, in multiply-adds, that goes to OpenBLAS in a TAPEGRAD_OPENBLAS
/// build (work >= 0; INT64_MAX: none) and returns the value in effect, INT64_MAX without
/// TAPEGRAD_OPENBLAS. The default sends products to OpenBLAS only while it runs AVX-512 kernels.
std::int64_t set_min_blas_work(std::int64_t work);
std::int64_t min_blas_work();

/// Keeps freed blocks below mmap_threshold bytes in the heap (glibc's mmap and trim thresholds),
/// so the packing buffers Eigen allocates for every large product are reused instead of being
/// mapped and page-faulted in again. Process-wide, so never called by the library itself: call
/// it once at start-up. Returns false where this is not glibc or glibc refused a value.
bool keep_freed_memory(std::size_t mmap_threshold = std::size_t{32} << 20,
                       std::size_t trim_threshold = std::size_t{256} << 20);

}  // namespace tapegrad
