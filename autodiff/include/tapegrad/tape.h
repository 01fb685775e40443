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
//    shapes again reuses the same memory (no allocation in steady state). A release sweep
//    trades that reuse for peak memory (detail/release.h).
// 5. A Var is {tape anchor, slot id, epoch}. Every slot remembers the epoch it was created in,
//    and clear()/rewind() bump the epoch, so a handle to a discarded slot is detected, not read;
//    the anchor outlives the tape (detail/tape_anchor.h), so a handle to a dead tape is too.
// 6. Parameters enter as leaves holding a copy of their value; after a sweep, each
//    parameter leaf that the sweep reached adds its gradient into Parameter::grad. That is
//    how a weight shared across time steps gets the sum over every path, and why a sweep
//    over a window (backward from a Mark) still reaches the parameters. A parameter moved,
//    destroyed or resized since it was recorded is refused before any grad changes (parameter.h).
// 7. An op has one main output and may have extra outputs. The sweep runs the entry when any
//    of its outputs was reached; the main output's gradient is then zero-filled if needed, an
//    extra output's is read through OpCtx::gy_or_null.
// 8. The sweep loop is a template over a per-entry runner chosen once per sweep. The plain
//    runner only calls the closure; releasing (detail/release.h) and the observer and anomaly
//    checks (instrument.h) are other runners, so the plain loop carries no special case.
//
// Note [Callback contract]
// User code runs inside the engine in three places: an op's forward, a backward closure (hooks
// are entries too) and the observer. While one runs the tape is busy (TapeStore::busy): it may
// be read, and a hook may change the values of the gradient it is given, but every call that
// changes the record (recording, leaf, clear, rewind, register_hook, set_observer, set_name,
// set_anomaly_mode, backward) throws TapeError instead of invalidating the entries being run.
// A hook's gradient is checked for its node's shape after every hook (ShapeError).
// The engine knows nothing about ops or time: ops live in ops_*.cpp, truncation in window.h.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

#include <tapegrad/detail/tape_anchor.h>
#include <tapegrad/detail/tape_store.h>
#include <tapegrad/detail/time_scope.h>

namespace tapegrad {

template <class S>
class Tape;
struct NodeEvent;

namespace detail {
template <class S>
struct PlainRun;
template <class S>
struct ReleaseRun;
template <class S, class Run>
class Instrumented;
}  // namespace detail

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
/// drops its slot or the tape is destroyed (using it then throws TapeError).
template <class S>
class Var {
 public:
  using Scalar = S;
  Var() = default;

  [[nodiscard]] TAPEGRAD_HOT Tape<S>& tape() const {
    Tape<S>* t = tape_ptr();
    if (t == nullptr) [[unlikely]]
      fail("tape");
    return *t;
  }
  [[nodiscard]] std::uint32_t id() const { return id_; }
  [[nodiscard]] TAPEGRAD_HOT bool valid() const {
    const Tape<S>* t = tape_ptr();
    return t != nullptr && t->s_.live(id_, epoch_);
  }
  /// True for a default-constructed handle (no tape).
  [[nodiscard]] bool empty() const { return anchor_ == nullptr; }
  /// The forward value.
  [[nodiscard]] TAPEGRAD_HOT const Matrix<S>& value() const { return checked("value").s_.slots[id_].value; }
  /// dL/dv from the latest backward sweep (zeros where the sweep did not reach v).
  [[nodiscard]] const Matrix<S>& grad() const { return checked("grad").grad(id_); }
  [[nodiscard]] Shape shape() const { return shape_of(value()); }
  [[nodiscard]] Index rows() const { return value().rows(); }
  [[nodiscard]] Index cols() const { return value().cols(); }
  /// The value of a 1x1 tensor.
  [[nodiscard]] S item() const {
    TAPEGRAD_CHECK(value().size() == 1, ShapeError, "item: node '{}' is {}, not [1 x 1]", tape().display_name(id_),
                   shape());
    return value()(0, 0);
  }
  [[nodiscard]] bool requires_grad() const { return checked("requires_grad").requires_grad(id_); }
  /// Names the node (shown by errors, the observer and diagnostics). Returns *this.
  const Var& set_name(std::string_view name) const {
    checked("set_name").set_name(id_, name);
    return *this;
  }
  [[nodiscard]] const std::string& name() const { return checked("name").name_of(id_); }
  /// The time-step tag in force when the node was recorded (kNoTime outside any scope).
  [[nodiscard]] int time() const { return checked("time").s_.slots[id_].info.time; }
  /// Runs fn(dL/dv) once per sweep, when the gradient is final; fn may modify it.
  void register_hook(std::function<void(Matrix<S>&)> fn) const { tape().register_hook(*this, std::move(fn)); }
  /// Backward from this 1x1 value (a loss) over the whole tape.
  void backward() const { tape().backward(*this); }

