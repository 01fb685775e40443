// A user's cell on the nn::Cell base, the independently recurrent unit (IndRNN):
//   h' = relu(x W + u * h + b),   W [in x H]; u, b [1 x H]; u * h elementwise, one recurrent
// weight per unit. The base gives it stepping, binding, sizes, the initial state,
// named_parameters (W, u, b), forward_sequence and its place in Stacked, unroll and run_tbptt.
#pragma once

#include <array>
#include <random>

#include <tapegrad/nn/nn.h>
#include <tapegrad/tapegrad.h>

namespace example {
using namespace tapegrad;

template <class S>
struct IndRnnCell : nn::Cell<IndRnnCell<S>, S> {
  static constexpr const char* kName = "IndRnnCell";
  struct Weights {
    Var<S> W, u, b;
  };
  Parameter<S> W, u, b;
  static constexpr std::array kParameters{&IndRnnCell::W, &IndRnnCell::u, &IndRnnCell::b};

  IndRnnCell(const nn::CellOptions& o, std::mt19937_64& rng)
      : IndRnnCell::Cell(o),
        W(Matrix<S>(o.input_size, o.hidden_size), "W"),
        u(Matrix<S>(1, o.hidden_size), "u"),
        b(Matrix<S>::Zero(1, o.hidden_size), "b") {
    nn::init::xavier_uniform(W, rng);
    nn::init::uniform(u, rng, 0.0, 1.0);
  }
  // The step in two parts: what reads only x (all steps' inputs projected by one product in
  // forward_sequence), then the recurrence.
  Var<S> project_input(const Weights& w, const Var<S>& x) const { return affine(x, w.W, w.b); }
  nn::State<S> recur(const Weights& w, const Var<S>& xp, const nn::State<S>& s) const {
    return {{relu(xp + w.u * s.h())}};
  }
};

}  // namespace example
