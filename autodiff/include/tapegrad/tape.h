// The tape: a linear record of every op in execution order, and one reverse sweep over it.
//
// Note [Tape invariants]
// 1. Creation order is a valid reverse-sweep order. An entry can only read values that
//    existed when it was recorded, so sweeping entries from last to first visits every
//    consumer of a value before the value's producer. No topological sort, no recursion:
//    backward is one loop, and a chain of any length uses constant stack.
// 2. Backward closures only accumulate (+=) into input gradients, and read the output
//    gradient gy. A value's gradient is final once the sweep passes below its first
//    consumer; a hook is an entry recorded right after its node, so it runs exactly then.
// 3. Gradient slots are zeroed lazily: a per-slot stamp says which sweep last touched the
//    slot, so a new sweep costs nothing for slots it never reaches, and an entry whose
//    output gradient was never touched is skipped.
// 4. clear() and rewind() keep every buffer: the slot count drops, and recording the same
//    shapes again reuses the same memory (no allocation in steady state). The exception is
//    backward(release = true), which trades that reuse for peak memory: once a swept entry's
//    backward has run, nothing reads its aux tensors or its outputs' gradients again, so they
//    are freed (the entry can never be swept again).
// 5. A Var is {tape, slot id, epoch}. Every slot remembers the epoch it was created in, and
//    clear()/rewind() bump the epoch, so a handle to a discarded slot is detected, not read.
// 6. Parameters enter as leaves holding a copy of their value; after a sweep, each
//    parameter leaf that the sweep reached adds its gradient into Parameter::grad. That is
//    how a weight shared across time steps gets the sum over every path, and why a sweep
//    over a window (backward from a Mark) still reaches the parameters.
// 7. An op has one main output and may have extra outputs (an LSTM's h and c sequences). The
//    sweep runs the entry when any of its outputs was reached; the main output's gradient is
//    then zero-filled if needed, an extra output's is read through OpCtx::gy_or_null.
// The engine knows nothing about ops or time: ops live in ops_*.cpp, truncation in window.h.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
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
class Tape;
template <class S>
class OpCtx;

/// The time tag of a node recorded outside any Tape::time_step scope.
inline constexpr int kNoTime = std::numeric_limits<int>::min();

/// A position on the tape: backward can start its sweep there, rewind can return to it.
struct Mark {
  std::uint32_t entries = 0;
  std::uint32_t values = 0;
  std::uint32_t args = 0;
  std::uint32_t ints = 0;
  std::uint32_t params = 0;
  std::uint32_t epoch = 0;  ///< The tape's epoch when the mark was taken (rewind refuses stale marks).
};

/// A handle to one value recorded on a tape. Cheap to copy; invalid after clear()/rewind()
/// drops its slot (using it then throws TapeError).
template <class S>
class Var {
 public:
  using Scalar = S;
  Var() = default;

  [[nodiscard]] Tape<S>& tape() const;
  [[nodiscard]] std::uint32_t id() const { return id_; }
  [[nodiscard]] TAPEGRAD_HOT bool valid() const { return tape_ != nullptr && tape_->live(id_, epoch_); }
  /// True for a default-constructed handle (no tape).
  [[nodiscard]] bool empty() const { return tape_ == nullptr; }
  /// The forward value.
  [[nodiscard]] const Matrix<S>& value() const;
  /// dL/dv from the latest backward sweep (zeros where the sweep did not reach v).
  [[nodiscard]] const Matrix<S>& grad() const;
  [[nodiscard]] Shape shape() const { return shape_of(value()); }
  [[nodiscard]] Index rows() const { return value().rows(); }
  [[nodiscard]] Index cols() const { return value().cols(); }
  /// The value of a 1x1 tensor.
  [[nodiscard]] S item() const;
  [[nodiscard]] bool requires_grad() const;
  /// Names the node (shown by errors, the observer and diagnostics). Returns *this.
  const Var& set_name(std::string_view name) const;
  [[nodiscard]] const std::string& name() const;
  /// The time-step tag in force when the node was recorded (kNoTime outside any scope).
  [[nodiscard]] int time() const;
  /// Runs fn(dL/dv) once per sweep, when the gradient is final; fn may modify it.
  void register_hook(std::function<void(Matrix<S>&)> fn) const;
  /// Backward from this 1x1 value (a loss) over the whole tape.
  void backward() const;

 private:
  friend class Tape<S>;
  Var(Tape<S>* tape, std::uint32_t id, std::uint32_t epoch) : tape_(tape), id_(id), epoch_(epoch) {}
  // Throws TapeError for an empty or stale handle, naming the accessor; returns the tape.
  TAPEGRAD_HOT Tape<S>& checked(const char* accessor) const {
    if (valid()) [[likely]]
      return *tape_;
    fail(accessor);
  }
  [[noreturn, gnu::noinline, gnu::cold]] void fail(const char* accessor) const;
  Tape<S>* tape_ = nullptr;
  std::uint32_t id_ = 0;
  std::uint32_t epoch_ = 0;
};

