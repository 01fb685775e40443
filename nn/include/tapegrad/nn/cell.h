// The base of every recurrent cell. A cell defines its parameters and one step; Cell<Derived, S>
// (CRTP: Derived is the cell itself) gives it everything else that Stacked, Bidirectional, the
// unroll helpers, truncated BPTT, gradcheck and checkpoints use.
//
// A cell defines:
//   struct Weights { Var<S> a, b, ...; };          one Var per parameter, in kParameters order
//   Parameter<S> a, b, ...;                         each constructed with its name
//   static constexpr std::array kParameters{&Self::a, &Self::b, ...};   the order of everything
// A parameter the cell leaves empty ([0 x 0], e.g. a bias with bias = false) is no parameter:
// named_parameters, bind, num_parameter_tensors and checkpoints skip it, and its Weights member
// is an empty Var (Var::empty()).
//   Self(const Options&, std::mt19937_64&)          passes the options to Cell(options)
// and its step, in one of two forms:
//   State<S> next_state(const Weights& w, const Var<S>& x, const State<S>& s) const;
// or split into the part that reads only the input and the recurrence on its result:
//   Var<S> project_input(const Weights& w, const Var<S>& x) const;   row by row in x, e.g. x W + b
//   State<S> recur(const Weights& w, const Var<S>& xp, const State<S>& s) const;
// The split form lets forward_sequence project the inputs of all T steps in one op (one large
// product [T*B x in][in x G] forward and backward) and run only recur() per step, and lets
// forward_tokens project the embedding table itself when it has no more rows than T*B.
// It may define:
//   Options (the third template argument; default CellOptions: input_size, hidden_size)
//   static constexpr const char* kName               the name in error messages (default "Cell")
//   static constexpr std::array kStateNames{"h", ...} its state tensors, each [B x hidden_size]
//   std::optional<SequenceResult<S>> fused_sequence(const Weights& w, const Var<S>& xp,
//       const State<S>& s0, const SequenceOptions& options) const;
//   std::optional<SequenceResult<S>> fused_tokens(const Weights& w, const Var<S>& table,
//       std::span<const std::int32_t> ids, const State<S>& s0, const SequenceOptions& options) const;
//                                                    (split form) a whole-sequence op over the
//                                                    projections of all steps, or of a table read
//                                                    by id; nullopt where it does not apply
//
// It gets: step(x, s) and step(w, x, s) with shape checks, forward_sequence and forward_tokens,
// the zero initial_state, output (h), bind(tape) and bind(span of Vars) with shape checks,
// visit_parameters / named_parameters (each parameter under its Parameter::name), and the sizes.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
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
/// s0 as check_sequence, the embedding [K x input_size] with K >= 1 and T*B ids, T >= 1 (their
/// range is checked by the gather ops). Returns T.
template <class S>
Index check_tokens(std::string_view cell, const Var<S>& embedding, std::size_t n_ids, Index input_size,
                   const State<S>& s0, std::span<const char* const> names, Index hidden);
}  // namespace detail

