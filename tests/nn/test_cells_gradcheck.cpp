// Every module as a composite function of its parameters, inputs and initial state, checked
// by finite differences (tapegrad::gradcheck, float64; how: cell_gradcheck.h).
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include <tapegrad/gradcheck.h>
#include <tapegrad/nn/embedding.h>
#include <tapegrad/nn/gru_cell.h>
#include <tapegrad/nn/linear.h>
#include <tapegrad/nn/lstm_cell.h>
#include <tapegrad/nn/rnn_cell.h>
#include <tapegrad/nn/stacked.h>
#include <tapegrad/nn/unroll.h>

#include "cell_gradcheck.h"
#include "support/test_names.h"
#include "support/test_support.h"

using Mat = tg::Matrix<double>;
using V = tg::Var<double>;
using tapegrad::test::gradcheck_cell;
using tapegrad::test::gradcheck_inputs;
using tapegrad::test::split_inputs;
using tapegrad::testing::random_matrix;

namespace {

// Builds the cell from its options and seed, then gradchecks it over `steps` (and `lengths`).
template <class Cell>
void check_cell(const typename Cell::Options& options, std::uint64_t seed, std::size_t steps = 3,
                const std::vector<std::int32_t>& lengths = {}) {
  std::mt19937_64 rng(seed);
  Cell cell(options, rng);
  gradcheck_cell(cell, steps, lengths);
}

TEST(CellsGradcheck, RnnCellTanh) { check_cell<nn::RnnCell<double>>({.input_size = 3, .hidden_size = 4}, 1); }
TEST(CellsGradcheck, RnnCellLogistic) {
  check_cell<nn::RnnCell<double>>({.input_size = 3, .hidden_size = 4, .activation = nn::Activation::Logistic}, 2);
}
TEST(CellsGradcheck, RnnCellReluIdentityInit) {
  check_cell<nn::RnnCell<double>>({.input_size = 3,
                                   .hidden_size = 4,
                                   .activation = nn::Activation::Relu,
                                   .recurrent_init = nn::RecurrentInit::Identity},
                                  3);
}
TEST(CellsGradcheck, LstmCell) { check_cell<nn::LstmCell<double>>({.input_size = 3, .hidden_size = 4}, 4); }
TEST(CellsGradcheck, GruCell) { check_cell<nn::GruCell<double>>({.input_size = 3, .hidden_size = 4}, 5); }
TEST(CellsGradcheck, MaskedUnrollLstm) {
  check_cell<nn::LstmCell<double>>({.input_size = 2, .hidden_size = 3}, 6, 4, {4, 1, 3});
}
TEST(CellsGradcheck, MaskedUnrollGru) {
  check_cell<nn::GruCell<double>>({.input_size = 2, .hidden_size = 3}, 7, 4, {2, 4, 1});
}

TEST(CellsGradcheck, StackedLstmTwoLayersNoDropout) {
  std::mt19937_64 rng(8);
  nn::Stacked<nn::LstmCell<double>> stack({.cell = {.input_size = 3, .hidden_size = 3}, .num_layers = 2}, rng);
  gradcheck_cell(stack, 3);
}

TEST(CellsGradcheck, StackedGruTwoLayersWithDropout) {
  std::mt19937_64 rng(9);
  nn::Stacked<nn::GruCell<double>> stack(
      {.cell = {.input_size = 3, .hidden_size = 4}, .num_layers = 2, .dropout = 0.5, .seed = 17}, rng);
  const std::size_t steps = 3;
  const std::size_t n_w = stack.num_parameter_tensors();
  const auto inputs = gradcheck_inputs(stack, 2, 3, steps, rng);
  auto fn = [&](std::span<const V> in) {
    stack.seed(17);  // the same masks on every evaluation
    auto s = split_inputs(in, n_w, steps, 2);
    const nn::Unrolled<double> u = nn::many_to_many(nn::with_weights(stack, stack.bind(s.weights)), s.xs, s.s0);
    return tapegrad::test::everything(u.outputs, u.final_state);
  };
  const tg::GradcheckResult r = tg::gradcheck(fn, inputs);
  EXPECT_TRUE(r.ok) << r.message();

  // Dropout really was on: evaluation mode gives a different result from the same inputs.
  tg::Tape<double> tape;
  std::vector<V> vars;
  for (const Mat& m : inputs) vars.push_back(tape.constant(m));
  const Mat train_out = fn(vars).value();
  stack.train(false);
  const Mat eval_out = fn(vars).value();
  stack.train(true);
  EXPECT_GT((train_out - eval_out).cwiseAbs().maxCoeff(), 1e-3);
}

TEST(CellsGradcheck, BidirectionalGruWithLengths) {
  std::mt19937_64 rng(10);
  nn::Bidirectional<nn::GruCell<double>> bi({.input_size = 2, .hidden_size = 3}, rng);
  const std::size_t steps = 3;
  const std::vector<std::int32_t> lengths = {3, 2};
  const std::size_t n_w = bi.num_parameter_tensors();
  const auto inputs = gradcheck_inputs(bi, 2, 2, steps, rng);
  auto fn = [&](std::span<const V> in) {
    auto s = split_inputs(in, n_w, steps, bi.state_tensors());
    auto out = bi.forward(bi.bind(s.weights), s.xs, s.s0, lengths);
    return tapegrad::test::everything(out.outputs, out.final_state);
  };
  const tg::GradcheckResult r = tg::gradcheck(fn, inputs);
  EXPECT_TRUE(r.ok) << r.message();
}

TEST(CellsGradcheck, BidirectionalLstm) {
  std::mt19937_64 rng(11);
  nn::Bidirectional<nn::LstmCell<double>> bi({.input_size = 2, .hidden_size = 2}, rng);
  const std::size_t steps = 3;
  const std::size_t n_w = bi.num_parameter_tensors();
  const auto inputs = gradcheck_inputs(bi, 2, 2, steps, rng);
  auto fn = [&](std::span<const V> in) {
    auto s = split_inputs(in, n_w, steps, bi.state_tensors());
    auto out = bi.forward(bi.bind(s.weights), s.xs, s.s0);
    return tg::concat_rows<double>(std::span<const V>(out.outputs));
  };
  const tg::GradcheckResult r = tg::gradcheck(fn, inputs);
  EXPECT_TRUE(r.ok) << r.message();
}

TEST(CellsGradcheck, Linear) {
  std::mt19937_64 rng(12);
  nn::Linear<double> lin({.input_size = 4, .output_size = 3}, rng);
  const std::vector<Mat> inputs = {random_matrix(4, 3, rng), random_matrix(1, 3, rng), random_matrix(5, 4, rng)};
  auto fn = [&](std::span<const V> in) { return lin.forward(lin.bind(in.first(2)), in[2]); };
  const tg::GradcheckResult r = tg::gradcheck(fn, inputs);
  EXPECT_TRUE(r.ok) << r.message();
}

TEST(CellsGradcheck, EmbeddingWithRespectToTable) {
  std::mt19937_64 rng(13);
  nn::Embedding<double> emb({.num_embeddings = 5, .embedding_dim = 3}, rng);
  const std::vector<std::int32_t> ids = {1, 3, 1, 0, 1};  // repeats: gradients must add up
  auto fn = [&](std::span<const V> in) { return emb.forward(in[0], ids); };
  const tg::GradcheckResult r = tg::gradcheck(fn, {random_matrix(5, 3, rng)});
  EXPECT_TRUE(r.ok) << r.message();
}

}  // namespace
