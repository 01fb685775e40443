// The small model checkpoint fuzzing and the seed generator use: two parameters (W [3 x 2],
// b [1 x 2]) and an Adam, an RMSprop (centered, with momentum: every state slot) and an Adagrad
// optimizer over them, in float or double.
#pragma once

#include <vector>

#include <tapegrad/nn/checkpoint.h>
#include <tapegrad/nn/optim.h>

namespace tapegrad::fuzz {

template <class S>
struct SmallModel {
  Parameter<S> W{Matrix<S>::Constant(3, 2, S(0.25)), "W"};
  Parameter<S> b{Matrix<S>::Constant(1, 2, S(-0.5)), "b"};
  nn::Adam<S> adam{{&W, &b}};
  nn::Rmsprop<S> rmsprop{{&W, &b}, nn::RmspropOptions{.momentum = 0.5, .centered = true}};
  nn::Adagrad<S> adagrad{{&W, &b}};

  nn::NamedParameters<S> named() { return {{"W", &W}, {"b", &b}}; }
  /// Every tensor a load may write (parameters and optimizer state), by value.
  std::vector<Matrix<S>> snapshot() {
    std::vector<Matrix<S>> out = {W.value, b.value, W.grad, b.grad};
    for (nn::Optimizer<S>* o : {static_cast<nn::Optimizer<S>*>(&adam), static_cast<nn::Optimizer<S>*>(&rmsprop),
                                static_cast<nn::Optimizer<S>*>(&adagrad)}) {
      for (auto& [name, m] : o->state_tensors()) out.push_back(*m);
    }
    return out;
  }
};

}  // namespace tapegrad::fuzz
