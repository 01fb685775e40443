// The tape's storage: one slot per value (value, gradient and metadata side by side), the
// recorded entries and their argument lists. Plain data plus the few helpers that recording
// (op.h), the sweep (tape.h) and its policies share on their hot paths. Tape wraps it with the
// checks and the public API; Note [Tape invariants] in tape.h says what the fields guarantee.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <tapegrad/error.h>
#include <tapegrad/inline_function.h>
#include <tapegrad/parameter.h>
#include <tapegrad/stable_vector.h>
#include <tapegrad/tensor.h>

// Forces inlining of the few tiny functions on the per-op hot path (GCC and Clang): inside a
// large op function the inliner otherwise keeps them as calls, which costs more than their body.
#if defined(__GNUC__)
#define TAPEGRAD_HOT [[gnu::always_inline]] inline
#else
#define TAPEGRAD_HOT inline
#endif

namespace tapegrad {

template <class S>
class OpCtx;
template <class S>
class Tape;
template <class S>
class Var;

/// The time tag of a node recorded outside any Tape::time_step scope.
inline constexpr int kNoTime = std::numeric_limits<int>::min();

namespace detail {

struct SlotInfo {  // 32 bytes on 64-bit targets
  const char* producer_op = "leaf";
  std::uint32_t epoch = 0;       // the tape's epoch when the slot was created (invariant 5)
  std::int32_t time = kNoTime;   // the time-step tag in force then
  std::uint32_t created_at = 0;  // entries before this one cannot read the slot
  std::uint32_t grad_stamp = 0;  // the sweep that last touched the gradient (invariant 3)
  bool requires_grad = false;
  bool named = false;       // names[id] holds its name (names grows only in set_name)
  bool grad_freed = false;  // a release sweep freed this sweep's gradient
  bool leaf = false;        // made by constant/variable/leaf: no entry reads its gradient
};

// Everything the hot paths touch for one value: one lookup, one or two cache lines.
template <class S>
struct Slot {
  Matrix<S> value;
  Matrix<S> grad;
  SlotInfo info;
};

// Where an entry's slots are: args[args_begin ..] holds its n_in inputs, then its n_aux aux
// slots, then its n_extra extra outputs; ints[ints_begin ..] its n_ints saved integers.
struct EntryLayout {
  std::uint32_t out;
  std::uint32_t args_begin;
  std::uint32_t ints_begin;
  std::uint32_t n_ints;
  std::uint16_t n_in;
  std::uint16_t n_aux;
  std::uint16_t n_extra;
};

template <class S>
struct Entry {
  template <class F>  // constructs the closure in place (emplace_back)
  Entry(const char* op_name, const EntryLayout& layout, F&& fn)
      : op(op_name), at(layout), backward(std::forward<F>(fn)) {}
  const char* op;
  EntryLayout at;
  InlineFunction<void(OpCtx<S>&), 32> backward;
  // A hook is the one entry that reads no input: it edits its node's gradient in place.
  [[nodiscard]] bool is_hook() const { return at.n_in == 0; }
};

// A parameter recorded by Tape::leaf. The anchor tells whether `param` still is that parameter
// (parameter.h) without dereferencing it: a moved or destroyed Parameter has retired it.
template <class S>
struct ParamLeaf {
  std::uint32_t id = 0;
  Parameter<S>* param = nullptr;
  std::shared_ptr<const ParamAnchor> anchor;
};

// What is running on a tape while user code is called back (TapeStore::busy): the tape then
// refuses every call that would change its record (Note [Callback contract] in tape.h).
inline constexpr const char* kBusySweep = "backward";
inline constexpr const char* kBusyScopeError = "time_step";  // a scope closed out of order (time_scope.h)
// Marks a store busy with `what` for the guard's lifetime (also when the guarded call throws).
class BusyGuard {
 public:
  TAPEGRAD_HOT BusyGuard(const char*& busy, const char* what) : busy_(busy) { busy_ = what; }
  BusyGuard(const BusyGuard&) = delete;
  BusyGuard& operator=(const BusyGuard&) = delete;
  TAPEGRAD_HOT ~BusyGuard() { busy_ = nullptr; }