 private:
  friend class Tape<S>;
  Var(detail::TapeAnchor* anchor, std::uint32_t id, std::uint32_t epoch) : anchor_(anchor), id_(id), epoch_(epoch) {}
  // The live tape that made this handle, or null (empty handle, or its tape was destroyed).
  TAPEGRAD_HOT Tape<S>* tape_ptr() const {
    return anchor_ == nullptr ? nullptr : static_cast<Tape<S>*>(anchor_->tape_for(epoch_));
  }
  // Throws TapeError for an empty, stale or orphaned handle, naming the accessor; returns the tape.
  TAPEGRAD_HOT Tape<S>& checked(const char* accessor) const {
    Tape<S>* t = tape_ptr();
    if (t != nullptr && t->s_.live(id_, epoch_)) [[likely]]
      return *t;
    fail(accessor);
  }
  [[noreturn, gnu::noinline, gnu::cold]] void fail(const char* accessor) const;
  detail::TapeAnchor* anchor_ = nullptr;  // never freed (detail/tape_anchor.h): safe to read after the tape died
  std::uint32_t id_ = 0;
  std::uint32_t epoch_ = 0;
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

  Tape() : anchor_(detail::TapeAnchorPool::acquire(this)) { s_.epoch = anchor_->first_epoch(); }
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;
  ~Tape() { detail::TapeAnchorPool::release(anchor_, s_.epoch + 1); }

  // ---- leaves -------------------------------------------------------------------------
  /// A value with no gradient (data, targets, a detached state).
  Var<S> constant(const Tensor& value) { return make_leaf(value, false, "constant"); }
  /// A leaf whose gradient is readable through Var::grad() after backward.
  Var<S> variable(const Tensor& value) { return make_leaf(value, true, "variable"); }
  /// A parameter's value as a leaf named p.full_name(); each sweep that reaches it adds to p.grad. The first call
  /// on a tape copies p.value; later calls (until clear/rewind drops that leaf) return the
  /// same leaf, so a cell can call leaf(W) at every step and W is recorded once.
  /// A parameter resized since this tape recorded it throws ShapeError; one moved or destroyed
  /// while the tape refers to it makes the next backward throw TapeError (parameter.h).
  Var<S> leaf(Parameter<S>& p) {
    s_.require_idle("leaf");
    const detail::ParamAnchor* anchor = detail::ParamAccess::peek(p);
    for (auto it = s_.params.rbegin(); anchor != nullptr && it != s_.params.rend(); ++it) {
      if (it->anchor.get() != anchor) continue;
      TAPEGRAD_CHECK(shape_of(p.value) == shape_of(value(it->id)), ShapeError,
                     "leaf: parameter '{}' is {} but was {} when this tape first recorded it; clear or rewind the "
                     "tape after resizing a parameter",
                     p.full_name(), shape_of(p.value), shape_of(value(it->id)));
      return handle(it->id);
    }
    Var<S> v = make_leaf(p.value, true, "parameter", p.full_name());
    s_.params.push_back({v.id(), &p, detail::ParamAccess::anchor(p)});
    return v;
  }