/// What the node observer sees for one input of an entry.
struct InputGradEvent {
  std::uint32_t id;
  Shape shape;
  double grad_norm;  ///< Frobenius norm of the gradient this entry passed to the input.
};
/// What the node observer sees for every entry run by a sweep.
struct NodeEvent {
  std::size_t entry;
  const char* op;
  std::uint32_t id;
  std::string_view name;
  int time;
  Shape shape;
  double grad_norm;  ///< Frobenius norm of dL/d(output) when the entry ran.
  std::span<const InputGradEvent> inputs;
};

/// How a sweep runs.
struct BackwardOptions {
  Mark from{};  ///< Sweep only entries recorded at or after this mark.
  /// Release swept entries: sweeping them again throws, and what only they would read again is
  /// freed as soon as each has run (its aux tensors, its outputs' gradients; Var::grad() on such
  /// an output then throws). Leaves keep their gradients. Lowers the sweep's peak memory.
  bool release = false;
  bool accumulate_parameters = true;  ///< Add reached parameter leaves' gradients to Parameter::grad.
  bool run_hooks = true;              ///< Run tensor hooks (Jacobian probes turn them off).
};

template <class S>
class Tape {
 public:
  using Scalar = S;
  using Tensor = Matrix<S>;
  using Observer = std::function<void(const NodeEvent&)>;

  Tape() = default;
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  // ---- leaves -------------------------------------------------------------------------
  /// A value with no gradient (data, targets, a detached state).
  Var<S> constant(const Tensor& value) { return make_leaf(value, false, SlotKind::Constant); }
  /// A leaf whose gradient is readable through Var::grad() after backward.
  Var<S> variable(const Tensor& value) { return make_leaf(value, true, SlotKind::Variable); }
  /// A parameter's value as a leaf; each sweep that reaches it adds to p.grad. The first call
  /// on a tape copies p.value; later calls (until clear/rewind drops that leaf) return the
  /// same leaf, so a cell can call leaf(W) at every step and W is recorded once.
  Var<S> leaf(Parameter<S>& p) {
    for (auto it = params_.rbegin(); it != params_.rend(); ++it) {
      if (it->param == &p) return handle(it->id);
    }
    Var<S> v = make_leaf(p.value, true, SlotKind::Parameter);
    params_.push_back({v.id(), &p});
    set_name(v.id(), p.name);
    return v;
  }

  // ---- positions -----------------------------------------------------------------------
  [[nodiscard]] Mark mark() const {
    return {u32(entries_.size()), n_values_, u32(args_.size()), u32(ints_.size()), u32(params_.size()), epoch_};
  }
  /// Drops everything recorded after m; buffers are kept for reuse. A stale mark (part of the
  /// tape it points into was dropped by a later clear/rewind, or it is another tape's) throws.
  void rewind(const Mark& m) {
    TAPEGRAD_CHECK(m.entries <= entries_.size() && m.values <= n_values_ && m.args <= args_.size() &&
                       m.ints <= ints_.size() && m.params <= params_.size(),
                   TapeError,
                   "rewind: mark (entries {}, values {}) is past the end of the tape (entries {}, values {})",
                   m.entries, m.values, entries_.size(), n_values_);
    TAPEGRAD_CHECK(is_prefix(m), TapeError,
                   "rewind: mark (entries {}, values {}) is stale: the tape it points into was cut by a later clear() "
                   "or rewind() (or the mark belongs to another tape)",
                   m.entries, m.values);
    entries_.erase(entries_.begin() + m.entries, entries_.end());
    args_.resize(m.args);
    ints_.resize(m.ints);
    params_.resize(m.params);
    n_values_ = m.values;
    ++epoch_;
  }
  /// Drops the whole record; buffers are kept, so the next step reuses them.
  void clear() { rewind(Mark{}); }

  [[nodiscard]] std::size_t num_entries() const { return entries_.size(); }
  [[nodiscard]] std::size_t num_values() const { return n_values_; }

