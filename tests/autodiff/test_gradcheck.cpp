// Every row of the op table (op_cases.cpp), in float64: the public gradcheck with every check
// (finite differences, fan-out, aliasing, constant inputs), forward value against a plain-Eigen
// reference, and pruning of constant inputs. gradcheck itself is tested in test_gradcheck_checks.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "op_cases.h"

using namespace tapegrad;
using tapegrad::optest::OpCase;
using M = Matrix<double>;

namespace {

// Every check of the public gradcheck, asked for explicitly so the table does not depend on
// its defaults.
GradcheckOptions options_for(const OpCase& c) {
  GradcheckOptions o;
  o.atol = c.atol;
  o.rtol = c.rtol;
  o.seed = 7;
  o.fan_out = true;
  o.alias = true;
  o.constant_inputs = true;
  return o;
}

// gradcheck runs the alias check on these rows: two or more inputs, all of one shape.
bool aliasable(const OpCase& c) {
  return c.args.size() >= 2 && std::all_of(c.args.begin(), c.args.end(), [&](Shape s) { return s == c.args[0]; });
}

class OpGrad : public ::testing::TestWithParam<OpCase> {};

// (1) gradcheck (gradcheck.h): the analytic gradient matches central differences with every
// input a variable (plain), with each input also feeding a second consumer (fan-out: the op's
// backward adds, never assigns), as f(x, x, ...) where the inputs share one shape (alias), and
// with each input in turn a constant (no gradient reaches it, the others' stay right).
TEST_P(OpGrad, PassesEveryGradcheck) {
  const OpCase& c = GetParam();
  const GradcheckResult r = gradcheck(c.fn, optest::sample_inputs(c), options_for(c));
  EXPECT_TRUE(r) << c.name << "\n" << r.message();
  EXPECT_TRUE(r.passed(GradcheckCheck::Plain)) << c.name;
  EXPECT_TRUE(r.passed(GradcheckCheck::FanOut)) << c.name;
  EXPECT_TRUE(r.passed(GradcheckCheck::Constant)) << c.name;
  EXPECT_EQ(r.passed(GradcheckCheck::Alias), aliasable(c)) << c.name << "\n" << r.message();
  EXPECT_TRUE(r.notes.empty()) << c.name << "\n" << r.message();
  for (std::size_t i = 0; i < c.args.size(); ++i) {
    ASSERT_NE(r.find(GradcheckCheck::Plain, i), nullptr) << c.name;
    EXPECT_EQ(r.find(GradcheckCheck::Plain, i)->shape, c.args[i]) << c.name;
  }
}

// (2) The forward value equals the independent plain-Eigen reference.
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

// (3) Pruning: with input k a constant, the output still requires a gradient exactly when some
// other input is a variable (gradcheck's constant check covers the gradients themselves).
TEST_P(OpGrad, OutputRequiresGradWhileAnInputDoes) {
  const OpCase& c = GetParam();
  const auto inputs = optest::sample_inputs(c);
  for (std::size_t k = 0; k <= inputs.size(); ++k) {
    Tape<double> tape;
    std::vector<Var<double>> vars;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      vars.push_back(i == k ? tape.constant(inputs[i]) : tape.variable(inputs[i]));
    }
    const bool some_variable = k == inputs.size() || inputs.size() > 1;
    EXPECT_EQ(c.fn(vars).requires_grad(), some_variable) << c.name << ": input " << k << " constant";
  }
}

std::string test_name(const ::testing::TestParamInfo<OpCase>& info) {
  std::string s = info.param.name;  // "add/scalar" -> "add__scalar" (distinct from the op add_scalar)
  if (const auto slash = s.find('/'); slash != std::string::npos) s.replace(slash, 1, "__");
  return s;
}

INSTANTIATE_TEST_SUITE_P(Ops, OpGrad, ::testing::ValuesIn(optest::op_cases()), test_name);

TEST(OpTable, EveryBinaryOpHasAnAliasedRow) {
  std::set<std::string> aliased;
  for (const OpCase& c : optest::op_cases()) {
    if (aliasable(c)) aliased.insert(optest::op_name(c));
  }
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

}  // namespace
