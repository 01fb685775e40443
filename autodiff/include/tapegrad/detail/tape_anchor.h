// Where a Var finds its tape. A Var holds a TapeAnchor, not the Tape: anchors come from a process
// pool and are never freed, so a Var that outlives its tape reads "no tape" (TapeError) instead of
// freed memory. A recycled anchor continues its epochs where the dead tape stopped, so a handle of
// the old tape is stale (invariant 5 of tape.h) on the new one too.
//
// The pool is shared by all threads, so a dead tape's anchor may be serving a tape on another
// thread while an old handle is still read here. The handle tells that from `live_from` alone
// (an atomic that only grows) and never reads the other thread's tape.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace tapegrad::detail {

class TapeAnchor {
 public:
  /// The live tape that made a handle of `epoch`, or null when that tape was destroyed.
  [[nodiscard]] void* tape_for(std::uint32_t epoch) const {
    return epoch >= live_from_.load(std::memory_order_acquire) ? tape_ : nullptr;
  }
  /// The epoch the current tape started from.
  [[nodiscard]] std::uint32_t first_epoch() const { return live_from_.load(std::memory_order_relaxed); }

 private:
  friend class TapeAnchorPool;
  void* tape_ = nullptr;  // the live tape using this anchor; read only by handles of its epochs
  // Handles with an epoch below this belong to dead tapes. A tape's epochs start here; releasing
  // the anchor raises it past every epoch the tape used.
  std::atomic<std::uint32_t> live_from_{1};
};

class TapeAnchorPool {
 public:
  static TapeAnchor* acquire(void* tape) {
    TapeAnchorPool& p = instance();
    const std::lock_guard<std::mutex> lock(p.mutex_);
    TapeAnchor* a = nullptr;
    if (p.free_.empty()) {
      p.all_.push_back(std::make_unique<TapeAnchor>());
      a = p.all_.back().get();
    } else {
      a = p.free_.back();
      p.free_.pop_back();
    }
    a->tape_ = tape;
    return a;
  }
  /// `next_epoch` is above every epoch the releasing tape used.
  static void release(TapeAnchor* a, std::uint32_t next_epoch) {
    TapeAnchorPool& p = instance();
    a->live_from_.store(next_epoch, std::memory_order_release);  // first: old handles now read null
    const std::lock_guard<std::mutex> lock(p.mutex_);
    a->tape_ = nullptr;
    p.free_.push_back(a);
  }

 private:
  static TapeAnchorPool& instance() {
    static auto* pool = new TapeAnchorPool;  // never destroyed: Vars may outlive static tapes
    return *pool;
  }
  std::mutex mutex_;
  std::vector<std::unique_ptr<TapeAnchor>> all_;
  std::vector<TapeAnchor*> free_;
};

}  // namespace tapegrad::detail
