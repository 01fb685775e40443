// pointwise (pointwise.h) beyond the op table's rows: its values equal the op-by-op composition
// of the same math (float and double, to a few ulp), its gradients equal the op-by-op path's in
// float64, it records one tape entry, every SIMD tail and layout gives the closed-form gradient,
// and bad arguments, NaNs and unused outputs are handled like any op's.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <limits>
#include <vector>

#include <tapegrad/tapegrad.h>

using namespace tapegrad;
using ::testing::HasSubstr;

namespace {

template <class S>
Matrix<S> random(Index rows, Index cols, unsigned seed, S scale = S(2)) {
  std::srand(seed);
  return Matrix<S>(Matrix<S>::Random(rows, cols) * scale);
}

// |got - want| <= ulps * eps * (1 + |want|) everywhere.
template <class S>
void expect_close(const Matrix<S>& got, const Matrix<S>& want, double ulps, const char* what) {
  ASSERT_EQ(shape_of(got), shape_of(want)) << what;
  const double eps = std::numeric_limits<S>::epsilon();
  for (Index k = 0; k < got.size(); ++k) {
    const double w = want.data()[k];
    EXPECT_NEAR(got.data()[k], w, ulps * eps * (1 + std::abs(w))) << what << " element " << k;
  }
}

// The three step expressions, each written once for pointwise and once op by op.
template <class S>
struct Lstm {
  static constexpr auto gates = [](auto i, auto f, auto g, auto o, auto c0) {
    auto c = sigmoid(f) * c0 + sigmoid(i) * tanh(g);
    return std::array{c, sigmoid(o) * tanh(c)};
  };
  // in: gates [B x 4H], c0 [B x H]; returns {c, h}
  static std::array<Var<S>, 2> fused(std::span<const Var<S>> in) { return pointwise(gates, columns<4>(in[0]), in[1]); }
  static std::array<Var<S>, 2> ops(std::span<const Var<S>> in) {
    const Index h = in[1].cols();
    const Var<S> c =
        sigmoid(slice_cols(in[0], h, h)) * in[1] + sigmoid(slice_cols(in[0], 0, h)) * tanh(slice_cols(in[0], 2 * h, h));
    return {c, sigmoid(slice_cols(in[0], 3 * h, h)) * tanh(c)};
  }
  static std::vector<Shape> shapes(Index b, Index h) { return {{b, 4 * h}, {b, h}}; }
};

template <class S>
struct Gru {
  static constexpr auto step = [](auto xr, auto xz, auto xn, auto hr, auto hz, auto hn, auto h) {
    auto r = sigmoid(xr + hr);
    auto z = sigmoid(xz + hz);
    return (1 - z) * tanh(xn + r * hn) + z * h;
  };
  // in: xp [B x 3H], gh [B x 3H], h [B x H]
  static std::array<Var<S>, 1> fused(std::span<const Var<S>> in) {
    return {pointwise(step, columns<3>(in[0]), columns<3>(in[1]), in[2])};
  }
  static std::array<Var<S>, 1> ops(std::span<const Var<S>> in) {
    const Index h = in[2].cols();
    auto block = [&](int v, int k) { return slice_cols(in[static_cast<std::size_t>(v)], k * h, h); };
    const Var<S> r = sigmoid(block(0, 0) + block(1, 0));
    const Var<S> z = sigmoid(block(0, 1) + block(1, 1));
    return {(S(1) - z) * tanh(block(0, 2) + r * block(1, 2)) + z * in[2]};
  }
  static std::vector<Shape> shapes(Index b, Index h) { return {{b, 3 * h}, {b, 3 * h}, {b, h}}; }
};

template <class S>
struct IndRnn {
  // in: xp [B x H], u [1 x H] (broadcast), h [B x H]
  static std::array<Var<S>, 1> fused(std::span<const Var<S>> in) {
    return {pointwise([](auto xp, auto u, auto h) { return relu(xp + u * h); }, in[0], in[1], in[2])};
  }
  static std::array<Var<S>, 1> ops(std::span<const Var<S>> in) { return {relu(in[0] + in[1] * in[2])}; }
  static std::vector<Shape> shapes(Index b, Index h) { return {{b, h}, {1, h}, {b, h}}; }
};

template <class Cell, class S>
void check_values(Index b, Index h) {
  Tape<S> tape;
  std::vector<Var<S>> in;
  unsigned seed = 1;
  for (const Shape& s : Cell::shapes(b, h)) in.push_back(tape.constant(random<S>(s.rows, s.cols, seed++)));
  const auto fused = Cell::fused(in);
  const auto ops = Cell::ops(in);
  for (std::size_t k = 0; k < fused.size(); ++k) expect_close<S>(fused[k].value(), ops[k].value(), 16, "value");
}

// Gradients of <seed_k, out_k> summed over the outputs, for every input; out_mask picks the
// outputs the loss reads (the others are left unused).
template <class Cell>
std::vector<Matrix<double>> gradients(bool fused, Index b, Index h, std::vector<bool> out_mask = {}) {
  Tape<double> tape;
  std::vector<Var<double>> in;
  unsigned seed = 11;
  for (const Shape& s : Cell::shapes(b, h)) in.push_back(tape.variable(random<double>(s.rows, s.cols, seed++)));
  const auto out = fused ? Cell::fused(in) : Cell::ops(in);
  Var<double> loss;
  for (std::size_t k = 0; k < out.size(); ++k) {
    if (!out_mask.empty() && !out_mask[k]) continue;
    const Var<double> term = sum(out[k] * tape.constant(random<double>(out[k].rows(), out[k].cols(), 50 + k)));
    loss = loss.empty() ? term : loss + term;
  }
  tape.backward(loss);
  std::vector<Matrix<double>> grads;
  for (const Var<double>& v : in) grads.push_back(v.grad());
  return grads;
}

template <class Cell>
void check_gradients(Index b, Index h, std::vector<bool> out_mask = {}) {
  const auto fused = gradients<Cell>(true, b, h, out_mask);
  const auto ops = gradients<Cell>(false, b, h, out_mask);
  for (std::size_t k = 0; k < fused.size(); ++k) expect_close<double>(fused[k], ops[k], 64, "gradient");
}

TEST(Pointwise, ValuesEqualTheOpByOpComposition) {
  for (const auto& [b, h] : {std::pair<Index, Index>{1, 32}, {3, 5}, {16, 128}, {2, 13}}) {
    check_values<Lstm<float>, float>(b, h);
    check_values<Lstm<double>, double>(b, h);
    check_values<Gru<float>, float>(b, h);
    check_values<Gru<double>, double>(b, h);
    check_values<IndRnn<float>, float>(b, h);
    check_values<IndRnn<double>, double>(b, h);
  }
}

TEST(Pointwise, GradientsEqualTheOpByOpPathInFloat64) {
  for (const auto& [b, h] : {std::pair<Index, Index>{1, 32}, {3, 5}, {4, 17}}) {
    check_gradients<Lstm<double>>(b, h);
    check_gradients<Gru<double>>(b, h);
    check_gradients<IndRnn<double>>(b, h);
  }
}

TEST(Pointwise, AnUnusedOutputContributesNothing) {
  check_gradients<Lstm<double>>(3, 5, {false, true});  // only h read: c's gradient is never reached
  check_gradients<Lstm<double>>(3, 5, {true, false});  // only c read: the main output's gy is zeros
}

TEST(Pointwise, RecordsOneEntryAndNothingForConstants) {
  Tape<float> tape;
  const Var<float> gates = tape.variable(random<float>(2, 8, 3));
  const Var<float> c0 = tape.variable(random<float>(2, 2, 4));
  const std::size_t before = tape.num_entries();
  const auto [c, h] = pointwise(Lstm<float>::gates, columns<4>(gates), c0);
  EXPECT_EQ(tape.num_entries(), before + 1);
  EXPECT_TRUE(c.requires_grad() && h.requires_grad());
  const Var<float> k = tape.constant(random<float>(2, 2, 5));
  const Var<float> y = pointwise([](auto a, auto b) { return a * b; }, k, k);
  EXPECT_EQ(tape.num_entries(), before + 1);
  EXPECT_FALSE(y.requires_grad());
}

// d/da sum(g * (a * b + 3 a)) = g * (b + 3), d/db = g * a: every width 1..19 (SIMD tails of every
// length), as whole tensors, as column blocks of one tensor and with a broadcast row.
TEST(Pointwise, EveryLayoutAndTailGivesTheClosedFormGradient) {
  auto f = [](auto a, auto b) { return a * b + 3 * a; };
  auto f_right = [](auto a, auto, auto b) { return a * b + 3 * a; };  // b: the right block
  for (Index cols = 1; cols <= 19; ++cols) {
    for (int layout = 0; layout < 3; ++layout) {
      Tape<double> tape;
      const Index rows = 3;
      const Var<double> a = tape.variable(random<double>(layout == 2 ? 1 : rows, cols, 7));
      const Var<double> b_all = tape.variable(random<double>(rows, layout == 1 ? 2 * cols : cols, 8));
      const Var<double> y = layout == 1 ? pointwise(f_right, a, columns<2>(b_all)) : pointwise(f, a, b_all);
      const Matrix<double> g = random<double>(rows, cols, 9);
      tape.backward(y, g);
      const Matrix<double> b = layout == 1 ? Matrix<double>(b_all.value().rightCols(cols)) : b_all.value();
      const Matrix<double> da = (g.array() * (b.array() + 3)).matrix();
      const Matrix<double> want_a = layout == 2 ? Matrix<double>(da.colwise().sum()) : da;
      Matrix<double> want_b = Matrix<double>::Zero(rows, b_all.cols());
      want_b.rightCols(cols) = (g.array() * a.value().replicate(layout == 2 ? rows : 1, 1).array()).matrix();
      expect_close<double>(a.grad(), want_a, 8, "da");
      expect_close<double>(b_all.grad(), want_b, 8, "db");
      expect_close<double>(
          y.value(), (a.value().replicate(layout == 2 ? rows : 1, 1).array() * (b.array() + 3)).matrix(), 4, "value");
    }
  }
}

TEST(Pointwise, EmptyTensorsGiveEmptyOutputs) {
  Tape<double> tape;
  const Var<double> a = tape.variable(Matrix<double>(0, 4));
  const Var<double> y = pointwise([](auto x, auto z) { return exp(x) * z; }, a, a);
  EXPECT_EQ(y.shape(), (Shape{0, 4}));
  tape.backward(y, Matrix<double>(0, 4));
  EXPECT_EQ(a.grad().size(), 0);
}

TEST(Pointwise, MismatchedShapesNameTheOpTheArgumentAndTheShapes) {
  Tape<double> tape;
  const Var<double> a = tape.variable(Matrix<double>::Ones(3, 4));
  const Var<double> b = tape.variable(Matrix<double>::Ones(3, 5));
  const Var<double> c = tape.variable(Matrix<double>::Ones(2, 4));
  const Var<double> wide = tape.variable(Matrix<double>::Ones(3, 10));
  auto add3 = [](auto x, auto y, auto z) { return x + y + z; };
  auto add4 = [](auto x, auto y, auto z, auto w) { return x + y + z + w; };
  const std::size_t entries = tape.num_entries();
  try {
    (void)pointwise(add3, a, a, b);
    FAIL() << "no ShapeError";
  } catch (const ShapeError& e) {
    EXPECT_THAT(e.what(), HasSubstr("pointwise: argument 2 is [3 x 5] but argument 0 is [3 x 4]"));
  }
  EXPECT_THROW((void)pointwise(add3, a, c, a), ShapeError);  // rows 2 against 3, neither is one row
  try {
    (void)pointwise(add4, a, columns<3>(wide));
    FAIL() << "no ShapeError";
  } catch (const ShapeError& e) {
    EXPECT_THAT(e.what(), HasSubstr("pointwise: argument 1: columns<3> of a [3 x 10] tensor"));
  }
  try {
    (void)pointwise(add4, columns<2>(wide), a, a);
    FAIL() << "no ShapeError";
  } catch (const ShapeError& e) {  // blocks of 5 columns against a [3 x 4]
    EXPECT_THAT(e.what(), HasSubstr("pointwise: argument 2 is [3 x 4] but argument 0 is [3 x 5]"));
  }
  EXPECT_EQ(tape.num_entries(), entries);  // nothing recorded by a refused call
}

TEST(Pointwise, BadHandlesNameTheOpAndTheArgument) {
  Tape<double> tape, other;
  const Var<double> a = tape.variable(Matrix<double>::Ones(2, 2));
  const Var<double> foreign = other.variable(Matrix<double>::Ones(2, 2));
  auto mul = [](auto x, auto y) { return x * y; };
  EXPECT_THAT([&] { (void)pointwise(mul, a, Var<double>{}); },
              ::testing::ThrowsMessage<TapeError>(HasSubstr("pointwise: argument 1 is an empty handle")));
  EXPECT_THAT([&] { (void)pointwise(mul, a, foreign); },
              ::testing::ThrowsMessage<TapeError>(HasSubstr("pointwise: argument 1 belongs to another tape")));
  const Mark m = tape.mark();
  const Var<double> late = tape.variable(Matrix<double>::Ones(2, 2));
  tape.rewind(m);
  EXPECT_THAT([&] { (void)pointwise(mul, a, late); },
              ::testing::ThrowsMessage<TapeError>(HasSubstr("pointwise: argument 1: ")));
}

TEST(Pointwise, AnomalyModeNamesTheOpInForwardAndBackward) {
  Tape<double> tape;
  tape.set_anomaly_mode(true);
  const Var<double> x = tape.variable(Matrix<double>::Constant(2, 3, -1.0));
  EXPECT_THAT([&] { (void)pointwise([](auto v) { return log(v); }, x); },
              ::testing::ThrowsMessage<NumericError>(HasSubstr("op 'pointwise'")));
  // sqrt at 0 is finite forward, infinite slope backward: the gradient is the culprit.
  const Var<double> zero = tape.variable(Matrix<double>::Zero(2, 3));
  const Var<double> y = pointwise([](auto v) { return sqrt(v); }, zero);
  EXPECT_THAT([&] { tape.backward(sum(y)); },
              ::testing::ThrowsMessage<NumericError>(HasSubstr("backward gradient for input 0 of op 'pointwise'")));
}

}  // namespace