  // ---- positions -----------------------------------------------------------------------
  [[nodiscard]] Mark mark() const {
    return {u32(s_.entries.size()), s_.n_values,           u32(s_.args.size()),
            u32(s_.ints.size()),    u32(s_.params.size()), s_.epoch};
  }
  /// Drops everything recorded after m; buffers are kept for reuse. A stale mark (part of the
  /// tape it points into was dropped by a later clear/rewind, or it is another tape's) throws.
  void rewind(const Mark& m) {
    s_.require_idle("rewind");
    TAPEGRAD_CHECK(m.entries <= s_.entries.size() && m.values <= s_.n_values && m.args <= s_.args.size() &&
                       m.ints <= s_.ints.size() && m.params <= s_.params.size(),
                   TapeError,
                   "rewind: mark (entries {}, values {}) is past the end of the tape (entries {}, values {})",
                   m.entries, m.values, s_.entries.size(), s_.n_values);
    TAPEGRAD_CHECK(s_.is_prefix(m), TapeError,
                   "rewind: mark (entries {}, values {}) is stale: the tape it points into was cut by a later clear() "
                   "or rewind() (or the mark belongs to another tape)",
                   m.entries, m.values);
    s_.entries.erase(s_.entries.begin() + m.entries, s_.entries.end());
    s_.args.resize(m.args);
    s_.ints.resize(m.ints);
    s_.params.resize(m.params);
    s_.n_values = m.values;
    ++s_.epoch;
  }
  /// Drops the whole record; buffers are kept, so the next step reuses them.
  void clear() {
    s_.require_idle("clear");
    rewind(Mark{});
  }

  [[nodiscard]] std::size_t num_entries() const { return s_.entries.size(); }
  [[nodiscard]] std::size_t num_values() const { return s_.n_values; }

  // ---- backward ------------------------------------------------------------------------
  /// Reverse sweep from a 1x1 loss, seeded with dL/dL = 1.
  void backward(const Var<S>& loss, const BackwardOptions& opts = {}) {
    check(loss, "backward", "loss");
    TAPEGRAD_CHECK(value(loss.id()).size() == 1, ShapeError,
                   "backward: the loss '{}' is {}, not a scalar [1 x 1]; pass a seed of the same shape",
                   display_name(loss.id()), shape_of(value(loss.id())));
    sweep(loss.id(), nullptr, opts);  // seeded with ones in place: no temporary, no allocation
  }
  /// Reverse sweep from y seeded with dL/dy = seed (same shape as y).
  void backward(const Var<S>& y, const Tensor& seed, const BackwardOptions& opts = {}) {
    check(y, "backward", "y");
    TAPEGRAD_CHECK(shape_of(seed) == shape_of(value(y.id())), ShapeError, "backward: seed is {} but '{}' is {}",
                   shape_of(seed), display_name(y.id()), shape_of(value(y.id())));
    sweep(y.id(), &seed, opts);
  }

  // ---- time tags, names ------------------------------------------------------------------
  /// Sets the time-step tag for every node recorded while the returned scope lives. Scopes
  /// close in reverse order of opening; one closed early throws TapeError (detail/time_scope.h).
  using TimeScope = detail::TimeScope<S>;
  TimeScope time_step(int t) { return TimeScope(*this, t); }
  [[nodiscard]] int current_time() const { return s_.current_time; }

  // ---- inspection ------------------------------------------------------------------------
  /// Called for every entry a sweep runs (op, name, time tag, shapes, gradient norms).
  /// Costs one branch per sweep when unset.
  void set_observer(Observer observer) {
    s_.require_idle("set_observer");
    observer_ = std::move(observer);
  }
  /// When on, the first NaN or Inf in a forward value or a backward gradient throws
  /// NumericError naming the op, its name, time tag and shapes.
  void set_anomaly_mode(bool on) {
    s_.require_idle("set_anomaly_mode");
    s_.anomaly = on;
  }
  [[nodiscard]] bool anomaly_mode() const { return s_.anomaly; }
  /// The options of the latest sweep; read inside a backward closure, those of the sweep running it
  /// (recompute() passes them on to its inner sweep).
  [[nodiscard]] const BackwardOptions& sweep_options() const { return sweep_opts_; }

