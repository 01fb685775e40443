// Module construction and contracts: parameter names and shapes, initial values, forward
// values against plain Eigen, and the errors for bad shapes, states, ids and options.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include <tapegrad/error.h>
#include <tapegrad/nn/embedding.h>
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

std::vector<std::string> names_of(tg::nn::Module<double>& m) {
  std::vector<std::string> out;
  for (const auto& [name, p] : m.named_parameters()) out.push_back(name + " " + p->shape().str());
  return out;
}

TEST(Modules, ParameterNamesAndShapes) {
  std::mt19937_64 rng(1);
  nn::LstmCell<double> lstm({.input_size = 3, .hidden_size = 4}, rng);
  EXPECT_EQ(names_of(lstm), (std::vector<std::string>{"W_ih [3 x 16]", "W_hh [4 x 16]", "b [1 x 16]"}));
  nn::GruCell<double> gru({.input_size = 3, .hidden_size = 4}, rng);
  EXPECT_EQ(names_of(gru),
            (std::vector<std::string>{"W_ih [3 x 12]", "W_hh [4 x 12]", "b_ih [1 x 12]", "b_hh [1 x 12]"}));
  nn::Stacked<nn::RnnCell<double>> stack({.cell = {.input_size = 3, .hidden_size = 4}, .num_layers = 2}, rng);
  EXPECT_EQ(names_of(stack), (std::vector<std::string>{"layers.0.cell.W_ih [3 x 4]", "layers.0.cell.W_hh [4 x 4]",
                                                       "layers.0.cell.b [1 x 4]", "layers.1.cell.W_ih [4 x 4]",
                                                       "layers.1.cell.W_hh [4 x 4]", "layers.1.cell.b [1 x 4]"}));
  nn::Bidirectional<nn::GruCell<double>> bi({.input_size = 2, .hidden_size = 3}, rng);
  const auto bn = names_of(bi);
  ASSERT_EQ(bn.size(), 8u);
  EXPECT_EQ(bn[0], "fwd.W_ih [2 x 9]");
  EXPECT_EQ(bn[4], "bwd.W_ih [2 x 9]");
  nn::Linear<double> lin({.input_size = 3, .output_size = 2}, rng);
  EXPECT_EQ(names_of(lin), (std::vector<std::string>{"W [3 x 2]", "b [1 x 2]"}));
  nn::Embedding<double> emb({.num_embeddings = 7, .embedding_dim = 2}, rng);
  EXPECT_EQ(names_of(emb), (std::vector<std::string>{"table [7 x 2]"}));
}