  // ---- backward ------------------------------------------------------------------------
  /// Reverse sweep from a 1x1 loss, seeded with dL/dL = 1.
  void backward(const Var<S>& loss, const BackwardOptions& opts = {}) {
    check(loss, "backward", "loss");
    TAPEGRAD_CHECK(slots_[loss.id()].value.size() == 1, ShapeError,
                   "backward: the loss '{}' is {}, not a scalar [1 x 1]; pass a seed of the same shape",
                   display_name(loss.id()), shape_of(slots_[loss.id()].value));
    TAPEGRAD_CHECK(opts.from.entries <= entries_.size(), TapeError,
                   "backward: the mark (entry {}) is past the end of the tape ({} entries); was it rewound?",
                   opts.from.entries, entries_.size());
    sweep(loss.id(), nullptr, opts);  // seeded with ones in place: no temporary, no allocation
  }
  /// Reverse sweep from y seeded with dL/dy = seed (same shape as y).
  void backward(const Var<S>& y, const Tensor& seed, const BackwardOptions& opts = {}) {
    check(y, "backward", "y");
    TAPEGRAD_CHECK(shape_of(seed) == shape_of(slots_[y.id()].value), ShapeError, "backward: seed is {} but '{}' is {}",
                   shape_of(seed), display_name(y.id()), shape_of(slots_[y.id()].value));
    TAPEGRAD_CHECK(opts.from.entries <= entries_.size(), TapeError,
                   "backward: the mark (entry {}) is past the end of the tape ({} entries); was it rewound?",
                   opts.from.entries, entries_.size());
    sweep(y.id(), &seed, opts);
  }

  // ---- time tags, names ------------------------------------------------------------------
  /// Sets the time-step tag for every node recorded while the returned scope lives.
  class [[nodiscard]] TimeScope {
   public:
    TimeScope(Tape& tape, int t) : tape_(&tape), previous_(tape.current_time_) { tape.current_time_ = t; }
    TimeScope(const TimeScope&) = delete;
    TimeScope& operator=(const TimeScope&) = delete;
    ~TimeScope() { tape_->current_time_ = previous_; }

   private:
    Tape* tape_;
    int previous_;
  };
  TimeScope time_step(int t) { return TimeScope(*this, t); }
  [[nodiscard]] int current_time() const { return current_time_; }

  // ---- inspection ------------------------------------------------------------------------
  /// Called for every entry a sweep runs (op, name, time tag, shapes, gradient norms).
  /// Costs one branch per entry when unset.
  void set_observer(Observer observer) { observer_ = std::move(observer); }
  /// When on, the first NaN or Inf in a forward value or a backward gradient throws
  /// NumericError naming the op, its name, time tag and shapes.
  void set_anomaly_mode(bool on) { anomaly_ = on; }
  [[nodiscard]] bool anomaly_mode() const { return anomaly_; }
  /// The options of the latest sweep; read inside a backward closure, those of the sweep running it
  /// (recompute() passes them on to its inner sweep).
  [[nodiscard]] const BackwardOptions& sweep_options() const { return sweep_opts_; }

  // ---- low level (ops, hooks, gradcheck, diagnostics) ----------------------------------
  [[nodiscard]] const Tensor& value(std::uint32_t id) const { return slots_[id].value; }
  /// The gradient slot of id for the latest sweep, zero-filled if the sweep did not reach it.
  /// Throws TapeError if a release sweep freed it.
  const Tensor& grad(std::uint32_t id) {
    TAPEGRAD_CHECK(!(slots_[id].info.grad_freed && reached(id)), TapeError,
                   "grad: the gradient of '{}' was freed by backward(release = true), which keeps only the "
                   "leaves' gradients; read it in a hook, or sweep without release",
                   display_name(id));
    return grad_slot(id);
  }
  [[nodiscard]] bool requires_grad(std::uint32_t id) const { return slots_[id].info.requires_grad; }
  [[nodiscard]] int time_of(std::uint32_t id) const { return slots_[id].info.time; }
  [[nodiscard]] const std::string& name_of(std::uint32_t id) const {
    return slots_[id].info.named ? names_[id] : kNoName;
  }
  void set_name(std::uint32_t id, std::string_view name) {
    if (names_.size() <= id) names_.resize(std::size_t{id} + 1);  // names are rare: grown on first use
    names_[id].assign(name);
    slots_[id].info.named = true;
  }
  /// The first entry index that could read slot id (entries before it cannot).
  [[nodiscard]] std::uint32_t first_entry_after(std::uint32_t id) const { return slots_[id].info.created_at; }
  /// "name" if the node has one, else "#id (op)".
  [[nodiscard]] std::string display_name(std::uint32_t id) const {
    if (slots_[id].info.named && !names_[id].empty()) return names_[id];
    return fmt::format("#{} ({})", id, slots_[id].info.producer_op);
  }

  /// Throws TapeError unless v is a live handle on this tape; op and arg name the caller.
  void check(const Var<S>& v, std::string_view op, std::string_view arg) const {
    TAPEGRAD_CHECK(v.tape_ != nullptr, TapeError, "{}: argument '{}' is an empty Var (default-constructed)", op, arg);
    TAPEGRAD_CHECK(v.tape_ == this, TapeError, "{}: argument '{}' belongs to another tape", op, arg);
    TAPEGRAD_CHECK(live(v.id_, v.epoch_), TapeError,
                   "{}: argument '{}' (node #{}) was used after its tape was cleared or rewound", op, arg, v.id_);
  }

