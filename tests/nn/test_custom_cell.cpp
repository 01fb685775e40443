// A user's cell written on the nn::Cell base (the IndRNN of examples/indrnn): its gradient by
// finite differences and against a hand-derived one-step gradient, its names and argument
// checks from the base, and that it runs inside Stacked (per-layer sizes, forward_sequence)
// and the truncated-BPTT driver like a built-in cell.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <tapegrad/nn/nn.h>

#include "../../examples/indrnn/indrnn_cell.h"
#include "cell_gradcheck.h"
#include "support/test_names.h"
#include "support/test_support.h"

using example::IndRnnCell;
using tapegrad::Tape;
using Mat = tapegrad::Matrix<double>;
using V = tapegrad::Var<double>;

namespace {

using namespace tapegrad::testing;  // expect_error, expect_near, random_matrix

std::vector<std::string> names_of(nn::Module<double>& m) {
  std::vector<std::string> out;
  for (const auto& [name, p] : m.named_parameters()) out.push_back(name + " " + p->shape().str());
  return out;
}

TEST(CustomCell, GetsSizesStateAndNamesFromTheBase) {
  std::mt19937_64 rng(1);
  IndRnnCell<double> cell({.input_size = 3, .hidden_size = 4}, rng);
  EXPECT_EQ(cell.input_size(), 3);
  EXPECT_EQ(cell.hidden_size(), 4);
  EXPECT_EQ(cell.output_size(), 4);
  EXPECT_EQ(cell.state_tensors(), 1u);
  EXPECT_EQ(cell.num_parameter_tensors(), 3u);
  EXPECT_EQ(names_of(cell), (std::vector<std::string>{"W [3 x 4]", "u [1 x 4]", "b [1 x 4]"}));
  Tape<double> tape;
  const nn::State<double> s = cell.initial_state(tape, 2);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s.h().value(), Mat::Zero(2, 4));
  EXPECT_THROW((void)cell.initial_state(tape, 0), tapegrad::ValueError);
  EXPECT_THROW(IndRnnCell<double>({.input_size = 3, .hidden_size = 0}, rng), tapegrad::ValueError);
}

TEST(CustomCell, ArgumentErrorsNameTheCell) {
  std::mt19937_64 rng(2);
  IndRnnCell<double> cell({.input_size = 3, .hidden_size = 4}, rng);
  Tape<double> tape;
  const V x = tape.constant(Mat::Ones(2, 3));
  expect_error<tapegrad::ShapeError>([&] { (void)cell.step(x, nn::State<double>{{tape.constant(Mat::Zero(2, 5))}}); },
                                     {"IndRnnCell.step", "'h'", "[2 x 5]", "[2 x 4]"});
  expect_error<tapegrad::ShapeError>(
      [&] { (void)cell.step(tape.constant(Mat::Ones(2, 2)), cell.initial_state(tape, 2)); },
      {"IndRnnCell.step", "[2 x 2]", "input_size 3"});
  const std::vector<V> two = {tape.constant(Mat::Zero(3, 4)), tape.constant(Mat::Zero(1, 4))};
  expect_error<tapegrad::ValueError>([&] { (void)cell.bind(two); }, {"IndRnnCell.bind", "got 2", "expected 3"});
  const std::vector<V> bad_u = {tape.constant(Mat::Zero(3, 4)), tape.constant(Mat::Zero(4, 4)),
                                tape.constant(Mat::Zero(1, 4))};
  expect_error<tapegrad::ShapeError>([&] { (void)cell.bind(bad_u); }, {"IndRnnCell.bind", "'u'", "[4 x 4]", "[1 x 4]"});
  expect_error<tapegrad::ShapeError>(
      [&] { (void)cell.forward_sequence(tape.constant(Mat::Ones(5, 3)), cell.initial_state(tape, 2)); },
      {"IndRnnCell.forward_sequence", "x_all", "[5 x 3]", "B = 2"});
}

TEST(CustomCell, GradcheckUnrolled) {
  std::mt19937_64 rng(3);
  IndRnnCell<double> cell({.input_size = 3, .hidden_size = 4}, rng);
  cell.b.value.setConstant(0.3);  // most units active, so relu passes gradient
  tapegrad::test::gradcheck_cell(cell, 3);
}

