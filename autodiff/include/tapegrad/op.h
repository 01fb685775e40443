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
#include <initializer_list>
#include <span>
#include <vector>

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

namespace detail {

// Records one op and returns its main output's slot; extra outputs follow it after the aux slots.
template <class S, class Forward, class Backward>
std::uint32_t record_op(const OpSpec& spec, std::span<const Var<S>> inputs, Forward&& forward, Backward&& backward) {
  TAPEGRAD_CHECK(!inputs.empty(), ValueError, "{}: an op needs at least one input", spec.name);
  TAPEGRAD_CHECK(inputs.size() < 65535 && spec.aux.size() < 65535 && spec.extra_outputs.size() < 65535, ValueError,
                 "{}: too many inputs", spec.name);
  TAPEGRAD_CHECK(!inputs[0].empty(), TapeError, "{}: input 0 is an empty handle (default-constructed Var)", spec.name);
  Tape<S>& tape = inputs[0].tape();
  bool requires_grad = false;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    requires_grad = tape.checked_requires_grad(inputs[i], spec.name, i) || requires_grad;
  }
  TAPEGRAD_CHECK(spec.out.rows >= 0 && spec.out.cols >= 0, ShapeError, "{}: negative output shape {}", spec.name,
                 spec.out);
  using SlotKind = typename Tape<S>::SlotKind;
  const std::uint32_t out = tape.new_slot(spec.out.rows, spec.out.cols, SlotKind::Op, requires_grad, spec.name);
  auto& args = tape.args();
  const auto args_begin = static_cast<std::uint32_t>(args.size());
  for (const Var<S>& v : inputs) args.push_back(v.id());
  for (const Shape& s : spec.aux) args.push_back(tape.new_slot(s.rows, s.cols, SlotKind::Aux, false, spec.name));
  for (const Shape& s : spec.extra_outputs) {
    args.push_back(tape.new_slot(s.rows, s.cols, SlotKind::Op, requires_grad, spec.name));
  }
  auto& ints = tape.ints();
  const auto ints_begin = static_cast<std::uint32_t>(ints.size());
  if (!spec.ints.empty()) ints.insert(ints.end(), spec.ints.begin(), spec.ints.end());
  const auto n_in = static_cast<std::uint16_t>(inputs.size());
  const auto n_aux = static_cast<std::uint16_t>(spec.aux.size());
  const auto n_extra = static_cast<std::uint16_t>(spec.extra_outputs.size());
  const auto n_ints = static_cast<std::uint32_t>(spec.ints.size());

  OpCtx<S> ctx(tape, out, args_begin, n_in, n_aux, n_extra, ints_begin, n_ints);
  forward(ctx);
  const std::span<const std::uint32_t> input_ids(args.data() + args_begin, n_in);
  tape.check_forward_finite(out, input_ids);
  for (std::uint32_t k = 0; k < n_extra; ++k) tape.check_forward_finite(args[args_begin + n_in + n_aux + k], input_ids);
  if (requires_grad) {
    tape.record(spec.name, out, args_begin, n_in, n_aux, n_extra, ints_begin, n_ints, std::forward<Backward>(backward));
  } else {
    args.resize(args_begin);  // nothing will read them: keep the tape compact
    ints.resize(ints_begin);
  }
  return out;
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
      detail::record_op<S>(spec, inputs, std::forward<Forward>(forward), std::forward<Backward>(backward));
  return inputs[0].tape().handle(out);
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
  const std::uint32_t out =
      detail::record_op<S>(spec, in, std::forward<Forward>(forward), std::forward<Backward>(backward));
  Tape<S>& tape = in[0].tape();
  std::vector<Var<S>> outputs{tape.handle(out)};
  // Slots are numbered in creation order: the main output, its aux slots, then the extras.
  const auto first_extra = static_cast<std::uint32_t>(out + 1 + spec.aux.size());
  for (std::uint32_t k = 0; k < spec.extra_outputs.size(); ++k) outputs.push_back(tape.handle(first_extra + k));
  return outputs;
}

}  // namespace tapegrad