  /// check() for input `index` of op, formatting the argument name only on failure (hot path).
  TAPEGRAD_HOT void check_input(const Var<S>& v, const char* op, std::size_t index) const {
    if (v.tape_ == this && live(v.id_, v.epoch_)) [[likely]]
      return;
    fail_input(v, op, index);
  }
  /// check_input(), then whether input `index` requires a gradient (apply's hot path).
  [[nodiscard]] TAPEGRAD_HOT bool checked_requires_grad(const Var<S>& v, const char* op, std::size_t index) const {
    check_input(v, op, index);
    return slots_[v.id_].info.requires_grad;
  }

  /// Registers fn to run on dL/dv when it is final (see Var::register_hook).
  void register_hook(const Var<S>& v, std::function<void(Tensor&)> fn) {
    check(v, "register_hook", "v");
    TAPEGRAD_CHECK(!consumed(v.id()), TapeError,
                   "register_hook: node '{}' was already consumed by a later op; register hooks right after "
                   "the node is created, before any op reads it",
                   display_name(v.id()));
    TAPEGRAD_CHECK(static_cast<bool>(fn), ValueError, "register_hook: the hook for '{}' is empty",
                   display_name(v.id()));
    Entry& e = entries_.emplace_back("hook", v.id(), u32(args_.size()), 0, 0, 0, u32(ints_.size()), 0,
                                     [hook = std::move(fn)](OpCtx<S>& ctx) mutable { hook(ctx.gy_mutable()); });
    e.is_hook = true;
  }

  // Recording, used by apply() in op.h. A slot is created with its shape; its buffer is
  // reused when the shape repeats.
  enum class SlotKind : std::uint8_t { Constant, Variable, Parameter, Op, Aux };
  TAPEGRAD_HOT std::uint32_t new_slot(Index rows, Index cols, SlotKind kind, bool requires_grad, const char* op) {
    const std::uint32_t id = n_values_;
    if (id >= slots_.size()) [[unlikely]]
      grow_slots(id);
    Slot& slot = slots_[id];
    // Only a changed shape touches Eigen (a resize to the same shape is a no-op, but a call).
    if (slot.value.rows() != rows || slot.value.cols() != cols) slot.value.resize(rows, cols);
    slot.info = SlotInfo{op, epoch_, current_time_, u32(entries_.size()), 0, kind, requires_grad, false, false};
    n_values_ = id + 1;
    return id;
  }
  Tensor& mutable_value(std::uint32_t id) { return slots_[id].value; }
  Var<S> handle(std::uint32_t id) { return Var<S>(this, id, slots_[id].info.epoch); }
  std::vector<std::uint32_t>& args() { return args_; }
  std::vector<std::int32_t>& ints() { return ints_; }
  /// Records an entry: args_[args_begin ..] holds its n_in inputs, then n_aux aux slots, then
  /// n_extra extra output slots (created right after out).
  template <class Backward>
  void record(const char* op, std::uint32_t out, std::uint32_t args_begin, std::uint16_t n_in, std::uint16_t n_aux,
              std::uint16_t n_extra, std::uint32_t ints_begin, std::uint32_t n_ints, Backward&& backward) {
    entries_.emplace_back(op, out, args_begin, n_in, n_aux, n_extra, ints_begin, n_ints,
                          std::forward<Backward>(backward));
  }
  /// Throws NumericError if a forward value holds NaN/Inf (anomaly mode only).
  TAPEGRAD_HOT void check_forward_finite(std::uint32_t out, std::span<const std::uint32_t> inputs) const {
    if (anomaly_) [[unlikely]] {
      const Tensor& v = slots_[out].value;
      if (!(v.size() == 1 ? std::isfinite(v.data()[0]) : v.allFinite())) raise_anomaly("forward value", out, v, inputs);
    }
  }

 private:
  friend class Var<S>;
  friend class OpCtx<S>;
  using BackwardFn = detail::InlineFunction<void(OpCtx<S>&), 32>;