/// A cell whose step is split into project_input and recur (see above).
template <class D>
concept ProjectsInput = requires(const D& d, const typename D::Weights& w, const Var<typename D::Scalar>& x,
                                 const State<typename D::Scalar>& s) {
  { d.project_input(w, x) } -> std::same_as<Var<typename D::Scalar>>;
  { d.recur(w, x, s) } -> std::same_as<State<typename D::Scalar>>;
};

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
    return one_step(w, x, s);
  }

  /// The whole sequence with the cell's Parameters: x_all [T*B x in] holds the inputs of all T
  /// steps time-major (rows t*B .. t*B+B-1 are step t). See sequence.h.
  SequenceResult<S> forward_sequence(const Var<S>& x_all, const State<S>& s0, const SequenceOptions& options = {}) {
    return self().forward_sequence(bind(x_all.tape()), x_all, s0, options);
  }
  /// The whole sequence with the given weights, after the argument checks: for a split step,
  /// one project_input over all steps, then the cell's fused_sequence or recur() step by step;
  /// else next_state step by step. The op-by-op steps record step t inside
  /// time_step(options.first_step + t).
  template <class D = Derived>
  SequenceResult<S> forward_sequence(const typename D::Weights& w, const Var<S>& x_all, const State<S>& s0,
                                     const SequenceOptions& options = {}) const {
    const Index steps = detail::check_sequence<S>(D::kName, x_all, input_size(), s0, D::kStateNames, hidden_size());
    if constexpr (ProjectsInput<D>) {
      return recur_projected(w, self().project_input(w, x_all), s0, steps, options);
    } else {
      return detail::unrolled_sequence(x_all, s0, steps, options.first_step,
                                       [&](const Var<S>& x_t, const State<S>& s) { return one_step(w, x_t, s); });
    }
  }
  /// The sequence of token inputs: the same values and gradients as
  /// forward_sequence(w, gather_rows(embedding, ids), s0, options). embedding [K x in]; ids: T*B
  /// ids in [0, K), time-major. For a split step with K <= T*B (or a cell with fused_tokens) the
  /// embedding table itself is projected, one product over K rows instead of T*B, and its rows
  /// are read by id.
  template <class D = Derived>
  SequenceResult<S> forward_tokens(const typename D::Weights& w, const Var<S>& embedding,
                                   std::span<const std::int32_t> ids, const State<S>& s0,
                                   const SequenceOptions& options = {}) const {
    const Index steps =
        detail::check_tokens<S>(D::kName, embedding, ids.size(), input_size(), s0, D::kStateNames, hidden_size());
    if constexpr (ProjectsInput<D>) {
      constexpr bool kFusesTokens = requires { self().fused_tokens(w, embedding, ids, s0, options); };
      if (!kFusesTokens && embedding.rows() > static_cast<Index>(ids.size())) {
        return recur_projected(w, self().project_input(w, gather_rows(embedding, ids)), s0, steps, options);
      }
      const Var<S> table = self().project_input(w, embedding);  // [K x G]: every token's projection
      if constexpr (kFusesTokens) {
        if (auto fused = self().fused_tokens(w, table, ids, s0, options)) return *std::move(fused);
      }
      return recur_projected(w, gather_rows(table, ids), s0, steps, options);
    } else {
      return forward_sequence(w, gather_rows(embedding, ids), s0, options);
    }
  }
  /// forward_tokens with the cell's Parameters.
  template <class D = Derived>
  SequenceResult<S> forward_tokens(const Var<S>& embedding, std::span<const std::int32_t> ids, const State<S>& s0,
                                   const SequenceOptions& options = {}) {
    return forward_tokens(bind(embedding.tape()), embedding, ids, s0, options);
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

  /// The Parameters as leaves of tape (an absent one as an empty Var).
  template <class D = Derived>
  typename D::Weights bind(Tape<S>& tape) {
    return [&]<std::size_t... k>(std::index_sequence<k...>) {
      return typename D::Weights{leaf_if_present(tape, self().*D::kParameters[k])...};
    }
    (std::make_index_sequence<D::kParameters.size()>{});
  }
  /// Given Vars in named_parameters() order; count (ValueError) and shapes (ShapeError) are checked.
  template <class D = Derived>
  typename D::Weights bind(std::span<const Var<S>> vars) const {
    detail::check_weight_count(D::kName, vars.size(), num_parameter_tensors());
    std::array<Var<S>, D::kParameters.size()> slots;  // absent parameters stay empty
    std::size_t next = 0;
    for (std::size_t k = 0; k < slots.size(); ++k) {
      const Parameter<S>& p = self().*D::kParameters[k];
      if (!present(p)) continue;
      detail::check_weight_shape(D::kName, p.full_name(), vars[next].shape(), p.shape());
      slots[k] = vars[next++];
    }
    return [&]<std::size_t... k>(std::index_sequence<k...>) { return typename D::Weights{slots[k]...}; }
    (std::make_index_sequence<D::kParameters.size()>{});
  }

  [[nodiscard]] Index input_size() const { return options_.input_size; }
  [[nodiscard]] Index hidden_size() const { return options_.hidden_size; }
  [[nodiscard]] Index output_size() const { return options_.hidden_size; }
  [[nodiscard]] std::size_t state_tensors() const { return Derived::kStateNames.size(); }
  [[nodiscard]] std::size_t num_parameter_tensors() const {
    std::size_t n = 0;
    for (const auto member : Derived::kParameters) n += present(self().*member) ? 1 : 0;
    return n;
  }
  [[nodiscard]] const Options& options() const { return options_; }

  void visit_parameters(const ParameterVisitor<S>& v) override {
    for (const auto member : Derived::kParameters) {
      if (present(self().*member)) v((self().*member).name, self().*member);
    }
  }

 private:
  static bool present(const Parameter<S>& p) { return p.value.size() > 0; }
  static Var<S> leaf_if_present(Tape<S>& tape, Parameter<S>& p) { return present(p) ? tape.leaf(p) : Var<S>(); }

  template <class D = Derived>
  State<S> one_step(const typename D::Weights& w, const Var<S>& x, const State<S>& s) const {
    if constexpr (ProjectsInput<D>) {
      return self().recur(w, self().project_input(w, x), s);
    } else {
      return self().next_state(w, x, s);
    }
  }
  /// The recurrence over the projections xp [T*B x G] of all steps: the cell's fused_sequence
  /// where it applies, else recur() step by step.
  template <class D = Derived>
  SequenceResult<S> recur_projected(const typename D::Weights& w, const Var<S>& xp, const State<S>& s0, Index steps,
                                    const SequenceOptions& options) const {
    if constexpr (requires { self().fused_sequence(w, xp, s0, options); }) {
      if (auto fused = self().fused_sequence(w, xp, s0, options)) return *std::move(fused);
    }
    return detail::unrolled_sequence(xp, s0, steps, options.first_step,
                                     [&](const Var<S>& xp_t, const State<S>& s) { return self().recur(w, xp_t, s); });
  }

  Derived& self() { return static_cast<Derived&>(*this); }
  const Derived& self() const { return static_cast<const Derived&>(*this); }

  Options options_;
};

}  // namespace tapegrad::nn
