// forward_sequence (batched input projection + fused or op-by-op recurrence) against stepping
// the cell T times, which test_cell_reference checks against plain Eigen: values and every
// parameter, input and initial-state gradient to 1e-10 in float64. Plus a direct plain-Eigen
// check of the LSTM sequence (cell_reference.h) and the shape errors.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <tapegrad/error.h>
#include <tapegrad/nn/gru_cell.h>
#include <tapegrad/nn/init.h>
#include <tapegrad/nn/lstm_cell.h>
#include <tapegrad/nn/rnn_cell.h>
#include <tapegrad/nn/sequence.h>
#include <tapegrad/nn/stacked.h>
#include <tapegrad/nn/unroll.h>

#include "cell_reference.h"
#include "support/test_names.h"
#include "support/test_support.h"

using tapegrad::test::Mat;

namespace {

using tapegrad::testing::expect_near;
using tapegrad::testing::random_matrix;

constexpr double kTol = 1e-10;

// Rows t*B .. t*B+B-1 of the result are parts[t].
Mat stack_rows(const std::vector<Mat>& parts) {
  Mat out(static_cast<Index>(parts.size()) * parts[0].rows(), parts[0].cols());
  for (std::size_t t = 0; t < parts.size(); ++t) {
    out.middleRows(static_cast<Index>(t) * parts[0].rows(), parts[0].rows()) = parts[t];
  }
  return out;
}

// A random problem: inputs, initial state, and the loss weights
// L = sum_t <v_t, h_t> + sum_k <u_k, final state tensor k>.
struct Problem {
  std::vector<Mat> xs, vs, s0, us;
};

Problem make_problem(Index in, Index H, Index B, std::size_t T, std::size_t state_tensors, std::mt19937_64& rng) {
  Problem p;
  for (std::size_t t = 0; t < T; ++t) {
    p.xs.push_back(random_matrix(B, in, rng));
    p.vs.push_back(random_matrix(B, H, rng));
  }
  for (std::size_t k = 0; k < state_tensors; ++k) {
    p.s0.push_back(random_matrix(B, H, rng, 0.5));
    p.us.push_back(random_matrix(B, H, rng));
  }
  return p;
}

// Everything one run produced.
struct Recorded {
  double loss = 0;
  std::vector<Mat> outputs;      // per step
  std::vector<Mat> final_state;  // per tensor
  std::vector<Mat> param_grads;  // named_parameters() order
  std::vector<Mat> x_grads;      // per step
  std::vector<Mat> s0_grads;     // per tensor
  std::vector<std::string> names;
};

void add_final_terms(tg::Var<double>& loss, tg::Tape<double>& tape, const nn::State<double>& final, const Problem& p) {
  for (std::size_t k = 0; k < p.us.size(); ++k) loss = loss + tg::sum(tape.constant(p.us[k]) * final.tensors[k]);
}

template <class Cell>
void read_params(Cell& cell, Recorded& run) {
  for (const auto& [name, param] : cell.named_parameters()) {
    run.names.push_back(name);
    run.param_grads.push_back(param->grad);
  }
}

// The reference: cell.step T times (many_to_many).
template <class Cell>
Recorded run_steps(Cell& cell, const Problem& p) {
  tg::Tape<double> tape;
  cell.zero_grad();
  std::vector<tg::Var<double>> xs;
  for (const Mat& x : p.xs) xs.push_back(tape.variable(x));
  nn::State<double> s0;
  for (const Mat& s : p.s0) s0.tensors.push_back(tape.variable(s));
  if constexpr (requires { cell.seed(0); }) cell.seed(5);
  nn::Unrolled<double> u = nn::many_to_many(cell, xs, s0);
  tg::Var<double> loss = tg::sum(tape.constant(p.vs[0]) * u.outputs[0]);
  for (std::size_t t = 1; t < xs.size(); ++t) loss = loss + tg::sum(tape.constant(p.vs[t]) * u.outputs[t]);
  add_final_terms(loss, tape, u.final_state, p);
  tape.backward(loss);
  Recorded run;
  run.loss = loss.item();
  for (const auto& o : u.outputs) run.outputs.push_back(o.value());
  for (const auto& s : u.final_state.tensors) run.final_state.push_back(s.value());
  read_params(cell, run);
  for (const auto& x : xs) run.x_grads.push_back(x.grad());
  for (const auto& s : s0.tensors) run.s0_grads.push_back(s.grad());
  return run;
}

// The path under test: one forward_sequence over x_all [T*B x in].
template <class Cell>
Recorded run_sequence(Cell& cell, const Problem& p, nn::SequenceOptions options) {
  tg::Tape<double> tape;
  cell.zero_grad();
  const Index B = p.xs[0].rows();
  const auto T = static_cast<Index>(p.xs.size());
  tg::Var<double> x_all = tape.variable(stack_rows(p.xs));
  nn::State<double> s0;
  for (const Mat& s : p.s0) s0.tensors.push_back(tape.variable(s));
  if constexpr (requires { cell.seed(0); }) cell.seed(5);
  nn::SequenceResult<double> r = cell.forward_sequence(x_all, s0, options);
  EXPECT_EQ(r.outputs.rows(), T * B);
  tg::Var<double> loss = tg::sum(tape.constant(stack_rows(p.vs)) * r.outputs);
  add_final_terms(loss, tape, r.final_state, p);
  tape.backward(loss);
  Recorded run;
  run.loss = loss.item();
  for (Index t = 0; t < T; ++t) run.outputs.push_back(r.outputs.value().middleRows(t * B, B));
  for (const auto& s : r.final_state.tensors) run.final_state.push_back(s.value());
  read_params(cell, run);
  for (Index t = 0; t < T; ++t) run.x_grads.push_back(x_all.grad().middleRows(t * B, B));
  for (const auto& s : s0.tensors) run.s0_grads.push_back(s.grad());
  return run;
}

void expect_same(const Recorded& got, const Recorded& want, const std::string& what) {
  EXPECT_NEAR(got.loss, want.loss, kTol) << what;
  ASSERT_EQ(got.outputs.size(), want.outputs.size()) << what;
  for (std::size_t t = 0; t < want.outputs.size(); ++t) {
    expect_near(got.outputs[t], want.outputs[t], what + ": h_" + std::to_string(t + 1));
    expect_near(got.x_grads[t], want.x_grads[t], what + ": dL/dx_" + std::to_string(t));
  }
  ASSERT_EQ(got.final_state.size(), want.final_state.size()) << what;
  for (std::size_t k = 0; k < want.final_state.size(); ++k) {
    expect_near(got.final_state[k], want.final_state[k], what + ": final state tensor " + std::to_string(k));
    expect_near(got.s0_grads[k], want.s0_grads[k], what + ": dL/ds0 tensor " + std::to_string(k));
  }
  ASSERT_EQ(got.param_grads.size(), want.param_grads.size()) << what;
  for (std::size_t k = 0; k < want.param_grads.size(); ++k) {
    expect_near(got.param_grads[k], want.param_grads[k], what + ": dL/d" + want.names[k]);
  }
}

// For T in {1, 7} and B in {1, 3}: forward_sequence, fused and op by op, equals stepping.
template <class Cell>
void check_against_steps(Cell& cell, std::uint64_t seed) {
  const Index in = cell.input_size(), H = cell.hidden_size();
  const std::size_t state_tensors = cell.state_tensors();
  std::mt19937_64 rng(seed);
  for (std::size_t T : {std::size_t{1}, std::size_t{7}}) {
    for (Index B : {Index{1}, Index{3}}) {
      const Problem p = make_problem(in, H, B, T, state_tensors, rng);
      const Recorded want = run_steps(cell, p);
      for (bool fused : {true, false}) {
        const Recorded got = run_sequence(cell, p, {.fused = fused});
        expect_same(got, want, "T=" + std::to_string(T) + " B=" + std::to_string(B) + (fused ? " fused" : " unrolled"));
      }
    }
  }
}

TEST(Sequence, RnnTanhFusedAndUnrolledEqualStepping) {
  std::mt19937_64 rng(1);
  nn::RnnCell<double> cell({.input_size = 4, .hidden_size = 5}, rng);
  nn::init::normal(cell.b, rng, 0.0, 0.5);
  check_against_steps(cell, 101);
}

TEST(Sequence, RnnReluUsesTheUnrolledPathAndEqualsStepping) {
  std::mt19937_64 rng(2);
  nn::RnnCell<double> cell({.input_size = 4, .hidden_size = 5, .activation = nn::Activation::Relu}, rng);
  nn::init::normal(cell.b, rng, 0.3, 0.5);  // most units active, so the gradients are not trivially zero
  // fused = true has no fused op for relu and must fall back to the same recurrence.
  check_against_steps(cell, 102);
}

TEST(Sequence, LstmFusedAndUnrolledEqualStepping) {
  std::mt19937_64 rng(3);
  nn::LstmCell<double> cell({.input_size = 4, .hidden_size = 5}, rng);
  nn::init::normal(cell.b, rng, 0.0, 0.5);
  check_against_steps(cell, 103);
}

TEST(Sequence, GruEqualsStepping) {
  std::mt19937_64 rng(4);
  nn::GruCell<double> cell({.input_size = 4, .hidden_size = 5}, rng);
  nn::init::normal(cell.b_ih, rng, 0.0, 0.5);
  nn::init::normal(cell.b_hh, rng, 0.0, 0.5);
  check_against_steps(cell, 104);
}

TEST(Sequence, StackedLstmTwoLayersEqualsStepping) {
  std::mt19937_64 rng(5);
  nn::Stacked<nn::LstmCell<double>> stack({.cell = {.input_size = 4, .hidden_size = 5}, .num_layers = 2}, rng);
  check_against_steps(stack, 105);
}

TEST(Sequence, StackedRnnAndGruTwoLayersEqualStepping) {
  std::mt19937_64 rng(6);
  nn::Stacked<nn::RnnCell<double>> rnn({.cell = {.input_size = 3, .hidden_size = 4}, .num_layers = 2}, rng);
  check_against_steps(rnn, 106);
  nn::Stacked<nn::GruCell<double>> gru({.cell = {.input_size = 3, .hidden_size = 4}, .num_layers = 2}, rng);
  check_against_steps(gru, 107);
}

// Two layers with dropout: forward_sequence draws one mask over all T*B rows row-major, which
// is the same sequence of draws step() makes for two layers, so with the same seed both paths
// drop the same units.
TEST(Sequence, StackedDropoutTwoLayersMatchesSteppingWithTheSameSeed) {
  std::mt19937_64 rng(7);
  nn::Stacked<nn::LstmCell<double>> stack(
      {.cell = {.input_size = 3, .hidden_size = 6}, .num_layers = 2, .dropout = 0.5, .seed = 9}, rng);
  std::mt19937_64 data(108);
  const Problem p = make_problem(3, 6, 2, 5, 4, data);
  const Recorded want = run_steps(stack, p);
  expect_same(run_sequence(stack, p, {.fused = true}), want, "dropout fused");
  expect_same(run_sequence(stack, p, {.fused = false}), want, "dropout unrolled");
  // The masks really dropped something: evaluation mode gives a different loss.
  stack.train(false);
  EXPECT_GT(std::abs(run_sequence(stack, p, {}).loss - want.loss), 1e-6);
}

// Directly against the plain-Eigen LSTM of cell_reference.h (no tape involved).
TEST(Sequence, LstmSequenceMatchesPlainEigen) {
  std::mt19937_64 rng(11);
  const Index B = 3, in = 4, H = 5;
  const std::size_t T = 6;
  nn::LstmCell<double> cell({.input_size = in, .hidden_size = H}, rng);
  const tg::test::ReferenceProblem p =
      tg::test::reference_problem(rng, {{in, 4 * H}, {H, 4 * H}, {1, 4 * H}}, B, in, H, T);
  cell.W_ih.value = p.params[0];
  cell.W_hh.value = p.params[1];
  cell.b.value = p.params[2];
  const std::vector<Mat>&xs = p.xs, &vs = p.vs;
  const Mat &h0 = p.h0, &c0 = p.c0;
  const auto ref = tg::test::lstm_reference(p.params, xs, h0, c0, vs);
  for (bool fused : {true, false}) {
    const std::string what = fused ? "fused" : "unrolled";
    tg::Tape<double> tape;
    cell.zero_grad();
    tg::Var<double> x_all = tape.variable(stack_rows(xs));
    nn::State<double> s0{{tape.variable(h0), tape.variable(c0)}};
    nn::SequenceResult<double> r = cell.forward_sequence(x_all, s0, {.fused = fused});
    tg::Var<double> loss = tg::sum(tape.constant(stack_rows(vs)) * r.outputs);
    EXPECT_NEAR(loss.item(), ref.loss, kTol) << what;
    expect_near(r.outputs.value(), stack_rows(ref.hs), what + ": h_1..h_T");
    expect_near(r.final_state.h().value(), ref.hs.back(), what + ": h_T");
    expect_near(r.final_state.c().value(), ref.cs.back(), what + ": c_T");
    tape.backward(loss);
    const auto named = cell.named_parameters();
    for (std::size_t k = 0; k < named.size(); ++k) {
      expect_near(named[k].second->grad, ref.grads.params[k], what + ": dL/d" + named[k].first);
    }
    expect_near(x_all.grad(), stack_rows(ref.grads.xs), what + ": dL/dx");
    expect_near(s0.tensors[0].grad(), ref.grads.h0, what + ": dL/dh0");
    expect_near(s0.tensors[1].grad(), ref.grads.c0, what + ": dL/dc0");
  }
}

// The unrolled path tags step k with first_step + k; the fused path is one entry.
TEST(Sequence, UnrolledStepsAreTaggedWithTheirTime) {
  std::mt19937_64 rng(12);
  nn::GruCell<double> cell({.input_size = 2, .hidden_size = 3}, rng);
  tg::Tape<double> tape;
  nn::State<double> s0 = cell.initial_state(tape, 2);
  nn::SequenceResult<double> r =
      cell.forward_sequence(tape.constant(Mat::Ones(8, 2)), s0, {.fused = false, .first_step = 10});
  EXPECT_EQ(r.final_state.h().time(), 13);
}

// Which path ran: op by op, the last state is recorded inside time_step(first_step + T - 1);
// the fused op and its slices are recorded outside the per-step scopes.
template <class Cell>
void expect_fused_path_is_taken(Cell& cell, bool has_fused_op) {
  tg::Tape<double> tape;
  const nn::State<double> s0 = cell.initial_state(tape, 2);
  const tg::Var<double> x_all = tape.constant(Mat::Ones(8, cell.input_size()));
  EXPECT_EQ(cell.forward_sequence(x_all, s0, {.fused = false, .first_step = 10}).final_state.h().time(), 13);
  const int fused_time = cell.forward_sequence(x_all, s0, {.fused = true, .first_step = 10}).final_state.h().time();
  if (has_fused_op) {
    EXPECT_NE(fused_time, 13);
  } else {
    EXPECT_EQ(fused_time, 13);
  }
}

TEST(Sequence, FusedOpsAreUsedWhereTheyExist) {
  std::mt19937_64 rng(14);
  nn::RnnCell<double> tanh_rnn({.input_size = 2, .hidden_size = 3}, rng);
  expect_fused_path_is_taken(tanh_rnn, true);
  nn::RnnCell<double> relu_rnn({.input_size = 2, .hidden_size = 3, .activation = nn::Activation::Relu}, rng);
  expect_fused_path_is_taken(relu_rnn, false);
  nn::LstmCell<double> lstm({.input_size = 2, .hidden_size = 3}, rng);
  expect_fused_path_is_taken(lstm, true);
  nn::GruCell<double> gru({.input_size = 2, .hidden_size = 3}, rng);
  expect_fused_path_is_taken(gru, true);
}

template <class Fn>
void expect_shape_error(Fn fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no ShapeError";
  } catch (const tg::ShapeError& e) {
    const std::string msg = e.what();
    for (const std::string& part : parts) EXPECT_NE(msg.find(part), std::string::npos) << msg << "\nlacks: " << part;
  }
}

