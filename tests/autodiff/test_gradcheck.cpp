// Every row of the op table (op_cases.cpp), in float64: finite-difference gradient, fan-out,
// aliasing, forward value against a plain-Eigen reference, and pruning of constant inputs.
// Also checks that gradcheck itself catches a wrong backward.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <regex>
#include <set>
#include <sstream>

#include "op_cases.h"

using namespace tapegrad;
using tapegrad::optest::OpCase;
using M = Matrix<double>;

namespace {

GradcheckOptions options_for(const OpCase& c) {
  GradcheckOptions o;
  o.atol = c.atol;
  o.rtol = c.rtol;
  o.seed = 7;
  return o;
}

M random_like(Shape s, std::uint64_t seed) {
  std::srand(static_cast<unsigned>(seed));
  return M::Random(s.rows, s.cols);
}

class OpGrad : public ::testing::TestWithParam<OpCase> {};

// (1) The analytic gradient of <v, f(x)> matches central differences for every input.
TEST_P(OpGrad, MatchesFiniteDifferences) {
  const OpCase& c = GetParam();
  const GradcheckResult r = gradcheck(c.fn, optest::sample_inputs(c), options_for(c));
  EXPECT_TRUE(r) << c.name << "\n" << r.message();
  EXPECT_EQ(r.inputs.size(), c.args.size());
}

// (2) Fan-out: each input also feeds a second consumer recorded after the op, so its backward
// runs first; the op's backward must add to, not overwrite, the gradient already there.
TEST_P(OpGrad, FanOutAccumulates) {
  const OpCase& c = GetParam();
  const auto inputs = optest::sample_inputs(c);
  std::vector<M> weights;
  for (std::size_t i = 0; i < inputs.size(); ++i) weights.push_back(random_like(c.args[i], 100 + i));
  auto fn = [&](std::span<const Var<double>> x) {
    Tape<double>& tape = x[0].tape();
    const Var<double> y = c.fn(x);
    Var<double> loss = sum(mul(y, tape.constant(random_like(y.shape(), 99))));
    for (std::size_t i = 0; i < x.size(); ++i) loss = add(loss, sum(mul(x[i], tape.constant(weights[i]))));
    return loss;
  };
  const GradcheckResult r = gradcheck(fn, inputs, options_for(c));
  EXPECT_TRUE(r) << c.name << "\n" << r.message();
}

// (3) Aliasing: a row whose inputs all have one shape also runs as f(x, x, ...).
bool aliasable(const OpCase& c) {
  return c.args.size() >= 2 && std::all_of(c.args.begin(), c.args.end(), [&](Shape s) { return s == c.args[0]; });
}
std::vector<OpCase> aliasable_cases() {
  std::vector<OpCase> out;
  std::copy_if(optest::op_cases().begin(), optest::op_cases().end(), std::back_inserter(out), aliasable);
  return out;
}

class OpAlias : public ::testing::TestWithParam<OpCase> {};

TEST_P(OpAlias, AliasedInputs) {
  const OpCase& c = GetParam();
  auto fn = [&](std::span<const Var<double>> x) {
    const std::vector<Var<double>> same(c.args.size(), x[0]);
    return c.fn(same);
  };
  const GradcheckResult r = gradcheck(fn, {optest::sample_inputs(c)[0]}, options_for(c));
  EXPECT_TRUE(r) << c.name << "\n" << r.message();
}

// (4) The forward value equals the independent plain-Eigen reference.
TEST_P(OpGrad, ValueMatchesReference) {
  const OpCase& c = GetParam();
  if (!c.reference) GTEST_SKIP() << "no reference";
  const auto inputs = optest::sample_inputs(c);
  Tape<double> tape;
  std::vector<Var<double>> vars;
  for (const M& m : inputs) vars.push_back(tape.constant(m));
  const M got = c.fn(vars).value();
  const M want = c.reference(inputs);
  ASSERT_EQ(shape_of(got), shape_of(want)) << c.name;
  for (Index k = 0; k < got.size(); ++k) {
    EXPECT_NEAR(got.data()[k], want.data()[k], 1e-12 * (1 + std::abs(want.data()[k]))) << c.name << " element " << k;
  }
}

// (5) Pruning: with input k a constant, no gradient reaches it and the other inputs' gradients
// are the same as when every input is a variable.
TEST_P(OpGrad, ConstantInputsArePruned) {
  const OpCase& c = GetParam();
  const auto inputs = optest::sample_inputs(c);
  auto grads = [&](std::size_t constant_index, std::vector<M>& out) {
    Tape<double> tape;
    std::vector<Var<double>> vars;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      vars.push_back(i == constant_index ? tape.constant(inputs[i]) : tape.variable(inputs[i]));
    }
    const Var<double> y = c.fn(vars);
    tape.backward(y, random_like(y.shape(), 5));
    for (const auto& v : vars) out.push_back(v.grad());
    return y.requires_grad();
  };
  std::vector<M> all;
  ASSERT_TRUE(grads(inputs.size(), all));
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    std::vector<M> pruned;
    const bool requires_grad = grads(k, pruned);
    EXPECT_EQ(requires_grad, inputs.size() > 1) << c.name << ": output requires_grad with input " << k << " constant";
    EXPECT_TRUE(pruned[k].isZero(0)) << c.name << ": gradient reached constant input " << k;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      if (i != k) {
        EXPECT_LE((pruned[i] - all[i]).norm(), 1e-14 * (1 + all[i].norm())) << c.name << ": input " << i;
      }
    }
  }
}

