// A dense layer y = x W + b: x [B x in], W [in x out], b [1 x out] broadcast over the batch.
#pragma once

#include <random>
#include <span>

#include <tapegrad/nn/module.h>
#include <tapegrad/ops.h>

namespace tapegrad::nn {

/// y = x W + b, one affine op.
template <class S>
class Linear : public Module<S> {
 public:
  using Scalar = S;
  static constexpr const char* kName = "Linear";
  struct Options {
    Index input_size = 0;
    Index output_size = 0;
  };
  /// The weights forward reads (same order as named_parameters()).
  struct Weights {
    Var<S> W, b;
  };

  /// W xavier-uniform, b zeros. ValueError for non-positive sizes.
  Linear(const Options& options, std::mt19937_64& rng);

  /// x [B x in] -> [B x out] with the layer's Parameters.
  Var<S> forward(const Var<S>& x) { return forward(bind(x.tape()), x); }
  /// The same with the given weights.
  Var<S> forward(const Weights& w, const Var<S>& x) const;

  /// The Parameters as leaves of tape.
  Weights bind(Tape<S>& tape) { return {tape.leaf(W), tape.leaf(b)}; }
  /// Given Vars in named_parameters() order (W, b); shapes are checked.
  Weights bind(std::span<const Var<S>> vars) const;

  [[nodiscard]] Index input_size() const { return options_.input_size; }
  [[nodiscard]] Index output_size() const { return options_.output_size; }
  [[nodiscard]] std::size_t num_parameter_tensors() const { return 2; }

  void visit_parameters(const ParameterVisitor<S>& v) override {
    v("W", W);
    v("b", b);
  }

  Parameter<S> W;  ///< [in x out]
  Parameter<S> b;  ///< [1 x out]

 private:
  Options options_;
};

extern template class Linear<float>;
extern template class Linear<double>;

}  // namespace tapegrad::nn
