// Deep and bidirectional recurrences built from any cell.
//
// Stacked<Cell>: L layers of the same cell type, of one hidden size or of per-layer sizes
// (Options::hidden_sizes). Layer 0 reads x, layer l > 0 reads layer l-1's output (its h).
// Each layer has its own weights, shared across time steps. The state
// is the per-layer states concatenated: for LSTM layers {h0, c0, h1, c1, ...}. In training
// mode with dropout p > 0, the output of every layer but the last goes through nn::dropout
// (dropout.h) with a fresh mask each step: each unit is kept with probability 1 - p and scaled
// by 1/(1 - p). The mask of layer l at step t is drawn from the module's own Generator with
// key (stream l, step t): recording step t again draws the same mask.
// Stacked<Cell> is itself a cell (step / initial_state / output), so it unrolls, stacks into
// Bidirectional, and drives truncated BPTT like any other cell.
//
// Bidirectional<Cell>: two independent cells, "fwd" reading positions 0..T-1 and "bwd"
// reading T-1..0; the output at position t is [fwd_t, bwd_t] ([B x 2H]). Variable-length
// batches are handled as in unroll.h: the backward direction of a sequence of length n starts
// from its initial state at position n-1.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/error.h>
#include <tapegrad/nn/dropout.h>
#include <tapegrad/nn/gru_cell.h>
#include <tapegrad/nn/lstm_cell.h>
#include <tapegrad/nn/module.h>
#include <tapegrad/nn/rnn_cell.h>
#include <tapegrad/nn/sequence.h>
#include <tapegrad/nn/state.h>
#include <tapegrad/nn/unroll.h>
#include <tapegrad/ops.h>

namespace tapegrad::nn {

/// A cell with forward_tokens: every cell on the nn::Cell base (the built-in ones fold the
/// embedding into their input projection).
template <class Cell>
concept TokenCell = requires(const Cell& c, const typename Cell::Weights& w, const Var<typename Cell::Scalar>& e,
                             std::span<const std::int32_t> ids, const State<typename Cell::Scalar>& s0) {
  c.forward_tokens(w, e, ids, s0);
};

/// L layers of Cell with dropout between layers. Parameter names: "layers.<l>.cell.<name>".
template <class Cell>
class Stacked : public Module<typename Cell::Scalar> {
 public:
  using Scalar = typename Cell::Scalar;
  using S = Scalar;
  struct Options {
    /// Every layer's options; layer 0 reads input_size inputs, layer l > 0 the hidden_size of
    /// layer l-1.
    typename Cell::Options cell;
    Index num_layers = 1;
    double dropout = 0.0;    ///< Probability of dropping a unit between layers (training only), in [0, 1).
    std::uint64_t seed = 0;  ///< Seed of the dropout masks' Generator.
    /// Per-layer hidden sizes, layer 0 first. When given, they set the number of layers
    /// (num_layers stays 1 or equals their count) and each layer's hidden_size (cell.hidden_size
    /// stays 0 or equals the first).
    std::vector<Index> hidden_sizes = {};
  };
  /// Per-layer weights, layer 0 first.
  using Weights = std::vector<typename Cell::Weights>;

  /// Builds the layers from rng (in order). ValueError for num_layers < 1, dropout outside
  /// [0, 1) or hidden_sizes that disagree with num_layers or cell.hidden_size.
  Stacked(const Options& options, std::mt19937_64& rng) : options_(options), generator_(options.seed) {
    const std::vector<Index> sizes = layer_sizes(options);
    options_.num_layers = static_cast<Index>(sizes.size());
    TAPEGRAD_CHECK(options.dropout >= 0.0 && options.dropout < 1.0, ValueError,
                   "Stacked: dropout must be in [0, 1), got {}", options.dropout);
    typename Cell::Options layer = options.cell;
    layers_.reserve(sizes.size());
    for (const Index hidden : sizes) {
      layer.hidden_size = hidden;
      layers_.emplace_back(layer, rng);
      layer.input_size = layer.hidden_size;
    }
    this->name_parameters();  // "layers.<l>.cell.<name>" on the tape and in errors from the start
  }

