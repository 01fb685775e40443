// Values in float32 against closed forms computed in double, and the errors ops throw for bad
// shapes, bad targets, bad ranges and empty tensors (each names the op and the shapes).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include <tapegrad/tapegrad.h>

using namespace tapegrad;
using ::testing::AllOf;
using ::testing::HasSubstr;
using Mf = Matrix<float>;

namespace {

// Runs f and returns the message of the error of type E it throws (fails the test otherwise).
template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a different error: " << e.what();
    return {};
  }
  ADD_FAILURE() << "did not throw";
  return {};
}

// log(sum(exp(row))) in double with the max factored out by hand.
double lse(const std::vector<double>& row) {
  double m = row[0];
  for (double v : row) m = std::max(m, v);
  double s = 0;
  for (double v : row) s += std::exp(v - m);
  return m + std::log(s);
}

const std::vector<std::vector<double>> kHuge = {
    {1e4, -1e4, 0.0, 5e3}, {-1e4, -1e4, -1e4, -1e4}, {-1e4, 1e4, 1e4 - 1.0, -3.0}};

Mf huge_logits() {
  Mf x(3, 4);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) x(r, c) = static_cast<float>(kHuge[r][c]);
  return x;
}

TEST(OpValuesFloat, CrossEntropyIsFiniteAndExactForHugeLogits) {
  const std::vector<std::int32_t> targets = {1, 2, 2};
  for (Reduction red : {Reduction::Sum, Reduction::Mean}) {
    Tape<float> tape;
    auto x = tape.variable(huge_logits());
    auto loss = softmax_cross_entropy(x, targets, red);
    tape.backward(loss);
    double want = 0;
    for (int r = 0; r < 3; ++r) want += lse(kHuge[r]) - kHuge[r][targets[r]];
    const double scale = red == Reduction::Mean ? 1.0 / 3 : 1.0;
    want *= scale;
    ASSERT_TRUE(std::isfinite(loss.item()));
    EXPECT_NEAR(loss.item(), want, 1e-5 * std::abs(want) + 1e-3);
    ASSERT_TRUE(x.grad().allFinite());
    for (int r = 0; r < 3; ++r) {
      for (int c = 0; c < 4; ++c) {
        const double p = std::exp(kHuge[r][c] - lse(kHuge[r]));
        const double g = scale * (p - (c == targets[r] ? 1.0 : 0.0));
        EXPECT_NEAR(x.grad()(r, c), g, 1e-5) << r << "," << c;
      }
    }
  }
}

TEST(OpValuesFloat, CrossEntropyIgnoreIndexDropsRowsFromLossAndCount) {
  Tape<float> tape;
  Mf m(3, 2);
  m << 1, 2, 3, 4, 0.5f, -0.5f;
  auto x = tape.variable(m);
  const std::vector<std::int32_t> targets = {0, -100, 1};
  auto loss = softmax_cross_entropy(x, targets, Reduction::Mean);
  tape.backward(loss);
  const double want =
      ((std::log(std::exp(1.0) + std::exp(2.0)) - 1.0) + (std::log(std::exp(0.5) + std::exp(-0.5)) + 0.5)) / 2;
  EXPECT_NEAR(loss.item(), want, 1e-6);
  EXPECT_TRUE(x.grad().row(1).isZero(0));

  Tape<float> t2;  // every row ignored: loss 0, no gradient
  auto y = t2.variable(m);
  const std::vector<std::int32_t> none = {-100, -100, -100};
  auto l2 = softmax_cross_entropy(y, none, Reduction::Mean);
  t2.backward(l2);
  EXPECT_EQ(l2.item(), 0.0f);
  EXPECT_TRUE(y.grad().isZero(0));
}

