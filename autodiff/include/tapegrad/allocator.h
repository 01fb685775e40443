// Keeping freed memory in the process: an opt-in for training loops.
//
// Eigen allocates the packing buffers of every matrix product larger than 128 KiB on the heap
// and frees them when the product ends. glibc serves such blocks with a fresh mmap, or from the
// top of the heap that it trims again on free, so every product of a training step can pay page
// faults for memory it just gave back (perf: exc_page_fault under gemm_pack_rhs). Measured
// (docs/performance.md, "Keeping freed memory"): an RNN small step 1.60 -> 1.35 ms, LSTM medium
// 154 -> 138 ms, matmul 256 x 256 through the tape 885 -> 573 us, 1 thread.
//
// keep_freed_memory() sets glibc's mmap and trim thresholds (mallopt) so freed blocks stay in
// the heap for the next product. It is process-wide, so Tapegrad never calls it by itself: call
// it once at start-up. The same effect without code: GLIBC_TUNABLES=glibc.malloc.trim_threshold=
// 268435456:glibc.malloc.mmap_threshold=33554432 in the environment.
#pragma once

#include <cstddef>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace tapegrad {

/// Blocks below mmap_threshold bytes come from the heap, and free() returns heap memory to the
/// OS only when more than trim_threshold bytes are free at its top. Returns false where this
/// is not glibc (nothing changed) or glibc refused a value.
inline bool keep_freed_memory(std::size_t mmap_threshold = std::size_t{32} << 20,
                              std::size_t trim_threshold = std::size_t{256} << 20) {
#if defined(__GLIBC__)
  // mallopt takes int: clamp rather than wrap.
  constexpr std::size_t kMax = 0x7fffffff;
  const bool mmap_ok = mallopt(M_MMAP_THRESHOLD, static_cast<int>(mmap_threshold < kMax ? mmap_threshold : kMax)) == 1;
  const bool trim_ok = mallopt(M_TRIM_THRESHOLD, static_cast<int>(trim_threshold < kMax ? trim_threshold : kMax)) == 1;
  return mmap_ok && trim_ok;
#else
  static_cast<void>(mmap_threshold), static_cast<void>(trim_threshold);
  return false;
#endif
}

}  // namespace tapegrad
