// Tape::time_step's scope object. Scopes nest: each restores the tag that was in force when it
// opened. One closed while a scope opened after it is still open (kept in a std::optional or on
// the heap, destroyed out of order) closes those inner scopes too, restores its own previous tag
// and makes the tape's next changing call throw TapeError; the inner scopes then close without
// effect, so no stale tag survives.
#pragma once

#include <algorithm>
#include <cstdint>

#include <tapegrad/detail/tape_store.h>

namespace tapegrad::detail {

template <class S>
class [[nodiscard]] TimeScope {
 public:
  TimeScope(Tape<S>& tape, int t) : s_(TapeAccess::store(tape)), previous_(s_.current_time), t_(t) {
    id_ = ++s_.scope_serial;
    s_.open_scopes.push_back(id_);
    s_.current_time = t;
  }
  TimeScope(const TimeScope&) = delete;
  TimeScope& operator=(const TimeScope&) = delete;
  ~TimeScope() {
    auto& open = s_.open_scopes;
    if (!open.empty() && open.back() == id_) [[likely]] {
      open.pop_back();
      s_.current_time = previous_;
      return;
    }
    const auto it = std::find(open.begin(), open.end(), id_);
    if (it == open.end()) return;  // closed already, with an outer scope closed out of order
    const auto inner = open.end() - it - 1;
    open.erase(it, open.end());
    s_.current_time = previous_;
    // A destructor cannot throw (std::optional::reset and unique_ptr are noexcept): the next call
    // that changes the tape reports it (TapeStore::fail_busy), once.
    if (s_.busy == nullptr) {
      s_.scope_error = fmt::format(
          "time_step({}) was closed while {} time-step scope(s) opened inside it were still open; scopes must close "
          "in reverse order of opening (the inner ones are closed now, and the tag is the one before time_step({}))",
          t_, inner, t_);
      s_.busy = kBusyScopeError;
    }
  }

 private:
  TapeStore<S>& s_;
  int previous_;
  int t_;
  std::uint64_t id_ = 0;
};

}  // namespace tapegrad::detail