  /// One step of every layer with the module's Parameters.
  State<S> step(const Var<S>& x, const State<S>& s) { return step(bind(x.tape()), x, s); }
  /// One step of every layer with the given weights. With dropout in training, the step must be
  /// recorded inside tape.time_step(t) (ValueError otherwise): t picks the masks.
  State<S> step(const Weights& w, const Var<S>& x, const State<S>& s) {
    TAPEGRAD_CHECK(w.size() == layers_.size(), ValueError, "Stacked.step: got weights for {} layer(s), expected {}",
                   w.size(), layers_.size());
    TAPEGRAD_CHECK(s.size() == state_tensors(), ShapeError,
                   "Stacked.step: the state has {} tensor(s), expected {} ({} layer(s) x {})", s.size(),
                   state_tensors(), layers_.size(), per_layer());
    const bool drop = training_ && options_.dropout > 0 && layers_.size() > 1;
    const int t = x.tape().current_time();
    TAPEGRAD_CHECK(!drop || t != kNoTime, ValueError,
                   "Stacked.step: dropout between layers needs the time step: record the step inside "
                   "tape.time_step(t) (unroll and run_tbptt do), or call train(false)");
    State<S> out;
    out.tensors.reserve(s.size());
    Var<S> input = x;
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      State<S> next = layers_[l].step(w[l], input, layer_state(s, l));
      input = layers_[l].output(next);
      if (l + 1 < layers_.size()) input = dropout(input, generator_, dropout_options(l, t));
      for (Var<S>& v : next.tensors) out.tensors.push_back(v);
    }
    return out;
  }
  /// The whole sequence through every layer with the module's Parameters. x_all [T*B x in] is
  /// time-major (see sequence.h); s0 is a stacked state; outputs are the top layer's h.
  SequenceResult<S> forward_sequence(const Var<S>& x_all, const State<S>& s0, const SequenceOptions& options = {}) {
    return forward_sequence(bind(x_all.tape()), x_all, s0, options);
  }
  /// The same with the given weights. Layer l runs its whole sequence over layer l-1's outputs
  /// [T*B x H]; in training with dropout, row block t of those gets the mask of step
  /// options.first_step + t: the very masks step() draws inside time_step(first_step + t).
  SequenceResult<S> forward_sequence(const Weights& w, const Var<S>& x_all, const State<S>& s0,
                                     const SequenceOptions& options = {}) {
    return run_layers("Stacked.forward_sequence", w, s0, options, [&](const State<S>& layer0_s0) {
      return layers_[0].forward_sequence(w[0], x_all, layer0_s0, options);
    });
  }
  /// Token ids through an embedding [K x in] into layer 0 with the embedding folded into its
  /// input projection (Cell::forward_tokens of the built-in cells), the other layers as in
  /// forward_sequence: the same values and gradients as
  /// forward_sequence(gather_rows(embedding, ids), s0, options). ids: T*B ids, time-major.
  SequenceResult<S> forward_tokens(const Var<S>& embedding, std::span<const std::int32_t> ids, const State<S>& s0,
                                   const SequenceOptions& options = {}) requires TokenCell<Cell> {
    return forward_tokens(bind(embedding.tape()), embedding, ids, s0, options);
  }
  /// The same with the given weights.
  SequenceResult<S> forward_tokens(const Weights& w, const Var<S>& embedding, std::span<const std::int32_t> ids,
                                   const State<S>& s0, const SequenceOptions& options = {}) requires TokenCell<Cell> {
    return run_layers("Stacked.forward_tokens", w, s0, options, [&](const State<S>& layer0_s0) {
      return layers_[0].forward_tokens(w[0], embedding, ids, layer0_s0, options);
    });
  }
  /// Every layer's zero state, concatenated.
  State<S> initial_state(Tape<S>& tape, Index batch) const {
    State<S> out;
    for (const Cell& c : layers_) {
      for (const Var<S>& v : c.initial_state(tape, batch).tensors) out.tensors.push_back(v);
    }
    return out;
  }
  /// The top layer's output.
  Var<S> output(const State<S>& s) const { return layers_.back().output(layer_state(s, layers_.size() - 1)); }
  /// Layer l's part of a stacked state.
  State<S> layer_state(const State<S>& s, std::size_t l) const {
    TAPEGRAD_CHECK(s.size() == state_tensors(), ShapeError,
                   "Stacked.layer_state: the state has {} tensor(s), expected {}", s.size(), state_tensors());
    State<S> out;
    const std::size_t k = per_layer();
    out.tensors.assign(s.tensors.begin() + static_cast<std::ptrdiff_t>(l * k),
                       s.tensors.begin() + static_cast<std::ptrdiff_t>((l + 1) * k));
    return out;
  }

