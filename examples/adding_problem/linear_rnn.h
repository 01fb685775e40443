// A vanilla RNN with the identity as its activation, h_t = x_t U + h_{t-1} W + b, built from
// ops directly (nn::RnnCell offers tanh, relu and logistic only). With gamma = 1 the one-step
// Jacobian is exactly W^T, so ||dL/dh_k|| follows sigma_max(W)^(T-k): W scaled so that
// sigma_max(W) > 1 makes the gradient explode, the textbook case for clipping.
#pragma once

#include <random>
#include <vector>

#include <tapegrad/nn/init.h>
#include <tapegrad/nn/state.h>
#include <tapegrad/ops.h>
#include <tapegrad/parameter.h>

namespace adding {

/// Shaped like the nn cells (step / output / initial_state / parameters), so the same
/// training loop runs it.
class LinearRnn {
 public:
  using S = double;
  /// U xavier-uniform, W = recurrent_scale * a random orthogonal matrix, b zeros.
  LinearRnn(tapegrad::Index input_size, tapegrad::Index hidden_size, double recurrent_scale, std::mt19937_64& rng)
      : W_ih(tapegrad::Matrix<S>::Zero(input_size, hidden_size), "W_ih"),
        W_hh(tapegrad::Matrix<S>::Zero(hidden_size, hidden_size), "W_hh"),
        b(tapegrad::Matrix<S>::Zero(1, hidden_size), "b") {
    tapegrad::nn::init::xavier_uniform(W_ih.value, rng);
    tapegrad::nn::init::orthogonal(W_hh.value, rng, recurrent_scale);
  }

  tapegrad::nn::State<S> step(const tapegrad::Var<S>& x, const tapegrad::nn::State<S>& s) {
    auto& tape = x.tape();
    return {
        {tapegrad::add(tapegrad::affine(x, tape.leaf(W_ih), tape.leaf(b)), tapegrad::matmul(s.h(), tape.leaf(W_hh)))}};
  }
  [[nodiscard]] tapegrad::Var<S> output(const tapegrad::nn::State<S>& s) const { return s.h(); }
  [[nodiscard]] tapegrad::nn::State<S> initial_state(tapegrad::Tape<S>& tape, tapegrad::Index batch) const {
    return {{tape.constant(tapegrad::Matrix<S>::Zero(batch, W_hh.value.rows()))}};
  }
  std::vector<tapegrad::Parameter<S>*> parameters() { return {&W_ih, &W_hh, &b}; }

  tapegrad::Parameter<S> W_ih;  ///< [in x H]
  tapegrad::Parameter<S> W_hh;  ///< [H x H]
  tapegrad::Parameter<S> b;     ///< [1 x H]
};

}  // namespace adding