  struct Entry {
    template <class F>
    Entry(const char* op_name, std::uint32_t out_id, std::uint32_t args_at, std::uint16_t inputs, std::uint16_t auxes,
          std::uint16_t extras, std::uint32_t ints_at, std::uint32_t ints_count, F&& fn)
        : op(op_name),
          out(out_id),
          args_begin(args_at),
          ints_begin(ints_at),
          n_ints(ints_count),
          n_in(inputs),
          n_aux(auxes),
          n_extra(extras),
          backward(std::forward<F>(fn)) {}
    const char* op;
    std::uint32_t out;
    std::uint32_t args_begin;  // inputs, then aux slots, then extra outputs, in args_
    std::uint32_t ints_begin;
    std::uint32_t n_ints;
    std::uint16_t n_in;
    std::uint16_t n_aux;
    std::uint16_t n_extra;
    bool is_hook = false;
    bool released = false;
    BackwardFn backward;
  };
  struct SlotInfo {  // 32 bytes on 64-bit targets
    const char* producer_op = "leaf";
    std::uint32_t epoch = 0;
    std::int32_t time = kNoTime;
    std::uint32_t created_at = 0;
    std::uint32_t grad_stamp = 0;
    SlotKind kind = SlotKind::Constant;
    bool requires_grad = false;
    bool named = false;       // names_[id] holds its name (names_ is only grown by set_name)
    bool grad_freed = false;  // a release sweep freed this sweep's gradient
  };
  // Everything the hot paths touch for one value, side by side: one lookup, one or two cache lines.
  struct Slot {
    Tensor value;
    Tensor grad;
    SlotInfo info;
  };
  struct ParamLeaf {
    std::uint32_t id;
    Parameter<S>* param;
  };

  static std::uint32_t u32(std::size_t n) { return static_cast<std::uint32_t>(n); }
  inline static const std::string kNoName{};

  // True if a live op entry reads id. Scans only the entries recorded since id was created
  // (hooks are registered right after their node, so this is usually none): recording an op
  // does no bookkeeping for it, and an entry dropped by rewind() no longer counts.
  [[nodiscard]] bool consumed(std::uint32_t id) const {
    for (std::size_t i = slots_[id].info.created_at; i < entries_.size(); ++i) {
      const Entry& e = entries_[i];
      if (e.is_hook) continue;
      for (std::uint32_t k = 0; k < e.n_in; ++k) {
        if (args_[e.args_begin + k] == id) return true;
      }
    }
    return false;
  }
  [[nodiscard]] TAPEGRAD_HOT bool live(std::uint32_t id, std::uint32_t epoch) const {
    return id < n_values_ && slots_[id].info.epoch == epoch;
  }
  [[noreturn, gnu::noinline, gnu::cold]] void fail_input(const Var<S>& v, const char* op, std::size_t index) const {
    check(v, op, fmt::format("input {}", index));
    throw TapeError(fmt::format("{}: input {} is not a live handle", op, index));  // not reached
  }

  Var<S> make_leaf(const Tensor& value, bool requires_grad, SlotKind kind) {
    const char* op = kind == SlotKind::Parameter ? "parameter" : (requires_grad ? "variable" : "constant");
    const std::uint32_t id = new_slot(value.rows(), value.cols(), kind, requires_grad, op);
    slots_[id].value = value;  // slots_ never moves, so value may itself be a slot of this tape
    if (anomaly_ && !slots_[id].value.allFinite()) raise_anomaly("leaf value", id, slots_[id].value, {});
    return handle(id);
  }

  // True when the first m.values slots and m.entries entries are still those m was taken on:
  // the last kept slot is no newer than the mark, and the last kept entry (which references
  // the newest slots and args of any kept entry) reads only kept slots, args and ints.
  [[nodiscard]] bool is_prefix(const Mark& m) const {
    if (m.values > 0 && slots_[m.values - 1].info.epoch > m.epoch) return false;
    if (m.entries > 0) {
      const Entry& e = entries_[m.entries - 1];
      const std::uint32_t n_args = std::uint32_t{e.n_in} + e.n_aux + e.n_extra;
      if (e.out >= m.values || e.args_begin + n_args > m.args || e.ints_begin + e.n_ints > m.ints) return false;
      for (std::uint32_t k = 0; k < n_args; ++k) {
        if (args_[e.args_begin + k] >= m.values) return false;
      }
    }
    return m.params == 0 || params_[m.params - 1].id < m.values;
  }

  [[gnu::noinline]] void grow_slots(std::uint32_t id) { slots_.grow_to(std::size_t{id} + 1); }