TEST(Modules, StackedPerLayerSizes) {
  std::mt19937_64 rng(9);
  nn::Stacked<nn::LstmCell<double>> stack({.cell = {.input_size = 3}, .hidden_sizes = {5, 2}}, rng);
  EXPECT_EQ(names_of(stack), (std::vector<std::string>{"layers.0.cell.W_ih [3 x 20]", "layers.0.cell.W_hh [5 x 20]",
                                                       "layers.0.cell.b [1 x 20]", "layers.1.cell.W_ih [5 x 8]",
                                                       "layers.1.cell.W_hh [2 x 8]", "layers.1.cell.b [1 x 8]"}));
  EXPECT_EQ(stack.num_layers(), 2u);
  EXPECT_EQ(stack.options().num_layers, 2);
  EXPECT_EQ(stack.input_size(), 3);
  EXPECT_EQ(stack.hidden_size(), 2);
  EXPECT_EQ(stack.output_size(), 2);
  EXPECT_EQ(stack.layer(0).hidden_size(), 5);
  EXPECT_EQ(stack.layer(1).input_size(), 5);
  tg::Tape<double> tape;
  const nn::State<double> s0 = stack.initial_state(tape, 4);
  ASSERT_EQ(s0.size(), 4u);
  EXPECT_EQ(s0.tensors[1].shape(), (tg::Shape{4, 5}));  // layer 0's c
  EXPECT_EQ(s0.tensors[2].shape(), (tg::Shape{4, 2}));  // layer 1's h
  const nn::State<double> s1 = stack.step(tape.constant(Mat::Ones(4, 3)), s0);
  EXPECT_EQ(stack.output(s1).shape(), (tg::Shape{4, 2}));
  const nn::SequenceResult<double> r = stack.forward_sequence(tape.constant(Mat::Ones(12, 3)), s0);
  EXPECT_EQ(r.outputs.shape(), (tg::Shape{12, 2}));
  tapegrad::test::gradcheck_cell(stack, 3);

  // One size per layer gives the same stack as the single-size form.
  std::mt19937_64 a(10), b(10);
  nn::Stacked<nn::GruCell<double>> same({.cell = {.input_size = 2, .hidden_size = 3}, .num_layers = 2}, a);
  nn::Stacked<nn::GruCell<double>> listed({.cell = {.input_size = 2, .hidden_size = 3}, .hidden_sizes = {3, 3}}, b);
  EXPECT_EQ(names_of(same), names_of(listed));
  EXPECT_EQ(same.layer(1).W_hh.value, listed.layer(1).W_hh.value);
  // Options that disagree with hidden_sizes.
  using GruStack = nn::Stacked<nn::GruCell<double>>;
  tapegrad::testing::expect_error<tg::ValueError>(
      [&] {
        GruStack({.cell = {.input_size = 2}, .num_layers = 3, .hidden_sizes = {3, 3}}, rng);
      },
      {"num_layers is 3", "2 entries"});
  tapegrad::testing::expect_error<tg::ValueError>(
      [&] {
        GruStack({.cell = {.input_size = 2, .hidden_size = 4}, .hidden_sizes = {3, 3}}, rng);
      },
      {"cell.hidden_size is 4", "hidden_sizes[0] is 3"});
  tapegrad::testing::expect_error<tg::ValueError>(
      [&] {
        GruStack({.cell = {.input_size = 2}, .hidden_sizes = {3, 0}}, rng);
      },
      {"GruCell", "hidden_size (0)"});
}

TEST(Modules, InitialValues) {
  std::mt19937_64 rng(2);
  const Index H = 5;
  nn::LstmCell<double> lstm({.input_size = 3, .hidden_size = H, .forget_bias = 1.5}, rng);
  Mat want_b = Mat::Zero(1, 4 * H);
  want_b.middleCols(H, H).setConstant(1.5);  // gate order i, f, g, o: the f block
  EXPECT_EQ(lstm.b.value, want_b);
  for (Index g = 0; g < 4; ++g) {  // each recurrent gate block is orthogonal
    const Mat blk = lstm.W_hh.value.middleCols(g * H, H);
    EXPECT_LE((blk.transpose() * blk - Mat::Identity(H, H)).cwiseAbs().maxCoeff(), 1e-12) << "block " << g;
  }
  nn::RnnCell<double> irnn({.input_size = 2,
                            .hidden_size = 3,
                            .activation = nn::Activation::Relu,
                            .recurrent_init = nn::RecurrentInit::Identity,
                            .recurrent_scale = 0.9},
                           rng);
  EXPECT_EQ(irnn.W_hh.value, 0.9 * Mat::Identity(3, 3));
  // Same seed, same model.
  std::mt19937_64 a(7), b(7);
  nn::GruCell<double> g1({.input_size = 2, .hidden_size = 3}, a);
  nn::GruCell<double> g2({.input_size = 2, .hidden_size = 3}, b);
  EXPECT_EQ(g1.W_ih.value, g2.W_ih.value);
  EXPECT_EQ(g1.W_hh.value, g2.W_hh.value);
}

