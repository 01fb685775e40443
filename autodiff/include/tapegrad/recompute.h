// Recomputation (gradient checkpointing): a whole sub-computation recorded as ONE op that keeps
// only its outputs, and recomputes its intermediates during backward.
//
// Note [Recompute]
// recompute(inputs, fn) runs fn(sub, sub_inputs) on a scratch tape `sub` and copies fn's outputs
// back to the inputs' tape as new nodes; the scratch tape is then cleared, so the main tape keeps
// the outputs and nothing of fn's intermediates. On the main tape that is ONE op, recorded with
// apply_outputs: it reads the inputs, its main output is a [0 x 0] token and fn's outputs are its
// extra outputs, so it runs when ANY output got a gradient (tape.h invariant 7). Creation order is
// still a valid sweep order (invariant 1): every consumer of an output is recorded after it, so
// when the sweep reaches the entry the gradients of all outputs are final. Its backward re-runs fn
// on a scratch tape (recording), checks that the outputs came out bit-identical, seeds them with
// the main tape's output gradients through one "recompute.seed" op, sweeps the scratch tape and
// adds the scratch inputs' gradients into the main inputs' gradients. Parameters fn binds with
// sub.leaf(p) add into Parameter::grad during that inner sweep; uses of the same Parameter outside
// fn add at the end of the main sweep, so Parameter::grad gets the sum over every use. The inner
// sweep honours the outer one's accumulate_parameters and run_hooks (Tape::sweep_options()).
//
// Scratch tapes come from a per-thread pool, one per nesting depth (recompute inside fn takes the
// next), cleared after each use with their buffers kept; so a sequence of equal segments records
// into the same memory again and again. release_recompute_scratch<S>() frees the pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <tapegrad/error.h>
#include <tapegrad/op.h>
#include <tapegrad/tape.h>

namespace tapegrad {

/// The sub-computation of recompute(): builds its outputs on `sub` from `inputs` (handles on
/// `sub` holding copies of the recompute() inputs, in the same order). Must be deterministic:
/// it runs once in forward and again in backward, and must give bit-identical outputs.
template <class S>
using RecomputeFn = std::function<std::vector<Var<S>>(Tape<S>& sub, std::span<const Var<S>> inputs)>;

/// Counters of the calling thread's recompute() activity for scalar type S.
struct RecomputeStats {
  std::size_t forward_runs = 0;        ///< fn calls made by recompute() in forward.
  std::size_t backward_runs = 0;       ///< fn re-runs made by backward sweeps.
  std::size_t scratch_peak_bytes = 0;  ///< Largest tape_value_bytes() a scratch tape reached.
};

/// Bytes of the values a tape currently keeps alive: the sum over live slots (leaves, op outputs
/// and saved aux tensors) of rows * cols * sizeof(S). Gradient buffers are not counted (they are
/// allocated lazily, one per slot a sweep reaches, and kept for reuse).
template <class S>
std::size_t tape_value_bytes(const Tape<S>& tape) {
  std::size_t bytes = 0;
  for (std::uint32_t id = 0; id < tape.num_values(); ++id) {
    bytes += static_cast<std::size_t>(tape.value(id).size()) * sizeof(S);
  }
  return bytes;
}

namespace detail {

template <class S>
struct RecomputePool {
  std::vector<std::unique_ptr<Tape<S>>> tapes;  // tapes[d] serves nesting depth d
  std::size_t depth = 0;
  RecomputeStats stats;
};
template <class S>
RecomputePool<S>& recompute_pool() {
  thread_local RecomputePool<S> pool;
  return pool;
}

// Borrows the scratch tape of the current nesting depth; clears it on return (buffers kept).
template <class S>
class ScratchLease {
 public:
  ScratchLease() : pool_(recompute_pool<S>()) {
    if (pool_.depth == pool_.tapes.size()) pool_.tapes.push_back(std::make_unique<Tape<S>>());
    tape_ = pool_.tapes[pool_.depth++].get();
    tape_->clear();
  }
  ScratchLease(const ScratchLease&) = delete;
  ScratchLease& operator=(const ScratchLease&) = delete;
  ~ScratchLease() {
    tape_->clear();
    --pool_.depth;
  }
  Tape<S>& tape() { return *tape_; }
  void note_bytes() {
    const std::size_t bytes = tape_value_bytes(*tape_);
    if (bytes > pool_.stats.scratch_peak_bytes) pool_.stats.scratch_peak_bytes = bytes;
  }

