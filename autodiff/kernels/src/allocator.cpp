// keep_freed_memory (tapegrad/threading.h). Eigen allocates the packing buffers of every product
// above 128 KiB on the heap and frees them when the product ends; glibc serves such blocks with
// a fresh mmap, or from the top of the heap it trims again on free, so each product can pay
// page faults for memory it just gave back. Raising both thresholds keeps the blocks.
// Without code: GLIBC_TUNABLES=glibc.malloc.trim_threshold=268435456:glibc.malloc.mmap_threshold=33554432
#include <tapegrad/threading.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace tapegrad {

bool keep_freed_memory(std::size_t mmap_threshold, std::size_t trim_threshold) {
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