  // ---- nodes by id (gradcheck, jacobian, diagnostics) ----------------------------------
  [[nodiscard]] const Tensor& value(std::uint32_t id) const { return s_.slots[id].value; }
  /// The gradient slot of id for the latest sweep, zero-filled if the sweep did not reach it.
  /// Throws TapeError if a release sweep freed it.
  const Tensor& grad(std::uint32_t id) {
    TAPEGRAD_CHECK(!(s_.slots[id].info.grad_freed && s_.reached(id)), TapeError,
                   "grad: the gradient of '{}' was freed by backward(release = true), which keeps only the "
                   "leaves' gradients; read it in a hook, or sweep without release",
                   display_name(id));
    return s_.grad_slot(id);
  }
  [[nodiscard]] bool requires_grad(std::uint32_t id) const { return s_.slots[id].info.requires_grad; }
  [[nodiscard]] const std::string& name_of(std::uint32_t id) const { return s_.name_of(id); }
  void set_name(std::uint32_t id, std::string_view name) {
    s_.require_idle("set_name");
    if (s_.names.size() <= id) s_.names.resize(std::size_t{id} + 1);  // names are rare: grown on first use
    s_.names[id].assign(name);
    s_.slots[id].info.named = true;
  }
  /// The first entry index that could read slot id (entries before it cannot).
  [[nodiscard]] std::uint32_t first_entry_after(std::uint32_t id) const { return s_.slots[id].info.created_at; }
  /// "name" if the node has one, else "#id (op)".
  [[nodiscard]] std::string display_name(std::uint32_t id) const { return s_.display_name(id); }

  /// Throws TapeError unless v is a live handle on this tape; op and arg name the caller.
  void check(const Var<S>& v, std::string_view op, std::string_view arg) const {
    TAPEGRAD_CHECK(v.anchor_ != nullptr, TapeError, "{}: argument '{}' is an empty Var (default-constructed)", op, arg);
    TAPEGRAD_CHECK(v.anchor_->tape_for(v.epoch_) != nullptr, TapeError,
                   "{}: argument '{}' (node #{}) outlived its tape, which was destroyed", op, arg, v.id_);
    TAPEGRAD_CHECK(v.anchor_ == anchor_, TapeError, "{}: argument '{}' belongs to another tape", op, arg);
    TAPEGRAD_CHECK(s_.live(v.id_, v.epoch_), TapeError,
                   "{}: argument '{}' (node #{}) was used after its tape was cleared or rewound", op, arg, v.id_);
  }

  /// Registers fn to run on dL/dv when it is final (see Var::register_hook). fn may change the
  /// gradient's values, not its shape (ShapeError after fn returns), and may not change the tape.
  void register_hook(const Var<S>& v, std::function<void(Tensor&)> fn) {
    s_.require_idle("register_hook");
    check(v, "register_hook", "v");
    TAPEGRAD_CHECK(!s_.consumed(v.id()), TapeError,
                   "register_hook: node '{}' was already consumed by a later op; register hooks right after "
                   "the node is created, before any op reads it",
                   display_name(v.id()));
    TAPEGRAD_CHECK(static_cast<bool>(fn), ValueError, "register_hook: the hook for '{}' is empty",
                   display_name(v.id()));
    const detail::EntryLayout at{v.id(), u32(s_.args.size()), u32(s_.ints.size()), 0, 0, 0, 0};
    s_.entries.emplace_back("hook", at, [hook = std::move(fn)](OpCtx<S>& ctx) mutable {
      ctx.settle_weight_grads();
      hook(ctx.gy_mutable());
      ctx.check_hooked_gy();
    });
  }

 private:
  friend class Var<S>;
  friend struct detail::TapeAccess;
  using Entry = detail::Entry<S>;

  static std::uint32_t u32(std::size_t n) { return static_cast<std::uint32_t>(n); }

