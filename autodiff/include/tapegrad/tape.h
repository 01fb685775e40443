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
//    shapes again reuses the same memory (no allocation in steady state).
// 5. A Var is {tape, slot id, epoch}. Every slot remembers the epoch it was created in, and
//    clear()/rewind() bump the epoch, so a handle to a discarded slot is detected, not read.
// 6. Parameters enter as leaves holding a copy of their value; after a sweep, each
//    parameter leaf that the sweep reached adds its gradient into Parameter::grad. That is
//    how a weight shared across time steps gets the sum over every path, and why a sweep
//    over a window (backward from a Mark) still reaches the parameters.
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
  [[nodiscard]] bool valid() const;
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
  Mark from{};                        ///< Sweep only entries recorded at or after this mark.
  bool release = false;               ///< Mark swept entries as released: sweeping them again throws.
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
    names_[v.id()] = p.name;
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
    entries_.resize(m.entries);
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
    TAPEGRAD_CHECK(values_[loss.id()].size() == 1, ShapeError,
                   "backward: the loss '{}' is {}, not a scalar [1 x 1]; pass a seed of the same shape",
                   display_name(loss.id()), shape_of(values_[loss.id()]));
    TAPEGRAD_CHECK(opts.from.entries <= entries_.size(), TapeError,
                   "backward: the mark (entry {}) is past the end of the tape ({} entries); was it rewound?",
                   opts.from.entries, entries_.size());
    sweep(loss.id(), nullptr, opts);  // seeded with ones in place: no temporary, no allocation
  }
  /// Reverse sweep from y seeded with dL/dy = seed (same shape as y).
  void backward(const Var<S>& y, const Tensor& seed, const BackwardOptions& opts = {}) {
    check(y, "backward", "y");
    TAPEGRAD_CHECK(shape_of(seed) == shape_of(values_[y.id()]), ShapeError, "backward: seed is {} but '{}' is {}",
                   shape_of(seed), display_name(y.id()), shape_of(values_[y.id()]));
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
  [[nodiscard]] const Tensor& value(std::uint32_t id) const { return values_[id]; }
  /// The gradient slot of id for the latest sweep, zero-filled if the sweep did not reach it.
  const Tensor& grad(std::uint32_t id) { return grad_slot(id); }
  [[nodiscard]] bool requires_grad(std::uint32_t id) const { return info_[id].requires_grad; }
  [[nodiscard]] int time_of(std::uint32_t id) const { return info_[id].time; }
  [[nodiscard]] const std::string& name_of(std::uint32_t id) const { return names_[id]; }
  void set_name(std::uint32_t id, std::string_view name) { names_[id].assign(name); }
  /// The first entry index that could read slot id (entries before it cannot).
  [[nodiscard]] std::uint32_t first_entry_after(std::uint32_t id) const { return info_[id].created_at; }
  /// "name" if the node has one, else "#id (op)".
  [[nodiscard]] std::string display_name(std::uint32_t id) const {
    if (!names_[id].empty()) return names_[id];
    return fmt::format("#{} ({})", id, info_[id].producer_op);
  }

  /// Throws TapeError unless v is a live handle on this tape; op and arg name the caller.
  void check(const Var<S>& v, std::string_view op, std::string_view arg) const {
    TAPEGRAD_CHECK(v.tape_ != nullptr, TapeError, "{}: argument '{}' is an empty Var (default-constructed)", op, arg);
    TAPEGRAD_CHECK(v.tape_ == this, TapeError, "{}: argument '{}' belongs to another tape", op, arg);
    TAPEGRAD_CHECK(v.id_ < n_values_ && info_[v.id_].epoch == v.epoch_, TapeError,
                   "{}: argument '{}' (node #{}) was used after its tape was cleared or rewound", op, arg, v.id_);
  }

  /// check() for input `index` of op, formatting the argument name only on failure (hot path).
  void check_input(const Var<S>& v, std::string_view op, std::size_t index) const {
    if (v.tape_ == this && v.id_ < n_values_ && info_[v.id_].epoch == v.epoch_) [[likely]]
      return;
    check(v, op, fmt::format("input {}", index));
  }

  /// Registers fn to run on dL/dv when it is final (see Var::register_hook).
  void register_hook(const Var<S>& v, std::function<void(Tensor&)> fn) {
    check(v, "register_hook", "v");
    TAPEGRAD_CHECK(info_[v.id()].first_consumer >= entries_.size(), TapeError,
                   "register_hook: node '{}' was already consumed by a later op; register hooks right after "
                   "the node is created, before any op reads it",
                   display_name(v.id()));
    TAPEGRAD_CHECK(static_cast<bool>(fn), ValueError, "register_hook: the hook for '{}' is empty",
                   display_name(v.id()));
    Entry& e = push_entry("hook", v.id(), u32(args_.size()), 0, 0, u32(ints_.size()), 0);
    e.is_hook = true;
    e.backward = [hook = std::move(fn)](OpCtx<S>& ctx) mutable { hook(ctx.gy_mutable()); };
  }

  // Recording, used by apply() in op.h. A slot is created with its shape; its buffer is
  // reused when the shape repeats.
  enum class SlotKind : std::uint8_t { Constant, Variable, Parameter, Op, Aux };
  std::uint32_t new_slot(Index rows, Index cols, SlotKind kind, bool requires_grad, const char* op) {
    const std::uint32_t id = n_values_++;
    if (values_.size() < n_values_) {
      values_.grow_to(n_values_);
      grads_.grow_to(n_values_);
      info_.resize(n_values_);
      names_.resize(n_values_);
    }
    values_[id].resize(rows, cols);
    SlotInfo& s = info_[id];
    s.epoch = epoch_;
    s.time = current_time_;
    s.created_at = u32(entries_.size());
    s.grad_stamp = 0;
    s.kind = kind;
    s.requires_grad = requires_grad;
    s.first_consumer = kNoEntry;
    s.producer_op = op;
    names_[id].clear();
    return id;
  }
  Tensor& mutable_value(std::uint32_t id) { return values_[id]; }
  Var<S> handle(std::uint32_t id) { return Var<S>(this, id, info_[id].epoch); }
  std::vector<std::uint32_t>& args() { return args_; }
  std::vector<std::int32_t>& ints() { return ints_; }
  template <class Backward>
  void record(const char* op, std::uint32_t out, std::uint32_t args_begin, std::uint16_t n_in, std::uint16_t n_aux,
              std::uint32_t ints_begin, std::uint32_t n_ints, Backward&& backward) {
    // A consumer dropped by rewind() no longer counts: only the first live one matters.
    for (std::uint32_t k = 0; k < n_in; ++k) {
      SlotInfo& s = info_[args_[args_begin + k]];
      if (s.first_consumer >= entries_.size()) s.first_consumer = u32(entries_.size());
    }
    Entry& e = push_entry(op, out, args_begin, n_in, n_aux, ints_begin, n_ints);
    e.backward = std::forward<Backward>(backward);
  }
  /// Throws NumericError if a forward value holds NaN/Inf (anomaly mode only).
  void check_forward_finite(std::uint32_t out, std::span<const std::uint32_t> inputs) const {
    if (anomaly_ && !values_[out].allFinite()) {
      raise_anomaly("forward value", out, values_[out], inputs);
    }
  }

 private:
  friend class Var<S>;
  friend class OpCtx<S>;
  using BackwardFn = detail::InlineFunction<void(OpCtx<S>&), 32>;

  struct Entry {
    const char* op = nullptr;
    std::uint32_t out = 0;
    std::uint32_t args_begin = 0;  // inputs, then aux slots, in args_
    std::uint32_t ints_begin = 0;
    std::uint32_t n_ints = 0;
    std::uint16_t n_in = 0;
    std::uint16_t n_aux = 0;
    bool is_hook = false;
    bool released = false;
    BackwardFn backward;
  };
  struct SlotInfo {
    std::uint32_t epoch = 0;
    std::int32_t time = kNoTime;
    std::uint32_t created_at = 0;
    std::uint32_t grad_stamp = 0;
    const char* producer_op = "leaf";
    SlotKind kind = SlotKind::Constant;
    bool requires_grad = false;
    std::uint32_t first_consumer = kNoEntry;  // index of the first entry reading the slot
  };
  struct ParamLeaf {
    std::uint32_t id;
    Parameter<S>* param;
  };

  static std::uint32_t u32(std::size_t n) { return static_cast<std::uint32_t>(n); }
  static constexpr std::uint32_t kNoEntry = std::numeric_limits<std::uint32_t>::max();

  Var<S> make_leaf(const Tensor& value, bool requires_grad, SlotKind kind) {
    const char* op = kind == SlotKind::Parameter ? "parameter" : (requires_grad ? "variable" : "constant");
    const std::uint32_t id = new_slot(value.rows(), value.cols(), kind, requires_grad, op);
    values_[id] = value;  // values_ never moves, so value may itself be a slot of this tape
    if (anomaly_ && !values_[id].allFinite()) raise_anomaly("leaf value", id, values_[id], {});
    return handle(id);
  }

  // True when the first m.values slots and m.entries entries are still those m was taken on:
  // the last kept slot is no newer than the mark, and the last kept entry (which references
  // the newest slots and args of any kept entry) reads only kept slots, args and ints.
  [[nodiscard]] bool is_prefix(const Mark& m) const {
    if (m.values > 0 && info_[m.values - 1].epoch > m.epoch) return false;
    if (m.entries > 0) {
      const Entry& e = entries_[m.entries - 1];
      const std::uint32_t n_args = std::uint32_t{e.n_in} + e.n_aux;
      if (e.out >= m.values || e.args_begin + n_args > m.args || e.ints_begin + e.n_ints > m.ints) return false;
      for (std::uint32_t k = 0; k < n_args; ++k) {
        if (args_[e.args_begin + k] >= m.values) return false;
      }
    }
    return m.params == 0 || params_[m.params - 1].id < m.values;
  }

  Entry& push_entry(const char* op, std::uint32_t out, std::uint32_t args_begin, std::uint16_t n_in,
                    std::uint16_t n_aux, std::uint32_t ints_begin, std::uint32_t n_ints) {
    Entry& e = entries_.emplace_back();
    e.op = op;
    e.out = out;
    e.args_begin = args_begin;
    e.n_in = n_in;
    e.n_aux = n_aux;
    e.ints_begin = ints_begin;
    e.n_ints = n_ints;
    return e;
  }

  Tensor& grad_slot(std::uint32_t id) {
    SlotInfo& s = info_[id];
    Tensor& g = grads_[id];
    if (s.grad_stamp != stamp_) {
      g.setZero(values_[id].rows(), values_[id].cols());
      s.grad_stamp = stamp_;
    }
    return g;
  }
  [[nodiscard]] bool reached(std::uint32_t id) const { return info_[id].grad_stamp == stamp_; }

  // seed == nullptr seeds dL/dy with ones.
  void sweep(std::uint32_t seed_id, const Tensor* seed, const BackwardOptions& opts);
  void run_observed(std::size_t i, OpCtx<S>& ctx);

  [[noreturn]] void raise_anomaly(std::string_view what, std::uint32_t id, const Tensor& bad,
                                  std::span<const std::uint32_t> inputs) const {
    const bool has_nan = bad.hasNaN();
    std::string shapes;  // each input by name and shape, so the culprit can be found in user code
    for (std::uint32_t in : inputs) {
      shapes += fmt::format("{}'{}' {}", shapes.empty() ? "" : ", ", display_name(in), shape_of(values_[in]));
    }
    const int t = info_[id].time;
    throw NumericError(fmt::format("anomaly: {} of op '{}' (node '{}'{}) holds {} in its {} tensor; inputs: [{}]", what,
                                   info_[id].producer_op, display_name(id),
                                   t == kNoTime ? std::string() : fmt::format(", time step {}", t),
                                   has_nan ? "NaN" : "Inf", shape_of(bad), shapes));
  }

  detail::StableVector<Tensor> values_;
  detail::StableVector<Tensor> grads_;
  std::vector<SlotInfo> info_;
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
        std::uint32_t ints_begin, std::uint32_t n_ints)
      : tape_(tape),
        out_(out),
        args_begin_(args_begin),
        n_in_(n_in),
        n_aux_(n_aux),
        ints_begin_(ints_begin),
        n_ints_(n_ints) {}

  [[nodiscard]] std::size_t num_inputs() const { return n_in_; }
  [[nodiscard]] const Tensor& x(std::size_t i) const { return tape_.values_[input_id(i)]; }
  [[nodiscard]] std::uint32_t input_id(std::size_t i) const { return tape_.args_[args_begin_ + i]; }
  [[nodiscard]] bool needs_grad(std::size_t i) const { return tape_.info_[input_id(i)].requires_grad; }
  /// The output value (written by forward, read by backward).
  Tensor& y() { return tape_.values_[out_]; }
  [[nodiscard]] const Tensor& y() const { return tape_.values_[out_]; }
  /// Saved auxiliary tensor k (shapes given in OpSpec::aux).
  Tensor& aux(std::size_t k) { return tape_.values_[tape_.args_[args_begin_ + n_in_ + k]]; }
  /// Saved integers (OpSpec::ints), e.g. class targets or row indices.
  [[nodiscard]] std::span<const std::int32_t> ints() const { return {tape_.ints_.data() + ints_begin_, n_ints_}; }
  /// dL/dy (backward only).
  [[nodiscard]] const Tensor& gy() const { return tape_.grads_[out_]; }
  /// dL/dx_i accumulator (backward only): always add into it.
  Tensor& gx(std::size_t i) { return tape_.grad_slot(input_id(i)); }
  /// The output's time tag.
  [[nodiscard]] int time() const { return tape_.info_[out_].time; }
  Tape<S>& tape() { return tape_; }

 private:
  friend class Tape<S>;
  Tensor& gy_mutable() { return tape_.grads_[out_]; }
  Tape<S>& tape_;
  std::uint32_t out_;
  std::uint32_t args_begin_;
  std::uint16_t n_in_;
  std::uint16_t n_aux_;
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
  } else if (seed == &grads_[seed_id]) {
    info_[seed_id].grad_stamp = stamp_;  // seeded with its own previous gradient: keep it as is
  } else {
    grad_slot(seed_id) = *seed;
  }
  const bool instrumented = observer_ || anomaly_;
  for (std::size_t i = entries_.size(); i-- > opts.from.entries;) {
    Entry& e = entries_[i];
    if (!reached(e.out) || (e.is_hook && !opts.run_hooks)) continue;
    TAPEGRAD_CHECK(!e.released, TapeError,
                   "backward: entry {} (op '{}', node '{}') was released by an earlier backward(release = true); "
                   "backward twice over a released window is not possible",
                   i, e.op, display_name(e.out));
    OpCtx<S> ctx(*this, e.out, e.args_begin, e.n_in, e.n_aux, e.ints_begin, e.n_ints);
    if (instrumented) {
      run_observed(i, ctx);
    } else {
      e.backward(ctx);
    }
    if (opts.release) e.released = true;
  }
  if (opts.accumulate_parameters) {
    for (const ParamLeaf& p : params_) {
      if (p.id >= n_values_ || !reached(p.id)) continue;
      if (p.param->grad.rows() != p.param->value.rows() || p.param->grad.cols() != p.param->value.cols()) {
        p.param->zero_grad();
      }
      p.param->grad += grads_[p.id];
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
      observed_before_[k] = reached(in) ? grads_[in] : Tensor::Zero(values_[in].rows(), values_[in].cols());
    }
  }
  const double gy_norm = static_cast<double>(grads_[e.out].norm());
  e.backward(ctx);
  for (std::size_t k = 0; k < e.n_in; ++k) {
    const std::uint32_t in = ctx.input_id(k);
    if (!reached(in)) {
      if (observer_) observed_inputs_.push_back({in, shape_of(values_[in]), 0.0});
      continue;
    }
    if (anomaly_ && !grads_[in].allFinite()) {
      std::vector<std::uint32_t> ins;
      for (std::size_t j = 0; j < e.n_in; ++j) ins.push_back(ctx.input_id(j));
      raise_anomaly(fmt::format("backward gradient for input {}", k), e.out, grads_[in], ins);
    }
    if (observer_) {
      const double passed = static_cast<double>((grads_[in] - observed_before_[k]).norm());
      observed_inputs_.push_back({in, shape_of(values_[in]), passed});
    }
  }
  if (anomaly_ && e.is_hook && !grads_[e.out].allFinite()) {
    raise_anomaly("gradient returned by a hook", e.out, grads_[e.out], {});
  }
  if (observer_) {
    observer_(NodeEvent{i, e.op, e.out, names_[e.out], info_[e.out].time, shape_of(values_[e.out]), gy_norm,
                        observed_inputs_});
  }
}