  TAPEGRAD_HOT Tensor& grad_slot(std::uint32_t id) {
    Slot& slot = slots_[id];
    if (slot.info.grad_stamp != stamp_) {
      // First touch in this sweep: zero-fill (a 1x1 gradient is one store, not a memset call).
      Tensor& g = slot.grad;
      if (g.rows() != slot.value.rows() || g.cols() != slot.value.cols())
        g.resize(slot.value.rows(), slot.value.cols());
      if (g.size() == 1) {
        g.data()[0] = S(0);
      } else {
        g.setZero();
      }
      slot.info.grad_stamp = stamp_;
      slot.info.grad_freed = false;
    }
    return slot.grad;
  }
  [[nodiscard]] TAPEGRAD_HOT bool reached(std::uint32_t id) const { return slots_[id].info.grad_stamp == stamp_; }
  // Whether the sweep reached an entry: its main output, or (rarely present) an extra output.
  [[nodiscard]] TAPEGRAD_HOT bool reached(const Entry& e) const {
    if (reached(e.out)) [[likely]]
      return true;
    for (std::uint32_t k = 0; k < e.n_extra; ++k) {
      if (reached(extra_output_id(e, k))) return true;
    }
    return false;
  }
  [[nodiscard]] std::uint32_t extra_output_id(const Entry& e, std::uint32_t k) const {
    return args_[e.args_begin + e.n_in + e.n_aux + k];
  }
  // backward(release = true): after entry e ran, nothing reads its aux tensors or its outputs'
  // gradients again (consumers of its outputs were swept before it; hooks on them too).
  void free_released(const Entry& e) {
    for (std::uint32_t k = 0; k < e.n_aux; ++k) slots_[args_[e.args_begin + e.n_in + k]].value = Tensor();
    free_grad(e.out);
    for (std::uint32_t k = 0; k < e.n_extra; ++k) free_grad(extra_output_id(e, k));
  }
  // OpCtx::take_aux_as_gx: a release sweep's entry gives its saved tensor to input id as the
  // gradient buffer, when that gradient is untouched in this sweep and the shapes match.
  bool adopt_as_grad(std::uint32_t id, std::uint32_t donor) {
    Slot& slot = slots_[id];
    Tensor& buffer = slots_[donor].value;
    if (!sweep_opts_.release || reached(id) || buffer.rows() != slot.value.rows() ||
        buffer.cols() != slot.value.cols()) {
      return false;
    }
    slot.grad.swap(buffer);  // the donor now holds the old buffer, freed with the entry's aux
    slot.info.grad_stamp = stamp_;
    slot.info.grad_freed = false;
    return true;
  }
  void free_grad(std::uint32_t id) {
    if (!reached(id)) return;
    slots_[id].grad = Tensor();
    slots_[id].info.grad_freed = true;
  }

  // seed == nullptr seeds dL/dy with ones.
  void sweep(std::uint32_t seed_id, const Tensor* seed, const BackwardOptions& opts);
  void run_observed(std::size_t i, OpCtx<S>& ctx);

  [[noreturn]] void raise_anomaly(std::string_view what, std::uint32_t id, const Tensor& bad,
                                  std::span<const std::uint32_t> inputs) const {
    const bool has_nan = bad.hasNaN();
    std::string shapes;  // each input by name and shape, so the culprit can be found in user code
    for (std::uint32_t in : inputs) {
      shapes += fmt::format("{}'{}' {}", shapes.empty() ? "" : ", ", display_name(in), shape_of(slots_[in].value));
    }
    const int t = slots_[id].info.time;
    throw NumericError(fmt::format("anomaly: {} of op '{}' (node '{}'{}) holds {} in its {} tensor; inputs: [{}]", what,
                                   slots_[id].info.producer_op, display_name(id),
                                   t == kNoTime ? std::string() : fmt::format(", time step {}", t),
                                   has_nan ? "NaN" : "Inf", shape_of(bad), shapes));
  }

  detail::StableVector<Slot> slots_;
  std::vector<std::string> names_;
  std::vector<Entry> entries_;
  std::vector<std::uint32_t> args_;
  std::vector<std::int32_t> ints_;
  std::vector<ParamLeaf> params_;
  std::vector<InputGradEvent> observed_inputs_;
  std::vector<Tensor> observed_before_;
  Observer observer_;
  std::uint32_t n_values_ = 0;
  std::uint32_t epoch_ = 1;
  std::uint32_t stamp_ = 1;
  int current_time_ = kNoTime;
  bool anomaly_ = false;
  BackwardOptions sweep_opts_{};
};

/// What an op's forward and backward closures see: input values x(i), the output y(),
/// auxiliary saved tensors aux(k) and integers ints(), and in backward the output gradient
/// gy() and the input gradient accumulators gx(i) (zero-filled on first use in a sweep).
template <class S>
class OpCtx {
 public:
  using Tensor = Matrix<S>;
  OpCtx(Tape<S>& tape, std::uint32_t out, std::uint32_t args_begin, std::uint16_t n_in, std::uint16_t n_aux,
        std::uint16_t n_extra, std::uint32_t ints_begin, std::uint32_t n_ints)
      : tape_(tape),
        out_(out),
        args_begin_(args_begin),
        n_in_(n_in),
        n_aux_(n_aux),
        n_extra_(n_extra),
        ints_begin_(ints_begin),
        n_ints_(n_ints) {}