TEST(Sequence, ShapeErrorsNameTheFunctionTheArgumentAndTheShapes) {
  std::mt19937_64 rng(13);
  nn::LstmCell<double> lstm({.input_size = 3, .hidden_size = 4}, rng);
  nn::RnnCell<double> rnn({.input_size = 3, .hidden_size = 4}, rng);
  nn::GruCell<double> gru({.input_size = 3, .hidden_size = 4}, rng);
  tg::Tape<double> tape;
  const nn::State<double> s_lstm = lstm.initial_state(tape, 2);
  const nn::State<double> s_rnn = rnn.initial_state(tape, 2);
  // Wrong input width.
  expect_shape_error([&] { lstm.forward_sequence(tape.constant(Mat::Zero(6, 5)), s_lstm); },
                     {"LstmCell.forward_sequence", "x_all", "[6 x 5]", "input_size 3"});
  // Rows not a multiple of the batch.
  expect_shape_error([&] { rnn.forward_sequence(tape.constant(Mat::Zero(7, 3)), s_rnn); },
                     {"RnnCell.forward_sequence", "x_all", "[7 x 3]", "B = 2"});
  // Fewer rows than one step.
  expect_shape_error([&] { gru.forward_sequence(tape.constant(Mat::Zero(1, 3)), gru.initial_state(tape, 2)); },
                     {"GruCell.forward_sequence", "x_all", "[1 x 3]"});
  // A state with the wrong number of tensors.
  expect_shape_error([&] { lstm.forward_sequence(tape.constant(Mat::Zero(4, 3)), s_rnn); },
                     {"LstmCell.forward_sequence", "s0", "1 tensor(s), expected 2"});
  // A state tensor of the wrong shape.
  nn::State<double> bad{{tape.constant(Mat::Zero(2, 4)), tape.constant(Mat::Zero(2, 5))}};
  expect_shape_error([&] { lstm.forward_sequence(tape.constant(Mat::Zero(4, 3)), bad); },
                     {"LstmCell.forward_sequence", "'c'", "[2 x 5]", "[2 x 4]"});
  // Stacked: the state count.
  nn::Stacked<nn::LstmCell<double>> stack({.cell = {.input_size = 3, .hidden_size = 4}, .num_layers = 2}, rng);
  expect_shape_error([&] { stack.forward_sequence(tape.constant(Mat::Zero(4, 3)), s_lstm); },
                     {"Stacked.forward_sequence", "s0", "2 tensor(s), expected 4"});
  // Stacked passes layer 0's errors through.
  expect_shape_error([&] { stack.forward_sequence(tape.constant(Mat::Zero(4, 2)), stack.initial_state(tape, 2)); },
                     {"LstmCell.forward_sequence", "x_all", "[4 x 2]"});
}

}  // namespace