TEST(OpValuesFloat, LogSoftmaxSoftmaxLogsumexpAreFiniteForHugeLogits) {
  Tape<float> tape;
  auto x = tape.variable(huge_logits());
  auto ls = log_softmax(x);
  auto sm = softmax(x);
  auto z = logsumexp(x);
  for (int r = 0; r < 3; ++r) {
    const double l = lse(kHuge[r]);
    EXPECT_NEAR(z.value()(r, 0), l, 1e-6 * std::abs(l) + 1e-3);
    for (int c = 0; c < 4; ++c) {
      const double want = kHuge[r][c] - l;
      EXPECT_NEAR(ls.value()(r, c), want, 1e-6 * std::abs(want) + 1e-3) << r << "," << c;
      EXPECT_NEAR(sm.value()(r, c), std::exp(want), 1e-6) << r << "," << c;
    }
  }
  ASSERT_TRUE(ls.value().allFinite());
  Mf seed = Mf::Ones(3, 4);
  tape.backward(ls, seed);
  ASSERT_TRUE(x.grad().allFinite());
  for (int r = 0; r < 3; ++r) {  // d/dx sum_j log_softmax_j = 1 - K softmax
    for (int c = 0; c < 4; ++c) {
      EXPECT_NEAR(x.grad()(r, c), 1.0 - 4.0 * std::exp(kHuge[r][c] - lse(kHuge[r])), 1e-5);
    }
  }
}

TEST(OpValuesFloat, LogisticFamilyIsStableForLargeInputs) {
  Tape<float> tape;
  Mf m(1, 4);
  m << -1e4f, -100.f, 100.f, 1e4f;
  auto x = tape.variable(m);
  auto s = sigmoid(x), sp = softplus(x), ls = log_sigmoid(x);
  const double xs[] = {-1e4, -100, 100, 1e4};
  for (int c = 0; c < 4; ++c) {
    const double v = xs[c];
    // Closed forms (tolerance 1e-30 absolute: Eigen's float exp flushes e^-1e4 to ~1e-39, not 0):
    // softplus = max(v, 0) + log1p(exp(-|v|)), log_sigmoid = -softplus(-v)
    const double softplus_v = std::max(v, 0.0) + std::log1p(std::exp(-std::abs(v)));
    const double softplus_neg = std::max(-v, 0.0) + std::log1p(std::exp(-std::abs(v)));
    EXPECT_NEAR(s.value()(0, c), 1.0 / (1.0 + std::exp(-v)), 1e-30);
    EXPECT_NEAR(sp.value()(0, c), softplus_v, 1e-6 * std::abs(softplus_v) + 1e-30);
    EXPECT_NEAR(ls.value()(0, c), -softplus_neg, 1e-6 * std::abs(softplus_neg) + 1e-30);
  }
  EXPECT_GT(s.value()(0, 1), 0.0f);  // e^-100 is representable in float: no underflow to 0
  tape.backward(sum(add(add(s, sp), ls)));
  EXPECT_TRUE(x.grad().allFinite());
}

// ---- shape errors ------------------------------------------------------------------------------

TEST(OpErrors, EveryBinaryOpNamesItselfAndBothShapes) {
  using Bin = std::function<Var<float>(const Var<float>&, const Var<float>&)>;
  const std::pair<const char*, Bin> ops[] = {
      {"add", [](auto& a, auto& b) { return add(a, b); }},
      {"sub", [](auto& a, auto& b) { return sub(a, b); }},
      {"mul", [](auto& a, auto& b) { return mul(a, b); }},
      {"div", [](auto& a, auto& b) { return div(a, b); }},
      {"maximum", [](auto& a, auto& b) { return maximum(a, b); }},
      {"minimum", [](auto& a, auto& b) { return minimum(a, b); }},
  };
  for (const auto& [name, op] : ops) {
    Tape<float> tape;
    auto a = tape.variable(Mf::Ones(2, 3));
    auto b = tape.variable(Mf::Ones(4, 5));
    const std::size_t before = tape.num_values();
    EXPECT_THAT(error_of<ShapeError>([&] { (void)op(a, b); }),
                HasSubstr(fmt::format("{}: cannot broadcast a [2 x 3] with b [4 x 5]", name)));
    EXPECT_EQ(tape.num_values(), before) << name << " recorded something before failing";
    auto col = tape.variable(Mf::Ones(3, 1));  // [2 x 3] with [3 x 1]: rows 2 vs 3
    EXPECT_THAT(error_of<ShapeError>([&] { (void)op(a, col); }), HasSubstr("a [2 x 3] with b [3 x 1]"));
  }
}

