// The bad-engine-use table: callbacks that break the engine's contract, lifetimes the tape does
// not own, and sizes that overflow. One row per misuse: the error type it must raise and the
// words its message must contain. For every row the test then checks that the model's parameters
// and gradients are bit-for-bit as before, and that the same tape, cleared, still gives the
// gradients of a closed form computed here with Eigen alone.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <typeinfo>
#include <vector>

#include <tapegrad/error.h>
#include <tapegrad/instrument.h>
#include <tapegrad/op.h>
#include <tapegrad/ops.h>
#include <tapegrad/tape.h>
#include "../support/test_names.h"

using M = tg::Matrix<double>;
using V = tg::Var<double>;

namespace {

constexpr tg::Index kHuge = tg::Index{1} << 62;

/// A tape and a one-layer model y = tanh(x W + b), with non-zero gradients from earlier steps.
struct Fixture {
  tg::Tape<double> tape;
  tg::Parameter<double> W{(M(2, 2) << 0.3, -0.2, 0.5, 0.1).finished(), "W"};
  tg::Parameter<double> b{(M(1, 2) << 0.05, -0.1).finished(), "b"};
  M x = (M(3, 2) << 1.0, -1.0, 0.5, 2.0, -0.5, 0.25).finished();

  Fixture() {
    W.grad = M::Constant(2, 2, 0.125);
    b.grad = M::Constant(1, 2, -0.5);
  }
  // The model's pre-activation on the tape; every row's misuse sits on this graph.
  V pre() { return tg::add(tg::matmul(tape.constant(x), tape.leaf(W)), tape.leaf(b)); }
  V loss_of(const V& h) { return tg::sum(tg::tanh(h)); }
};

struct Row {
  const char* name;
  std::function<void(Fixture&)> misuse;
  const std::type_info& type;
  std::vector<std::string> words;
};

void hook_on_pre(Fixture& f, std::function<void(Fixture&, M&)> hook) {
  const V h = f.pre();
  h.register_hook([&f, hook](M& g) { hook(f, g); });
  f.tape.backward(f.loss_of(h));
}

void observer_doing(Fixture& f, std::function<void(Fixture&)> act) {
  f.tape.set_observer([&f, act](const tg::NodeEvent&) { act(f); });
  f.tape.backward(f.loss_of(f.pre()));
}

V identity_op(const V& x, std::function<void(tg::Tape<double>&)> in_forward,
              std::function<void(tg::Tape<double>&)> in_backward) {
  return tg::apply<double>(
      {"user_op", x.shape()}, {x},
      [in_forward](tg::OpCtx<double>& c) {
        if (in_forward) in_forward(c.tape());
        c.y() = c.x(0);
      },
      [in_backward](tg::OpCtx<double>& c) {
        if (in_backward) in_backward(c.tape());
        c.gx(0) += c.gy();
      });
}

const std::vector<Row>& rows() {
  static const std::vector<Row> table = {
      // ---- callbacks ------------------------------------------------------------------------
      {"hook_resizes_gradient",
       [](Fixture& f) { hook_on_pre(f, [](Fixture&, M& g) { g.resize(3, 3); }); },
       typeid(tg::ShapeError),
       {"hook on node", "[3 x 3]", "[3 x 2]", "not its shape"}},
      {"hook_replaces_gradient_anomaly",
       [](Fixture& f) {
         f.tape.set_anomaly_mode(true);
         hook_on_pre(f, [](Fixture&, M& g) { g = M::Zero(2, 3); });
       },
       typeid(tg::ShapeError),
       {"hook on node", "[2 x 3]", "[3 x 2]"}},
      {"hook_empties_gradient",
       [](Fixture& f) { hook_on_pre(f, [](Fixture&, M& g) { g = M(); }); },
       typeid(tg::ShapeError),
       {"[0 x 0]", "[3 x 2]"}},
      {"hook_clears_tape",
       [](Fixture& f) { hook_on_pre(f, [](Fixture& f2, M&) { f2.tape.clear(); }); },
       typeid(tg::TapeError),
       {"clear", "refused during backward"}},
      {"hook_rewinds_tape",
       [](Fixture& f) { hook_on_pre(f, [](Fixture& f2, M&) { f2.tape.rewind(tg::Mark{}); }); },
       typeid(tg::TapeError),
       {"rewind", "refused during backward"}},
      {"hook_records_op",
       [](Fixture& f) { hook_on_pre(f, [](Fixture& f2, M& g) { (void)tg::tanh(f2.tape.constant(g)); }); },
       typeid(tg::TapeError),
       {"constant", "refused during backward"}},
      {"hook_records_parameter",
       [](Fixture& f) { hook_on_pre(f, [](Fixture& f2, M&) { (void)f2.tape.leaf(f2.W); }); },
       typeid(tg::TapeError),
       {"leaf", "refused during backward"}},
      {"hook_calls_backward",
       [](Fixture& f) {
         const V h = f.pre();
         h.register_hook([&f, h](M& g) { f.tape.backward(h, M(g)); });
         f.tape.backward(f.loss_of(h));
       },
       typeid(tg::TapeError),
       {"backward: refused during backward"}},
      {"hook_registers_hook",
       [](Fixture& f) {
         const V h = f.pre();
         h.register_hook([h](M&) { h.register_hook([](M&) {}); });
         f.tape.backward(f.loss_of(h));
       },
       typeid(tg::TapeError),
       {"register_hook", "refused during backward"}},
      {"observer_removes_itself",
       [](Fixture& f) { observer_doing(f, [](Fixture& f2) { f2.tape.set_observer({}); }); },
       typeid(tg::TapeError),
       {"set_observer", "refused during backward"}},
      {"observer_clears_tape",
       [](Fixture& f) { observer_doing(f, [](Fixture& f2) { f2.tape.clear(); }); },
       typeid(tg::TapeError),
       {"clear", "refused during backward"}},
      {"observer_records_op",
       [](Fixture& f) { observer_doing(f, [](Fixture& f2) { (void)f2.pre(); }); },
       typeid(tg::TapeError),
       {"refused during backward"}},
      {"observer_calls_backward",
       [](Fixture& f) {
         const V loss = f.loss_of(f.pre());
         f.tape.set_observer([&f, loss](const tg::NodeEvent&) { f.tape.backward(loss); });
         f.tape.backward(loss);
       },
       typeid(tg::TapeError),
       {"backward: refused during backward"}},
      {"op_backward_clears_tape",
       [](Fixture& f) { f.tape.backward(f.loss_of(identity_op(f.pre(), {}, [](tg::Tape<double>& t) { t.clear(); }))); },
       typeid(tg::TapeError),
       {"clear", "refused during backward"}},
      {"op_forward_records_on_its_tape",
       [](Fixture& f) {
         const V h = f.pre();
         (void)identity_op(h, [h](tg::Tape<double>&) { (void)tg::tanh(h); }, {});
       },
       typeid(tg::TapeError),
       {"tanh", "refused inside the forward of op 'user_op'"}},
      {"op_forward_clears_its_tape",
       [](Fixture& f) { (void)identity_op(f.pre(), [](tg::Tape<double>& t) { t.clear(); }, {}); },
       typeid(tg::TapeError),
       {"clear", "refused inside the forward of op 'user_op'"}},
      // ---- lifetimes -------------------------------------------------------------------------
      {"parameter_moved_by_vector_growth",
       [](Fixture& f) {
         std::vector<tg::Parameter<double>> layers;
         layers.emplace_back(M::Ones(3, 2), "layer0");
         const V loss = tg::add(f.loss_of(f.pre()), tg::sum(f.tape.leaf(layers[0])));
         const std::size_t capacity = layers.capacity();
         while (layers.size() <= capacity) layers.emplace_back(M::Ones(1, 1), "more");
         f.tape.backward(loss);
       },
       typeid(tg::TapeError),
       {"parameter 'layer0'", "moved", "reserve"}},
      {"parameter_destroyed",
       [](Fixture& f) {
         auto p = std::make_unique<tg::Parameter<double>>(M::Ones(3, 2), "temporary");
         const V loss = tg::add(f.loss_of(f.pre()), tg::sum(tg::mul(f.tape.leaf(*p), f.tape.constant(f.x))));
         p.reset();
         f.tape.backward(loss);
       },
       typeid(tg::TapeError),
       {"parameter 'temporary'", "destroyed"}},
      {"parameter_resized_before_backward",
       [](Fixture& f) {
         tg::Parameter<double> p(M::Ones(1, 2), "growing");
         const V loss = tg::add(f.loss_of(f.pre()), tg::sum(f.tape.leaf(p)));
         p.value = M::Ones(4, 2);
         f.tape.backward(loss);
       },
       typeid(tg::ShapeError),
       {"parameter 'growing'", "[4 x 2]", "[1 x 2]"}},
      {"parameter_resized_then_recorded_again",
       [](Fixture& f) {
         tg::Parameter<double> p(M::Ones(1, 2), "growing");
         (void)f.tape.leaf(p);
         p.value = M::Ones(2, 5);
         (void)f.tape.leaf(p);
       },
       typeid(tg::ShapeError),
       {"leaf: parameter 'growing'", "[2 x 5]", "[1 x 2]"}},
      {"var_outlives_tape",
       [](Fixture&) {
         V v;
         {
           tg::Tape<double> scratch;
           v = scratch.variable(M::Ones(2, 2));
         }
         (void)v.value();
       },
       typeid(tg::TapeError),
       {"Var::value", "outlived its tape"}},
      {"var_outlives_tape_used_by_op",
       [](Fixture& f) {
         V v;
         {
           tg::Tape<double> scratch;
           v = scratch.variable(M::Ones(3, 2));
         }
         (void)tg::add(f.pre(), v);
       },
       typeid(tg::TapeError),
       {"outlived its tape"}},
      {"time_scope_closed_out_of_order",
       [](Fixture& f) {
         auto outer = std::make_unique<tg::Tape<double>::TimeScope>(f.tape, 1);
         auto inner = f.tape.time_step(2);
         outer.reset();
         (void)f.pre();
       },
       typeid(tg::TapeError),
       {"time_step(1)", "reverse order", "refused"}},
      // ---- sizes -----------------------------------------------------------------------------
      {"concat_cols_width_overflows",
       [](Fixture& f) {
         const V a = f.tape.constant(M(0, kHuge));
         (void)tg::concat_cols<double>({a, a});
       },
       typeid(tg::ShapeError),
       {"concat_cols", "overflows"}},
      {"concat_rows_height_overflows",
       [](Fixture& f) {
         const V a = f.tape.variable(M(kHuge, 0));
         (void)tg::concat_rows<double>({a, a, a});
       },
       typeid(tg::ShapeError),
       {"concat_rows", "overflows"}},
      {"matmul_output_elements_overflow",
       [](Fixture& f) {
         const V a = f.tape.variable(M(tg::Index{1} << 40, 0));
         const V c = f.tape.variable(M(0, tg::Index{1} << 40));
         (void)tg::matmul(a, c);
       },
       typeid(tg::ShapeError),
       {"matmul", "[1099511627776 x 1099511627776]", "more elements"}},
      {"matmul_output_bytes_overflow",
       [](Fixture& f) {
         const V a = f.tape.variable(M(tg::Index{1} << 31, 0));
         const V c = f.tape.variable(M(0, tg::Index{1} << 31));
         (void)tg::matmul(a, c);  // 2^62 elements fit an index, their 2^65 bytes do not
       },
       typeid(tg::ShapeError),
       {"matmul", "more elements"}},
  };
  return table;
}

class BadEngineUse : public ::testing::TestWithParam<Row> {};

TEST_P(BadEngineUse, TypedErrorNamingTheProblemAndNothingChanged) {
  const Row& row = GetParam();
  Fixture f;
  const M w_value = f.W.value, w_grad = f.W.grad, b_value = f.b.value, b_grad = f.b.grad;
  try {
    row.misuse(f);
    ADD_FAILURE() << "no exception";
  } catch (const tg::Error& e) {
    EXPECT_EQ(typeid(e), row.type) << "got " << typeid(e).name() << ": " << e.what();
    const std::string msg = e.what();
    for (const std::string& w : row.words) EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in: " << msg;
  }
  EXPECT_EQ(f.W.value, w_value);
  EXPECT_EQ(f.W.grad, w_grad);
  EXPECT_EQ(f.b.value, b_value);
  EXPECT_EQ(f.b.grad, b_grad);

  // The same tape still works: loss = sum(tanh(x W + b)) gives, by the closed form,
  // dZ = 1 - tanh(Z)^2, dW = x^T dZ, db = the column sums of dZ.
  f.tape.set_observer({});
  f.tape.set_anomaly_mode(false);
  f.tape.clear();
  f.tape.backward(f.loss_of(f.pre()));
  const M z = (f.x * w_value).rowwise() + b_value.row(0);
  const M dz = (1.0 - z.array().tanh().square()).matrix();
  EXPECT_TRUE(f.W.grad.isApprox(w_grad + f.x.transpose() * dz, 1e-14));
  EXPECT_TRUE(f.b.grad.isApprox(b_grad + dz.colwise().sum(), 1e-14));
}

INSTANTIATE_TEST_SUITE_P(Rows, BadEngineUse, ::testing::ValuesIn(rows()),
                         [](const ::testing::TestParamInfo<Row>& row) { return std::string(row.param.name); });

}  // namespace
