// BackwardOptions::release as a sweep runner (tape.h, invariant 8). Once an entry's backward
// has run, nothing reads its aux tensors or its outputs' gradients again (every consumer of
// its outputs, and every hook on them, ran before it), so the runner frees them right after.
// The entry itself becomes one that throws: its closure is replaced before it runs, so a
// backward that consumes its saved tensors in place (OpCtx::releasing) never runs twice, even
// if it throws half way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include <tapegrad/tape.h>

namespace tapegrad::detail {

template <class S>
struct ReleaseRun {
  Tape<S>& tape;

  void operator()(std::size_t i, Entry<S>& e) const {
    auto backward = std::move(e.backward);
    e.backward = [i, op = e.op, out = e.at.out](OpCtx<S>& c) {
      raise<TapeError>(
          "backward: entry {} (op '{}', node '{}') was released by an earlier backward(release = true); "
          "backward twice over a released window is not possible",
          i, op, c.tape().display_name(out));
    };
    OpCtx<S> ctx(tape, e.at, /*releasing=*/true);
    backward(ctx);
    if (!e.is_hook()) free_after(TapeAccess::store(tape), e.at);
  }

  static void free_after(TapeStore<S>& s, const EntryLayout& at) {
    for (std::uint32_t k = 0; k < at.n_aux; ++k) s.slots[s.aux_id(at, k)].value = Matrix<S>();
    for (std::uint32_t k = 0; k <= at.n_extra; ++k) {
      const std::uint32_t id = s.output_id(at, k);
      if (!s.reached(id)) continue;
      s.slots[id].grad = Matrix<S>();
      s.slots[id].info.grad_freed = true;
    }
  }
};

}  // namespace tapegrad::detail
