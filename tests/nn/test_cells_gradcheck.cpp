// Every module as a composite function of its parameters, inputs and initial state, checked
// by finite differences (tapegrad::gradcheck, float64).
//
// How parameters become gradcheck inputs: each module has a Weights struct and
// bind(span<const Var>) that takes Vars in named_parameters() order. The checked function
// binds its leading inputs as the weights and runs the module through step(w, x, s) /
// forward(w, ...), so the analytic gradient flows to the gradcheck inputs themselves.
#include <gtest/gtest.h>

#include <random>

#include <tapegrad/gradcheck.h>
#include <tapegrad/nn/embedding.h>
#include <tapegrad/nn/gru_cell.h>
#include <tapegrad/nn/linear.h>
#include <tapegrad/nn/lstm_cell.h>
#include <tapegrad/nn/rnn_cell.h>
#include <tapegrad/nn/stacked.h>
#include <tapegrad/nn/unroll.h>

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
using tapegrad::Index;
using Mat = tg::Matrix<double>;
using V = tg::Var<double>;

namespace {

Mat random_mat(Index r, Index c, std::mt19937_64& rng, double scale = 1.0) {
  std::normal_distribution<double> d(0.0, scale);
  Mat m(r, c);
  for (Index i = 0; i < r; ++i) {
    for (Index j = 0; j < c; ++j) m(i, j) = d(rng);
  }
  return m;
}

// Gradcheck inputs: the module's parameter values (perturbed away from init so biases and
// recurrent weights are generic), then T inputs, then the initial state tensors.
template <class M>
std::vector<Mat> inputs_for(M& module, Index batch, Index in, std::size_t steps, std::size_t state_tensors,
                            Index hidden, std::mt19937_64& rng) {
  std::vector<Mat> inputs;
  for (tg::Parameter<double>* p : module.parameters())
    inputs.push_back(p->value + random_mat(p->value.rows(), p->value.cols(), rng, 0.3));
  for (std::size_t t = 0; t < steps; ++t) inputs.push_back(random_mat(batch, in, rng));
  for (std::size_t k = 0; k < state_tensors; ++k) inputs.push_back(random_mat(batch, hidden, rng, 0.5));
  return inputs;
}

// Splits the gradcheck Vars back into weights, xs and the initial state.
struct Split {
  std::span<const V> weights;
  std::vector<V> xs;
  nn::State<double> s0;
};
Split split(std::span<const V> in, std::size_t n_weights, std::size_t steps, std::size_t state_tensors) {
  Split s;
  s.weights = in.first(n_weights);
  for (std::size_t t = 0; t < steps; ++t) s.xs.push_back(in[n_weights + t]);
  for (std::size_t k = 0; k < state_tensors; ++k) s.s0.tensors.push_back(in[n_weights + steps + k]);
  return s;
}

// Everything the unrolled cell produced, side by side: every output and the final state.
V everything(const nn::Unrolled<double>& u) {
  std::vector<V> parts = u.outputs;
  for (const V& v : u.final_state.tensors) parts.push_back(v);
  return tg::concat_cols<double>(std::span<const V>(parts));
}

// Checks a cell unrolled over `steps` steps (optionally with variable lengths).
template <class Cell>
void check_cell(Cell& cell, std::size_t steps, std::vector<std::int32_t> lengths = {}) {
  std::mt19937_64 rng(99);
  const Index batch = lengths.empty() ? 2 : static_cast<Index>(lengths.size());
  const std::size_t n_w = cell.num_parameter_tensors();
  const std::size_t n_s = cell.state_tensors();
  const auto inputs = inputs_for(cell, batch, cell.input_size(), steps, n_s, cell.hidden_size(), rng);
  auto fn = [&](std::span<const V> in) {
    Split s = split(in, n_w, steps, n_s);
    auto bound = nn::with_weights(cell, cell.bind(s.weights));
    return everything(nn::many_to_many(bound, s.xs, s.s0, lengths));
  };
  const tg::GradcheckResult r = tg::gradcheck(fn, inputs);
  EXPECT_TRUE(r.ok) << r.message();
  EXPECT_EQ(r.inputs.size(), inputs.size());
}

TEST(CellsGradcheck, RnnCellTanh) {
  std::mt19937_64 rng(1);
  nn::RnnCell<double> cell({.input_size = 3, .hidden_size = 4}, rng);
  check_cell(cell, 3);
}

TEST(CellsGradcheck, RnnCellLogistic) {
  std::mt19937_64 rng(2);
  nn::RnnCell<double> cell({.input_size = 3, .hidden_size = 4, .activation = nn::Activation::Logistic}, rng);
  check_cell(cell, 3);
}

TEST(CellsGradcheck, RnnCellReluIdentityInit) {
  std::mt19937_64 rng(3);
  nn::RnnCell<double> cell({.input_size = 3,
                            .hidden_size = 4,
                            .activation = nn::Activation::Relu,
                            .recurrent_init = nn::RecurrentInit::Identity},
                           rng);
  check_cell(cell, 3);
}

TEST(CellsGradcheck, LstmCell) {
  std::mt19937_64 rng(4);
  nn::LstmCell<double> cell({.input_size = 3, .hidden_size = 4}, rng);
  check_cell(cell, 3);
}

TEST(CellsGradcheck, GruCell) {
  std::mt19937_64 rng(5);
  nn::GruCell<double> cell({.input_size = 3, .hidden_size = 4}, rng);
  check_cell(cell, 3);
}

TEST(CellsGradcheck, MaskedUnrollLstm) {
  std::mt19937_64 rng(6);
  nn::LstmCell<double> cell({.input_size = 2, .hidden_size = 3}, rng);
  check_cell(cell, 4, {4, 1, 3});
}

TEST(CellsGradcheck, MaskedUnrollGru) {
  std::mt19937_64 rng(7);
  nn::GruCell<double> cell({.input_size = 2, .hidden_size = 3}, rng);
  check_cell(cell, 4, {2, 4, 1});
}

TEST(CellsGradcheck, StackedLstmTwoLayersNoDropout) {
  std::mt19937_64 rng(8);
  nn::Stacked<nn::LstmCell<double>> stack({.cell = {.input_size = 3, .hidden_size = 3}, .num_layers = 2}, rng);
  check_cell(stack, 3);
}

TEST(CellsGradcheck, StackedGruTwoLayersWithDropout) {
  std::mt19937_64 rng(9);
  nn::Stacked<nn::GruCell<double>> stack(
      {.cell = {.input_size = 3, .hidden_size = 4}, .num_layers = 2, .dropout = 0.5, .seed = 17}, rng);
  const std::size_t steps = 3;
  const std::size_t n_w = stack.num_parameter_tensors();
  const auto inputs = inputs_for(stack, 2, 3, steps, 2, 4, rng);
  auto fn = [&](std::span<const V> in) {
    stack.seed(17);  // the same masks on every evaluation
    Split s = split(in, n_w, steps, 2);
    auto bound = nn::with_weights(stack, stack.bind(s.weights));
    return everything(nn::many_to_many(bound, s.xs, s.s0));
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
  const auto inputs = inputs_for(bi, 2, 2, steps, bi.state_tensors(), 3, rng);
  auto fn = [&](std::span<const V> in) {
    Split s = split(in, n_w, steps, bi.state_tensors());
    auto out = bi.forward(bi.bind(s.weights), s.xs, s.s0, lengths);
    std::vector<V> parts = out.outputs;
    for (const V& v : out.final_state.tensors) parts.push_back(v);
    return tg::concat_cols<double>(std::span<const V>(parts));
  };
  const tg::GradcheckResult r = tg::gradcheck(fn, inputs);
  EXPECT_TRUE(r.ok) << r.message();
}

TEST(CellsGradcheck, BidirectionalLstm) {
  std::mt19937_64 rng(11);
  nn::Bidirectional<nn::LstmCell<double>> bi({.input_size = 2, .hidden_size = 2}, rng);
  const std::size_t steps = 3;
  const std::size_t n_w = bi.num_parameter_tensors();
  const auto inputs = inputs_for(bi, 2, 2, steps, bi.state_tensors(), 2, rng);
  auto fn = [&](std::span<const V> in) {
    Split s = split(in, n_w, steps, bi.state_tensors());
    auto out = bi.forward(bi.bind(s.weights), s.xs, s.s0);
    return tg::concat_rows<double>(std::span<const V>(out.outputs));
  };
  const tg::GradcheckResult r = tg::gradcheck(fn, inputs);
  EXPECT_TRUE(r.ok) << r.message();
}

TEST(CellsGradcheck, Linear) {
  std::mt19937_64 rng(12);
  nn::Linear<double> lin({.input_size = 4, .output_size = 3}, rng);
  const std::vector<Mat> inputs = {random_mat(4, 3, rng), random_mat(1, 3, rng), random_mat(5, 4, rng)};
  auto fn = [&](std::span<const V> in) { return lin.forward(lin.bind(in.first(2)), in[2]); };
  const tg::GradcheckResult r = tg::gradcheck(fn, inputs);
  EXPECT_TRUE(r.ok) << r.message();
}

TEST(CellsGradcheck, EmbeddingWithRespectToTable) {
  std::mt19937_64 rng(13);
  nn::Embedding<double> emb({.num_embeddings = 5, .embedding_dim = 3}, rng);
  const std::vector<std::int32_t> ids = {1, 3, 1, 0, 1};  // repeats: gradients must add up
  auto fn = [&](std::span<const V> in) { return emb.forward(in[0], ids); };
  const tg::GradcheckResult r = tg::gradcheck(fn, {random_mat(5, 3, rng)});
  EXPECT_TRUE(r.ok) << r.message();
}

}  // namespace
