// The tape's LSTM and GRU cells against independent hand-written forward and backward
// passes (tests/nn/cell_reference.cpp), values and every gradient to 1e-10 in float64.
#include <gtest/gtest.h>

#include <random>

#include <tapegrad/nn/gru_cell.h>
#include <tapegrad/nn/lstm_cell.h>
#include <tapegrad/nn/unroll.h>

#include "cell_reference.h"
#include "support/test_names.h"
#include "support/test_support.h"

using tapegrad::test::Mat;

namespace {

using tapegrad::testing::expect_near;

constexpr double kTol = 1e-10;

// Runs `cell` over xs on a tape with the loss sum_t <v_t, h_t> and compares to ref.
template <class Cell>
void compare(Cell& cell, const std::vector<Mat>& xs, const std::vector<Mat>& s0, const std::vector<Mat>& vs,
             const tg::test::ReferenceRun& ref) {
  tg::Tape<double> tape;
  std::vector<tg::Var<double>> x_vars;
  for (const Mat& x : xs) x_vars.push_back(tape.variable(x));
  nn::State<double> state;
  for (const Mat& s : s0) state.tensors.push_back(tape.variable(s));
  cell.zero_grad();
  nn::Unrolled<double> out = nn::many_to_many(cell, x_vars, state);
  tg::Var<double> loss;
  for (std::size_t t = 0; t < xs.size(); ++t) {
    tg::Var<double> term = tg::sum(tg::mul(tape.constant(vs[t]), out.outputs[t]));
    loss = t == 0 ? term : tg::add(loss, term);
  }
  EXPECT_NEAR(loss.item(), ref.loss, kTol);
  for (std::size_t t = 0; t < xs.size(); ++t) expect_near(out.outputs[t].value(), ref.hs[t], "h_" + std::to_string(t));
  if (!ref.cs.empty()) expect_near(out.final_state.c().value(), ref.cs.back(), "c_T");
  tape.backward(loss);
  const auto params = cell.named_parameters();
  ASSERT_EQ(params.size(), ref.grads.params.size());
  for (std::size_t k = 0; k < params.size(); ++k) {
    expect_near(params[k].second->grad, ref.grads.params[k], "dL/d" + params[k].first);
  }
  for (std::size_t t = 0; t < xs.size(); ++t)
    expect_near(x_vars[t].grad(), ref.grads.xs[t], "dL/dx_" + std::to_string(t));
  expect_near(state.tensors[0].grad(), ref.grads.h0, "dL/dh0");
  if (state.size() == 2) expect_near(state.tensors[1].grad(), ref.grads.c0, "dL/dc0");
}

// The cell's parameters set to the problem's, in named_parameters() order.
template <class Cell>
void set_parameters(Cell& cell, const std::vector<Mat>& values) {
  std::size_t k = 0;
  for (const auto& [name, p] : cell.named_parameters()) p->value = values.at(k++);
}

TEST(CellReference, LstmMatchesHandDerivedForwardAndBackward) {
  std::mt19937_64 rng(11);
  const Index B = 3, in = 4, H = 5;
  nn::LstmCell<double> cell({.input_size = in, .hidden_size = H, .forget_bias = 1.0}, rng);
  const tg::test::ReferenceProblem p =
      tg::test::reference_problem(rng, {{in, 4 * H}, {H, 4 * H}, {1, 4 * H}}, B, in, H, 6);
  set_parameters(cell, p.params);
  compare(cell, p.xs, {p.h0, p.c0}, p.vs, tg::test::lstm_reference(p.params, p.xs, p.h0, p.c0, p.vs));
}

TEST(CellReference, GruMatchesHandDerivedForwardAndBackward) {
  std::mt19937_64 rng(12);
  const Index B = 3, in = 4, H = 5;
  nn::GruCell<double> cell({.input_size = in, .hidden_size = H}, rng);
  const tg::test::ReferenceProblem p =
      tg::test::reference_problem(rng, {{in, 3 * H}, {H, 3 * H}, {1, 3 * H}, {1, 3 * H}}, B, in, H, 6);
  set_parameters(cell, p.params);
  compare(cell, p.xs, {p.h0}, p.vs, tg::test::gru_reference(p.params, p.xs, p.h0, p.vs));
}

// A one-step closed form independent of both implementations: with all weights zero the
// LSTM gates are sigmoid(b) and tanh(b) exactly.
TEST(CellReference, LstmZeroWeightsClosedForm) {
  std::mt19937_64 rng(3);
  nn::LstmCell<double> cell({.input_size = 2, .hidden_size = 1, .forget_bias = 1.0}, rng);
  cell.W_ih.value.setZero();
  cell.W_hh.value.setZero();
  // b = [i, f, g, o] = [0, 1 (forget_bias), 0.5, -1]
  ASSERT_DOUBLE_EQ(cell.b.value(0, 1), 1.0);
  cell.b.value << 0.0, 1.0, 0.5, -1.0;
  tg::Tape<double> tape;
  nn::State<double> s{{tape.constant(Mat::Constant(1, 1, 0.0)), tape.constant(Mat::Constant(1, 1, 2.0))}};
  nn::State<double> next = cell.step(tape.constant(Mat::Ones(1, 2)), s);
  const double sig0 = 0.5, sig1 = 1.0 / (1.0 + std::exp(-1.0)), sigm1 = 1.0 / (1.0 + std::exp(1.0));
  const double c = sig1 * 2.0 + sig0 * std::tanh(0.5);
  EXPECT_NEAR(next.c().value()(0, 0), c, 1e-15);
  EXPECT_NEAR(next.h().value()(0, 0), sigm1 * std::tanh(c), 1e-15);
}

}  // namespace
