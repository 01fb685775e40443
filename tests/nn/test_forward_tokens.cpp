// forward_tokens (an embedding folded into the cell's input projection, read by id) against the
// cell stepped T times over the embedding rows picked in plain Eigen: values, final state, and
// the gradients of every parameter, the initial state and the embedding (the reference's input
// gradients scatter-added by id in a plain loop), to 1e-10 in float64. Stepping is checked
// against plain Eigen in test_cell_reference. Plus the argument errors.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <tapegrad/error.h>
#include <tapegrad/nn/gru_cell.h>
#include <tapegrad/nn/lstm_cell.h>
#include <tapegrad/nn/rnn_cell.h>
#include <tapegrad/nn/stacked.h>
#include <tapegrad/nn/unroll.h>

#include "support/test_names.h"
#include "support/test_support.h"

using Mat = tapegrad::Matrix<double>;

namespace {

using tapegrad::testing::expect_near;
using tapegrad::testing::random_matrix;

constexpr double kTol = 1e-10;
constexpr Index kVocab = 5;

Mat random_mat(Index r, Index c, std::mt19937_64& rng) { return random_matrix(r, c, rng, 0.7); }

// A problem: embedding, time-major ids (every token used), initial state, and the loss weights
// L = <V, outputs> + sum_k <U_k, final state tensor k>.
struct Problem {
  Mat embedding;
  std::vector<std::int32_t> ids;
  Index batch = 0, steps = 0;
  std::vector<Mat> s0, us;
  Mat v;
};

Problem make_problem(Index in, Index hidden, Index batch, Index steps, std::size_t state_tensors,
                     std::mt19937_64& rng) {
  Problem p{random_mat(kVocab, in, rng), {}, batch, steps, {}, {}, random_mat(steps * batch, hidden, rng)};
  std::uniform_int_distribution<std::int32_t> token(0, kVocab - 1);
  for (Index i = 0; i < steps * batch; ++i) p.ids.push_back(token(rng));
  for (std::size_t k = 0; k < state_tensors; ++k) {
    p.s0.push_back(random_mat(batch, hidden, rng));
    p.us.push_back(random_mat(batch, hidden, rng));
  }
  return p;
}

struct Recorded {
  double loss = 0;
  Mat outputs, d_embedding;
  std::vector<Mat> final_state, s0_grads, param_grads;
};

template <class Cell>
void finish(Cell& cell, tg::Tape<double>& tape, tg::Var<double> loss, const nn::State<double>& final,
            const nn::State<double>& s0, const Problem& p, Recorded& run) {
  for (std::size_t k = 0; k < p.us.size(); ++k) loss = loss + tg::sum(tape.constant(p.us[k]) * final.tensors[k]);
  tape.backward(loss);
  run.loss = loss.item();
  for (const auto& s : final.tensors) run.final_state.push_back(s.value());
  for (const auto& s : s0.tensors) run.s0_grads.push_back(s.grad());
  for (const auto& named : cell.named_parameters()) run.param_grads.push_back(named.second->grad);
}

// The reference: x_t's rows picked from the embedding in plain Eigen, then cell.step T times.
template <class Cell>
Recorded run_reference(Cell& cell, const Problem& p) {
  tg::Tape<double> tape;
  cell.zero_grad();
  std::vector<tg::Var<double>> xs;
  for (Index t = 0; t < p.steps; ++t) {
    Mat x(p.batch, p.embedding.cols());
    for (Index r = 0; r < p.batch; ++r) x.row(r) = p.embedding.row(p.ids[static_cast<std::size_t>(t * p.batch + r)]);
    xs.push_back(tape.variable(x));
  }
  nn::State<double> s0;
  for (const Mat& s : p.s0) s0.tensors.push_back(tape.variable(s));
  const nn::Unrolled<double> u = nn::many_to_many(cell, xs, s0);
  tg::Var<double> loss = tg::sum(tape.constant(p.v.middleRows(0, p.batch)) * u.outputs[0]);
  for (Index t = 1; t < p.steps; ++t) {
    loss = loss + tg::sum(tape.constant(p.v.middleRows(t * p.batch, p.batch)) * u.outputs[static_cast<std::size_t>(t)]);
  }
  Recorded run;
  finish(cell, tape, loss, u.final_state, s0, p, run);
  run.outputs.resize(p.steps * p.batch, p.v.cols());
  run.d_embedding = Mat::Zero(p.embedding.rows(), p.embedding.cols());
  for (Index t = 0; t < p.steps; ++t) {
    const auto step = static_cast<std::size_t>(t);
    run.outputs.middleRows(t * p.batch, p.batch) = u.outputs[step].value();
    for (Index r = 0; r < p.batch; ++r) {
      run.d_embedding.row(p.ids[static_cast<std::size_t>(t * p.batch + r)]) += xs[step].grad().row(r);
    }
  }
  return run;
}

template <class Cell>
Recorded run_tokens(Cell& cell, const Problem& p, nn::SequenceOptions options) {
  tg::Tape<double> tape;
  cell.zero_grad();
  const tg::Var<double> embedding = tape.variable(p.embedding);
  nn::State<double> s0;
  for (const Mat& s : p.s0) s0.tensors.push_back(tape.variable(s));
  const nn::SequenceResult<double> r = cell.forward_tokens(embedding, p.ids, s0, options);
  Recorded run;
  finish(cell, tape, tg::sum(tape.constant(p.v) * r.outputs), r.final_state, s0, p, run);
  run.outputs = r.outputs.value();
  run.d_embedding = embedding.grad();
  return run;
}

template <class Cell>
void check_cell(Cell& cell, std::size_t state_tensors, const std::string& name) {
  std::mt19937_64 rng(7);
  for (const Index steps : {1, 6}) {
    for (const Index batch : {1, 3}) {
      const Problem p = make_problem(cell.input_size(), cell.hidden_size(), batch, steps, state_tensors, rng);
      const Recorded want = run_reference(cell, p);
      for (const bool fused : {true, false}) {
        const std::string what = name + (fused ? " fused" : " op by op") + ", T = " + std::to_string(steps) +
                                 ", B = " + std::to_string(batch);
        const Recorded got = run_tokens(cell, p, {.fused = fused});
        EXPECT_NEAR(got.loss, want.loss, kTol) << what;
        expect_near(got.outputs, want.outputs, what + ": outputs");
        expect_near(got.d_embedding, want.d_embedding, what + ": dL/dembedding");
        for (std::size_t k = 0; k < state_tensors; ++k) {
          expect_near(got.final_state[k], want.final_state[k], what + ": final state " + std::to_string(k));
          expect_near(got.s0_grads[k], want.s0_grads[k], what + ": dL/ds0 " + std::to_string(k));
        }
        ASSERT_EQ(got.param_grads.size(), want.param_grads.size());
        for (std::size_t k = 0; k < want.param_grads.size(); ++k) {
          expect_near(got.param_grads[k], want.param_grads[k], what + ": parameter " + std::to_string(k));
        }
      }
    }
  }
}

// check_cell on a cell built from its options and seed.
template <class Cell>
void check_new_cell(const typename Cell::Options& options, std::uint64_t seed, std::size_t state_tensors,
                    const std::string& what) {
  std::mt19937_64 rng(seed);
  Cell cell(options, rng);
  check_cell(cell, state_tensors, what);
}

TEST(ForwardTokens, TanhRnnMatchesSteppingOverTheEmbeddingRows) {
  check_new_cell<nn::RnnCell<double>>({.input_size = 3, .hidden_size = 4}, 1, 1, "RnnCell tanh");
}
TEST(ForwardTokens, ReluRnnMatchesSteppingOverTheEmbeddingRows) {
  // 8 units, so that some are live in every case (the check rejects an all-zero reference).
  check_new_cell<nn::RnnCell<double>>({.input_size = 3, .hidden_size = 8, .activation = nn::Activation::Relu}, 2, 1,
                                      "RnnCell relu");
}
TEST(ForwardTokens, LstmMatchesSteppingOverTheEmbeddingRows) {
  check_new_cell<nn::LstmCell<double>>({.input_size = 3, .hidden_size = 4}, 3, 2, "LstmCell");
}
TEST(ForwardTokens, GruMatchesSteppingOverTheEmbeddingRows) {
  check_new_cell<nn::GruCell<double>>({.input_size = 3, .hidden_size = 4}, 6, 1, "GruCell");
}

// Layer 0 takes the tokens, layer 1 its outputs (no dropout): the whole stack against stepping.
TEST(ForwardTokens, StackedLayersMatchSteppingOverTheEmbeddingRows) {
  std::mt19937_64 rng(5);
  nn::Stacked<nn::LstmCell<double>> lstm({.cell = {.input_size = 3, .hidden_size = 4}, .num_layers = 2}, rng);
  check_cell(lstm, 4, "Stacked<LstmCell>");
  nn::Stacked<nn::RnnCell<double>> rnn({.cell = {.input_size = 3, .hidden_size = 4}, .num_layers = 2}, rng);
  check_cell(rnn, 2, "Stacked<RnnCell>");
  nn::Stacked<nn::GruCell<double>> gru({.cell = {.input_size = 3, .hidden_size = 4}, .num_layers = 2}, rng);
  check_cell(gru, 2, "Stacked<GruCell>");
}

TEST(ForwardTokens, BadArgumentsNameTheFunctionTheArgumentAndTheShapes) {
  std::mt19937_64 rng(4);
  nn::RnnCell<double> rnn({.input_size = 3, .hidden_size = 4}, rng);
  nn::LstmCell<double> lstm({.input_size = 3, .hidden_size = 4}, rng);
  tg::Tape<double> tape;
  const tg::Var<double> embedding = tape.variable(Mat::Ones(kVocab, 3));
  const std::vector<std::int32_t> six_ids{0, 1, 2, 3, 4, 0};
  tapegrad::testing::expect_error<tg::ShapeError>(
      [&] { rnn.forward_tokens(tape.variable(Mat::Ones(kVocab, 2)), six_ids, rnn.initial_state(tape, 2)); },
      {"RnnCell.forward_tokens", "embedding", "[5 x 2]", "input_size 3"});
  tapegrad::testing::expect_error<tg::ShapeError>(
      [&] {
        lstm.forward_tokens(embedding, std::vector<std::int32_t>{0, 1, 2}, lstm.initial_state(tape, 2));
      },
      {"LstmCell.forward_tokens", "3 ids", "B = 2"});
  tapegrad::testing::expect_error<tg::ShapeError>(
      [&] { lstm.forward_tokens(embedding, six_ids, rnn.initial_state(tape, 2)); },
      {"LstmCell.forward_tokens", "s0", "1 tensor(s), expected 2"});
  const std::vector<std::int32_t> bad_id{0, 1, 2, 3, 4, 5};
  for (const bool fused : {true, false}) {
    tapegrad::testing::expect_error<tg::ValueError>(
        [&] { rnn.forward_tokens(embedding, bad_id, rnn.initial_state(tape, 2), {.fused = fused}); },
        {"[5] = 5", "out of range", "[5 x 4]"});
  }
}

}  // namespace