  [[nodiscard]] std::size_t num_inputs() const { return n_in_; }
  [[nodiscard]] TAPEGRAD_HOT const Tensor& x(std::size_t i) const { return tape_.slots_[input_id(i)].value; }
  [[nodiscard]] TAPEGRAD_HOT std::uint32_t input_id(std::size_t i) const { return tape_.args_[args_begin_ + i]; }
  [[nodiscard]] TAPEGRAD_HOT bool needs_grad(std::size_t i) const {
    return tape_.slots_[input_id(i)].info.requires_grad;
  }
  /// The output value (written by forward, read by backward).
  TAPEGRAD_HOT Tensor& y() { return tape_.slots_[out_].value; }
  [[nodiscard]] TAPEGRAD_HOT const Tensor& y() const { return tape_.slots_[out_].value; }
  /// Saved auxiliary tensor k (shapes given in OpSpec::aux).
  Tensor& aux(std::size_t k) { return tape_.slots_[aux_id(k)].value; }
  /// In a release sweep (BackwardOptions::release), when input i's gradient is still untouched
  /// and aux(k) has its shape, moves aux(k)'s buffer into it and returns true: the op then turns
  /// its saved tensor into gx(i) in place (assign, the buffer is not zeroed), with no new buffer
  /// at the sweep's peak. Otherwise returns false, changes nothing, and the op adds into gx(i).
  bool take_aux_as_gx(std::size_t i, std::size_t k) { return tape_.adopt_as_grad(input_id(i), aux_id(k)); }
  /// Output k: 0 is the main output y(), 1.. the extra outputs (OpSpec::extra_outputs).
  Tensor& y(std::size_t k) { return tape_.slots_[output_id(k)].value; }
  [[nodiscard]] const Tensor& y(std::size_t k) const { return tape_.slots_[output_id(k)].value; }
  /// dL/d(output k) (backward only), or nullptr when the sweep did not reach output k (its
  /// gradient is zero). For k = 0 it is never null: use gy().
  [[nodiscard]] const Tensor* gy_or_null(std::size_t k) const {
    const std::uint32_t id = output_id(k);
    return k == 0 || tape_.reached(id) ? &tape_.slots_[id].grad : nullptr;
  }
  /// Saved integers (OpSpec::ints), e.g. class targets or row indices.
  [[nodiscard]] std::span<const std::int32_t> ints() const { return {tape_.ints_.data() + ints_begin_, n_ints_}; }
  /// dL/dy (backward only).
  [[nodiscard]] TAPEGRAD_HOT const Tensor& gy() const { return tape_.slots_[out_].grad; }
  /// dL/dx_i accumulator (backward only): always add into it.
  TAPEGRAD_HOT Tensor& gx(std::size_t i) { return tape_.grad_slot(input_id(i)); }
  /// The output's time tag.
  [[nodiscard]] int time() const { return tape_.slots_[out_].info.time; }
  Tape<S>& tape() { return tape_; }

 private:
  friend class Tape<S>;
  Tensor& gy_mutable() { return tape_.slots_[out_].grad; }
  // args_ holds an entry's inputs, then its aux slots, then its extra outputs.
  [[nodiscard]] std::uint32_t aux_id(std::size_t k) const { return tape_.args_[args_begin_ + n_in_ + k]; }
  [[nodiscard]] std::uint32_t output_id(std::size_t k) const { return k == 0 ? out_ : aux_id(n_aux_ + k - 1); }
  Tape<S>& tape_;
  std::uint32_t out_;
  std::uint32_t args_begin_;
  std::uint16_t n_in_;
  std::uint16_t n_aux_;
  std::uint16_t n_extra_;
  std::uint32_t ints_begin_;
  std::uint32_t n_ints_;
};

// ---- the reverse sweep ----------------------------------------------------------------
template <class S>
void Tape<S>::sweep(std::uint32_t seed_id, const Tensor* seed, const BackwardOptions& opts) {
  ++stamp_;
  sweep_opts_ = opts;
  if (seed == nullptr) {
    grad_slot(seed_id).setOnes();
  } else if (seed == &slots_[seed_id].grad) {
    slots_[seed_id].info.grad_stamp = stamp_;  // seeded with its own previous gradient: keep it as is
  } else {
    grad_slot(seed_id) = *seed;
  }
  const bool instrumented = observer_ || anomaly_;
  for (std::size_t i = entries_.size(); i-- > opts.from.entries;) {
    Entry& e = entries_[i];
    if (!reached(e.out)) [[unlikely]] {
      if (e.n_extra == 0 || !reached(e)) continue;
      grad_slot(e.out);  // reached through an extra output only: gy() reads zeros
    }
    if (e.is_hook || e.released) [[unlikely]] {
      if (e.is_hook && !opts.run_hooks) continue;
      TAPEGRAD_CHECK(!e.released, TapeError,
                     "backward: entry {} (op '{}', node '{}') was released by an earlier backward(release = true); "
                     "backward twice over a released window is not possible",
                     i, e.op, display_name(e.out));
    }
    // Released before it runs: a backward that consumes its saved tensors in place (a release
    // sweep's lstm_sequence_gather) must never run twice, even if it throws half way.
    if (opts.release) [[unlikely]]
      e.released = true;
    OpCtx<S> ctx(*this, e.out, e.args_begin, e.n_in, e.n_aux, e.n_extra, e.ints_begin, e.n_ints);
    if (instrumented) [[unlikely]] {
      run_observed(i, ctx);
    } else {
      e.backward(ctx);
    }
    if (opts.release && !e.is_hook) [[unlikely]]
      free_released(e);
  }
  if (opts.accumulate_parameters) {
    for (const ParamLeaf& p : params_) {
      if (p.id >= n_values_ || !reached(p.id)) continue;
      if (p.param->grad.rows() != p.param->value.rows() || p.param->grad.cols() != p.param->value.cols()) {
        p.param->zero_grad();
      }
      p.param->grad += slots_[p.id].grad;
    }
  }
}