// L = sum(V * h'), h' = relu(pre), pre = x W + u * h + b. With G = V * [pre > 0]:
// dW = x^T G, du = column sums of G * h, db = column sums of G, dx = G W^T, dh = G * u.
TEST(CustomCell, OneStepGradientMatchesTheHandDerivedOne) {
  std::mt19937_64 rng(4);
  const Index B = 3, in = 2, H = 5;
  IndRnnCell<double> cell({.input_size = in, .hidden_size = H}, rng);
  cell.b.value = random_matrix(1, H, rng, 0.5);
  const Mat x = random_matrix(B, in, rng), h = random_matrix(B, H, rng), v = random_matrix(B, H, rng);

  Tape<double> tape;
  const V xv = tape.variable(x), hv = tape.variable(h);
  const nn::State<double> next = cell.step(xv, nn::State<double>{{hv}});
  tape.backward(tapegrad::sum(tape.constant(v) * next.h()));

  Mat pre = x * cell.W.value + (h.array().rowwise() * cell.u.value.row(0).array()).matrix();
  pre.rowwise() += cell.b.value.row(0);
  const Mat g = (v.array() * (pre.array() > 0).cast<double>()).matrix();
  ASSERT_GT(g.cwiseAbs().maxCoeff(), 0.0);
  EXPECT_LE((next.h().value() - Mat(pre.cwiseMax(0.0))).cwiseAbs().maxCoeff(), 1e-14);
  EXPECT_LE((cell.W.grad - x.transpose() * g).cwiseAbs().maxCoeff(), 1e-13);
  EXPECT_LE((cell.u.grad - Mat((g.array() * h.array()).colwise().sum())).cwiseAbs().maxCoeff(), 1e-13);
  EXPECT_LE((cell.b.grad - Mat(g.colwise().sum())).cwiseAbs().maxCoeff(), 1e-13);
  EXPECT_LE((xv.grad() - g * cell.W.value.transpose()).cwiseAbs().maxCoeff(), 1e-13);
  EXPECT_LE((hv.grad() - Mat(g.array().rowwise() * cell.u.value.row(0).array())).cwiseAbs().maxCoeff(), 1e-13);
}

TEST(CustomCell, StacksWithPerLayerSizesAndRunsWholeSequences) {
  std::mt19937_64 rng(5);
  nn::Stacked<IndRnnCell<double>> stack({.cell = {.input_size = 2}, .hidden_sizes = {4, 3}}, rng);
  EXPECT_EQ(names_of(stack), (std::vector<std::string>{"layers.0.cell.W [2 x 4]", "layers.0.cell.u [1 x 4]",
                                                       "layers.0.cell.b [1 x 4]", "layers.1.cell.W [4 x 3]",
                                                       "layers.1.cell.u [1 x 3]", "layers.1.cell.b [1 x 3]"}));
  for (std::size_t l = 0; l < 2; ++l) stack.layer(l).b.value.setConstant(0.3);
  tapegrad::test::gradcheck_cell(stack, 3);

  // forward_sequence (the base's op-by-op default) equals stepping, values and gradients.
  const Index B = 2, T = 4;
  const Mat x_all = random_matrix(T * B, 2, rng);
  Tape<double> tape;
  const nn::Unrolled<double> stepped = [&] {
    std::vector<V> xs;
    for (Index t = 0; t < T; ++t) xs.push_back(tape.constant(x_all.middleRows(t * B, B)));
    return nn::many_to_many(stack, xs, stack.initial_state(tape, B));
  }();
  const nn::SequenceResult<double> seq = stack.forward_sequence(tape.constant(x_all), stack.initial_state(tape, B));
  ASSERT_EQ(seq.outputs.rows(), T * B);
  ASSERT_EQ(seq.outputs.cols(), 3);
  for (Index t = 0; t < T; ++t) {
    EXPECT_EQ(Mat(seq.outputs.value().middleRows(t * B, B)), stepped.outputs[static_cast<std::size_t>(t)].value());
  }
  ASSERT_EQ(seq.final_state.size(), 2u);
  EXPECT_EQ(seq.final_state.tensors[0].cols(), 4);
  EXPECT_EQ(seq.final_state.tensors[1].value(), stepped.final_state.tensors[1].value());
}

