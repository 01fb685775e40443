// The fused recurrences (rnn_sequence, lstm_sequence, gru_sequence) against the same recurrence unrolled op by
// op with the core ops on one tape: equal values and equal gradients for every input, in double
// (1e-10) and float (float rounding), for several T (including 1), batch sizes that split the
// weight-gradient GEMM into several chunks, random output seeds reaching both h and c columns,
// detached initial states, repeated sweeps, and the shape errors.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.h>

#include "product_settings.h"
#include "recurrent_test_support.h"

using namespace tapegrad;
using namespace tapegrad::recurrent_test;

namespace {

// The fused LSTM's h and c side by side, [T*B x 2H], as the unrolled reference returns them.
template <class S>
Var<S> lstm_joined(const Var<S>& xp, const Var<S>& h0, const Var<S>& c0, const Var<S>& w) {
  const LstmStates<S> s = lstm_sequence(xp, h0, c0, w);
  return concat_cols({s.h, s.c});
}

struct Dims {
  Index t, b, h;
  std::uint64_t seed;
};
std::string dims_name(const ::testing::TestParamInfo<Dims>& info) {
  const Dims& d = info.param;
  return "T" + std::to_string(d.t) + "_B" + std::to_string(d.b) + "_H" + std::to_string(d.h);
}

// B = 200 gives 3 steps per weight-gradient chunk (7 steps: chunks of 3, 3, 1); B = 600 gives 1.
const Dims kDims[] = {{1, 2, 3, 11}, {3, 2, 3, 12}, {7, 4, 5, 13}, {5, 1, 4, 14}, {7, 200, 2, 15}, {3, 600, 2, 16}};

// Runs backward from y with the seed and returns the gradients of the inputs.
template <class S>
std::vector<Matrix<S>> grads_of(Tape<S>& tape, const Var<S>& y, const Matrix<S>& seed, const std::vector<Var<S>>& in) {
  tape.backward(y, seed);
  std::vector<Matrix<S>> g;
  for (const Var<S>& v : in) g.push_back(v.grad());
  return g;
}

// Both paths on one tape from the same leaves; values and every input gradient must agree.
template <class S>
void expect_same_paths(Tape<S>& tape, const std::vector<Var<S>>& in, const Var<S>& fused, const Var<S>& unrolled,
                       const Matrix<S>& seed, double tol) {
  EXPECT_LE(rel_diff(fused.value(), unrolled.value()), tol);
  const auto gf = grads_of(tape, fused, seed, in);
  const auto gu = grads_of(tape, unrolled, seed, in);
  for (std::size_t i = 0; i < in.size(); ++i) {
    EXPECT_GT(gu[i].norm(), 0) << "input " << i;
    EXPECT_LE(rel_diff(gf[i], gu[i]), tol) << "input " << i;
  }
}

template <class S>
void compare_rnn(const Dims& d, double tol) {
  std::mt19937_64 rng(d.seed);
  Tape<S> tape;
  const std::vector<Var<S>> in = {tape.variable(uniform<S>(d.t * d.b, d.h, rng)),
                                  tape.variable(uniform<S>(d.b, d.h, rng)),
                                  tape.variable(uniform<S>(d.h, d.h, rng, -0.8, 0.8))};
  const Var<S> fused = rnn_sequence(in[0], in[1], in[2]);
  const Var<S> unrolled = rnn_unrolled(in[0], in[1], in[2]);
  expect_same_paths(tape, in, fused, unrolled, uniform<S>(d.t * d.b, d.h, rng), tol);
}

template <class S>
void compare_lstm(const Dims& d, double tol, bool c_only_seed = false) {
  std::mt19937_64 rng(d.seed);
  Tape<S> tape;
  const std::vector<Var<S>> in = {tape.variable(uniform<S>(d.t * d.b, 4 * d.h, rng)),
                                  tape.variable(uniform<S>(d.b, d.h, rng)), tape.variable(uniform<S>(d.b, d.h, rng)),
                                  tape.variable(uniform<S>(d.h, 4 * d.h, rng, -0.8, 0.8))};
  const Var<S> fused = lstm_joined(in[0], in[1], in[2], in[3]);
  const Var<S> unrolled = lstm_unrolled(in[0], in[1], in[2], in[3]);
  Matrix<S> seed = uniform<S>(d.t * d.b, 2 * d.h, rng);
  if (c_only_seed) seed.leftCols(d.h).setZero();  // only dL/dc_t: h is reached through the gates
  expect_same_paths(tape, in, fused, unrolled, seed, tol);
}

template <class S>
void compare_gru(const Dims& d, double tol) {
  std::mt19937_64 rng(d.seed);
  Tape<S> tape;
  const std::vector<Var<S>> in = {
      tape.variable(uniform<S>(d.t * d.b, 3 * d.h, rng)), tape.variable(uniform<S>(d.b, d.h, rng)),
      tape.variable(uniform<S>(d.h, 3 * d.h, rng, -0.8, 0.8)), tape.variable(uniform<S>(1, 3 * d.h, rng))};
  const Var<S> fused = gru_sequence(in[0], in[1], in[2], in[3]);
  const Var<S> unrolled = gru_unrolled(in[0], in[1], in[2], in[3]);
  expect_same_paths(tape, in, fused, unrolled, uniform<S>(d.t * d.b, d.h, rng), tol);
}

class FusedVsUnrolled : public ::testing::TestWithParam<Dims> {};

TEST_P(FusedVsUnrolled, RnnDouble) { compare_rnn<double>(GetParam(), 1e-10); }
TEST_P(FusedVsUnrolled, LstmDouble) { compare_lstm<double>(GetParam(), 1e-10); }
TEST_P(FusedVsUnrolled, LstmDoubleSeedOnCellOnly) { compare_lstm<double>(GetParam(), 1e-10, true); }
TEST_P(FusedVsUnrolled, RnnFloat) { compare_rnn<float>(GetParam(), 2e-5); }
TEST_P(FusedVsUnrolled, LstmFloat) { compare_lstm<float>(GetParam(), 2e-5); }
TEST_P(FusedVsUnrolled, GruDouble) { compare_gru<double>(GetParam(), 1e-10); }
TEST_P(FusedVsUnrolled, GruFloat) { compare_gru<float>(GetParam(), 2e-5); }

INSTANTIATE_TEST_SUITE_P(Shapes, FusedVsUnrolled, ::testing::ValuesIn(kDims), dims_name);

// With two threads and no work threshold, batches of at most 32 rows hand each finished chunk's
// weight gradient to the other thread (Note [Overlapped chunk gradients]); the chunks are then
// half size (B = 16: 16 steps, B = 8: 32 steps), so T = 40 and 70 give three chunks each. Without
// OpenMP the same comparisons run on one thread.
class FusedVsUnrolledOverlapped : public test::TwoThreadTest<Dims> {};

TEST_P(FusedVsUnrolledOverlapped, RnnDouble) { compare_rnn<double>(GetParam(), 1e-10); }
TEST_P(FusedVsUnrolledOverlapped, LstmDouble) { compare_lstm<double>(GetParam(), 1e-10); }
TEST_P(FusedVsUnrolledOverlapped, GruDouble) { compare_gru<double>(GetParam(), 1e-10); }
// Float: sums over up to 4H = 1,200 terms in another order than the unrolled ops (the gather
// tests' tolerance).
TEST_P(FusedVsUnrolledOverlapped, RnnFloat) { compare_rnn<float>(GetParam(), 2e-4); }
TEST_P(FusedVsUnrolledOverlapped, LstmFloat) { compare_lstm<float>(GetParam(), 2e-4); }

// B = 32, H = 300: step products above 2^21 multiply-adds, split by columns over the two threads
// (small_gemm_on) instead of overlapped.
const Dims kOverlappedDims[] = {{40, 16, 3, 21}, {70, 8, 4, 22}, {33, 16, 2, 23}, {3, 32, 300, 24}};
INSTANTIATE_TEST_SUITE_P(Shapes, FusedVsUnrolledOverlapped, ::testing::ValuesIn(kOverlappedDims), dims_name);

// The same with every product in OpenBLAS (Note [BLAS products]): its OpenMP variant then runs
// the chunk gradients inside the overlap's parallel region, on one thread each.
class FusedVsUnrolledOverlappedBlas : public test::TwoThreadBlasTest<Dims> {};

TEST_P(FusedVsUnrolledOverlappedBlas, RnnDouble) { compare_rnn<double>(GetParam(), 1e-10); }
TEST_P(FusedVsUnrolledOverlappedBlas, LstmDouble) { compare_lstm<double>(GetParam(), 1e-10); }
TEST_P(FusedVsUnrolledOverlappedBlas, GruDouble) { compare_gru<double>(GetParam(), 1e-10); }
TEST_P(FusedVsUnrolledOverlappedBlas, LstmFloat) { compare_lstm<float>(GetParam(), 2e-4); }
INSTANTIATE_TEST_SUITE_P(Shapes, FusedVsUnrolledOverlappedBlas, ::testing::ValuesIn(kOverlappedDims), dims_name);

// Closed form for T = 1, B = 1, H = 1: h = tanh(x + h0 w); dh/dw = (1 - h^2) h0.
TEST(RnnSequence, ScalarClosedForm) {
  Tape<double> tape;
  const auto xp = tape.variable(Matrix<double>::Constant(1, 1, 0.3));
  const auto h0 = tape.variable(Matrix<double>::Constant(1, 1, -0.5));
  const auto w = tape.variable(Matrix<double>::Constant(1, 1, 0.7));
  const auto y = rnn_sequence(xp, h0, w);
  const double h = std::tanh(0.3 - 0.35);
  EXPECT_NEAR(y.item(), h, 1e-15);
  tape.backward(y);
  EXPECT_NEAR(xp.grad()(0, 0), 1 - h * h, 1e-15);
  EXPECT_NEAR(h0.grad()(0, 0), (1 - h * h) * 0.7, 1e-15);
  EXPECT_NEAR(w.grad()(0, 0), (1 - h * h) * -0.5, 1e-15);
}

// Closed form for one LSTM step with B = H = 1 and a loss on c only: dL/dc = 1, so
// dA_f = c0 f (1 - f) and dc0 = f.
TEST(LstmSequence, ScalarClosedFormThroughCell) {
  Tape<double> tape;
  Matrix<double> a(1, 4);
  a << 0.2, -0.4, 0.9, 0.1;
  const auto xp = tape.variable(a);
  const auto h0 = tape.constant(Matrix<double>::Zero(1, 1));
  const auto c0 = tape.variable(Matrix<double>::Constant(1, 1, 0.6));
  const auto w = tape.variable(Matrix<double>::Zero(1, 4));
  const auto y = lstm_joined(xp, h0, c0, w);
  auto sig = [](double v) { return 1 / (1 + std::exp(-v)); };
  const double i = sig(0.2), f = sig(-0.4), g = std::tanh(0.9), o = sig(0.1);
  const double c = f * 0.6 + i * g;
  EXPECT_NEAR(y.value()(0, 1), c, 1e-15);
  EXPECT_NEAR(y.value()(0, 0), o * std::tanh(c), 1e-15);
  Matrix<double> seed(1, 2);
  seed << 0, 1;
  tape.backward(y, seed);
  EXPECT_NEAR(xp.grad()(0, 0), g * i * (1 - i), 1e-15);
  EXPECT_NEAR(xp.grad()(0, 1), 0.6 * f * (1 - f), 1e-15);
  EXPECT_NEAR(xp.grad()(0, 2), i * (1 - g * g), 1e-15);
  EXPECT_NEAR(xp.grad()(0, 3), 0, 1e-15);
  EXPECT_NEAR(c0.grad()(0, 0), f, 1e-15);
  EXPECT_TRUE(w.grad().isZero(0));  // h0 = 0, so h0^T dA = 0
  EXPECT_TRUE(h0.grad().isZero(0));
}

// A detached (constant) initial state: nothing reaches it, the other gradients equal the
// unrolled path's, and a second sweep over the same tape gives the same gradients (the op's
// scratch is reused, not accumulated).
TEST(FusedRecurrence, DetachedStateAndRepeatedSweeps) {
  std::mt19937_64 rng(21);
  const Index t = 4, b = 3, h = 5;
  Tape<double> tape;
  const auto xp = tape.variable(uniform<double>(t * b, 4 * h, rng));
  const auto w = tape.variable(uniform<double>(h, 4 * h, rng));
  const auto state = tape.variable(uniform<double>(b, h, rng));
  const auto h0 = detach(state);
  const auto c0 = detach(state);
  const auto fused = lstm_joined(xp, h0, c0, w);
  const auto unrolled = lstm_unrolled(xp, h0, c0, w);
  const Matrix<double> seed = uniform<double>(t * b, 2 * h, rng);
  const auto gf = grads_of<double>(tape, fused, seed, {xp, w, state});
  const auto gf2 = grads_of<double>(tape, fused, seed, {xp, w, state});
  const auto gu = grads_of<double>(tape, unrolled, seed, {xp, w, state});
  EXPECT_LE(rel_diff(gf[0], gu[0]), 1e-10);
  EXPECT_LE(rel_diff(gf[1], gu[1]), 1e-10);
  EXPECT_TRUE(gf[2].isZero(0));
  EXPECT_EQ(gf2[0], gf[0]);
  EXPECT_EQ(gf2[1], gf[1]);

  const auto y = rnn_sequence(slice_cols(xp, 0, h), h0, slice_cols(w, 0, h));
  const auto yu = rnn_unrolled(slice_cols(xp, 0, h), h0, slice_cols(w, 0, h));
  const Matrix<double> s2 = uniform<double>(t * b, h, rng);
  const auto g1 = grads_of<double>(tape, y, s2, {xp, w, state});
  const auto g2 = grads_of<double>(tape, y, s2, {xp, w, state});
  const auto g3 = grads_of<double>(tape, yu, s2, {xp, w, state});
  EXPECT_EQ(g1[0], g2[0]);
  EXPECT_EQ(g1[1], g2[1]);
  EXPECT_LE(rel_diff(g1[0], g3[0]), 1e-10);
  EXPECT_LE(rel_diff(g1[1], g3[1]), 1e-10);
  EXPECT_TRUE(g1[2].isZero(0));
}

// The same state passed as h0 and c0: both paths add into one gradient.
TEST(FusedRecurrence, SharedInitialState) {
  std::mt19937_64 rng(22);
  Tape<double> tape;
  const auto xp = tape.variable(uniform<double>(6, 8, rng));
  const auto s = tape.variable(uniform<double>(2, 2, rng));
  const auto w = tape.variable(uniform<double>(2, 8, rng));
  const Matrix<double> seed = uniform<double>(6, 4, rng);
  const auto gf = grads_of<double>(tape, lstm_joined(xp, s, s, w), seed, {s});
  const auto gu = grads_of<double>(tape, lstm_unrolled(xp, s, s, w), seed, {s});
  EXPECT_LE(rel_diff(gf[0], gu[0]), 1e-10);
}

TEST(FusedRecurrence, ShapeErrorsNameOpArgumentAndShapes) {
  Tape<double> tape;
  auto v = [&](Index r, Index c) { return tape.variable(Matrix<double>::Zero(r, c)); };
  const auto h0 = v(2, 3), c0 = v(2, 3), c_bad = v(2, 2), empty = v(0, 0);
  const auto x53 = v(5, 3), x44 = v(4, 4), x43 = v(4, 3), x03 = v(0, 3), x4_12 = v(4, 12), x3_12 = v(3, 12);
  const auto w33 = v(3, 3), w32 = v(3, 2), w3_12 = v(3, 12);
  expect_error<ShapeError>(tape, [&] { (void)rnn_sequence(x53, h0, w33); }, {"rnn_sequence", "xp is [5 x 3]", "B = 2"});
  expect_error<ShapeError>(tape, [&] { (void)rnn_sequence(x44, h0, w33); },
                           {"rnn_sequence", "xp is [4 x 4]", "h0 is [2 x 3]"});
  expect_error<ShapeError>(tape, [&] { (void)rnn_sequence(x43, h0, w32); },
                           {"rnn_sequence", "w is [3 x 2]", "[3 x 3]"});
  expect_error<ShapeError>(tape, [&] { (void)rnn_sequence(x03, h0, w33); }, {"rnn_sequence", "xp is [0 x 3]"});
  expect_error<ShapeError>(tape, [&] { (void)rnn_sequence(empty, empty, empty); }, {"rnn_sequence", "h0 is [0 x 0]"});
  expect_error<ShapeError>(tape, [&] { (void)lstm_sequence(x4_12, h0, c_bad, w3_12); },
                           {"lstm_sequence", "c0 is [2 x 2]", "h0 is [2 x 3]"});
  expect_error<ShapeError>(tape, [&] { (void)lstm_sequence(x43, h0, c0, w3_12); },
                           {"lstm_sequence", "xp is [4 x 3]", "12 columns"});
  expect_error<ShapeError>(tape, [&] { (void)lstm_sequence(x4_12, h0, c0, w33); },
                           {"lstm_sequence", "w_hh is [3 x 3]", "[3 x 12]"});
  expect_error<ShapeError>(tape, [&] { (void)lstm_sequence(x3_12, h0, c0, w3_12); },
                           {"lstm_sequence", "xp is [3 x 12]", "B = 2"});
  const auto x4_9 = v(4, 9), w3_9 = v(3, 9), b1_9 = v(1, 9), b2_9 = v(2, 9);
  expect_error<ShapeError>(tape, [&] { (void)gru_sequence(x4_12, h0, w3_9, b1_9); },
                           {"gru_sequence", "xp is [4 x 12]", "9 columns"});
  expect_error<ShapeError>(tape, [&] { (void)gru_sequence(x4_9, h0, w3_12, b1_9); },
                           {"gru_sequence", "w_hh is [3 x 12]", "[3 x 9]"});
  expect_error<ShapeError>(tape, [&] { (void)gru_sequence(x4_9, h0, w3_9, b2_9); },
                           {"gru_sequence", "b_hh is [2 x 9]", "[1 x 9]"});
}

}  // namespace