// The instrumented path: observer events and anomaly checks, kept out of the plain loop.
template <class S>
void Tape<S>::run_observed(std::size_t i, OpCtx<S>& ctx) {
  Entry& e = entries_[i];
  observed_inputs_.clear();
  if (observer_) {
    observed_before_.resize(e.n_in);
    for (std::size_t k = 0; k < e.n_in; ++k) {
      const std::uint32_t in = ctx.input_id(k);
      observed_before_[k] =
          reached(in) ? slots_[in].grad : Tensor::Zero(slots_[in].value.rows(), slots_[in].value.cols());
    }
  }
  const double gy_norm = static_cast<double>(slots_[e.out].grad.norm());
  e.backward(ctx);
  for (std::size_t k = 0; k < e.n_in; ++k) {
    const std::uint32_t in = ctx.input_id(k);
    if (!reached(in)) {
      if (observer_) observed_inputs_.push_back({in, shape_of(slots_[in].value), 0.0});
      continue;
    }
    if (anomaly_ && !slots_[in].grad.allFinite()) {
      std::vector<std::uint32_t> ins;
      for (std::size_t j = 0; j < e.n_in; ++j) ins.push_back(ctx.input_id(j));
      raise_anomaly(fmt::format("backward gradient for input {}", k), e.out, slots_[in].grad, ins);
    }
    if (observer_) {
      const double passed = static_cast<double>((slots_[in].grad - observed_before_[k]).norm());
      observed_inputs_.push_back({in, shape_of(slots_[in].value), passed});
    }
  }
  if (anomaly_ && e.is_hook && !slots_[e.out].grad.allFinite()) {
    raise_anomaly("gradient returned by a hook", e.out, slots_[e.out].grad, {});
  }
  if (observer_) {
    observer_(NodeEvent{i, e.op, e.out, name_of(e.out), slots_[e.out].info.time, shape_of(slots_[e.out].value), gy_norm,
                        observed_inputs_});
  }
}

// ---- Var ------------------------------------------------------------------------------
// The accessors check the handle inline (one compare of the slot's epoch) and format an error
// message only on failure.
template <class S>
void Var<S>::fail(const char* accessor) const {
  TAPEGRAD_CHECK(tape_ != nullptr, TapeError, "Var::{}: empty handle (default-constructed Var) has no tape", accessor);
  throw TapeError(
      fmt::format("Var::{}: the handle (node #{}) was used after its tape was cleared or rewound", accessor, id_));
}
template <class S>
Tape<S>& Var<S>::tape() const {
  TAPEGRAD_CHECK(tape_ != nullptr, TapeError, "Var: empty handle (default-constructed) has no tape");
  return *tape_;
}
template <class S>
TAPEGRAD_HOT const Matrix<S>& Var<S>::value() const {
  return checked("value").slots_[id_].value;
}
template <class S>
const Matrix<S>& Var<S>::grad() const {
  return checked("grad").grad(id_);
}
template <class S>
S Var<S>::item() const {
  const Matrix<S>& v = value();
  TAPEGRAD_CHECK(v.size() == 1, ShapeError, "item: node '{}' is {}, not [1 x 1]", tape_->display_name(id_),
                 shape_of(v));
  return v(0, 0);
}
template <class S>
bool Var<S>::requires_grad() const {
  return checked("requires_grad").slots_[id_].info.requires_grad;
}
template <class S>
const Var<S>& Var<S>::set_name(std::string_view name) const {
  checked("set_name").set_name(id_, name);
  return *this;
}
template <class S>
const std::string& Var<S>::name() const {
  return checked("name").name_of(id_);
}
template <class S>
int Var<S>::time() const {
  return checked("time").slots_[id_].info.time;
}
template <class S>
void Var<S>::register_hook(std::function<void(Matrix<S>&)> fn) const {
  tape().register_hook(*this, std::move(fn));
}
template <class S>
void Var<S>::backward() const {
  tape().backward(*this);
}

}  // namespace tapegrad