 private:
  RecomputePool<S>& pool_;
  Tape<S>* tape_ = nullptr;
};

// Runs f(), prefixing any Tapegrad error with "recompute (phase): " and keeping its type.
template <class F>
decltype(auto) recompute_context(const char* phase, F&& f) {
  const auto wrap = [phase](const Error& e) { return fmt::format("recompute ({}): {}", phase, e.what()); };
  try {
    return std::forward<F>(f)();
  } catch (const ShapeError& e) {
    throw ShapeError(wrap(e));
  } catch (const TapeError& e) {
    throw TapeError(wrap(e));
  } catch (const ValueError& e) {
    throw ValueError(wrap(e));
  } catch (const NumericError& e) {
    throw NumericError(wrap(e));
  } catch (const CheckpointError& e) {
    throw CheckpointError(wrap(e));
  }
}

// Copies the main inputs onto sub: a variable where a gradient is needed, else a constant.
template <class S>
std::vector<Var<S>> scratch_inputs(Tape<S>& sub, std::span<const Matrix<S>* const> values,
                                   const std::vector<std::uint8_t>& needs) {
  std::vector<Var<S>> in;
  in.reserve(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    in.push_back(needs[i] != 0 ? sub.variable(*values[i]) : sub.constant(*values[i]));
  }
  return in;
}

// Runs fn on sub and checks what it returned: at least one output, each a live node of sub.
template <class S>
std::vector<Var<S>> run_segment(const RecomputeFn<S>& fn, Tape<S>& sub, const std::vector<Var<S>>& in,
                                const char* phase) {
  std::vector<Var<S>> out =
      recompute_context(phase, [&] { return fn(sub, std::span<const Var<S>>(in.data(), in.size())); });
  TAPEGRAD_CHECK(!out.empty(), ValueError, "recompute ({}): fn returned no outputs", phase);
  for (std::size_t j = 0; j < out.size(); ++j) {
    TAPEGRAD_CHECK(!out[j].empty(), TapeError, "recompute ({}): output {} of fn is an empty Var", phase, j);
    TAPEGRAD_CHECK(&out[j].tape() == &sub, TapeError,
                   "recompute ({}): output {} of fn belongs to another tape; fn must build its outputs on the "
                   "tape it is given (from its inputs and sub.leaf(p))",
                   phase, j);
    TAPEGRAD_CHECK(out[j].valid(), TapeError,
                   "recompute ({}): output {} of fn was dropped by a clear()/rewind() inside fn", phase, j);
  }
  return out;
}

// The backward of the "recompute" entry: re-run, compare, seed, sweep, add into the inputs.
template <class S>
struct RecomputeBackward {
  RecomputeFn<S> fn;
  std::vector<std::uint8_t> needs;  // per input: does the main input require a gradient
  std::uint32_t n_out = 0;          // fn's outputs are the entry's extra outputs 1 .. n_out
  int time = kNoTime;