TEST(Modules, RnnStepAndLinearMatchPlainEigen) {
  std::mt19937_64 rng(3);
  nn::RnnCell<double> cell({.input_size = 2, .hidden_size = 3}, rng);
  cell.b.value << 0.1, -0.2, 0.3;
  tg::Tape<double> tape;
  const Mat x = Mat::Random(4, 2);
  const Mat h = Mat::Random(4, 3);
  const nn::State<double> s = cell.step(tape.constant(x), nn::State<double>{{tape.constant(h)}});
  Mat pre = x * cell.W_ih.value + h * cell.W_hh.value;
  pre.rowwise() += cell.b.value.row(0);
  EXPECT_LE((s.h().value() - Mat(pre.array().tanh())).cwiseAbs().maxCoeff(), 1e-14);

  nn::Linear<double> lin({.input_size = 2, .output_size = 3}, rng);
  lin.b.value << 1, 2, 3;
  Mat want = x * lin.W.value;
  want.rowwise() += lin.b.value.row(0);
  EXPECT_LE((lin.forward(tape.constant(x)).value() - want).cwiseAbs().maxCoeff(), 1e-14);

  nn::Embedding<double> emb({.num_embeddings = 4, .embedding_dim = 2}, rng);
  const std::vector<std::int32_t> ids = {3, 0, 3};
  const Mat e = emb.forward(tape, ids).value();
  EXPECT_EQ(Mat(e.row(0)), Mat(emb.table.value.row(3)));
  EXPECT_EQ(Mat(e.row(1)), Mat(emb.table.value.row(0)));
  EXPECT_EQ(Mat(e.row(2)), Mat(emb.table.value.row(3)));
}

TEST(Modules, ParameterGradientsReachTheParameters) {
  std::mt19937_64 rng(4);
  nn::LstmCell<double> cell({.input_size = 2, .hidden_size = 3}, rng);
  tg::Tape<double> tape;
  nn::State<double> s = cell.initial_state(tape, 2);
  for (int t = 0; t < 3; ++t) s = cell.step(tape.constant(Mat::Random(2, 2)), s);
  tape.backward(tg::sum(s.h()));
  EXPECT_GT(cell.W_hh.grad.cwiseAbs().maxCoeff(), 0.0);
  EXPECT_GT(cell.W_ih.grad.cwiseAbs().maxCoeff(), 0.0);
}

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const tg::ShapeError& e) {
    return e.what();
  }
  return "no ShapeError";
}