// The IndRNN step written whole (next_state), to compare the split form's sequence paths with.
template <class S>
struct WholeIndRnnCell : nn::Cell<WholeIndRnnCell<S>, S> {
  struct Weights {
    tapegrad::Var<S> W, u, b;
  };
  tapegrad::Parameter<S> W, u, b;
  static constexpr std::array kParameters{&WholeIndRnnCell::W, &WholeIndRnnCell::u, &WholeIndRnnCell::b};
  explicit WholeIndRnnCell(const IndRnnCell<S>& split)
      : WholeIndRnnCell::Cell(split.options()), W(split.W.value, "W"), u(split.u.value, "u"), b(split.b.value, "b") {}
  nn::State<S> next_state(const Weights& w, const tapegrad::Var<S>& x, const nn::State<S>& s) const {
    return {{relu(affine(x, w.W, w.b) + w.u * s.h())}};
  }
};

struct SequenceRun {
  Mat outputs, dW, du, db, dx;
  std::size_t entries = 0;
};

// forward_sequence of `cell` on x_all, then L = sum(V * outputs): values, gradients, tape entries.
template <class C>
SequenceRun run_sequence(C& cell, const Mat& x_all, const Mat& v, Index batch) {
  Tape<double> tape;
  const V x = tape.variable(x_all);
  const nn::SequenceResult<double> r = cell.forward_sequence(x, cell.initial_state(tape, batch));
  SequenceRun out{r.outputs.value(), {}, {}, {}, {}, tape.num_entries()};
  tape.backward(tapegrad::sum(tape.constant(v) * r.outputs));
  out.dW = cell.W.grad, out.du = cell.u.grad, out.db = cell.b.grad, out.dx = x.grad();
  cell.zero_grad();
  return out;
}

// The split step (project_input + recur) projects the inputs of all T steps in one op: the same
// values and gradients as the whole step, with T - 1 fewer tape entries (one affine, not T).
TEST(CustomCell, SplitStepProjectsAllStepsInOneOp) {
  std::mt19937_64 rng(8);
  const Index B = 3, T = 5, in = 2, H = 4;
  IndRnnCell<double> split({.input_size = in, .hidden_size = H}, rng);
  split.b.value.setConstant(0.3);
  WholeIndRnnCell<double> whole(split);
  const Mat x_all = random_matrix(T * B, in, rng), v = random_matrix(T * B, H, rng);
  const SequenceRun a = run_sequence(split, x_all, v, B);
  const SequenceRun b = run_sequence(whole, x_all, v, B);
  expect_near(a.outputs, b.outputs, "outputs", 1e-13);
  expect_near(a.dW, b.dW, "dW", 1e-13);
  expect_near(a.du, b.du, "du", 1e-13);
  expect_near(a.db, b.db, "db", 1e-13);
  expect_near(a.dx, b.dx, "dx", 1e-13);
  EXPECT_EQ(b.entries - a.entries, static_cast<std::size_t>(T - 1));
}