  /// Every layer's Parameters as leaves of tape.
  Weights bind(Tape<S>& tape) {
    Weights w;
    for (Cell& c : layers_) w.push_back(c.bind(tape));
    return w;
  }
  /// Given Vars in named_parameters() order (layer 0's first); counts and shapes are checked.
  Weights bind(std::span<const Var<S>> vars) const {
    TAPEGRAD_CHECK(vars.size() == num_parameter_tensors(), ValueError,
                   "Stacked.bind: got {} weight tensor(s), expected {}", vars.size(), num_parameter_tensors());
    Weights w;
    std::size_t at = 0;
    for (const Cell& c : layers_) {
      w.push_back(c.bind(vars.subspan(at, c.num_parameter_tensors())));
      at += c.num_parameter_tensors();
    }
    return w;
  }

  /// Dropout on (training) or off (evaluation).
  void train(bool on = true) { training_ = on; }
  [[nodiscard]] bool training() const { return training_; }
  /// Restarts the dropout masks: seed s, sequence 0.
  void seed(std::uint64_t s) { generator_ = Generator(s); }
  /// The dropout masks' Generator: next_sequence() per batch for fresh masks; save it in
  /// checkpoints (checkpoint.h) to resume bit for bit.
  [[nodiscard]] Generator& generator() { return generator_; }
  [[nodiscard]] const Generator& generator() const { return generator_; }
  /// Where the batch's first row sits in the batch the masks are drawn for
  /// (DropoutOptions::first_row): a data-parallel rank holding rows [r, r + b) of the global
  /// batch sets r and draws those rows' masks of the global batch.
  void set_mask_first_row(Index first_row) { mask_first_row_ = first_row; }
  [[nodiscard]] Index mask_first_row() const { return mask_first_row_; }

  [[nodiscard]] Cell& layer(std::size_t l) { return layers_.at(l); }
  [[nodiscard]] const Cell& layer(std::size_t l) const { return layers_.at(l); }
  [[nodiscard]] std::size_t num_layers() const { return layers_.size(); }
  [[nodiscard]] Index input_size() const { return layers_.front().input_size(); }
  [[nodiscard]] Index hidden_size() const { return layers_.back().hidden_size(); }
  [[nodiscard]] Index output_size() const { return layers_.back().output_size(); }
  [[nodiscard]] std::size_t state_tensors() const { return layers_.size() * per_layer(); }
  [[nodiscard]] std::size_t num_parameter_tensors() const {
    std::size_t n = 0;
    for (const Cell& c : layers_) n += c.num_parameter_tensors();
    return n;
  }
  [[nodiscard]] const Options& options() const { return options_; }

  void visit_parameters(const ParameterVisitor<S>& v) override {
    for (std::size_t l = 0; l < layers_.size(); ++l) v.child(fmt::format("layers.{}.cell", l), layers_[l]);
  }