  void operator()(OpCtx<S>& c) {
    Tape<S>& tape = c.tape();
    const BackwardOptions outer = tape.sweep_options();
    ScratchLease<S> lease;
    Tape<S>& sub = lease.tape();
    sub.set_anomaly_mode(tape.anomaly_mode());
    auto scope = sub.time_step(time);
    std::vector<const Matrix<S>*> values(c.num_inputs());
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = &c.x(i);
    const std::vector<Var<S>> in = scratch_inputs<S>(sub, values, needs);
    const std::vector<Var<S>> out = run_segment(fn, sub, in, "backward re-run");
    ++recompute_pool<S>().stats.backward_runs;
    TAPEGRAD_CHECK(out.size() == n_out, ValueError,
                   "recompute (backward re-run): fn returned {} outputs, but {} in forward; fn must be deterministic",
                   out.size(), n_out);
    std::vector<Var<S>> seeded;
    std::vector<const Matrix<S>*> seeds;
    for (std::uint32_t j = 0; j < n_out; ++j) {
      const Matrix<S>& before = c.y(1 + j);
      TAPEGRAD_CHECK(shape_of(out[j].value()) == shape_of(before) && out[j].value() == before, ValueError,
                     "recompute (backward re-run): output {} differs from the forward run ({} vs {}); fn must be "
                     "deterministic (give random ops such as dropout a fixed seed per segment)",
                     j, shape_of(out[j].value()), shape_of(before));
      const Matrix<S>* g = c.gy_or_null(1 + j);  // null: no consumer reached it
      if (g == nullptr || !out[j].requires_grad()) continue;
      if ((g->array() == S(0)).all()) continue;  // a zero gradient: no work, no 0 * inf
      seeded.push_back(out[j]);
      seeds.push_back(g);
    }
    if (seeded.empty()) return;
    const auto* seed_list = &seeds;
    const Var<S> root = apply<S>(
        OpSpec{"recompute.seed", {1, 1}}, std::span<const Var<S>>(seeded.data(), seeded.size()),
        [](OpCtx<S>& s) { s.y().setZero(); },
        [seed_list](OpCtx<S>& s) {
          for (std::size_t k = 0; k < s.num_inputs(); ++k) s.gx(k) += *(*seed_list)[k];
        });
    lease.note_bytes();
    BackwardOptions inner;
    inner.accumulate_parameters = outer.accumulate_parameters;
    inner.run_hooks = outer.run_hooks;
    recompute_context("backward sweep", [&] { sub.backward(root, inner); });
    for (std::size_t i = 0; i < in.size(); ++i) {
      if (needs[i] != 0) c.gx(i) += in[i].grad();
    }
  }
};

}  // namespace detail

/// Records fn(sub, inputs) as ONE op on the inputs' tape (gradient checkpointing).
///
/// Forward runs fn on a scratch tape and keeps only its outputs, returned as new nodes of the
/// inputs' tape, in fn's order. Backward re-runs fn on a scratch tape, seeds its outputs with
/// their incoming gradients (outputs nobody used get none), sweeps it and adds into the inputs'
/// gradients; Parameters that fn binds with sub.leaf(p) accumulate into Parameter::grad during
/// that inner sweep, so a Parameter used inside and outside segments gets the sum of all uses.
///
/// - fn must be deterministic (re-run outputs are compared bit for bit: ValueError otherwise);
///   random ops need a fixed seed per segment.
/// - fn may read only its inputs and Parameters (sub.leaf(p)); a Var of another tape inside fn
///   throws TapeError. Data (token ids, targets) is captured by value or by reference to storage
///   that outlives the backward sweep.
/// - Inputs that do not require a gradient enter fn as constants; an output requires a gradient
///   if it depends on an input that does or on a Parameter. If none does, nothing is recorded.
/// - Backward options: a window (`from`) sweeps the segment entirely or not at all (it is one
///   entry); accumulate_parameters and run_hooks are passed on to the inner sweep (hooks that fn
///   registers run there); `release` applies to the main entry. The tape observer sees the
///   segment as one "recompute" entry, not its inner ops. Anomaly mode is inherited.
/// - Nested recompute() inside fn works (each depth has its own scratch tape).
/// Costs: fn runs twice (forward + re-run); the main tape holds the outputs; a scratch tape
/// holds one segment's intermediates at a time. Errors from fn keep their type, prefixed with
/// "recompute (forward|backward re-run|backward sweep): ". Empty inputs or fn: ValueError.
template <class S>
std::vector<Var<S>> recompute(std::span<const Var<S>> inputs, RecomputeFn<S> fn) {
  TAPEGRAD_CHECK(!inputs.empty(), ValueError,
                 "recompute: needs at least one input (the segment's starting state), got none");
  TAPEGRAD_CHECK(static_cast<bool>(fn), ValueError, "recompute: fn is empty");
  TAPEGRAD_CHECK(!inputs[0].empty(), TapeError, "recompute: input 0 is an empty Var (default-constructed)");
  Tape<S>& tape = inputs[0].tape();
  std::vector<std::uint8_t> needs(inputs.size());
  std::vector<const Matrix<S>*> values(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    tape.check(inputs[i], "recompute", fmt::format("input {}", i));
    needs[i] = tape.requires_grad(inputs[i].id()) ? 1 : 0;
    values[i] = &inputs[i].value();
  }
  const int time = tape.current_time();

  detail::ScratchLease<S> lease;
  Tape<S>& sub = lease.tape();
  sub.set_anomaly_mode(tape.anomaly_mode());
  auto scope = sub.time_step(time);
  const std::vector<Var<S>> in = detail::scratch_inputs<S>(sub, values, needs);
  const std::vector<Var<S>> out = detail::run_segment(fn, sub, in, "forward");
  ++detail::recompute_pool<S>().stats.forward_runs;
  lease.note_bytes();

  bool any_grad = false;
  for (const Var<S>& o : out) any_grad = o.requires_grad() || any_grad;
  if (!any_grad) {  // nothing to differentiate: plain constants, no entry
    std::vector<Var<S>> result;
    for (const Var<S>& o : out) result.push_back(tape.constant(o.value()));
    return result;
  }

  // ONE entry: its main output is an empty token, fn's outputs are its extra outputs.
  std::vector<Shape> shapes;
  std::vector<std::uint8_t> out_needs;
  for (const Var<S>& o : out) {
    shapes.push_back(o.shape());
    out_needs.push_back(o.requires_grad() ? 1 : 0);
  }
  const auto n_out = static_cast<std::uint32_t>(out.size());
  std::vector<Var<S>> outputs = apply_outputs<S>(
      {"recompute", {0, 0}}, inputs, RuntimeOutputs{shapes, out_needs},
      [&out](OpCtx<S>& c) {
        for (std::size_t j = 0; j < out.size(); ++j) c.y(1 + j) = out[j].value();
      },
      detail::RecomputeBackward<S>{std::move(fn), needs, n_out, time});
  outputs.erase(outputs.begin());  // the token
  return outputs;
}

/// recompute() with the inputs as a braced list: recompute<double>({h, c}, fn).
template <class S>
std::vector<Var<S>> recompute(std::initializer_list<Var<S>> inputs, RecomputeFn<S> fn) {
  return recompute<S>(std::span<const Var<S>>(inputs.begin(), inputs.size()), std::move(fn));
}

/// The calling thread's recompute() counters for scalar type S.
template <class S>
RecomputeStats recompute_stats() {
  return detail::recompute_pool<S>().stats;
}
/// Zeroes the calling thread's recompute() counters for S.
template <class S>
void reset_recompute_stats() {
  detail::recompute_pool<S>().stats = RecomputeStats{};
}
/// Frees the calling thread's idle scratch tapes for S (their buffers are otherwise kept for reuse).
/// Throws TapeError when called from inside a recompute fn (a scratch tape is in use).
template <class S>
void release_recompute_scratch() {
  auto& pool = detail::recompute_pool<S>();
  TAPEGRAD_CHECK(pool.depth == 0, TapeError, "release_recompute_scratch: called inside a recompute fn");
  pool.tapes.clear();
}

}  // namespace tapegrad