std::string test_name(const ::testing::TestParamInfo<OpCase>& info) {
  std::string s = info.param.name;  // "add/scalar" -> "add__scalar" (distinct from the op add_scalar)
  if (const auto slash = s.find('/'); slash != std::string::npos) s.replace(slash, 1, "__");
  return s;
}

INSTANTIATE_TEST_SUITE_P(Ops, OpGrad, ::testing::ValuesIn(optest::op_cases()), test_name);
INSTANTIATE_TEST_SUITE_P(Ops, OpAlias, ::testing::ValuesIn(aliasable_cases()), test_name);

TEST(OpTable, EveryBinaryOpHasAnAliasedRow) {
  std::set<std::string> aliased;
  for (const OpCase& c : aliasable_cases()) aliased.insert(optest::op_name(c));
#define TAPEGRAD_OP_NAME(name, ret, params) #name,
  for (const char* op : {TAPEGRAD_BINARY_OPS(TAPEGRAD_OP_NAME, double) "add_n", "matmul", "mse_loss", "where"}) {
    EXPECT_TRUE(aliased.count(op)) << op;
  }
#undef TAPEGRAD_OP_NAME
}

// Every op of op_list.h has at least one row, and every row tests an op of the list.
TEST(OpTable, EveryOpHasACase) {
  std::set<std::string> covered;
  for (const OpCase& c : optest::op_cases()) covered.insert(optest::op_name(c));
  const std::set<std::string> listed(optest::all_op_names().begin(), optest::all_op_names().end());
  EXPECT_GT(listed.size(), 40u);
  for (const std::string& name : listed) EXPECT_TRUE(covered.count(name)) << "no case for " << name;
  for (const std::string& name : covered) EXPECT_TRUE(listed.count(name)) << name << " has rows but is not an op";
}

// ops.h declares no op by hand beside the list: every function returning Var<S> (or
// LstmStates<S>) there is a row of op_list.h, an overload of one, or detach.
TEST(OpTable, OpsHeaderDeclaresOnlyListedOps) {
  std::ifstream in(TAPEGRAD_OPS_HEADER);
  ASSERT_TRUE(in) << "cannot read " << TAPEGRAD_OPS_HEADER;
  std::stringstream text;
  text << in.rdbuf();
  const std::string src = text.str();
  const std::regex decl(R"((?:Var|LstmStates)<S>\s+([a-z_]+)\s*\()");
  const std::set<std::string> listed(optest::all_op_names().begin(), optest::all_op_names().end());
  int found = 0;
  for (auto it = std::sregex_iterator(src.begin(), src.end(), decl); it != std::sregex_iterator(); ++it) {
    const std::string name = (*it)[1];
    ++found;
    // detach is a stop-gradient: it records no op (finite differences would disagree by design).
    if (name != "detach") {
      EXPECT_TRUE(listed.count(name)) << name << " is declared in ops.h outside op_list.h";
    }
  }
  EXPECT_GT(found, 0);
}

