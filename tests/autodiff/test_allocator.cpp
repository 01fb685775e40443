// keep_freed_memory: after it, a freed 1 MiB block stays in the heap for the next allocation
// instead of going back to the OS (glibc's mallinfo2 counts it as free heap memory), and
// allocation still works. The default behaviour is checked first, so the test shows the change.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#include <tapegrad/threading.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace {

#if defined(__GLIBC__)
// Bytes of free memory glibc keeps in its heap after malloc(n), touch, free.
std::size_t kept_after_free(std::size_t n) {
  void* p = std::malloc(n);
  EXPECT_NE(p, nullptr);
  std::memset(p, 1, n);
  const std::size_t free_before = mallinfo2().fordblks;
  std::free(p);
  const std::size_t free_after = mallinfo2().fordblks;
  return free_after > free_before ? free_after - free_before : 0;
}

TEST(Allocator, KeepFreedMemoryKeepsALargeFreedBlockInTheHeap) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "sanitizers replace malloc: glibc's thresholds do not apply";
#endif
  constexpr std::size_t kBlock = std::size_t{1} << 20;
  // This process has not changed glibc's defaults: a 1 MiB block is its own mmap, returned on free.
  EXPECT_LT(kept_after_free(kBlock), kBlock);
  ASSERT_TRUE(tapegrad::keep_freed_memory());
  EXPECT_GE(kept_after_free(kBlock), kBlock);
  // A block above the new mmap threshold (32 MiB) is still mapped and returned, as before.
  EXPECT_LT(kept_after_free(std::size_t{64} << 20), std::size_t{64} << 20);
}
#endif

}  // namespace
