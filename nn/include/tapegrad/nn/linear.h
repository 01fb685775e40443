// A dense layer y = x W + b: x [B x in], W [in x out], b [1 x out] broadcast over the batch;
// y = x W with bias = false (then there is no b at all).
#pragma once

#include <random>
#include <span>

#include <tapegrad/nn/module.h>
#include <tapegrad/ops.h>

namespace tapegrad::nn {

/// y = x W + b, one affine op (one matmul with bias = false).
template <class S>
class Linear : public Module<S> {
 public:
  using Scalar = S;
  static constexpr const char* kName = "Linear";
  struct Options {
    Index input_size = 0;
    Index output_size = 0;
    bool bias = true;  ///< false: no b parameter, y = x W.
  };
  /// The weights forward reads (same order as named_parameters()); b is empty with bias = false.
  struct Weights {
    Var<S> W, b;
  };

  /// W xavier-uniform, b zeros (none with bias = false). ValueError for non-positive sizes.
  Linear(const Options& options, std::mt19937_64& rng);

  /// x [B x in] -> [B x out] with the layer's Parameters.
  Var<S> forward(const Var<S>& x) { return forward(bind(x.tape()), x); }
  /// The same with the given weights.
  Var<S> forward(const Weights& w, const Var<S>& x) const;

  /// The Parameters as leaves of tape.
  Weights bind(Tape<S>& tape) { return {tape.leaf(W), has_bias() ? tape.leaf(b) : Var<S>()}; }
  /// Given Vars in named_parameters() order (W, b; W alone with bias = false); count and shapes
  /// are checked.
  Weights bind(std::span<const Var<S>> vars) const;

  [[nodiscard]] Index input_size() const { return options_.input_size; }
  [[nodiscard]] Index output_size() const { return options_.output_size; }
  [[nodiscard]] bool has_bias() const { return options_.bias; }
  [[nodiscard]] std::size_t num_parameter_tensors() const { return has_bias() ? 2 : 1; }

  void visit_parameters(const ParameterVisitor<S>& v) override {
    v("W", W);
    if (has_bias()) v("b", b);
  }

  Parameter<S> W;  ///< [in x out]
  Parameter<S> b;  ///< [1 x out]; empty, and no parameter, with bias = false

 private:
  Options options_;
};

extern template class Linear<float>;
extern template class Linear<double>;

}  // namespace tapegrad::nn
