// A parameter's full nested name (module.h: "layers.1.cell.W_hh") is the one the tape's leaf,
// the observer, anomaly and non-finite errors, clip reports and optimizers show, the same as
// the checkpoint key.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <set>
#include <string>

#include <tapegrad/nn/nn.h>
#include <tapegrad/tapegrad.h>

#include "support/test_support.h"

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
using ::testing::HasSubstr;
using M = tg::Matrix<double>;
using Stack = nn::Stacked<nn::RnnCell<double>>;

namespace {

using tapegrad::testing::expect_error;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Stack two_layers() {
  std::mt19937_64 rng(3);
  Stack::Options o;
  o.cell.input_size = 3;
  o.cell.hidden_size = 4;
  o.num_layers = 2;
  return Stack(o, rng);
}

// A model of two modules, named as a user model names its children.
struct Model : nn::Module<double> {
  Stack rnn = two_layers();
  nn::Linear<double> head = [] {
    std::mt19937_64 rng(4);
    return nn::Linear<double>({4, 2}, rng);
  }();
  void visit_parameters(const nn::ParameterVisitor<double>& v) override {
    v.child("rnn", rnn);
    v.child("head", head);
  }
};

// One step of the stack with weights w from a zero state: loss = sum of the top layer's h.
tg::Var<double> loss_of(Stack& stack, const Stack::Weights& w, tg::Tape<double>& tape, const M& x) {
  const nn::State<double> s = stack.step(w, tape.constant(x), stack.initial_state(tape, x.rows()));
  return tg::sum(stack.output(s));
}
tg::Var<double> loss_of(Stack& stack, tg::Tape<double>& tape, const M& x) {
  return loss_of(stack, stack.bind(tape), tape, x);
}

}  // namespace

TEST(ParameterNames, TapeLeavesCarryTheNestedName) {
  Stack stack = two_layers();
  tg::Tape<double> tape;
  const Stack::Weights w = stack.bind(tape);
  EXPECT_EQ(w[0].W_ih.name(), "layers.0.cell.W_ih");
  EXPECT_EQ(w[1].W_hh.name(), "layers.1.cell.W_hh");
  EXPECT_EQ(w[1].b.name(), "layers.1.cell.b");
  for (const auto& [name, p] : stack.named_parameters()) EXPECT_EQ(p->full_name(), name);
  EXPECT_EQ(stack.layer(1).W_hh.name, "W_hh");  // its own name is unchanged
}

TEST(ParameterNames, AnAnomalyNamesTheNestedParameter) {
  Stack stack = two_layers();
  stack.layer(1).W_hh.value(0, 0) = kNaN;
  tg::Tape<double> tape;
  tape.set_anomaly_mode(true);
  expect_error<tg::NumericError>([&] { (void)stack.bind(tape); }, {"anomaly", "leaf value", "'layers.1.cell.W_hh'"});
}

TEST(ParameterNames, AForwardAnomalyNamesTheParametersAmongItsInputs) {
  Stack stack = two_layers();
  stack.layer(0).W_ih.value(1, 2) = kNaN;
  tg::Tape<double> tape;
  const Stack::Weights w = stack.bind(tape);  // recorded before anomaly mode: the first op reading it fails
  tape.set_anomaly_mode(true);
  expect_error<tg::NumericError>([&] { (void)loss_of(stack, w, tape, M::Constant(2, 3, 0.5)); },
                                 {"anomaly", "forward value", "'layers.0.cell.W_ih'"});
}

TEST(ParameterNames, TheObserverSeesTheNestedName) {
  Stack stack = two_layers();
  tg::Tape<double> tape;
  const Stack::Weights w = stack.bind(tape);
  w[1].W_hh.register_hook([](M&) {});  // an entry of its own, named after its node
  const tg::Var<double> loss = loss_of(stack, w, tape, M::Constant(2, 3, 0.5));
  std::set<std::string> event_names, input_names;
  tape.set_observer([&](const tg::NodeEvent& e) {
    event_names.emplace(e.name);
    for (const tg::InputGradEvent& in : e.inputs) input_names.insert(tape.name_of(in.id));
  });
  loss.backward();
  EXPECT_TRUE(event_names.count("layers.1.cell.W_hh")) << ::testing::PrintToString(event_names);
  EXPECT_TRUE(input_names.count("layers.0.cell.W_ih")) << ::testing::PrintToString(input_names);
  EXPECT_TRUE(input_names.count("layers.1.cell.b")) << ::testing::PrintToString(input_names);
}

TEST(ParameterNames, ClipAndOptimizerErrorsUseTheNestedName) {
  Stack stack = two_layers();
  tg::Tape<double> tape;
  loss_of(stack, tape, M::Constant(2, 3, 0.5)).backward();
  stack.layer(1).W_hh.grad(0, 0) = kNaN;
  expect_error<tg::NumericError>([&] { nn::clip_grad_norm(stack.parameters(), 1.0); },
                                 {"clip_grad_norm", "'layers.1.cell.W_hh' (NaN)"});
  nn::Sgd<double> opt(stack.parameters());  // plain pointers: named by Parameter::full_name()
  expect_error<tg::NumericError>([&] { opt.step(); }, {"sgd", "'layers.1.cell.W_hh'"});
}

TEST(ParameterNames, AnEnclosingModuleLengthensTheNamesAndAChildListingKeepsThem) {
  Model model;
  EXPECT_EQ(model.rnn.layer(0).W_ih.full_name(), "layers.0.cell.W_ih");  // named by the stack when built
  const auto named = model.named_parameters();
  EXPECT_EQ(named.front().first, "rnn.layers.0.cell.W_ih");
  EXPECT_EQ(named.back().first, "head.b");
  for (const auto& [name, p] : named) EXPECT_EQ(p->full_name(), name);
  (void)model.rnn.named_parameters();  // the child on its own: names relative to it, but kept long
  EXPECT_EQ(model.rnn.layer(0).W_ih.full_name(), "rnn.layers.0.cell.W_ih");
  tg::Tape<double> tape;
  EXPECT_EQ(tape.leaf(model.head.W).name(), "head.W");
  EXPECT_EQ(model.rnn.bind(tape)[1].W_hh.name(), "rnn.layers.1.cell.W_hh");
}

TEST(ParameterNames, CopiesKeepTheNestedName) {
  const Stack stack = two_layers();
  Stack copy = stack;
  EXPECT_EQ(copy.layer(1).b.full_name(), "layers.1.cell.b");
  Stack moved = std::move(copy);
  EXPECT_EQ(moved.layer(1).b.full_name(), "layers.1.cell.b");
}
