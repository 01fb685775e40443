// Modules built with bias = false (PyTorch's bias=False): no b parameter at all (not a zero
// one) in parameter lists, bind, Weights and checkpoints; outputs against plain Eigen; gradients
// by finite differences; the fused whole-sequence ops still run without a bias.
#include <gtest/gtest.h>

#include <unistd.h>
#include <Eigen/Core>
#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <tapegrad/error.h>
#include <tapegrad/gradcheck.h>
#include <tapegrad/nn/checkpoint.h>
#include <tapegrad/nn/gru_cell.h>
#include <tapegrad/nn/linear.h>
#include <tapegrad/nn/lstm_cell.h>
#include <tapegrad/nn/rnn_cell.h>
#include <tapegrad/nn/stacked.h>

#include "cell_gradcheck.h"
#include "support/test_names.h"
#include "support/test_support.h"

using Mat = tg::Matrix<double>;
using V = tg::Var<double>;

namespace {

using namespace tapegrad::testing;  // expect_near, random_matrix, ...

std::vector<std::string> names_of(nn::Module<double>& m) {
  std::vector<std::string> out;
  for (const auto& [name, p] : m.named_parameters()) out.push_back(name + " " + p->shape().str());
  return out;
}

// A matrix of small whole numbers: every product and sum of them is exact in double, whatever
// the order the kernel adds in.
Mat whole_numbers(Index r, Index c, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> d(-4, 4);
  Mat m(r, c);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = d(rng);
  return m;
}

}  // namespace

TEST(BiasFree, LinearHasOnlyWAndComputesXWExactly) {
  std::mt19937_64 rng(1);
  nn::Linear<double> lin({.input_size = 3, .output_size = 5, .bias = false}, rng);
  EXPECT_FALSE(lin.has_bias());
  EXPECT_EQ(lin.num_parameter_tensors(), 1u);
  EXPECT_EQ(lin.parameters().size(), 1u);
  EXPECT_EQ(names_of(lin), (std::vector<std::string>{"W [3 x 5]"}));
  lin.W.value = whole_numbers(3, 5, rng);
  const Mat x = whole_numbers(4, 3, rng);
  tg::Tape<double> tape;
  const V y = lin.forward(tape.constant(x));
  const Mat want = x * lin.W.value;
  EXPECT_EQ(y.value(), want);
  EXPECT_GT(want.cwiseAbs().maxCoeff(), 0.0);

  // bind(vars) takes W alone; two Vars is the count of a layer with a bias.
  const V w = tape.constant(lin.W.value);
  EXPECT_EQ(lin.forward(lin.bind(std::span<const V>(&w, 1)), tape.constant(x)).value(), want);
  const std::vector<V> two{w, tape.constant(Mat::Zero(1, 5))};
  expect_error<tg::ValueError>([&] { (void)lin.bind(std::span<const V>(two)); }, {"Linear", "2", "expected 1"});
}

TEST(BiasFree, LinearGradcheck) {
  std::mt19937_64 rng(2);
  nn::Linear<double> lin({.input_size = 3, .output_size = 2, .bias = false}, rng);
  const auto r = tg::gradcheck(
      [&](std::span<const V> in) {
        return tg::tanh(lin.forward(lin.bind(in.first(1)), in[1]));  // tanh: a non-linear function of x W
      },
      {lin.W.value, random_matrix(4, 3, rng)});
  EXPECT_TRUE(r) << r.message();
}