  Var<S> handle(std::uint32_t id) { return Var<S>(anchor_, id, s_.slots[id].info.epoch); }
  // check() for input `index` of op, formatting the argument name only on failure (hot path);
  // returns whether the input requires a gradient.
  [[nodiscard]] TAPEGRAD_HOT bool checked_requires_grad(const Var<S>& v, const char* op, std::size_t index) const {
    if (v.anchor_ != anchor_ || !s_.live(v.id_, v.epoch_)) [[unlikely]]
      fail_input(v, op, index);
    return s_.slots[v.id_].info.requires_grad;
  }
  [[noreturn, gnu::noinline, gnu::cold]] void fail_input(const Var<S>& v, const char* op, std::size_t index) const {
    check(v, op, fmt::format("input {}", index));
    throw TapeError(fmt::format("{}: input {} is not a live handle", op, index));  // not reached
  }
  // A parameter's leaf is named before its value is checked, so an anomaly names the parameter.
  Var<S> make_leaf(const Tensor& value, bool requires_grad, const char* op, std::string_view name = {}) {
    s_.require_idle(op);
    const std::uint32_t id = s_.new_slot(value.rows(), value.cols(), requires_grad, op);
    s_.slots[id].value = value;  // slots never move, so value may itself be a slot of this tape
    s_.slots[id].info.leaf = true;
    if (!name.empty()) set_name(id, name);
    s_.check_recorded(id, {});
    return handle(id);
  }
  // seed == nullptr seeds dL/dy with ones.
  void sweep(std::uint32_t seed_id, const Tensor* seed, const BackwardOptions& opts) {
    s_.require_idle("backward");
    TAPEGRAD_CHECK(opts.from.entries <= s_.entries.size(), TapeError,
                   "backward: the mark (entry {}) is past the end of the tape ({} entries); was it rewound?",
                   opts.from.entries, s_.entries.size());
    const detail::BusyGuard busy(s_.busy, detail::kBusySweep);  // Note [Callback contract]
    s_.next_stamp();
    sweep_opts_ = opts;
    if (seed == nullptr) {
      s_.grad_slot(seed_id).setOnes();
    } else if (seed == &s_.slots[seed_id].grad) {
      s_.slots[seed_id].info.grad_stamp = s_.stamp;  // seeded with its own previous gradient: keep it as is
    } else {
      s_.grad_slot(seed_id) = *seed;
    }
    const bool instrumented = observer_ || s_.anomaly;
    // Only the plain sweep batches weight gradients: the observer sees every gradient when its
    // entry runs, and a release sweep frees the output gradients a deferred product reads.
    s_.deferred.clear();  // left over if an earlier sweep threw
    s_.defer_products = !instrumented && !opts.release;
    if (!instrumented && !opts.release) [[likely]] {
      run_entries(detail::PlainRun<S>{*this}, opts);
    } else if (!instrumented) {
      run_entries(detail::ReleaseRun<S>{*this}, opts);
    } else if (opts.release) {
      run_entries(detail::Instrumented<S, detail::ReleaseRun<S>>(*this, observer_), opts);
    } else {
      run_entries(detail::Instrumented<S, detail::PlainRun<S>>(*this, observer_), opts);
    }
    detail::run_deferred_products(s_);
    if (opts.accumulate_parameters) s_.add_parameter_grads();
  }
  // The reverse sweep (invariants 1 and 7): run(i, entry) for every reached entry from the last
  // down to `from`.
  template <class Run>
  void run_entries(Run run, const BackwardOptions& opts) {
    const std::size_t from = opts.from.entries;
    const bool hooks = opts.run_hooks;
    for (std::size_t i = s_.entries.size(); i-- > from;) {
      Entry& e = s_.entries[i];
      if (!s_.reached_entry(e) || (e.is_hook() && !hooks)) continue;
      run(i, e);
    }
  }

  detail::TapeAnchor* anchor_;  // where this tape's Vars find it (detail/tape_anchor.h)
  detail::TapeStore<S> s_;
  Observer observer_;
  BackwardOptions sweep_opts_{};
};

namespace detail {

// The plain runner: calls the entry's backward closure, nothing else.
template <class S>
struct PlainRun {
  Tape<S>& tape;
  TAPEGRAD_HOT void operator()(std::size_t /*entry*/, Entry<S>& e) const {
    OpCtx<S> ctx(tape, e.at);
    e.backward(ctx);
  }
};

}  // namespace detail

template <class S>
void Var<S>::fail(const char* accessor) const {
  TAPEGRAD_CHECK(anchor_ != nullptr, TapeError, "Var::{}: empty handle (default-constructed Var) has no tape",
                 accessor);
  TAPEGRAD_CHECK(anchor_->tape_for(epoch_) != nullptr, TapeError,
                 "Var::{}: the handle (node #{}) outlived its tape, which was destroyed", accessor, id_);
  throw TapeError(
      fmt::format("Var::{}: the handle (node #{}) was used after its tape was cleared or rewound", accessor, id_));
}

}  // namespace tapegrad

// The op context and the sweep's other runners, which the sweep above instantiates.
#include <tapegrad/detail/release.h>
#include <tapegrad/instrument.h>
#include <tapegrad/op_ctx.h>
