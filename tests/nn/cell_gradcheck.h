// Gradcheck of a cell (or a stack of cells) as a composite function of its weights, inputs
// and initial state (tapegrad::gradcheck, float64). Each module has bind(span<const Var>)
// taking Vars in named_parameters() order: the checked function binds its leading inputs as
// the weights and runs the module through step(w, x, s), so the analytic gradient flows to
// the gradcheck inputs themselves.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include <tapegrad/gradcheck.h>
#include <tapegrad/nn/state.h>
#include <tapegrad/nn/unroll.h>

#include "support/test_support.h"

namespace tapegrad::test {

/// Gradcheck inputs: the module's parameter values (perturbed away from init so biases and
/// recurrent weights are generic), then T inputs [batch x in], then initial state tensors of
/// the shapes of module.initial_state.
template <class M>
std::vector<Matrix<double>> gradcheck_inputs(M& module, Index batch, Index in, std::size_t steps,
                                             std::mt19937_64& rng) {
  std::vector<Matrix<double>> inputs;
  for (Parameter<double>* p : module.parameters())
    inputs.push_back(p->value + testing::random_matrix(p->value.rows(), p->value.cols(), rng, 0.3));
  for (std::size_t t = 0; t < steps; ++t) inputs.push_back(testing::random_matrix(batch, in, rng));
  Tape<double> tape;
  for (const Var<double>& s : module.initial_state(tape, batch).tensors)
    inputs.push_back(testing::random_matrix(s.rows(), s.cols(), rng, 0.5));
  return inputs;
}

/// The gradcheck Vars split back into weights, xs and the initial state.
struct SplitInputs {
  std::span<const Var<double>> weights;
  std::vector<Var<double>> xs;
  nn::State<double> s0;
};
inline SplitInputs split_inputs(std::span<const Var<double>> in, std::size_t n_weights, std::size_t steps,
                                std::size_t state_tensors) {
  SplitInputs s;
  s.weights = in.first(n_weights);
  for (std::size_t t = 0; t < steps; ++t) s.xs.push_back(in[n_weights + t]);
  for (std::size_t k = 0; k < state_tensors; ++k) s.s0.tensors.push_back(in[n_weights + steps + k]);
  return s;
}

/// Every output and the final state side by side.
inline Var<double> everything(const std::vector<Var<double>>& outputs, const nn::State<double>& final_state) {
  std::vector<Var<double>> parts = outputs;
  for (const Var<double>& v : final_state.tensors) parts.push_back(v);
  return concat_cols<double>(std::span<const Var<double>>(parts));
}

/// Gradcheck of `cell` unrolled over `steps` steps (optionally with variable lengths).
template <class Cell>
void gradcheck_cell(Cell& cell, std::size_t steps, std::vector<std::int32_t> lengths = {}) {
  std::mt19937_64 rng(99);
  const Index batch = lengths.empty() ? 2 : static_cast<Index>(lengths.size());
  const std::size_t n_w = cell.num_parameter_tensors();
  const std::size_t n_s = cell.state_tensors();
  const auto inputs = gradcheck_inputs(cell, batch, cell.input_size(), steps, rng);
  auto fn = [&](std::span<const Var<double>> in) {
    SplitInputs s = split_inputs(in, n_w, steps, n_s);
    const nn::Unrolled<double> u = nn::many_to_many(nn::with_weights(cell, cell.bind(s.weights)), s.xs, s.s0, lengths);
    return everything(u.outputs, u.final_state);
  };
  const GradcheckResult r = gradcheck(fn, inputs);
  EXPECT_TRUE(r.ok) << r.message();
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_NE(r.find(GradcheckCheck::Plain, i), nullptr) << "input " << i << " was not checked";
  }
}

}  // namespace tapegrad::test