TEST(OpErrors, ProductShapes) {
  Tape<float> tape;
  auto a = tape.variable(Mf::Ones(2, 3));
  auto b = tape.variable(Mf::Ones(4, 5));
  EXPECT_THAT(error_of<ShapeError>([&] { (void)matmul(a, b); }),
              HasSubstr("matmul: a is [2 x 3] but b is [4 x 5]; a.cols must equal b.rows"));
  auto w = tape.variable(Mf::Ones(3, 4));
  auto bad_bias = tape.variable(Mf::Ones(2, 4));
  EXPECT_THAT(error_of<ShapeError>([&] { (void)affine(a, b, bad_bias); }),
              HasSubstr("affine: x is [2 x 3] but w is [4 x 5]"));
  EXPECT_THAT(error_of<ShapeError>([&] { (void)affine(a, w, bad_bias); }), HasSubstr("affine: b is [2 x 4]"));
  EXPECT_THAT(error_of<ShapeError>([&] { (void)mse_loss(a, b); }),
              HasSubstr("mse_loss: pred is [2 x 3] but target is [4 x 5]"));
}

TEST(OpErrors, ShapeOpsNameTheirArguments) {
  Tape<float> tape;
  auto x = tape.variable(Mf::Ones(3, 5));
  auto y = tape.variable(Mf::Ones(2, 5));
  EXPECT_THAT(error_of<ShapeError>([&] { (void)slice_cols(x, 2, 4); }),
              AllOf(HasSubstr("slice_cols"), HasSubstr("begin 2, count 4"), HasSubstr("[3 x 5]")));
  EXPECT_THAT(error_of<ShapeError>([&] { (void)slice_rows(x, -1, 1); }),
              AllOf(HasSubstr("slice_rows"), HasSubstr("begin -1, count 1"), HasSubstr("[3 x 5]")));
  EXPECT_THAT(error_of<ShapeError>([&] { (void)slice_rows(x, 1, 3); }), HasSubstr("begin 1, count 3"));
  EXPECT_THAT(error_of<ShapeError>([&] {
                (void)concat_cols({x, y});
              }),
              AllOf(HasSubstr("concat_cols: part 1 is [2 x 5] but part 0 is [3 x 5]")));
  auto z = tape.variable(Mf::Ones(3, 2));
  EXPECT_THAT(error_of<ShapeError>([&] { (void)concat_rows({x, z}); }), HasSubstr("concat_rows: part 1 is [3 x 2]"));
  EXPECT_THAT(error_of<ValueError>([&] { (void)concat_rows(std::span<const Var<float>>()); }),
              HasSubstr("concat_rows"));
  EXPECT_THAT(error_of<ShapeError>([&] { (void)reshape(x, 4, 4); }),
              HasSubstr("reshape: cannot reshape x [3 x 5] (15 elements) to [4 x 4]"));
  EXPECT_THAT(error_of<ShapeError>([&] { (void)where(Mf(Mf::Ones(2, 2)), x, y); }),
              HasSubstr("where: cannot broadcast"));
  EXPECT_THAT(error_of<ShapeError>([&] { (void)where(Mf(Mf::Ones(2, 2)), x, x); }),
              HasSubstr("where: cond is [2 x 2]"));
  EXPECT_THAT(error_of<ShapeError>([&] { (void)mask_mul(x, Mf(Mf::Ones(2, 5))); }),
              HasSubstr("mask_mul: cannot broadcast x [3 x 5] with mask [2 x 5]"));
}

// ---- value errors --------------------------------------------------------------------------------

TEST(OpErrors, ClassTargetsOutOfRange) {
  Tape<float> tape;
  auto x = tape.variable(Mf::Zero(3, 4));
  const std::vector<std::int32_t> too_big = {0, 4, 1};
  EXPECT_THAT(error_of<ValueError>([&] { (void)softmax_cross_entropy(x, too_big); }),
              AllOf(HasSubstr("softmax_cross_entropy"), HasSubstr("row 1"), HasSubstr("target 4"), HasSubstr("K = 4")));
  const std::vector<std::int32_t> negative = {0, 1, -1};
  EXPECT_THAT(error_of<ValueError>([&] { (void)softmax_cross_entropy(x, negative); }),
              AllOf(HasSubstr("row 2"), HasSubstr("target -1"), HasSubstr("K = 4")));
  // -1 is fine when it is the ignore_index
  EXPECT_NO_THROW((void)softmax_cross_entropy(x, negative, Reduction::Mean, -1));
  const std::vector<std::int32_t> two = {0, 1};
  EXPECT_THAT(error_of<ShapeError>([&] { (void)softmax_cross_entropy(x, two); }),
              HasSubstr("softmax_cross_entropy: 2 targets for logits [3 x 4]"));
  EXPECT_THAT(error_of<ValueError>([&] { (void)pick(x, too_big); }), AllOf(HasSubstr("pick: row 1 has index 4")));
  EXPECT_THAT(error_of<ShapeError>([&] { (void)pick(x, two); }), HasSubstr("pick: 2 indices for x [3 x 4]"));
  const std::vector<std::int32_t> rows = {0, 3};
  EXPECT_THAT(error_of<ValueError>([&] { (void)gather_rows(x, rows); }),
              HasSubstr("gather_rows: index[1] = 3 is out of range for a table [3 x 4]"));
}

