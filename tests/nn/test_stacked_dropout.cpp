// Stacked's dropout between layers is nn::dropout with key (stream l, step t): the mask of
// layer l at step t against the generator's uniforms (linear layers make it visible), the
// same masks stepping and over a whole sequence for three layers, fresh masks per sequence,
// and the error when a step has no time step to key its masks by.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <tapegrad/nn/nn.h>

#include "support/test_names.h"
#include "support/test_support.h"

using Mat = tg::Matrix<double>;
using V = tg::Var<double>;
using Stack = nn::Stacked<nn::RnnCell<double>>;

namespace {

using namespace tapegrad::testing;  // expect_error, expect_near, random_matrix

// Three linear layers where layers 1 and 2 pass their input through (W_ih = I, W_hh = 0, b = 0):
// the top output is mask_1 * (mask_0 * h_0), h_0 layer 0's output.
Stack pass_through_stack(double p, std::uint64_t seed) {
  std::mt19937_64 rng(1);
  Stack stack({.cell = {.input_size = 5, .hidden_size = 5, .activation = nn::Activation::Identity},
               .num_layers = 3,
               .dropout = p,
               .seed = seed},
              rng);
  for (std::size_t l = 1; l < 3; ++l) {
    stack.layer(l).W_ih.value.setIdentity();
    stack.layer(l).W_hh.value.setZero();
    stack.layer(l).b.value.setZero();
  }
  return stack;
}

// states[t] is the stacked state after step t, each step inside time_step(t).
std::vector<nn::State<double>> step_all(Stack& stack, tg::Tape<double>& tape, const std::vector<V>& xs) {
  std::vector<nn::State<double>> states;
  nn::State<double> s = stack.initial_state(tape, xs[0].rows());
  for (std::size_t t = 0; t < xs.size(); ++t) {
    auto scope = tape.time_step(static_cast<int>(t));
    states.push_back(s = stack.step(xs[t], s));
  }
  return states;
}

Mat keep_scale(const nn::Generator& gen, const nn::DrawKey& key, Index rows, Index cols, double p) {
  Mat m(rows, cols);
  for (Index i = 0; i < rows; ++i) {
    for (Index j = 0; j < cols; ++j) {
      m(i, j) = gen.uniform(key, static_cast<std::uint64_t>(i * cols + j)) < p ? 0.0 : 1.0 / (1.0 - p);
    }
  }
  return m;
}

TEST(StackedDropout, LayerLAtStepTUsesStreamLAndStepT) {
  const double p = 0.4;
  Stack stack = pass_through_stack(p, 21);
  stack.generator().set_sequence(3);
  std::mt19937_64 rng(2);
  tg::Tape<double> tape;
  std::vector<V> xs;
  for (int t = 0; t < 4; ++t) xs.push_back(tape.constant(random_matrix(6, 5, rng)));
  const std::vector<nn::State<double>> states = step_all(stack, tape, xs);
  for (int t = 0; t < 4; ++t) {
    const nn::State<double>& s = states[static_cast<std::size_t>(t)];
    const Mat h0 = stack.layer_state(s, 0).h().value();
    const Mat want = (h0.array() * keep_scale(stack.generator(), {0, t}, 6, 5, p).array() *
                      keep_scale(stack.generator(), {1, t}, 6, 5, p).array())
                         .matrix();
    expect_near(stack.output(s).value(), want, "step " + std::to_string(t), 1e-12);
  }
}

TEST(StackedDropout, ThreeLayersSequenceAndSteppingDrawTheSameMasks) {
  std::mt19937_64 rng(3);
  Stack stack({.cell = {.input_size = 3, .hidden_size = 4}, .num_layers = 3, .dropout = 0.5, .seed = 4}, rng);
  const Index T = 5, B = 2;
  const Mat x_all = random_matrix(T * B, 3, rng);
  tg::Tape<double> tape;
  std::vector<V> xs;
  for (Index t = 0; t < T; ++t) xs.push_back(tape.constant(Mat(x_all.middleRows(t * B, B))));
  const std::vector<nn::State<double>> states = step_all(stack, tape, xs);
  for (const bool fused : {true, false}) {
    const nn::SequenceResult<double> r =
        stack.forward_sequence(tape.constant(x_all), stack.initial_state(tape, B), {.fused = fused, .first_step = 0});
    for (Index t = 0; t < T; ++t) {
      expect_near(Mat(r.outputs.value().middleRows(t * B, B)),
                  stack.output(states[static_cast<std::size_t>(t)]).value(),
                  "step " + std::to_string(t) + (fused ? " fused" : " unrolled"), 1e-12);
    }
  }
  // A sequence that starts at step 2 draws the masks of steps 2, 3, ...
  const nn::SequenceResult<double> late = stack.forward_sequence(tape.constant(Mat(x_all.middleRows(2 * B, B))),
                                                                 states[1], {.fused = true, .first_step = 2});
  expect_near(late.outputs.value(), stack.output(states[2]).value(), "first_step 2", 1e-12);
}

TEST(StackedDropout, AShareOfTheBatchGetsTheWholeBatchsOutputsForItsRows) {
  // Rows are independent, so rows [2, 5) of a batch of 6, run alone with mask_first_row 2 (one
  // rank's share), must give exactly those rows of the whole batch's outputs, masks included.
  std::mt19937_64 rng(6);
  Stack stack({.cell = {.input_size = 3, .hidden_size = 4}, .num_layers = 3, .dropout = 0.5, .seed = 9}, rng);
  const Index T = 3, B = 6, first = 2, rows = 3;
  const Mat x_all = random_matrix(T * B, 3, rng);
  Mat x_share(T * rows, 3);
  for (Index t = 0; t < T; ++t) x_share.middleRows(t * rows, rows) = x_all.middleRows(t * B + first, rows);
  tg::Tape<double> tape;
  const Mat whole =
      stack.forward_sequence(tape.constant(x_all), stack.initial_state(tape, B), {.first_step = 0}).outputs.value();
  stack.set_mask_first_row(first);
  const Mat share = stack.forward_sequence(tape.constant(x_share), stack.initial_state(tape, rows), {.first_step = 0})
                        .outputs.value();
  for (Index t = 0; t < T; ++t) {
    expect_near(Mat(share.middleRows(t * rows, rows)), Mat(whole.middleRows(t * B + first, rows)),
                "step " + std::to_string(t), 1e-12);
  }
  // Without the offset the share draws rows [0, 3)'s masks and its outputs differ.
  stack.set_mask_first_row(0);
  const Mat unshifted =
      stack.forward_sequence(tape.constant(x_share), stack.initial_state(tape, rows), {.first_step = 0})
          .outputs.value();
  EXPECT_GT((unshifted - share).cwiseAbs().maxCoeff(), 1e-3);
}

TEST(StackedDropout, NextSequenceDrawsFreshMasksAndSeedRestarts) {
  Stack stack = pass_through_stack(0.5, 5);
  tg::Tape<double> tape;
  const V x = tape.constant(Mat::Ones(20, 5));
  const auto top = [&] {
    auto scope = tape.time_step(0);
    return Mat(stack.output(stack.step(x, stack.initial_state(tape, 20))).value());
  };
  const Mat first = top();
  EXPECT_EQ(top(), first);  // the same step again: the same masks
  stack.generator().next_sequence();
  const Mat second = top();
  EXPECT_GT((second.array() != first.array()).count(), 20);
  stack.seed(5);
  EXPECT_EQ(top(), first);
}

TEST(StackedDropout, SteppingWithoutATimeStepIsAValueErrorUnlessEvaluating) {
  Stack stack = pass_through_stack(0.5, 6);
  tg::Tape<double> tape;
  const V x = tape.constant(Mat::Ones(2, 5));
  expect_error<tg::ValueError>([&] { (void)stack.step(x, stack.initial_state(tape, 2)); },
                               {"Stacked.step", "time step", "tape.time_step"});
  stack.train(false);
  EXPECT_NO_THROW((void)stack.step(x, stack.initial_state(tape, 2)));
}

}  // namespace
