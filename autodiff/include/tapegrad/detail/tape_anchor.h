// Where a Var finds its tape. A Var holds a TapeAnchor, not the Tape: anchors come from a process
// pool and are never freed, so a Var that outlives its tape reads a null `tape` (TapeError)
// instead of freed memory. A recycled anchor continues its epochs where the dead tape stopped,
// so a handle of the old tape is stale (invariant 5 of tape.h) on the new one too.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace tapegrad::detail {

struct TapeAnchor {
  void* tape = nullptr;          // the live Tape<S> using this anchor, or null
  std::uint32_t next_epoch = 1;  // the first epoch of the next tape given this anchor
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
    a->tape = tape;
    return a;
  }
  static void release(TapeAnchor* a, std::uint32_t next_epoch) {
    TapeAnchorPool& p = instance();
    const std::lock_guard<std::mutex> lock(p.mutex_);
    a->tape = nullptr;
    a->next_epoch = next_epoch;
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
