// The base of every recurrent cell. A cell defines its parameters and one step; Cell<Derived, S>
// (CRTP: Derived is the cell itself) gives it everything else that Stacked, Bidirectional, the
// unroll helpers, truncated BPTT, gradcheck and checkpoints use.
//
// A cell defines:
//   struct Weights { Var<S> a, b, ...; };          one Var per parameter, in kParameters order
//   Parameter<S> a, b, ...;                         each constructed with its name
//   static constexpr std::array kParameters{&Self::a, &Self::b, ...};   the order of everything
//   Self(const Options&, std::mt19937_64&)          passes the options to Cell(options)
//   State<S> next_state(const Weights& w, const Var<S>& x, const State<S>& s) const;   one step
// and may define:
//   Options (the third template argument; default CellOptions: input_size, hidden_size)
//   static constexpr const char* kName               the name in error messages (default "Cell")
//   static constexpr std::array kStateNames{"h", ...} its state tensors, each [B x hidden_size]
//   SequenceResult<S> run_sequence(const Weights& w, const Var<S>& x_all, const State<S>& s0,
//                                  Index steps, const SequenceOptions& options) const;
//                                                    a faster whole-sequence path, which
//                                                    forward_sequence calls after its checks
//
// It gets: step(x, s) and step(w, x, s) with shape checks, forward_sequence (op by op), the zero
// initial_state, output (h), bind(tape) and bind(span of Vars) with shape checks,
// visit_parameters / named_parameters (each parameter under its Parameter::name), and the sizes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>

#include <tapegrad/nn/module.h>
#include <tapegrad/nn/sequence.h>
#include <tapegrad/nn/state.h>

namespace tapegrad::nn {

/// The options every cell has; a cell with more declares its own struct with these two first.
struct CellOptions {
  Index input_size = 0;
  Index hidden_size = 0;
};

namespace detail {
// Argument checks of the cells (nn/src/cell_checks.cpp). Messages name `cell`, the function,
// the argument and the shapes.
void check_sizes(std::string_view cell, Index input_size, Index hidden_size);
void check_batch(std::string_view cell, Index batch);
void check_weight_count(std::string_view cell, std::size_t got, std::size_t expected);
void check_weight_shape(std::string_view cell, std::string_view name, const Shape& got, const Shape& expected);
/// x is [B x input_size] and s holds exactly `names` tensors, each [B x hidden].
template <class S>
void check_step_inputs(std::string_view cell, const Var<S>& x, Index input_size, const State<S>& s,
                       std::span<const char* const> names, Index hidden);
/// s0 holds `names` tensors, each [B x hidden], and x_all is [T*B x input_size], T >= 1. Returns T.
template <class S>
Index check_sequence(std::string_view cell, const Var<S>& x_all, Index input_size, const State<S>& s0,
                     std::span<const char* const> names, Index hidden);
}  // namespace detail

template <class Derived, class S, class CellOptionsT = CellOptions>
class Cell : public Module<S> {
 public:
  using Scalar = S;
  using Options = CellOptionsT;
  static constexpr const char* kName = "Cell";
  static constexpr std::array<const char*, 1> kStateNames{"h"};

  /// ValueError unless input_size and hidden_size are positive.
  explicit Cell(const Options& options) : options_(options) {
    detail::check_sizes(Derived::kName, options.input_size, options.hidden_size);
  }

  /// One step with the cell's Parameters (as leaves of x's tape). x [B x in], s the state.
  State<S> step(const Var<S>& x, const State<S>& s) { return step(bind(x.tape()), x, s); }
  /// One step with the given weights (e.g. the inputs of a gradcheck function).
  template <class D = Derived>
  State<S> step(const typename D::Weights& w, const Var<S>& x, const State<S>& s) const {
    detail::check_step_inputs<S>(D::kName, x, input_size(), s, D::kStateNames, hidden_size());
    return self().next_state(w, x, s);
  }