TEST(BiasFree, CellsListNoBias) {
  std::mt19937_64 rng(3);
  nn::RnnCell<double> rnn({.input_size = 3, .hidden_size = 4, .bias = false}, rng);
  EXPECT_EQ(names_of(rnn), (std::vector<std::string>{"W_ih [3 x 4]", "W_hh [4 x 4]"}));
  EXPECT_EQ(rnn.num_parameter_tensors(), 2u);
  nn::LstmCell<double> lstm({.input_size = 3, .hidden_size = 4, .bias = false}, rng);
  EXPECT_EQ(names_of(lstm), (std::vector<std::string>{"W_ih [3 x 16]", "W_hh [4 x 16]"}));
  nn::GruCell<double> gru({.input_size = 3, .hidden_size = 4, .bias = false}, rng);
  EXPECT_EQ(names_of(gru), (std::vector<std::string>{"W_ih [3 x 12]", "W_hh [4 x 12]"}));
  nn::Stacked<nn::GruCell<double>> stack({.cell = {.input_size = 3, .hidden_size = 4, .bias = false}, .num_layers = 2},
                                         rng);
  EXPECT_EQ(stack.num_parameter_tensors(), 4u);
  EXPECT_EQ(names_of(stack), (std::vector<std::string>{"layers.0.cell.W_ih [3 x 12]", "layers.0.cell.W_hh [4 x 12]",
                                                       "layers.1.cell.W_ih [4 x 12]", "layers.1.cell.W_hh [4 x 12]"}));
  // The Weights bound from the tape have an empty b.
  tg::Tape<double> tape;
  EXPECT_TRUE(rnn.bind(tape).b.empty());
  EXPECT_TRUE(gru.bind(tape).b_hh.empty());
  // bind(vars) counts the parameters that exist.
  const std::vector<V> three{tape.constant(rnn.W_ih.value), tape.constant(rnn.W_hh.value),
                             tape.constant(Mat::Zero(1, 4))};
  expect_error<tg::ValueError>([&] { (void)rnn.bind(std::span<const V>(three)); }, {"RnnCell", "3", "expected 2"});
}

TEST(BiasFree, CellStepsMatchPlainEigen) {
  std::mt19937_64 rng(4);
  const Index in = 3, H = 4, B = 2;
  const Mat x = random_matrix(B, in, rng), h = random_matrix(B, H, rng), c = random_matrix(B, H, rng);
  const auto sigmoid = [](const Mat& a) { return Mat((1.0 + (-a.array()).exp()).inverse()); };
  const auto tanh_of = [](const Mat& a) { return Mat(a.array().tanh()); };
  tg::Tape<double> tape;
  {
    nn::RnnCell<double> rnn({.input_size = in, .hidden_size = H, .bias = false}, rng);
    const nn::State<double> s = rnn.step(tape.constant(x), {{tape.constant(h)}});
    expect_near(s.h().value(), tanh_of(x * rnn.W_ih.value + h * rnn.W_hh.value), "rnn h'", 1e-14);
  }
  {
    nn::LstmCell<double> lstm({.input_size = in, .hidden_size = H, .bias = false}, rng);
    const nn::State<double> s = lstm.step(tape.constant(x), {{tape.constant(h), tape.constant(c)}});
    const Mat a = x * lstm.W_ih.value + h * lstm.W_hh.value;
    const Mat c_next = sigmoid(a.middleCols(H, H)).cwiseProduct(c) +
                       sigmoid(a.leftCols(H)).cwiseProduct(tanh_of(a.middleCols(2 * H, H)));
    expect_near(s.tensors[1].value(), c_next, "lstm c'", 1e-14);
    expect_near(s.h().value(), sigmoid(a.rightCols(H)).cwiseProduct(tanh_of(c_next)), "lstm h'", 1e-14);
  }
  {
    nn::GruCell<double> gru({.input_size = in, .hidden_size = H, .bias = false}, rng);
    const nn::State<double> s = gru.step(tape.constant(x), {{tape.constant(h)}});
    const Mat gi = x * gru.W_ih.value, gh = h * gru.W_hh.value;
    const Mat r = sigmoid(gi.leftCols(H) + gh.leftCols(H));
    const Mat z = sigmoid(gi.middleCols(H, H) + gh.middleCols(H, H));
    const Mat n = tanh_of(gi.rightCols(H) + r.cwiseProduct(gh.rightCols(H)));
    const Mat want = (Mat::Ones(B, H) - z).cwiseProduct(n) + z.cwiseProduct(h);
    expect_near(s.h().value(), want, "gru h'", 1e-14);
  }
}