TEST(OpTable, NamesAreUnique) {
  std::set<std::string> names;
  for (const OpCase& c : optest::op_cases()) EXPECT_TRUE(names.insert(c.name).second) << "duplicate " << c.name;
}

// ---- gradcheck checks itself -----------------------------------------------------------------

// y = x^2 with a deliberately wrong backward (3x instead of 2x).
Var<double> broken_square(const Var<double>& x) {
  return apply<double>(
      {"broken_square", x.shape()}, {x}, [](OpCtx<double>& c) { c.y() = c.x(0).array().square().matrix(); },
      [](OpCtx<double>& c) {
        if (c.needs_grad(0)) c.gx(0).array() += 3 * c.x(0).array() * c.gy().array();
      });
}

TEST(Gradcheck, DetectsAWrongBackward) {
  M a(2, 2), b(1, 3);
  a << 0.5, -1.0, 2.0, 1.5;
  b << 1.0, 2.0, -0.5;
  auto fn = [](std::span<const Var<double>> x) { return add(sum(broken_square(x[0])), sum(tanh(x[1]))); };
  const GradcheckResult r = gradcheck(fn, {a, b});
  EXPECT_FALSE(r);
  ASSERT_EQ(r.inputs.size(), 2u);
  // The output is [1 x 1], so L = v0 * f: input 0's analytic gradient is 3 v0 x against the true
  // 2 v0 x, an error of |v0 x|, largest at x = 2.0 (row 1, col 0) where numeric = 4 v0.
  EXPECT_FALSE(r.inputs[0].ok);
  EXPECT_NEAR(r.inputs[0].max_abs_error, std::abs(r.inputs[0].numeric) / 2, 1e-6);
  EXPECT_EQ(r.inputs[0].worst_row, 1);
  EXPECT_EQ(r.inputs[0].worst_col, 0);
  EXPECT_NEAR(r.inputs[0].analytic / r.inputs[0].numeric, 1.5, 1e-6);
  EXPECT_TRUE(r.inputs[1].ok);
  EXPECT_LT(r.inputs[1].max_abs_error, 1e-8);
  EXPECT_EQ(r.inputs[1].shape, (Shape{1, 3}));
  EXPECT_THAT(r.message(), ::testing::HasSubstr("FAILED"));
  EXPECT_THAT(r.message(), ::testing::HasSubstr("[2 x 2]"));
  EXPECT_THAT(r.message(), ::testing::HasSubstr("FAIL\n"));
}

TEST(Gradcheck, PassesAKnownGradientAndIsSeeded) {
  M a(2, 3);
  a << 0.1, -0.2, 0.3, 0.4, -0.5, 0.6;
  auto fn = [](std::span<const Var<double>> x) { return tanh(x[0]); };
  const GradcheckResult r = gradcheck(fn, {a});
  EXPECT_TRUE(r) << r.message();
  EXPECT_THAT(r.message(), ::testing::HasSubstr("passed"));
  GradcheckOptions o;
  o.seed = 3;
  const GradcheckResult r2 = gradcheck(fn, {a}, o);
  EXPECT_TRUE(r2);
}

TEST(Gradcheck, InputWithNoPathHasZeroGradientBothWays) {
  M a = M::Constant(1, 2, 0.3), b = M::Constant(2, 2, 0.7);
  auto fn = [](std::span<const Var<double>> x) { return exp(x[0]); };  // ignores x[1]
  const GradcheckResult r = gradcheck(fn, {a, b});
  EXPECT_TRUE(r) << r.message();
  EXPECT_EQ(r.inputs[1].max_abs_error, 0.0);
}

}  // namespace