TEST(Modules, WrongStateThrowsShapeErrorNamingCellTensorAndShapes) {
  std::mt19937_64 rng(5);
  nn::LstmCell<double> lstm({.input_size = 2, .hidden_size = 3}, rng);
  tg::Tape<double> tape;
  const V x = tape.constant(Mat::Ones(4, 2));
  const nn::State<double> bad_c{{tape.constant(Mat::Zero(4, 3)), tape.constant(Mat::Zero(4, 5))}};
  const std::string msg = error_of([&] { (void)lstm.step(x, bad_c); });
  EXPECT_NE(msg.find("LstmCell"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'c'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[4 x 5]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[4 x 3]"), std::string::npos) << msg;

  const std::string count = error_of([&] { (void)lstm.step(x, nn::State<double>{{tape.constant(Mat::Zero(4, 3))}}); });
  EXPECT_NE(count.find("LstmCell"), std::string::npos) << count;
  EXPECT_NE(count.find("expected 2"), std::string::npos) << count;

  nn::GruCell<double> gru({.input_size = 2, .hidden_size = 3}, rng);
  const std::string batch = error_of([&] { (void)gru.step(x, nn::State<double>{{tape.constant(Mat::Zero(2, 3))}}); });
  EXPECT_NE(batch.find("GruCell"), std::string::npos) << batch;
  EXPECT_NE(batch.find("'h'"), std::string::npos) << batch;
  EXPECT_NE(batch.find("[2 x 3]"), std::string::npos) << batch;
  EXPECT_NE(batch.find("[4 x 3]"), std::string::npos) << batch;

  nn::RnnCell<double> rnn({.input_size = 3, .hidden_size = 3}, rng);
  const std::string input = error_of([&] { (void)rnn.step(x, rnn.initial_state(tape, 4)); });
  EXPECT_NE(input.find("RnnCell"), std::string::npos) << input;
  EXPECT_NE(input.find("[4 x 2]"), std::string::npos) << input;

  nn::Stacked<nn::LstmCell<double>> stack({.cell = {.input_size = 2, .hidden_size = 3}, .num_layers = 2}, rng);
  EXPECT_THROW((void)stack.step(x, lstm.initial_state(tape, 4)), tg::ShapeError);
  // Weights of the wrong shape given to bind.
  const std::vector<V> w = {tape.constant(Mat::Zero(2, 12)), tape.constant(Mat::Zero(3, 12)),
                            tape.constant(Mat::Zero(1, 11))};
  EXPECT_THROW((void)lstm.bind(w), tg::ShapeError);
}

TEST(Modules, BadOptionsAndIdsThrowValueError) {
  std::mt19937_64 rng(6);
  EXPECT_THROW(nn::LstmCell<double>({.input_size = 0, .hidden_size = 3}, rng), tg::ValueError);
  EXPECT_THROW(nn::GruCell<double>({.input_size = 2, .hidden_size = -1}, rng), tg::ValueError);
  EXPECT_THROW(nn::Linear<double>({.input_size = 2, .output_size = 0}, rng), tg::ValueError);
  EXPECT_THROW((nn::Stacked<nn::GruCell<double>>({.cell = {.input_size = 2, .hidden_size = 3}, .num_layers = 0}, rng)),
               tg::ValueError);
  EXPECT_THROW((nn::Stacked<nn::GruCell<double>>(
                   {.cell = {.input_size = 2, .hidden_size = 3}, .num_layers = 2, .dropout = 1.0}, rng)),
               tg::ValueError);
  nn::Embedding<double> emb({.num_embeddings = 4, .embedding_dim = 2}, rng);
  tg::Tape<double> tape;
  EXPECT_THROW((void)emb.forward(tape, std::vector<std::int32_t>{0, 4}), tg::ValueError);
  EXPECT_THROW((void)emb.forward(tape, std::vector<std::int32_t>{-1}), tg::ValueError);
  nn::GruCell<double> gru({.input_size = 2, .hidden_size = 3}, rng);
  EXPECT_THROW((void)gru.initial_state(tape, 0), tg::ValueError);
}

TEST(Modules, DropoutMaskIsInvertedAndSeedable) {
  std::mt19937_64 rng(8);
  // Layer 1 of this stack is a linear tanh RNN reading layer 0's dropped-out output; with
  // W_ih of layer 1 = I, W_hh = 0, b = 0, its output is tanh(mask * h0), so the mask is visible.
  nn::Stacked<nn::RnnCell<double>> stack(
      {.cell = {.input_size = 4, .hidden_size = 4}, .num_layers = 2, .dropout = 0.25, .seed = 3}, rng);
  stack.layer(1).W_ih.value.setIdentity();
  stack.layer(1).W_hh.value.setZero();
  tg::Tape<double> tape;
  const V x = tape.constant(Mat::Random(50, 4));
  const auto run = [&] {
    auto scope = tape.time_step(0);  // the step picks the mask
    const nn::State<double> s = stack.step(x, stack.initial_state(tape, 50));
    const Mat h0 = s.tensors[0].value();
    const Mat pre = s.tensors[1].value().array().atanh().matrix();  // = mask * h0
    return Mat((pre.array() / h0.array()).matrix());
  };
  stack.seed(11);
  const Mat m1 = run();
  stack.seed(11);
  const Mat m2 = run();
  EXPECT_LE((m1 - m2).cwiseAbs().maxCoeff(), 1e-9);  // same seed, same mask
  Index dropped = 0;
  for (Index i = 0; i < m1.size(); ++i) {
    const double v = m1.data()[i];
    const bool kept = std::abs(v - 1.0 / 0.75) < 1e-6;
    const bool zero = std::abs(v) < 1e-9;
    EXPECT_TRUE(kept || zero) << v;
    dropped += zero ? 1 : 0;
  }
  // 200 units, p = 0.25: 50 expected, sd 6.1.
  EXPECT_GT(dropped, 20);
  EXPECT_LT(dropped, 80);
  stack.train(false);
  const Mat off = run();
  EXPECT_LE((off - Mat::Ones(50, 4)).cwiseAbs().maxCoeff(), 1e-9);
}

}  // namespace