 private:
  const char*& busy_;
};

// gx(target) += value(lhs)^T grad(gy), put off to the end of the sweep (Note [Batched weight
// gradients] in autodiff/src/shared_weight_products.cpp).
struct DeferredProduct {
  std::uint32_t target, lhs, gy;
};

// A leaf's transposed value, made once per sweep for the steps' input gradients (same Note).
template <class S>
struct TransposedLeaf {
  std::uint32_t id = 0, stamp = 0;
  Matrix<S> value;
};

template <class S>
struct TapeStore;
// Runs and clears store.deferred: the products of each target stacked into a few large ones.
template <class S>
void run_deferred_products(TapeStore<S>& store);

template <class S>
struct TapeStore {
  using Tensor = Matrix<S>;

  StableVector<Slot<S>> slots;  // never moves: a reference to an input survives a new slot
  std::vector<std::string> names;
  std::vector<Entry<S>> entries;
  std::vector<std::uint32_t> args;
  std::vector<std::int32_t> ints;
  std::vector<ParamLeaf<S>> params;
  std::uint32_t n_values = 0;
  std::uint32_t epoch = 1;
  std::uint32_t stamp = 1;
  int current_time = kNoTime;
  bool anomaly = false;                    // anomaly mode: values and gradients are checked for NaN/Inf
  const char* busy = nullptr;              // kBusySweep during a sweep, the op's name during its forward
  std::vector<std::uint64_t> open_scopes;  // the time-step scopes open now, innermost last
  std::uint64_t scope_serial = 0;
  std::string scope_error;      // set with busy = kBusyScopeError, reported by the next changing call
  bool defer_products = false;  // this sweep may defer leaves' weight-gradient products
  std::vector<DeferredProduct> deferred;
  std::vector<S> stack_lhs, stack_gy;  // run_deferred_products' buffers, kept for the next sweep
  std::vector<TransposedLeaf<S>> transposed;

  // A slot is created with its shape; its buffer is reused when the shape repeats.
  TAPEGRAD_HOT std::uint32_t new_slot(Index rows, Index cols, bool requires_grad, const char* op) {
    const std::uint32_t id = n_values;
    if (id >= slots.size()) [[unlikely]]
      grow_slots(id);
    Slot<S>& slot = slots[id];
    // Only a changed shape touches Eigen (a resize to the same shape is a no-op, but a call).
    if (slot.value.rows() != rows || slot.value.cols() != cols) resize(slot.value, rows, cols, op);
    slot.info = SlotInfo{op, epoch, current_time, static_cast<std::uint32_t>(entries.size()), 0, requires_grad};
    n_values = id + 1;
    return id;
  }
  [[gnu::noinline]] void grow_slots(std::uint32_t id) { slots.grow_to(std::size_t{id} + 1); }
  // A buffer that cannot be allocated is the caller's huge shape: a ShapeError naming the op.
  [[gnu::noinline]] static void resize(Tensor& m, Index rows, Index cols, const char* op) {
    try {
      m.resize(rows, cols);
    } catch (const std::bad_alloc&) {
      raise<ShapeError>("{}: cannot allocate a [{} x {}] tensor", op, rows, cols);
    }
  }
  // The next sweep's stamp; when the counter wraps, every slot is marked untouched again, so a
  // slot last touched 2^32 sweeps ago never looks reached.
  void next_stamp() {
    if (++stamp != 0) [[likely]]
      return;
    for (std::size_t i = 0; i < slots.size(); ++i) slots[i].info.grad_stamp = 0;
    stamp = 1;
  }

