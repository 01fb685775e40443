// Unrolling: variable-length batches against each sequence run alone, exact zero gradients
// through padding, many-to-one vs many-to-many, time tags, the reverse direction, errors.
#include <gtest/gtest.h>

#include <random>

#include <tapegrad/error.h>
#include <tapegrad/nn/gru_cell.h>
#include <tapegrad/nn/lstm_cell.h>
#include <tapegrad/nn/stacked.h>
#include <tapegrad/nn/unroll.h>

#include "support/test_names.h"
#include "support/test_support.h"

using Mat = tg::Matrix<double>;
using V = tg::Var<double>;

namespace {

using tapegrad::testing::random_matrix;

// Row b of every state tensor after running sequence b alone (a batch of one) for n steps.
template <class Cell>
std::vector<Mat> run_alone(Cell& cell, const std::vector<Mat>& xs, Index b, std::int32_t n, nn::Direction dir) {
  tg::Tape<double> tape;
  std::vector<V> seq;
  if (dir == nn::Direction::Forward) {
    for (std::int32_t t = 0; t < n; ++t) seq.push_back(tape.constant(xs[static_cast<std::size_t>(t)].row(b)));
  } else {
    // Reversed over the real steps only: the same order the masked reverse unroll uses.
    for (std::int32_t t = n - 1; t >= 0; --t) seq.push_back(tape.constant(xs[static_cast<std::size_t>(t)].row(b)));
  }
  const nn::State<double> s = nn::many_to_one(cell, seq, cell.initial_state(tape, 1));
  std::vector<Mat> out;
  for (const V& v : s.tensors) out.push_back(v.value());
  return out;
}

template <class Cell>
void expect_final_state_matches_alone(Cell& cell, nn::Direction dir) {
  std::mt19937_64 rng(21);
  const std::vector<std::int32_t> lengths = {5, 2, 4, 1};
  const Index B = 4;
  const std::size_t T = 5;
  std::vector<Mat> xs;
  for (std::size_t t = 0; t < T; ++t) xs.push_back(random_matrix(B, cell.input_size(), rng));
  tg::Tape<double> tape;
  std::vector<V> vars;
  for (const Mat& x : xs) vars.push_back(tape.constant(x));
  const nn::State<double> final_state = nn::many_to_one(cell, vars, cell.initial_state(tape, B), lengths, dir);
  for (Index b = 0; b < B; ++b) {
    const std::vector<Mat> alone = run_alone(cell, xs, b, lengths[static_cast<std::size_t>(b)], dir);
    ASSERT_EQ(alone.size(), final_state.size());
    for (std::size_t k = 0; k < alone.size(); ++k) {
      const double err = (final_state.tensors[k].value().row(b) - alone[k]).cwiseAbs().maxCoeff();
      EXPECT_LE(err, 1e-12) << "row " << b << " state tensor " << k;
    }
  }
}

TEST(Unroll, VariableLengthFinalStateEqualsRunningAlone) {
  std::mt19937_64 rng(1);
  nn::LstmCell<double> lstm({.input_size = 3, .hidden_size = 4}, rng);
  expect_final_state_matches_alone(lstm, nn::Direction::Forward);
  nn::GruCell<double> gru({.input_size = 3, .hidden_size = 4}, rng);
  expect_final_state_matches_alone(gru, nn::Direction::Forward);
  nn::Stacked<nn::LstmCell<double>> stack({.cell = {.input_size = 3, .hidden_size = 4}, .num_layers = 2}, rng);
  expect_final_state_matches_alone(stack, nn::Direction::Forward);
}

TEST(Unroll, ReverseVariableLengthStartsAtEachSequencesLastStep) {
  std::mt19937_64 rng(2);
  nn::LstmCell<double> lstm({.input_size = 3, .hidden_size = 4}, rng);
  expect_final_state_matches_alone(lstm, nn::Direction::Reverse);
}

TEST(Unroll, PaddedInputsGetExactlyZeroGradient) {
  std::mt19937_64 rng(3);
  nn::LstmCell<double> cell({.input_size = 3, .hidden_size = 4}, rng);
  const std::vector<std::int32_t> lengths = {4, 1, 3};
  const Index B = 3;
  const std::size_t T = 4;
  tg::Tape<double> tape;
  std::vector<V> xs;
  for (std::size_t t = 0; t < T; ++t) xs.push_back(tape.variable(random_matrix(B, 3, rng)));
  const nn::Unrolled<double> u = nn::many_to_many(cell, xs, cell.initial_state(tape, B), lengths);
  // A loss that reads every output, padded steps included, and the final state.
  V loss = tg::sum(tg::mul(tape.constant(random_matrix(B, 4, rng)), u.final_state.c()));
  for (const V& y : u.outputs) loss = tg::add(loss, tg::sum(tg::mul(tape.constant(random_matrix(B, 4, rng)), y)));
  tape.backward(loss);
  for (std::size_t t = 0; t < T; ++t) {
    for (Index b = 0; b < B; ++b) {
      const Mat g = xs[t].grad().row(b);
      if (static_cast<std::int32_t>(t) >= lengths[static_cast<std::size_t>(b)]) {
        EXPECT_EQ(g, Mat::Zero(1, 3)) << "padded step " << t << " row " << b;
      } else {
        EXPECT_GT(g.cwiseAbs().maxCoeff(), 0.0) << "real step " << t << " row " << b;
      }
    }
  }
}

TEST(Unroll, ManyToOneAgreesWithManyToMany) {
  std::mt19937_64 rng(4);
  nn::GruCell<double> cell({.input_size = 2, .hidden_size = 3}, rng);
  tg::Tape<double> tape;
  std::vector<V> xs;
  for (int t = 0; t < 5; ++t) xs.push_back(tape.constant(random_matrix(2, 2, rng)));
  const nn::State<double> s0 = cell.initial_state(tape, 2);
  const nn::Unrolled<double> all = nn::many_to_many(cell, xs, s0);
  const nn::State<double> last = nn::many_to_one(cell, xs, s0);
  ASSERT_EQ(all.outputs.size(), 5u);
  EXPECT_EQ(all.outputs.back().value(), last.h().value());
  EXPECT_EQ(all.final_state.h().value(), last.h().value());
  // Each output is the state after its step: stepping by hand from output 2 gives output 3.
  const nn::State<double> s3 = cell.step(xs[3], nn::State<double>{{all.outputs[2]}});
  EXPECT_EQ(s3.h().value(), all.outputs[3].value());
  for (std::size_t t = 0; t < all.outputs.size(); ++t) EXPECT_EQ(all.outputs[t].time(), static_cast<int>(t));
}

TEST(Unroll, StepMasksAndLengthErrors) {
  const std::vector<std::int32_t> lengths = {3, 1};
  const auto masks = nn::step_masks<double>(lengths, 3);
  ASSERT_EQ(masks.size(), 3u);
  EXPECT_EQ(masks[0], (Mat(2, 1) << 1, 1).finished());
  EXPECT_EQ(masks[1], (Mat(2, 1) << 1, 0).finished());
  EXPECT_EQ(masks[2], (Mat(2, 1) << 1, 0).finished());
  EXPECT_THROW(nn::step_masks<double>(std::vector<std::int32_t>{0, 1}, 3), tg::ValueError);
  EXPECT_THROW(nn::step_masks<double>(std::vector<std::int32_t>{4, 1}, 3), tg::ValueError);

  std::mt19937_64 rng(5);
  nn::GruCell<double> cell({.input_size = 2, .hidden_size = 3}, rng);
  tg::Tape<double> tape;
  std::vector<V> xs = {tape.constant(Mat::Ones(2, 2)), tape.constant(Mat::Ones(2, 2))};
  const auto s0 = cell.initial_state(tape, 2);
  EXPECT_THROW(nn::many_to_one(cell, xs, s0, std::vector<std::int32_t>{0, 2}), tg::ValueError);
  EXPECT_THROW(nn::many_to_one(cell, xs, s0, std::vector<std::int32_t>{3, 2}), tg::ValueError);
  EXPECT_THROW(nn::many_to_one(cell, xs, s0, std::vector<std::int32_t>{2}), tg::ValueError);
  EXPECT_THROW(nn::many_to_one(cell, std::vector<V>{}, s0), tg::ValueError);
}

}  // namespace