 private:
  [[nodiscard]] std::size_t per_layer() const { return layers_.front().state_tensors(); }
  // Each layer's hidden size, from hidden_sizes or num_layers copies of cell.hidden_size.
  static std::vector<Index> layer_sizes(const Options& o) {
    if (o.hidden_sizes.empty()) {
      TAPEGRAD_CHECK(o.num_layers >= 1, ValueError, "Stacked: num_layers must be >= 1, got {}", o.num_layers);
      return std::vector<Index>(static_cast<std::size_t>(o.num_layers), o.cell.hidden_size);
    }
    const auto n = static_cast<Index>(o.hidden_sizes.size());
    TAPEGRAD_CHECK(o.num_layers == 1 || o.num_layers == n, ValueError,
                   "Stacked: num_layers is {} but hidden_sizes has {} entries", o.num_layers, n);
    TAPEGRAD_CHECK(o.cell.hidden_size == 0 || o.cell.hidden_size == o.hidden_sizes[0], ValueError,
                   "Stacked: cell.hidden_size is {} but hidden_sizes[0] is {}", o.cell.hidden_size, o.hidden_sizes[0]);
    return o.hidden_sizes;
  }
  // forward_sequence / forward_tokens after layer 0 (first_layer(its s0) runs it): every later
  // layer's whole sequence over the one below, with dropout between them in training.
  template <class FirstLayer>
  SequenceResult<S> run_layers(const char* fn, const Weights& w, const State<S>& s0, const SequenceOptions& options,
                               FirstLayer first_layer) {
    TAPEGRAD_CHECK(w.size() == layers_.size(), ValueError, "{}: got weights for {} layer(s), expected {}", fn, w.size(),
                   layers_.size());
    TAPEGRAD_CHECK(s0.size() == state_tensors(), ShapeError,
                   "{}: the state s0 has {} tensor(s), expected {} ({} layer(s) x {})", fn, s0.size(), state_tensors(),
                   layers_.size(), per_layer());
    SequenceResult<S> out;
    out.final_state.tensors.reserve(s0.size());
    Var<S> input;
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      SequenceResult<S> r = l == 0 ? first_layer(layer_state(s0, 0))
                                   : layers_[l].forward_sequence(w[l], input, layer_state(s0, l), options);
      input = r.outputs;
      if (l + 1 < layers_.size()) {
        input = dropout_sequence(input, r.final_state.tensors[0].rows(), generator_,
                                 dropout_options(l, options.first_step));
      }
      for (Var<S>& v : r.final_state.tensors) out.final_state.tensors.push_back(v);
    }
    out.outputs = input;
    return out;
  }
  // Layer l's dropout site at step t: stream l.
  DropoutOptions dropout_options(std::size_t l, std::int64_t t) const {
    return {.p = options_.dropout, .stream = l, .training = training_, .step = t, .first_row = mask_first_row_};
  }

  Options options_;
  std::vector<Cell> layers_;
  Generator generator_;
  Index mask_first_row_ = 0;
  bool training_ = true;
};

/// A forward and a backward Cell over a whole sequence. Parameter names: "fwd.<name>", "bwd.<name>".
template <class Cell>
class Bidirectional : public Module<typename Cell::Scalar> {
 public:
  using Scalar = typename Cell::Scalar;
  using S = Scalar;
  using Options = typename Cell::Options;
  struct Weights {
    typename Cell::Weights fwd, bwd;
  };
  struct Output {
    std::vector<Var<S>> outputs;  ///< outputs[t] = [fwd output at t, bwd output at t], [B x 2H].
    State<S> final_state;         ///< The fwd direction's final state, then the bwd direction's.
  };

  /// fwd is built from rng first, then bwd.
  Bidirectional(const Options& options, std::mt19937_64& rng) : fwd_(options, rng), bwd_(options, rng) {
    this->name_parameters();  // "fwd.<name>", "bwd.<name>" on the tape and in errors from the start
  }