  [[nodiscard]] TAPEGRAD_HOT bool live(std::uint32_t id, std::uint32_t handle_epoch) const {
    return id < n_values && slots[id].info.epoch == handle_epoch;
  }
  [[nodiscard]] TAPEGRAD_HOT bool reached(std::uint32_t id) const { return slots[id].info.grad_stamp == stamp; }
  // The gradient of id in this sweep, zero-filled on first touch (a 1x1 one with one store).
  TAPEGRAD_HOT Tensor& grad_slot(std::uint32_t id) {
    Slot<S>& slot = slots[id];
    if (slot.info.grad_stamp != stamp) {
      Tensor& g = slot.grad;
      if (g.rows() != slot.value.rows() || g.cols() != slot.value.cols())
        resize(g, slot.value.rows(), slot.value.cols(), slot.info.producer_op);
      if (g.size() == 1) {
        g.data()[0] = S(0);
      } else {
        g.setZero();
      }
      slot.info.grad_stamp = stamp;
      slot.info.grad_freed = false;
    }
    return slot.grad;
  }
  // Whether the sweep reached entry e through any output (invariant 7). Reached through an
  // extra output only, its main output's gradient is zero-filled so that gy() reads zeros.
  [[nodiscard]] TAPEGRAD_HOT bool reached_entry(const Entry<S>& e) {
    if (reached(e.at.out)) [[likely]]
      return true;
    for (std::uint32_t k = 1; k <= e.at.n_extra; ++k) {
      if (reached(output_id(e.at, k))) {
        grad_slot(e.at.out);
        return true;
      }
    }
    return false;
  }

  [[nodiscard]] TAPEGRAD_HOT std::uint32_t input_id(const EntryLayout& at, std::size_t i) const {
    return args[at.args_begin + i];
  }
  [[nodiscard]] std::uint32_t aux_id(const EntryLayout& at, std::size_t k) const {
    return args[at.args_begin + at.n_in + k];
  }
  // Output 0 is the main output, 1.. the extra outputs.
  [[nodiscard]] std::uint32_t output_id(const EntryLayout& at, std::size_t k) const {
    return k == 0 ? at.out : aux_id(at, at.n_aux + k - 1);
  }

  // True if a live entry reads id. Scans only the entries recorded since id was created (hooks
  // read no inputs and are registered right after their node, so this is usually none):
  // recording an op does no bookkeeping for it, and an entry dropped by rewind() no longer counts.
  [[nodiscard]] bool consumed(std::uint32_t id) const {
    for (std::size_t i = slots[id].info.created_at; i < entries.size(); ++i) {
      const detail::EntryLayout& at = entries[i].at;
      for (std::uint32_t k = 0; k < at.n_in; ++k) {
        if (input_id(at, k) == id) return true;
      }
    }
    return false;
  }
  // True when the first m.values slots and m.entries entries are still those m was taken on:
  // the last kept slot is no newer than the mark, and the last kept entry (which references
  // the newest slots and args of any kept entry) reads only kept slots, args and ints.
  template <class Mark>
  [[nodiscard]] bool is_prefix(const Mark& m) const {
    if (m.values > 0 && slots[m.values - 1].info.epoch > m.epoch) return false;
    if (m.entries > 0) {
      const EntryLayout& at = entries[m.entries - 1].at;
      const std::uint32_t n_args = std::uint32_t{at.n_in} + at.n_aux + at.n_extra;
      if (at.out >= m.values || at.args_begin + n_args > m.args || at.ints_begin + at.n_ints > m.ints) return false;
      for (std::uint32_t k = 0; k < n_args; ++k) {
        if (input_id(at, k) >= m.values) return false;
      }
    }
    return m.params == 0 || params[m.params - 1].id < m.values;
  }

  // After a sweep (invariant 6): adds each reached parameter leaf's gradient into its
  // Parameter::grad. Every leaf is checked first, so an error leaves every Parameter::grad as it was.
  void add_parameter_grads() const {
    for (const ParamLeaf<S>& p : params) {
      if (p.id >= n_values || !reached(p.id)) continue;
      if (!p.anchor->alive) [[unlikely]]
        raise<TapeError>(
            "backward: parameter '{}' (node #{}) was moved, assigned over or destroyed after tape.leaf() recorded "
            "it, so its gradient has nowhere to go; record a parameter once its owner stops moving (reserve a "
            "vector of modules), or clear the tape after moving it",
            display_name(p.id), p.id);
      const Shape now = shape_of(p.param->value);
      const Shape then = shape_of(slots[p.id].value);
      if (now != then) [[unlikely]]
        raise<ShapeError>(
            "backward: parameter '{}' is {} but was {} when tape.leaf() recorded it; clear or rewind the tape "
            "after resizing a parameter",
            display_name(p.id), now, then);
    }
    for (const ParamLeaf<S>& p : params) {
      if (p.id >= n_values || !reached(p.id)) continue;
      if (shape_of(p.param->grad) != shape_of(p.param->value)) p.param->zero_grad();
      p.param->grad += slots[p.id].grad;
    }
  }