  /// The whole sequence with the cell's Parameters: x_all [T*B x in] holds the inputs of all T
  /// steps time-major (rows t*B .. t*B+B-1 are step t). See sequence.h.
  SequenceResult<S> forward_sequence(const Var<S>& x_all, const State<S>& s0, const SequenceOptions& options = {}) {
    return self().forward_sequence(bind(x_all.tape()), x_all, s0, options);
  }
  /// The whole sequence with the given weights: the cell's run_sequence after the argument
  /// checks, or else op by op, the ops step() records with step t inside
  /// time_step(options.first_step + t).
  template <class D = Derived>
  SequenceResult<S> forward_sequence(const typename D::Weights& w, const Var<S>& x_all, const State<S>& s0,
                                     const SequenceOptions& options = {}) const {
    const Index steps = detail::check_sequence<S>(D::kName, x_all, input_size(), s0, D::kStateNames, hidden_size());
    if constexpr (requires { self().run_sequence(w, x_all, s0, steps, options); }) {
      return self().run_sequence(w, x_all, s0, steps, options);
    } else {
      return detail::unrolled_sequence(x_all, s0, steps, options.first_step, [&](const Var<S>& x_t, const State<S>& s) {
        return self().next_state(w, x_t, s);
      });
    }
  }
  /// For cells that define forward_tokens(w, embedding, ids, s0, options): the same with the
  /// cell's Parameters.
  template <class D = Derived>
  SequenceResult<S> forward_tokens(const Var<S>& embedding, std::span<const std::int32_t> ids, const State<S>& s0,
                                   const SequenceOptions& options = {}) {
    return static_cast<D&>(*this).forward_tokens(bind(embedding.tape()), embedding, ids, s0, options);
  }

  /// Every state tensor zero, [batch x hidden_size] constants on tape.
  State<S> initial_state(Tape<S>& tape, Index batch) const {
    detail::check_batch(Derived::kName, batch);
    State<S> s;
    for (std::size_t k = 0; k < state_tensors(); ++k)
      s.tensors.push_back(tape.constant(Matrix<S>::Zero(batch, hidden_size())));
    return s;
  }
  /// What the cell emits for a state: h.
  Var<S> output(const State<S>& s) const { return s.h(); }

  /// The Parameters as leaves of tape.
  template <class D = Derived>
  typename D::Weights bind(Tape<S>& tape) {
    return [&]<std::size_t... k>(std::index_sequence<k...>) {
      return typename D::Weights{tape.leaf(self().*D::kParameters[k])...};
    }
    (std::make_index_sequence<D::kParameters.size()>{});
  }
  /// Given Vars in named_parameters() order; count (ValueError) and shapes (ShapeError) are checked.
  template <class D = Derived>
  typename D::Weights bind(std::span<const Var<S>> vars) const {
    detail::check_weight_count(D::kName, vars.size(), D::kParameters.size());
    for (std::size_t k = 0; k < vars.size(); ++k) {
      const Parameter<S>& p = self().*D::kParameters[k];
      detail::check_weight_shape(D::kName, p.name, vars[k].shape(), p.shape());
    }
    return [&]<std::size_t... k>(std::index_sequence<k...>) { return typename D::Weights{vars[k]...}; }
    (std::make_index_sequence<D::kParameters.size()>{});
  }

  [[nodiscard]] Index input_size() const { return options_.input_size; }
  [[nodiscard]] Index hidden_size() const { return options_.hidden_size; }
  [[nodiscard]] Index output_size() const { return options_.hidden_size; }
  [[nodiscard]] std::size_t state_tensors() const { return Derived::kStateNames.size(); }
  [[nodiscard]] std::size_t num_parameter_tensors() const { return Derived::kParameters.size(); }
  [[nodiscard]] const Options& options() const { return options_; }

  void visit_parameters(const ParameterVisitor<S>& v) override {
    for (const auto member : Derived::kParameters) v((self().*member).name, self().*member);
  }

 protected:
  /// For cells whose step is an input projection xp followed by recur(w, xp, s): the op-by-op
  /// recurrence over the projections xp [T*B x .] of all steps.
  template <class D = Derived>
  SequenceResult<S> recur_each(const typename D::Weights& w, const Var<S>& xp, const State<S>& s0, Index steps,
                               const SequenceOptions& options) const {
    return detail::unrolled_sequence(xp, s0, steps, options.first_step,
                                     [&](const Var<S>& xp_t, const State<S>& s) { return self().recur(w, xp_t, s); });
  }

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
  const Derived& self() const { return static_cast<const Derived&>(*this); }

  Options options_;
};

}  // namespace tapegrad::nn
