// A lookup table of K learned vectors of width D: forward(ids) stacks table rows ids[0..B).
// tied_logits reuses the table as the output layer (weight tying: head = table^T).
#pragma once

#include <cstdint>
#include <random>
#include <span>

#include <tapegrad/nn/module.h>
#include <tapegrad/ops.h>

namespace tapegrad::nn {

/// Row i of forward(ids) is table row ids[i]; the gradient scatter-adds into those rows.
template <class S>
class Embedding : public Module<S> {
 public:
  using Scalar = S;
  struct Options {
    Index num_embeddings = 0;  ///< K, the vocabulary size.
    Index embedding_dim = 0;   ///< D.
    double init_std = 1.0;     ///< table ~ N(0, init_std^2).
  };

  /// ValueError for non-positive sizes or a negative init_std.
  Embedding(const Options& options, std::mt19937_64& rng);

  /// [ids.size() x D] with the module's table. ValueError for an id outside [0, K).
  Var<S> forward(Tape<S>& tape, std::span<const std::int32_t> ids) { return forward(tape.leaf(table), ids); }
  /// The same with a given table Var of shape [K x D].
  Var<S> forward(const Var<S>& table_var, std::span<const std::int32_t> ids) const;

  /// The output layer tied to the table (PyTorch's head.weight = embedding.weight): h [B x D] ->
  /// logits [B x K] = h table^T, no bias. Give it the table Var forward read (Tape::leaf returns
  /// the same leaf for the same Parameter on one tape): one Parameter, whose gradient is the sum
  /// of its two uses. ShapeError unless table_var is [K x D] and h has D columns.
  Var<S> tied_logits(const Var<S>& table_var, const Var<S>& h) const;
  /// The same with the module's table.
  Var<S> tied_logits(const Var<S>& h) { return tied_logits(h.tape().leaf(table), h); }

  [[nodiscard]] Index num_embeddings() const { return options_.num_embeddings; }
  [[nodiscard]] Index embedding_dim() const { return options_.embedding_dim; }

  void visit_parameters(const ParameterVisitor<S>& v) override { v("table", table); }

  Parameter<S> table;  ///< [K x D]

 private:
  Options options_;
};

extern template class Embedding<float>;
extern template class Embedding<double>;

}  // namespace tapegrad::nn