// forward_tokens equals forward_sequence on the gathered embedding rows (values and the
// gradients of the parameters and of the embedding), whether the embedding table is projected
// (K <= T*B) or the gathered rows are (K > T*B), and for a whole-step cell too.
TEST(CustomCell, ForwardTokensEqualsTheGatheredSequence) {
  const Index B = 2, T = 3, in = 3, H = 4;
  const std::vector<std::int32_t> ids = {1, 0, 2, 1, 2, 2};  // T*B = 6 ids
  for (const Index K : {Index{3}, Index{9}}) {
    std::mt19937_64 rng(9);
    IndRnnCell<double> split({.input_size = in, .hidden_size = H}, rng);
    split.b.value.setConstant(0.3);
    WholeIndRnnCell<double> whole(split);
    const Mat table = random_matrix(K, in, rng), v = random_matrix(T * B, H, rng);
    Mat gathered(T * B, in);
    for (std::size_t i = 0; i < ids.size(); ++i) gathered.row(static_cast<Index>(i)) = table.row(ids[i]);
    const SequenceRun want = run_sequence(whole, gathered, v, B);
    auto tokens = [&](auto& cell) {
      Tape<double> tape;
      const V e = tape.variable(table);
      const nn::SequenceResult<double> r = cell.forward_tokens(e, ids, cell.initial_state(tape, B));
      tape.backward(tapegrad::sum(tape.constant(v) * r.outputs));
      Mat de_want = Mat::Zero(K, in);  // the gathered rows' gradient scatter-added by id
      for (std::size_t i = 0; i < ids.size(); ++i) de_want.row(ids[i]) += want.dx.row(static_cast<Index>(i));
      const std::string k = "K = " + std::to_string(K);
      expect_near(r.outputs.value(), want.outputs, k + " outputs", 1e-13);
      expect_near(cell.W.grad, want.dW, k + " dW", 1e-13);
      expect_near(cell.u.grad, want.du, k + " du", 1e-13);
      expect_near(e.grad(), de_want, k + " dE", 1e-13);
      cell.zero_grad();
    };
    tokens(split);
    tokens(whole);
  }
}

// Chunked truncated BPTT over the cell: each update's gradient equals a separate tape over that
// chunk from the carried (detached) state.
TEST(CustomCell, RunsInTruncatedBptt) {
  std::mt19937_64 rng(6);
  const Index B = 2, H = 3;
  const int steps = 6, k = 3;
  IndRnnCell<double> cell({.input_size = 2, .hidden_size = H}, rng);
  cell.b.value.setConstant(0.3);
  std::vector<Mat> xs, ys;
  for (int t = 0; t < steps; ++t) {
    xs.push_back(random_matrix(B, 2, rng));
    ys.push_back(random_matrix(B, H, rng, 0.5));
  }
  const Mat h0 = random_matrix(B, H, rng, 0.5);
  nn::StepFn<double> step = [&](Tape<double>& tape, int t, const nn::State<double>& s) {
    const auto i = static_cast<std::size_t>(t);
    nn::State<double> next = cell.step(tape.constant(xs[i]), s);
    return nn::StepResult<double>{next, nn::mse_loss(next.h(), tape.constant(ys[i]))};
  };
  std::vector<std::vector<Mat>> grads;
  nn::UpdateFn record = [&](const nn::UpdateInfo&) {
    grads.push_back({cell.W.grad, cell.u.grad, cell.b.grad});
    cell.zero_grad();
  };
  Tape<double> tape;
  const auto report = nn::run_tbptt<double>(tape, steps, {h0}, step, record, nn::TbpttConfig::chunked(k));
  ASSERT_EQ(grads.size(), 2u);

  Mat h = h0;
  for (int chunk = 0; chunk < 2; ++chunk) {
    Tape<double> manual;
    nn::State<double> s{{manual.constant(h)}};
    V loss;
    for (int t = chunk * k; t < (chunk + 1) * k; ++t) {
      s = cell.step(manual.constant(xs[static_cast<std::size_t>(t)]), s);
      const V err = nn::mse_loss(s.h(), manual.constant(ys[static_cast<std::size_t>(t)]));
      loss = loss.empty() ? err : loss + err;
    }
    manual.backward(loss);
    const std::vector<Mat> want = {cell.W.grad, cell.u.grad, cell.b.grad};
    cell.zero_grad();
    for (std::size_t p = 0; p < want.size(); ++p) {
      ASSERT_GT(want[p].cwiseAbs().maxCoeff(), 0.0) << "chunk " << chunk << " parameter " << p;
      EXPECT_LE((grads[static_cast<std::size_t>(chunk)][p] - want[p]).cwiseAbs().maxCoeff(), 1e-13)
          << "chunk " << chunk << " parameter " << p;
    }
    h = s.h().value();
  }
  ASSERT_EQ(report.final_state.size(), 1u);
  EXPECT_LE((report.final_state[0] - h).cwiseAbs().maxCoeff(), 1e-14);
}

}  // namespace
