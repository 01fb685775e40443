// Dropout, variational dropout and zoneout against independent numbers: the output pattern
// against masks recomputed from the generator's uniforms, E[output] = input and the drop rate
// within tolerances derived from the Bernoulli variance, the evaluation formulas in closed form,
// gradients by finite differences (gradcheck) and in closed form, and a custom cell using all
// three inside unroll and forward_sequence.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <span>
#include <vector>

#include <tapegrad/gradcheck.h>
#include <tapegrad/nn/nn.h>

#include "support/test_names.h"
#include "support/test_support.h"

using Mat = tg::Matrix<double>;
using V = tg::Var<double>;

namespace {

using namespace tapegrad::testing;  // expect_error, expect_near, random_matrix

// The keep pattern of draw `key` recomputed from the generator's uniforms: 1 kept, 0 dropped.
Mat kept_units(const nn::Generator& gen, const nn::DrawKey& key, Index rows, Index cols, double p) {
  Mat m(rows, cols);
  for (Index i = 0; i < rows; ++i) {
    for (Index j = 0; j < cols; ++j) m(i, j) = gen.uniform(key, static_cast<std::uint64_t>(i * cols + j)) < p ? 0 : 1;
  }
  return m;
}

TEST(Dropout, ZeroesExactlyTheDrawnUnitsAndScalesTheRest) {
  std::mt19937_64 rng(1);
  const nn::Generator gen(42, 3);
  const double p = 0.3;
  tg::Tape<double> tape;
  const Mat x = random_matrix(7, 9, rng);
  const V y = nn::dropout(tape.constant(x), gen, {.p = p, .stream = 5, .step = 11});
  const Mat keep = kept_units(gen, {5, 11}, 7, 9, p);
  for (Index i = 0; i < x.size(); ++i) {
    const double want = keep.data()[i] == 1 ? x.data()[i] / (1 - p) : 0.0;
    EXPECT_NEAR(y.value().data()[i], want, 1e-15 * std::abs(want)) << "element " << i;
  }
  EXPECT_GT(keep.sum(), 0);
  EXPECT_LT(keep.sum(), 63);
}

TEST(Dropout, MeanOutputIsTheInputAndTheDropRateIsP) {
  // y = c * b / (1 - p), b ~ Bernoulli(1 - p): E[y] = c, Var[y] = c^2 p / (1 - p).
  const double p = 0.25, c = 2.0;
  const Index rows = 200, cols = 500;
  const double n = static_cast<double>(rows * cols);
  tg::Tape<double> tape;
  const nn::Generator gen(7);
  const Mat y = nn::dropout(tape.constant(Mat::Constant(rows, cols, c)), gen, {.p = p, .step = 0}).value();
  const double sd_mean = c * std::sqrt(p / (1 - p) / n);
  EXPECT_NEAR(y.mean(), c, 5 * sd_mean);
  const double dropped = static_cast<double>((y.array() == 0).count()) / n;
  EXPECT_NEAR(dropped, p, 5 * std::sqrt(p * (1 - p) / n));
}

TEST(Dropout, MasksDependOnStreamStepSequenceAndSeedOnly) {
  const Index rows = 20, cols = 50;
  const double p = 0.5;
  const nn::Generator gen(1, 0);
  const Mat base = nn::dropout_mask<double>(gen, {0, 0}, rows, cols, p);
  EXPECT_EQ(nn::dropout_mask<double>(nn::Generator(1, 0), {0, 0}, rows, cols, p), base);  // a pure function
  // Any other key part gives another mask: about half of the 1000 units differ (sd 16).
  for (const Mat& other :
       {nn::dropout_mask<double>(gen, {1, 0}, rows, cols, p), nn::dropout_mask<double>(gen, {0, 1}, rows, cols, p),
        nn::dropout_mask<double>(nn::Generator(1, 1), {0, 0}, rows, cols, p),
        nn::dropout_mask<double>(nn::Generator(2, 0), {0, 0}, rows, cols, p)}) {
    const auto differ = (other.array() != base.array()).count();
    EXPECT_GT(differ, 400);
    EXPECT_LT(differ, 600);
  }
}

TEST(Dropout, TakesTheStepFromTheTapesTimeStep) {
  const nn::Generator gen(3);
  tg::Tape<double> tape;
  const V x = tape.constant(Mat::Ones(4, 6));
  Mat in_scope;
  {
    auto scope = tape.time_step(9);
    in_scope = nn::dropout(x, gen, {.p = 0.5, .stream = 2}).value();
  }
  EXPECT_EQ(in_scope, nn::dropout(x, gen, {.p = 0.5, .stream = 2, .step = 9}).value());
  EXPECT_EQ(in_scope, 2.0 * kept_units(gen, {2, 9}, 4, 6, 0.5));
  expect_error<tg::ValueError>([&] { (void)nn::dropout(x, gen, {.p = 0.5}); }, {"dropout", "time step", "step"});
}

TEST(Dropout, EvaluationAndPZeroAreTheIdentity) {
  std::mt19937_64 rng(2);
  const nn::Generator gen(4);
  tg::Tape<double> tape;
  const V x = tape.variable(random_matrix(3, 5, rng));
  // Outside any time-step scope too: no mask is drawn.
  EXPECT_EQ(nn::dropout(x, gen, {.p = 0.6, .training = false}).value(), x.value());
  EXPECT_EQ(nn::dropout(x, gen, {.p = 0.0}).value(), x.value());
  EXPECT_EQ(nn::variational_dropout(x, gen, {.p = 0.6, .training = false}).value(), x.value());
  const V y = nn::dropout(x, gen, {.p = 0.6, .training = false});
  tape.backward(tg::sum(y));
  EXPECT_EQ(x.grad(), Mat::Ones(3, 5));
}

TEST(Dropout, BadProbabilitiesAreValueErrorsNamingFunctionArgumentAndValue) {
  const nn::Generator gen;
  tg::Tape<double> tape;
  const V x = tape.constant(Mat::Ones(2, 2));
  for (const double p : {1.0, -0.1, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
    const std::string value = fmt::format("{}", p);
    expect_error<tg::ValueError>([&] { (void)nn::dropout(x, gen, {.p = p, .step = 0}); }, {"dropout:", "p", value});
    expect_error<tg::ValueError>([&] { (void)nn::variational_dropout(x, gen, {.p = p}); },
                                 {"variational_dropout", "p", value});
    expect_error<tg::ValueError>([&] { (void)nn::zoneout(x, x, gen, {.p = p, .step = 0}); }, {"zoneout", "p", value});
    expect_error<tg::ValueError>([&] { (void)nn::dropout_mask<double>(gen, {}, 2, 2, p); }, {"dropout_mask", value});
    // Also in evaluation, where no mask would be drawn: the bad value is found where it is given.
    expect_error<tg::ValueError>([&] { (void)nn::dropout(x, gen, {.p = p, .training = false}); }, {"dropout", value});
  }
  expect_error<tg::ValueError>([&] { (void)nn::variational_dropout(x, gen, {.p = 0.5, .step = 3}); },
                               {"variational_dropout", "step", "3"});
  expect_error<tg::ShapeError>(
      [&] { (void)nn::zoneout(x, tape.constant(Mat::Ones(2, 3)), gen, {.p = 0.5, .step = 0}); },
      {"zoneout", "h_prev", "[2 x 2]", "[2 x 3]"});
}

TEST(Dropout, GradientIsTheMaskByFiniteDifferencesAndInClosedForm) {
  std::mt19937_64 rng(3);
  const nn::Generator gen(5);
  const double p = 0.4;
  const Mat w = random_matrix(3, 4, rng);
  const auto fn = [&](std::span<const V> in) {
    return nn::dropout(tg::tanh(in[0]), gen, {.p = p, .stream = 1, .step = 2}) * in[0].tape().constant(w);
  };
  const tg::GradcheckResult r = tg::gradcheck(fn, {random_matrix(3, 4, rng)});
  EXPECT_TRUE(r.ok) << r.message();
  // d sum(w * dropout(x)) / dx = w * mask.
  tg::Tape<double> tape;
  const V x = tape.variable(random_matrix(3, 4, rng));
  tape.backward(tg::sum(nn::dropout(x, gen, {.p = p, .stream = 1, .step = 2}) * tape.constant(w)));
  const Mat want = (w.array() * kept_units(gen, {1, 2}, 3, 4, p).array() / (1 - p)).matrix();
  expect_near(x.grad(), want, "dL/dx");
}

TEST(Dropout, SequenceMaskIsThePerStepMaskBlockByBlock) {
  std::mt19937_64 rng(4);
  const nn::Generator gen(6);
  const Index T = 4, B = 3, n = 5;
  tg::Tape<double> tape;
  const Mat x_all = random_matrix(T * B, n, rng);
  const Mat got = nn::dropout_sequence(tape.constant(x_all), B, gen, {.p = 0.5, .stream = 7, .step = 10}).value();
  for (Index t = 0; t < T; ++t) {
    const Mat want = (x_all.middleRows(t * B, B).array() * 2.0 * kept_units(gen, {7, 10 + t}, B, n, 0.5).array());
    EXPECT_EQ(Mat(got.middleRows(t * B, B)), want) << "step " << t;
  }
  expect_error<tg::ShapeError>([&] { (void)nn::dropout_sequence(tape.constant(x_all), 5, gen, {.p = 0.5, .step = 0}); },
                               {"dropout_sequence", "[12 x 5]", "5"});
}

TEST(Dropout, FirstRowDrawsThoseRowsOfTheWholeBatchsMasks) {
  // Rows [4, 7) of a batch of 7, held alone (one rank's share): the whole batch's masks.
  std::mt19937_64 rng(5);
  const nn::Generator gen(8);
  const Index first = 4, rows = 3, whole = 7, n = 5, T = 2;
  tg::Tape<double> tape;
  const Mat x = random_matrix(rows, n, rng);
  const Mat whole_keep = kept_units(gen, {2, 9}, whole, n, 0.5);
  const Mat got = nn::dropout(tape.constant(x), gen, {.p = 0.5, .stream = 2, .step = 9, .first_row = first}).value();
  EXPECT_EQ(got, Mat(x.array() * 2.0 * whole_keep.middleRows(first, rows).array()));
  const Mat x_all = random_matrix(T * rows, n, rng);
  const Mat seq =
      nn::dropout_sequence(tape.constant(x_all), rows, gen, {.p = 0.5, .stream = 2, .step = 9, .first_row = first})
          .value();
  for (Index t = 0; t < T; ++t) {
    const Mat keep = kept_units(gen, {2, 9 + t}, whole, n, 0.5).middleRows(first, rows);
    EXPECT_EQ(Mat(seq.middleRows(t * rows, rows)), Mat(x_all.middleRows(t * rows, rows).array() * 2.0 * keep.array()))
        << "step " << t;
  }
  EXPECT_EQ(nn::zoneout_mask<double>(gen, {2, 9}, rows, n, 0.5, first),
            Mat(nn::zoneout_mask<double>(gen, {2, 9}, whole, n, 0.5).middleRows(first, rows)));
  expect_error<tg::ValueError>(
      [&] { (void)nn::dropout(tape.constant(x), gen, {.p = 0.5, .step = 0, .first_row = -1}); },
      {"dropout_mask", "first_row", "-1"});
}

TEST(VariationalDropout, OneMaskPerSequenceAtEveryStep) {
  const Index B = 10, H = 40;
  nn::Generator gen(8);
  tg::Tape<double> tape;
  const V ones = tape.constant(Mat::Ones(B, H));
  const auto mask_at = [&](int t) {
    auto scope = tape.time_step(t);
    return Mat(nn::variational_dropout(ones, gen, {.p = 0.5, .stream = 3}).value());
  };
  const Mat first = mask_at(0);
  EXPECT_EQ(first, 2.0 * kept_units(gen, {3, nn::kWholeSequence}, B, H, 0.5));
  for (int t = 1; t < 6; ++t) EXPECT_EQ(mask_at(t), first) << "step " << t;
  // Differs from the per-step masks, from sequence to sequence and between rows of a batch.
  EXPECT_NE(first, nn::dropout(ones, gen, {.p = 0.5, .stream = 3, .step = 0}).value());
  EXPECT_NE(first.row(0), first.row(1));
  gen.next_sequence();
  const Mat second = mask_at(0);
  const auto differ = (second.array() != first.array()).count();
  EXPECT_GT(differ, 150);  // 400 units, p = 0.5: 200 expected to differ, sd 10
  EXPECT_LT(differ, 250);
  EXPECT_EQ(mask_at(3), second);
}

TEST(Zoneout, TrainingKeepsTheOldValueWhereTheMaskSaysSo) {
  std::mt19937_64 rng(5);
  const nn::Generator gen(9);
  const double p = 0.3;
  const Index B = 100, H = 200;
  tg::Tape<double> tape;
  const Mat h_prev = random_matrix(B, H, rng), h_new = random_matrix(B, H, rng);
  const Mat got =
      nn::zoneout(tape.constant(h_prev), tape.constant(h_new), gen, {.p = p, .stream = 4, .step = 2}).value();
  const Mat take_new = kept_units(gen, {4, 2}, B, H, p);  // uniform >= p: the new value
  for (Index i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got.data()[i], take_new.data()[i] == 1 ? h_new.data()[i] : h_prev.data()[i]) << "element " << i;
  }
  const double n = static_cast<double>(B * H);
  EXPECT_NEAR(1.0 - take_new.mean(), p, 5 * std::sqrt(p * (1 - p) / n));  // the share kept from h_{t-1}
  EXPECT_EQ(nn::zoneout_mask<double>(gen, {4, 2}, B, H, p), (1.0 - take_new.array()).matrix());
}

TEST(Zoneout, EvaluationIsTheExpectationInClosedForm) {
  std::mt19937_64 rng(6);
  const nn::Generator gen(10);
  const double p = 0.35;
  tg::Tape<double> tape;
  const Mat h_prev = random_matrix(3, 4, rng), h_new = random_matrix(3, 4, rng);
  const V hp = tape.variable(h_prev), hn = tape.variable(h_new);
  const V z = nn::zoneout(hp, hn, gen, {.p = p, .training = false});
  expect_near(z.value(), p * h_prev + (1 - p) * h_new, "p h_prev + (1-p) h_new", 1e-15);
  tape.backward(tg::sum(z));
  expect_near(hp.grad(), Mat::Constant(3, 4, p), "d/dh_prev", 1e-15);
  expect_near(hn.grad(), Mat::Constant(3, 4, 1 - p), "d/dh_new", 1e-15);
  EXPECT_EQ(nn::zoneout(hp, hn, gen, {.p = 0.0, .step = 0}).value(), h_new);
}

TEST(Zoneout, GradientByFiniteDifferences) {
  std::mt19937_64 rng(7);
  const nn::Generator gen(11);
  const auto fn = [&](std::span<const V> in) {
    return nn::zoneout(tg::tanh(in[0]), tg::sigmoid(in[0] * in[1]), gen, {.p = 0.5, .stream = 1, .step = 0});
  };
  const tg::GradcheckResult r = tg::gradcheck(fn, {random_matrix(4, 5, rng), random_matrix(4, 5, rng)});
  EXPECT_TRUE(r.ok) << r.message();
}

// A researcher's cell: IndRNN, h' = relu(x W + u * d(h) + b) with zoneout on the update, where
// d is variational dropout of the recurrent input (one mask per sequence).
struct NoisyOptions {
  Index input_size = 0, hidden_size = 0;  // a cell's options start with these two
  double state_dropout = 0.0, zoneout = 0.0;
};

template <class S>
struct NoisyIndRnn : nn::Cell<NoisyIndRnn<S>, S, NoisyOptions> {
  static constexpr const char* kName = "NoisyIndRnn";
  struct Weights {
    tg::Var<S> W, u, b;
  };
  tg::Parameter<S> W, u, b;
  static constexpr std::array kParameters{&NoisyIndRnn::W, &NoisyIndRnn::u, &NoisyIndRnn::b};
  const nn::Generator* gen = nullptr;  // set by the training loop
  bool training = true;

