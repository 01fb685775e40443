// Defining an op: one call to apply() with the forward computation and its backward closure
// side by side. Built-in ops and user-defined ops use exactly this API (see docs/extending.md).
//
//   // y = x^3,  dy/dx = 3 x^2
//   template <class S>
//   Var<S> cube(const Var<S>& x) {
//     return apply<S>({"cube", x.shape()}, {x},
//         [](OpCtx<S>& c) { c.y() = c.x(0).array().cube().matrix(); },
//         [](OpCtx<S>& c) { c.gx(0).array() += 3 * c.x(0).array().square() * c.gy().array(); });
//   }
//
// Rules for the backward closure: add into gx(i), never assign (an input may feed several
// ops, or the same op twice); skip inputs where needs_grad(i) is false; read only x(i), y(),
// aux(k), ints() and gy(). Capture scalars by value, never references to temporaries.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <vector>

#include <tapegrad/detail/checked_size.h>
#include <tapegrad/tape.h>

namespace tapegrad {

/// The static description of one op application.
struct OpSpec {
  const char* name;                                 ///< Op name shown by errors, the observer and anomaly mode.
  Shape out;                                        ///< Output shape.
  std::initializer_list<Shape> aux = {};            ///< Extra saved tensors (aux(k)), not differentiated.
  std::span<const std::int32_t> ints = {};          ///< Integers saved for backward (ints()).
  std::initializer_list<Shape> extra_outputs = {};  ///< More outputs (y(k), gy_or_null(k), k >= 1).
};

/// The outputs of an op whose number, shapes and gradient needs are known only at run time,
/// for apply_outputs (recompute: a sub-computation's outputs, which may depend on Parameters it
/// reads, not only on the op's inputs).
struct RuntimeOutputs {
  std::span<const Shape> shapes;                ///< The extra outputs y(1), y(2), ...
  std::span<const std::uint8_t> requires_grad;  ///< Per extra output; the op is recorded when any is set.
};

namespace detail {

// Records one op and returns its main output's slot; extra outputs follow it after the aux
// slots. extra_grad, when not empty, gives each extra output's requires_grad (see RuntimeOutputs).
template <class S, class Forward, class Backward>
std::uint32_t record_op(const OpSpec& spec, std::span<const Var<S>> inputs, std::span<const Shape> extras,
                        std::span<const std::uint8_t> extra_grad, Forward&& forward, Backward&& backward) {
  TAPEGRAD_CHECK(!inputs.empty(), ValueError, "{}: an op needs at least one input", spec.name);
  TAPEGRAD_CHECK(inputs.size() < 65535 && spec.aux.size() < 65535 && extras.size() < 65535, ValueError,
                 "{}: too many inputs", spec.name);
  TAPEGRAD_CHECK(!inputs[0].empty(), TapeError, "{}: input 0 is an empty handle (default-constructed Var)", spec.name);
  Tape<S>& tape = inputs[0].tape();
  TapeStore<S>& s = TapeAccess::store(tape);
  s.require_idle(spec.name);  // Note [Callback contract] in tape.h
  bool requires_grad = false;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    requires_grad = TapeAccess::checked_requires_grad(tape, inputs[i], spec.name, i) || requires_grad;
  }
  if (!extra_grad.empty()) requires_grad = std::ranges::any_of(extra_grad, [](std::uint8_t g) { return g != 0; });
  TAPEGRAD_CHECK(spec.out.rows >= 0 && spec.out.cols >= 0, ShapeError, "{}: negative output shape {}", spec.name,
                 spec.out);
  check_tensor_size<S>(spec.name, "output", spec.out);
  for (const Shape& a : spec.aux) check_tensor_size<S>(spec.name, "saved", a);
  for (const Shape& e : extras) check_tensor_size<S>(spec.name, "output", e);
  const std::uint32_t out = s.new_slot(spec.out.rows, spec.out.cols, requires_grad, spec.name);
  const auto args_begin = static_cast<std::uint32_t>(s.args.size());
  for (const Var<S>& v : inputs) s.args.push_back(v.id());
  for (const Shape& a : spec.aux) s.args.push_back(s.new_slot(a.rows, a.cols, false, spec.name));
  for (std::size_t k = 0; k < extras.size(); ++k) {
    const bool grad = extra_grad.empty() ? requires_grad : extra_grad[k] != 0;
    s.args.push_back(s.new_slot(extras[k].rows, extras[k].cols, grad, spec.name));
  }
  const auto ints_begin = static_cast<std::uint32_t>(s.ints.size());
  if (!spec.ints.empty()) s.ints.insert(s.ints.end(), spec.ints.begin(), spec.ints.end());
  const EntryLayout at{out,
                       args_begin,
                       ints_begin,
                       static_cast<std::uint32_t>(spec.ints.size()),
                       static_cast<std::uint16_t>(inputs.size()),
                       static_cast<std::uint16_t>(spec.aux.size()),
                       static_cast<std::uint16_t>(extras.size())};
  OpCtx<S> ctx(tape, at);
  {
    const BusyGuard busy(s.busy, spec.name);
    forward(ctx);
  }
  const std::span<const std::uint32_t> input_ids(s.args.data() + args_begin, at.n_in);
  s.check_recorded(out, input_ids);
  for (std::uint32_t k = 1; k <= at.n_extra; ++k) s.check_recorded(s.output_id(at, k), input_ids);
  if (requires_grad) {
    s.entries.emplace_back(spec.name, at, std::forward<Backward>(backward));
  } else {
    s.args.resize(args_begin);  // nothing will read them: keep the tape compact
    s.ints.resize(ints_begin);
  }
  return out;
}

template <class S>
std::vector<Var<S>> output_handles(Tape<S>& tape, std::uint32_t out, const OpSpec& spec, std::size_t n_extra) {
  std::vector<Var<S>> outputs{TapeAccess::handle(tape, out)};
  // Slots are numbered in creation order: the main output, its aux slots, then the extras.
  const auto first_extra = static_cast<std::uint32_t>(out + 1 + spec.aux.size());
  for (std::uint32_t k = 0; k < n_extra; ++k) outputs.push_back(TapeAccess::handle(tape, first_extra + k));
  return outputs;
}

}  // namespace detail

