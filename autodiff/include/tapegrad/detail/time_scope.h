// Tape::time_step's scope object. Scopes nest: each restores the tag that was in force when it
// opened. One closed while a scope opened after it is still open (kept in a std::optional or on
// the heap, destroyed out of order) closes those inner scopes too, restores its own previous tag
// and throws TapeError; the inner scopes then close without effect, so no stale tag survives.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>

#include <tapegrad/detail/tape_store.h>

namespace tapegrad::detail {

template <class S>
class [[nodiscard]] TimeScope {
 public:
  TimeScope(Tape<S>& tape, int t) : s_(TapeAccess::store(tape)), previous_(s_.current_time), t_(t) {
    id_ = ++s_.scope_serial;
    s_.open_scopes.push_back(id_);
    s_.current_time = t;
    exceptions_ = std::uncaught_exceptions();
  }
  TimeScope(const TimeScope&) = delete;
  TimeScope& operator=(const TimeScope&) = delete;
  ~TimeScope() noexcept(false) {
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
    if (std::uncaught_exceptions() == exceptions_) {  // never a second exception while unwinding
      raise<TapeError>(
          "time_step({}): scope closed while {} scope(s) opened inside it are still open; time-step scopes must "
          "close in reverse order of opening (the inner ones are closed now, the tag is restored to the one before "
          "time_step({}))",
          t_, inner, t_);
    }
  }

 private:
  TapeStore<S>& s_;
  int previous_;
  int t_;
  std::uint64_t id_ = 0;
  int exceptions_ = 0;
};

}  // namespace tapegrad::detail