  NoisyIndRnn(const NoisyOptions& o, std::mt19937_64& rng)
      : NoisyIndRnn::Cell(o),
        W(tg::Matrix<S>(o.input_size, o.hidden_size), "W"),
        u(tg::Matrix<S>(1, o.hidden_size), "u"),
        b(tg::Matrix<S>::Constant(1, o.hidden_size, S(0.1)), "b") {
    nn::init::xavier_uniform(W, rng);
    nn::init::uniform(u, rng, 0.2, 0.9);
  }
  tg::Var<S> project_input(const Weights& w, const tg::Var<S>& x) const { return affine(x, w.W, w.b); }
  nn::State<S> recur(const Weights& w, const tg::Var<S>& xp, const nn::State<S>& s) const {
    const NoisyOptions& o = this->options();
    const tg::Var<S> h_in =
        nn::variational_dropout(s.h(), *gen, {.p = o.state_dropout, .stream = 0, .training = training});
    const tg::Var<S> h_new = relu(xp + w.u * h_in);
    return {{nn::zoneout(s.h(), h_new, *gen, {.p = o.zoneout, .stream = 1, .training = training})}};
  }
};

// The cell's step written out by hand in plain Eigen with the masks recomputed from the generator.
Mat noisy_step_by_hand(const NoisyIndRnn<double>& cell, const nn::Generator& gen, const Mat& x, const Mat& h, int t) {
  const NoisyOptions& o = cell.options();
  const Mat d = (h.array() * kept_units(gen, {0, nn::kWholeSequence}, h.rows(), h.cols(), o.state_dropout).array() /
                 (1 - o.state_dropout))
                    .matrix();
  Mat a = x * cell.W.value;
  for (Index i = 0; i < a.rows(); ++i) {
    a.row(i) += cell.b.value.row(0) + (cell.u.value.row(0).array() * d.row(i).array()).matrix();
  }
  const Mat h_new = a.cwiseMax(0.0);
  const Mat take_new = kept_units(gen, {1, t}, h.rows(), h.cols(), o.zoneout);
  return (take_new.array() * h_new.array() + (1 - take_new.array()) * h.array()).matrix();
}

TEST(Dropout, InsideACustomCellUnrollAndSequenceAgreeWithAHandWrittenStep) {
  std::mt19937_64 rng(8);
  NoisyIndRnn<double> cell({.input_size = 3, .hidden_size = 6, .state_dropout = 0.3, .zoneout = 0.25}, rng);
  nn::Generator gen(12, 4);
  cell.gen = &gen;
  const Index B = 4, T = 5;
  std::vector<Mat> xs;
  for (Index t = 0; t < T; ++t) xs.push_back(random_matrix(B, 3, rng));
  const Mat h0 = random_matrix(B, 6, rng).cwiseAbs();
  // By hand.
  std::vector<Mat> want;
  Mat h = h0;
  for (Index t = 0; t < T; ++t) want.push_back(h = noisy_step_by_hand(cell, gen, xs[t], h, static_cast<int>(t)));
  // many_to_many steps inside time_step(t); forward_sequence runs project_input once, then recur.
  tg::Tape<double> tape;
  std::vector<V> vx;
  Mat x_all(T * B, 3);
  for (Index t = 0; t < T; ++t) {
    vx.push_back(tape.constant(xs[t]));
    x_all.middleRows(t * B, B) = xs[t];
  }
  const nn::Unrolled<double> u = nn::many_to_many(cell, vx, nn::State<double>{{tape.constant(h0)}});
  const nn::SequenceResult<double> r =
      cell.forward_sequence(tape.constant(x_all), nn::State<double>{{tape.constant(h0)}});
  for (Index t = 0; t < T; ++t) {
    expect_near(u.outputs[t].value(), want[t], "unroll step " + std::to_string(t), 1e-12);
    expect_near(Mat(r.outputs.value().middleRows(t * B, B)), want[t], "sequence step " + std::to_string(t), 1e-12);
  }
  // The noise did something: evaluation (no masks, zoneout's expectation) gives other states.
  cell.training = false;
  const nn::Unrolled<double> e = nn::many_to_many(cell, vx, nn::State<double>{{tape.constant(h0)}});
  EXPECT_GT((e.outputs.back().value() - want.back()).cwiseAbs().maxCoeff(), 1e-3);
}

TEST(Dropout, InsideACustomCellGradientByFiniteDifferences) {
  std::mt19937_64 rng(9);
  NoisyIndRnn<double> cell({.input_size = 2, .hidden_size = 3, .state_dropout = 0.4, .zoneout = 0.3}, rng);
  const nn::Generator gen(13);
  cell.gen = &gen;
  const std::size_t T = 3;
  std::vector<Mat> inputs;
  for (tg::Parameter<double>* p : cell.parameters()) inputs.push_back(p->value);
  for (std::size_t t = 0; t < T; ++t) inputs.push_back(random_matrix(2, 2, rng));
  inputs.push_back(random_matrix(2, 3, rng).cwiseAbs());
  const auto fn = [&](std::span<const V> in) {
    const auto w = cell.bind(in.first(3));
    nn::State<double> s{{in[3 + T]}};
    std::vector<V> hs;
    for (std::size_t t = 0; t < T; ++t) {
      auto scope = in[0].tape().time_step(static_cast<int>(t));
      s = cell.step(w, in[3 + t], s);
      hs.push_back(s.h());
    }
    return tg::concat_cols<double>(std::span<const V>(hs));
  };
  const tg::GradcheckResult r = tg::gradcheck(fn, inputs);
  EXPECT_TRUE(r.ok) << r.message();
}

}  // namespace