// ---- Var ------------------------------------------------------------------------------
template <class S>
Tape<S>& Var<S>::tape() const {
  TAPEGRAD_CHECK(tape_ != nullptr, TapeError, "Var: empty handle (default-constructed) has no tape");
  return *tape_;
}
template <class S>
bool Var<S>::valid() const {
  return tape_ != nullptr && id_ < tape_->n_values_ && tape_->info_[id_].epoch == epoch_;
}
template <class S>
const Matrix<S>& Var<S>::value() const {
  tape().check(*this, "value", "v");
  return tape_->values_[id_];
}
template <class S>
const Matrix<S>& Var<S>::grad() const {
  tape().check(*this, "grad", "v");
  return tape_->grad_slot(id_);
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
  tape().check(*this, "requires_grad", "v");
  return tape_->info_[id_].requires_grad;
}
template <class S>
const Var<S>& Var<S>::set_name(std::string_view name) const {
  tape().check(*this, "set_name", "v");
  tape_->set_name(id_, name);
  return *this;
}
template <class S>
const std::string& Var<S>::name() const {
  tape().check(*this, "name", "v");
  return tape_->names_[id_];
}
template <class S>
int Var<S>::time() const {
  tape().check(*this, "time", "v");
  return tape_->info_[id_].time;
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