  /// Runs both directions over xs from s0 (fwd tensors, then bwd; see initial_state).
  Output forward(const std::vector<Var<S>>& xs, const State<S>& s0, std::span<const std::int32_t> lengths = {}) {
    TAPEGRAD_CHECK(!xs.empty(), ValueError, "Bidirectional.forward: the sequence xs is empty");
    return forward(bind(xs[0].tape()), xs, s0, lengths);
  }
  /// The same with the given weights.
  Output forward(const Weights& w, const std::vector<Var<S>>& xs, const State<S>& s0,
                 std::span<const std::int32_t> lengths = {}) {
    const std::size_t k = fwd_.state_tensors();
    TAPEGRAD_CHECK(s0.size() == 2 * k, ShapeError,
                   "Bidirectional.forward: the state has {} tensor(s), expected {} ({} per direction)", s0.size(),
                   2 * k, k);
    State<S> s_fwd, s_bwd;
    s_fwd.tensors.assign(s0.tensors.begin(), s0.tensors.begin() + static_cast<std::ptrdiff_t>(k));
    s_bwd.tensors.assign(s0.tensors.begin() + static_cast<std::ptrdiff_t>(k), s0.tensors.end());
    auto fwd = with_weights(fwd_, w.fwd);
    auto bwd = with_weights(bwd_, w.bwd);
    Unrolled<S> a = many_to_many(fwd, xs, s_fwd, lengths, Direction::Forward);
    Unrolled<S> b = many_to_many(bwd, xs, s_bwd, lengths, Direction::Reverse);
    Output out;
    Tape<S>& tape = xs[0].tape();
    for (std::size_t t = 0; t < xs.size(); ++t) {
      auto scope = tape.time_step(static_cast<int>(t));
      out.outputs.push_back(concat_cols<S>({a.outputs[t], b.outputs[t]}));
    }
    out.final_state = std::move(a.final_state);
    for (Var<S>& v : b.final_state.tensors) out.final_state.tensors.push_back(v);
    return out;
  }
  /// Zero states of both directions (fwd tensors, then bwd).
  State<S> initial_state(Tape<S>& tape, Index batch) const {
    State<S> out = fwd_.initial_state(tape, batch);
    for (const Var<S>& v : bwd_.initial_state(tape, batch).tensors) out.tensors.push_back(v);
    return out;
  }

  /// Both directions' Parameters as leaves of tape.
  Weights bind(Tape<S>& tape) { return {fwd_.bind(tape), bwd_.bind(tape)}; }
  /// Given Vars in named_parameters() order (fwd's, then bwd's).
  Weights bind(std::span<const Var<S>> vars) const {
    const std::size_t n = fwd_.num_parameter_tensors();
    TAPEGRAD_CHECK(vars.size() == 2 * n, ValueError, "Bidirectional.bind: got {} weight tensor(s), expected {}",
                   vars.size(), 2 * n);
    return {fwd_.bind(vars.first(n)), bwd_.bind(vars.subspan(n))};
  }

  [[nodiscard]] Cell& forward_cell() { return fwd_; }
  [[nodiscard]] Cell& backward_cell() { return bwd_; }
  [[nodiscard]] Index output_size() const { return fwd_.output_size() + bwd_.output_size(); }
  [[nodiscard]] std::size_t state_tensors() const { return 2 * fwd_.state_tensors(); }
  [[nodiscard]] std::size_t num_parameter_tensors() const { return 2 * fwd_.num_parameter_tensors(); }

  void visit_parameters(const ParameterVisitor<S>& v) override {
    v.child("fwd", fwd_);
    v.child("bwd", bwd_);
  }

 private:
  Cell fwd_;
  Cell bwd_;
};

// The stacks of the built-in cells are compiled once, in nn/src/stacked.cpp.
#define TAPEGRAD_FOR_EACH_BUILTIN_CELL(X) \
  X(RnnCell<float>) X(RnnCell<double>) X(LstmCell<float>) X(LstmCell<double>) X(GruCell<float>) X(GruCell<double>)
#define TAPEGRAD_EXTERN_LAYERS(Cell)   \
  extern template class Stacked<Cell>; \
  extern template class Bidirectional<Cell>;
TAPEGRAD_FOR_EACH_BUILTIN_CELL(TAPEGRAD_EXTERN_LAYERS)
#undef TAPEGRAD_EXTERN_LAYERS

}  // namespace tapegrad::nn