/// Records one op: checks the inputs are live handles on one tape, computes the output with
/// forward(ctx), and records backward when any input requires a gradient. Returns the output.
/// An empty, stale or foreign input throws TapeError naming the op and the input's position.
template <class S, class Forward, class Backward>
Var<S> apply(const OpSpec& spec, std::span<const Var<S>> inputs, Forward&& forward, Backward&& backward) {
  TAPEGRAD_CHECK(spec.extra_outputs.size() == 0, ValueError,
                 "{}: an op with extra outputs is recorded by apply_outputs", spec.name);
  const std::uint32_t out =
      detail::record_op<S>(spec, inputs, {}, {}, std::forward<Forward>(forward), std::forward<Backward>(backward));
  return detail::TapeAccess::handle(inputs[0].tape(), out);
}

template <class S, class Forward, class Backward>
Var<S> apply(const OpSpec& spec, std::initializer_list<Var<S>> inputs, Forward&& forward, Backward&& backward) {
  return apply<S>(spec, std::span<const Var<S>>(inputs.begin(), inputs.size()), std::forward<Forward>(forward),
                  std::forward<Backward>(backward));
}

/// apply() for an op with several outputs: returns the main output, then OpSpec::extra_outputs
/// in order. Backward runs when any output was reached; it reads gy() for the main output
/// (zeros if only extras were reached) and gy_or_null(k) for the others.
template <class S, class Forward, class Backward>
std::vector<Var<S>> apply_outputs(const OpSpec& spec, std::initializer_list<Var<S>> inputs, Forward&& forward,
                                  Backward&& backward) {
  const std::span<const Var<S>> in(inputs.begin(), inputs.size());
  const std::span<const Shape> extras(spec.extra_outputs.begin(), spec.extra_outputs.size());
  const std::uint32_t out =
      detail::record_op<S>(spec, in, extras, {}, std::forward<Forward>(forward), std::forward<Backward>(backward));
  return detail::output_handles(in[0].tape(), out, spec, extras.size());
}

/// apply_outputs() over a span of inputs (their number known only where the op is built, e.g.
/// pointwise's arguments).
template <class S, class Forward, class Backward>
std::vector<Var<S>> apply_outputs(const OpSpec& spec, std::span<const Var<S>> inputs, Forward&& forward,
                                  Backward&& backward) {
  const std::span<const Shape> extras(spec.extra_outputs.begin(), spec.extra_outputs.size());
  const std::uint32_t out =
      detail::record_op<S>(spec, inputs, extras, {}, std::forward<Forward>(forward), std::forward<Backward>(backward));
  return detail::output_handles(inputs[0].tape(), out, spec, extras.size());
}

/// apply_outputs() with the extra outputs given at run time (OpSpec::extra_outputs must be
/// empty): the op is recorded, and its main output requires a gradient, when any extra output
/// does (outputs.requires_grad), whatever the inputs; without any, nothing is recorded.
template <class S, class Forward, class Backward>
std::vector<Var<S>> apply_outputs(const OpSpec& spec, std::span<const Var<S>> inputs, const RuntimeOutputs& outputs,
                                  Forward&& forward, Backward&& backward) {
  TAPEGRAD_CHECK(spec.extra_outputs.size() == 0 && outputs.requires_grad.size() == outputs.shapes.size(), ValueError,
                 "{}: give the extra outputs either in OpSpec or in RuntimeOutputs, one requires_grad per shape",
                 spec.name);
  const std::uint32_t out = detail::record_op<S>(spec, inputs, outputs.shapes, outputs.requires_grad,
                                                 std::forward<Forward>(forward), std::forward<Backward>(backward));
  return detail::output_handles(inputs[0].tape(), out, spec, outputs.shapes.size());
}

}  // namespace tapegrad