TEST(BiasFree, CellsGradcheck) {
  std::mt19937_64 rng(5);
  nn::RnnCell<double> rnn({.input_size = 3, .hidden_size = 4, .bias = false}, rng);
  tg::test::gradcheck_cell(rnn, 3);
  nn::RnnCell<double> linear({.input_size = 3, .hidden_size = 4, .activation = nn::Activation::Identity, .bias = false},
                             rng);
  tg::test::gradcheck_cell(linear, 3);
  nn::LstmCell<double> lstm({.input_size = 3, .hidden_size = 4, .bias = false}, rng);
  tg::test::gradcheck_cell(lstm, 3);
  nn::GruCell<double> gru({.input_size = 3, .hidden_size = 4, .bias = false}, rng);
  tg::test::gradcheck_cell(gru, 3);
}

// forward_sequence and forward_tokens without a bias still take the fused op: a handful of
// tape entries instead of several per step, with the values of stepping the cell.
template <class Cell>
void expect_fused_like_stepping(Cell& cell, const std::string& what) {
  std::mt19937_64 rng(6);
  const Index B = 2, T = 5;
  tg::Tape<double> tape;
  const nn::State<double> s0 = cell.initial_state(tape, B);
  const Mat x_all = random_matrix(T * B, cell.input_size(), rng);
  const std::size_t before = tape.num_entries();
  const nn::SequenceResult<double> fused = cell.forward_sequence(tape.constant(x_all), s0);
  EXPECT_LE(tape.num_entries() - before, 6u) << what;
  nn::State<double> s = s0;
  for (Index t = 0; t < T; ++t) {
    s = cell.step(tape.constant(Mat(x_all.middleRows(t * B, B))), s);
    expect_near(Mat(fused.outputs.value().middleRows(t * B, B)), s.h().value(), what + " h_" + std::to_string(t + 1),
                1e-13);
  }
  const Mat table = random_matrix(3, cell.input_size(), rng);
  const std::vector<std::int32_t> ids{0, 2, 1, 1, 2, 0, 0, 0, 1, 2};
  const nn::SequenceResult<double> tokens = cell.forward_tokens(tape.constant(table), ids, s0);
  Mat gathered(T * B, cell.input_size());
  for (Index i = 0; i < T * B; ++i) gathered.row(i) = table.row(ids[static_cast<std::size_t>(i)]);
  const nn::SequenceResult<double> plain = cell.forward_sequence(tape.constant(gathered), s0, {.fused = false});
  expect_near(tokens.outputs.value(), plain.outputs.value(), what + " forward_tokens", 1e-13);
}

TEST(BiasFree, FusedSequencesRunWithoutBias) {
  std::mt19937_64 rng(7);
  nn::RnnCell<double> rnn({.input_size = 3, .hidden_size = 4, .bias = false}, rng);
  expect_fused_like_stepping(rnn, "RnnCell");
  nn::LstmCell<double> lstm({.input_size = 3, .hidden_size = 4, .bias = false}, rng);
  expect_fused_like_stepping(lstm, "LstmCell");
  nn::GruCell<double> gru({.input_size = 3, .hidden_size = 4, .bias = false}, rng);
  expect_fused_like_stepping(gru, "GruCell");
}

TEST(BiasFree, CheckpointHoldsNoBias) {
  const fs::path dir = fs::temp_directory_path() / ("tapegrad_bias_free_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::mt19937_64 rng(8);
  nn::Linear<double> lin({.input_size = 3, .output_size = 2, .bias = false}, rng);
  nn::save_checkpoint<double>(dir / "lin.safetensors", lin);
  const nn::SafetensorsFile file = nn::read_safetensors(dir / "lin.safetensors");
  ASSERT_EQ(file.tensors.size(), 1u);
  EXPECT_EQ(file.tensors.begin()->first, "W");
  // A layer with a bias expects a "b" the file does not have; one without loads it back.
  nn::Linear<double> with_bias({.input_size = 3, .output_size = 2}, rng);
  expect_error<tg::CheckpointError>([&] { nn::load_checkpoint<double>(dir / "lin.safetensors", with_bias); }, {"b"});
  nn::Linear<double> again({.input_size = 3, .output_size = 2, .bias = false}, rng);
  nn::load_checkpoint<double>(dir / "lin.safetensors", again);
  EXPECT_EQ(again.W.value, lin.W.value);
  fs::remove_all(dir);
}