  // The tape refuses `what` while user code runs inside a sweep or an op's forward.
  [[noreturn, gnu::noinline, gnu::cold]] void fail_busy(std::string_view what) {
    if (busy == kBusyScopeError) {  // reported once: the scopes are already repaired
      busy = nullptr;
      raise<TapeError>("{}: refused: {}", what, std::exchange(scope_error, {}));
    }
    if (busy == kBusySweep)
      raise<TapeError>(
          "{}: refused during backward on this tape: hooks, observers and backward closures may read the tape "
          "and change the gradient a hook is given, but not record, clear, rewind, add hooks, set the observer "
          "or run backward on the tape being swept",
          what);
    raise<TapeError>(
        "{}: refused inside the forward of op '{}' on this tape: a forward computes its outputs from its inputs "
        "and may not record, clear, rewind or run backward on its own tape",
        what, busy);
  }
  TAPEGRAD_HOT void require_idle(std::string_view what) {
    if (busy != nullptr) [[unlikely]]
      fail_busy(what);
  }

  [[nodiscard]] const std::string& name_of(std::uint32_t id) const {
    static const std::string no_name;
    return slots[id].info.named ? names[id] : no_name;
  }
  // "name" if the node has one, else "#id (op)".
  [[nodiscard]] std::string display_name(std::uint32_t id) const {
    if (slots[id].info.named && !names[id].empty()) return names[id];
    return fmt::format("#{} ({})", id, slots[id].info.producer_op);
  }

  // Anomaly mode: throws NumericError naming the op, the node, its time step and its inputs.
  [[noreturn, gnu::noinline, gnu::cold]] void raise_anomaly(std::string_view what, std::uint32_t id, const Tensor& bad,
                                                            std::span<const std::uint32_t> inputs) const {
    std::string shapes;  // each input by name and shape, so the culprit can be found in user code
    for (std::uint32_t in : inputs) {
      shapes += fmt::format("{}'{}' {}", shapes.empty() ? "" : ", ", display_name(in), shape_of(slots[in].value));
    }
    const int t = slots[id].info.time;
    throw NumericError(fmt::format("anomaly: {} of op '{}' (node '{}'{}) holds {} in its {} tensor; inputs: [{}]", what,
                                   slots[id].info.producer_op, display_name(id),
                                   t == kNoTime ? std::string() : fmt::format(", time step {}", t),
                                   bad.hasNaN() ? "NaN" : "Inf", shape_of(bad), shapes));
  }
  // Throws NumericError if a value just recorded holds NaN/Inf (anomaly mode only).
  TAPEGRAD_HOT void check_recorded(std::uint32_t id, std::span<const std::uint32_t> inputs) const {
    if (anomaly) [[unlikely]] {
      const Tensor& v = slots[id].value;
      if (!(v.size() == 1 ? std::isfinite(v.data()[0]) : v.allFinite())) {
        raise_anomaly(inputs.empty() ? "leaf value" : "forward value", id, v, inputs);
      }
    }
  }
};

// The recording internals, for op.h (record_op, OpCtx) and the sweep runners only.
struct TapeAccess {
  template <class S>
  TAPEGRAD_HOT static TapeStore<S>& store(Tape<S>& tape) {
    return tape.s_;
  }
  template <class S>
  TAPEGRAD_HOT static Var<S> handle(Tape<S>& tape, std::uint32_t id) {
    return tape.handle(id);
  }
  template <class S>
  TAPEGRAD_HOT static bool checked_requires_grad(const Tape<S>& tape, const Var<S>& v, const char* op, std::size_t i) {
    return tape.checked_requires_grad(v, op, i);
  }
};

}  // namespace detail
}  // namespace tapegrad