TEST(OpErrors, ScalarArgumentsOutOfDomain) {
  Tape<float> tape;
  Mf m(1, 2);
  m << 1.0f, -0.5f;
  auto x = tape.variable(m);
  EXPECT_THAT(error_of<ValueError>([&] { (void)clamp(x, 1.0f, -1.0f); }),
              HasSubstr("clamp: lo = 1 is greater than hi = -1"));
  EXPECT_THAT(error_of<ValueError>([&] { (void)pow(x, 0.5f); }), AllOf(HasSubstr("pow"), HasSubstr("-0.5")));
  auto cube = pow(x, 3.0f);  // whole exponents accept negative bases
  EXPECT_FLOAT_EQ(cube.value()(0, 1), -0.125f);
}

// ---- empty tensors -------------------------------------------------------------------------------

TEST(OpErrors, EmptyTensorsAreRejectedWhereTheValueIsUndefined) {
  Tape<float> tape;
  auto no_rows = tape.variable(Mf(0, 3));
  auto no_cols = tape.variable(Mf(2, 0));
  for (const auto& e : {no_rows, no_cols}) {
    EXPECT_THAT(error_of<ShapeError>([&] { (void)mean(e); }), HasSubstr("mean: x is"));
    EXPECT_THAT(error_of<ShapeError>([&] { (void)mean(e, Axis::Rows); }), HasSubstr("empty tensor"));
    EXPECT_THAT(error_of<ShapeError>([&] { (void)logsumexp(e); }), HasSubstr("logsumexp"));
    EXPECT_THAT(error_of<ShapeError>([&] { (void)softmax(e); }), HasSubstr("softmax"));
    EXPECT_THAT(error_of<ShapeError>([&] { (void)log_softmax(e); }), HasSubstr("log_softmax"));
    EXPECT_THAT(error_of<ShapeError>([&] { (void)softmax_cross_entropy(e, std::vector<std::int32_t>(e.rows(), 0)); }),
                HasSubstr("softmax_cross_entropy: logits is"));
    EXPECT_THAT(error_of<ShapeError>([&] { (void)mse_loss(e, e); }), HasSubstr("mse_loss"));
  }
}

TEST(OpValuesFloat, EmptyTensorsAreAcceptedWhereTheValueIsDefined) {
  Tape<float> tape;
  auto a = tape.variable(Mf(2, 0));
  auto b = tape.variable(Mf(0, 3));
  auto p = matmul(a, b);  // [2 x 0] [0 x 3]: a sum of no terms
  EXPECT_EQ(p.shape(), (Shape{2, 3}));
  EXPECT_TRUE(p.value().isZero(0));
  EXPECT_EQ(sum(b).item(), 0.0f);
  EXPECT_EQ(sum(b, Axis::Rows).shape(), (Shape{1, 3}));
  EXPECT_EQ(tanh(b).shape(), (Shape{0, 3}));
  EXPECT_EQ(add(b, tape.variable(Mf::Ones(1, 3))).shape(), (Shape{0, 3}));
  EXPECT_EQ(slice_cols(tape.variable(Mf::Ones(2, 3)), 1, 0).shape(), (Shape{2, 0}));
  EXPECT_EQ(gather_rows(tape.variable(Mf::Ones(2, 3)), std::span<const std::int32_t>()).shape(), (Shape{0, 3}));
  auto loss = sum(p);
  tape.backward(loss);
  EXPECT_EQ(a.grad().size(), 0);
}

}  // namespace
