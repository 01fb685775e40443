// Each optimizer's first two steps against the update rule worked out by hand, element by
// element, for a small parameter with fixed gradients; hyperparameter checks; schedules.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <tapegrad/nn/lr_schedule.h>
#include <tapegrad/nn/optim.h>

#include "support/test_support.h"

using namespace tapegrad;
using namespace tapegrad::nn;
using M = Matrix<double>;

namespace {

using tapegrad::testing::expect_error;

M row(std::initializer_list<double> v) {
  M m(1, static_cast<Index>(v.size()));
  Index i = 0;
  for (double x : v) m(0, i++) = x;
  return m;
}

const M kP0 = row({1.0, -2.0, 0.5});
const M kG1 = row({0.5, -0.25, 0.0});
const M kG2 = row({-0.1, 0.05, 2.0});

// Runs two steps of an optimizer made by `make` on a copy of kP0 with gradients kG1 then kG2;
// returns the parameter after each step.
template <class S, class Make>
std::pair<M, M> two_steps(Make make) {
  Parameter<S> p(kP0.cast<S>(), "w");
  auto opt = make(std::vector<Parameter<S>*>{&p});
  p.grad = kG1.cast<S>();
  opt.step();
  M after1 = p.value.template cast<double>();
  p.grad = kG2.cast<S>();
  opt.step();
  EXPECT_EQ(opt.step_count(), 2);
  return {after1, p.value.template cast<double>()};
}

// The reference: a scalar update rule applied per element, carrying its own state.
using Rule = std::function<double(double p, double g, int t, std::vector<double>& state)>;
std::pair<M, M> reference(const Rule& rule) {
  M p = kP0;
  std::pair<M, M> out;
  for (Index j = 0; j < p.cols(); ++j) {
    std::vector<double> state(4, 0.0);
    const double p1 = rule(p(0, j), kG1(0, j), 1, state);
    const double p2 = rule(p1, kG2(0, j), 2, state);
    if (j == 0) out = {p, p};
    out.first(0, j) = p1;
    out.second(0, j) = p2;
  }
  return out;
}

void expect_close(const std::pair<M, M>& got, const std::pair<M, M>& want, double tol) {
  for (Index j = 0; j < want.first.cols(); ++j) {
    EXPECT_NEAR(got.first(0, j), want.first(0, j), tol) << "step 1, element " << j;
    EXPECT_NEAR(got.second(0, j), want.second(0, j), tol) << "step 2, element " << j;
  }
}

}  // namespace

TEST(Sgd, PlainIsGradientStep) {
  auto got = two_steps<double>([](auto ps) { return Sgd<double>(ps, {.lr = 0.1}); });
  expect_close(got, reference([](double p, double g, int, auto&) { return p - 0.1 * g; }), 1e-15);
}

TEST(Sgd, MomentumDampeningWeightDecay) {
  const double lr = 0.1, mu = 0.9, damp = 0.1, wd = 0.01;
  auto got = two_steps<double>(
      [&](auto ps) { return Sgd<double>(ps, {.lr = lr, .momentum = mu, .dampening = damp, .weight_decay = wd}); });
  auto want = reference([&](double p, double g, int t, std::vector<double>& s) {
    const double gd = g + wd * p;
    s[0] = t == 1 ? gd : mu * s[0] + (1 - damp) * gd;  // first buffer is the undamped gradient
    return p - lr * s[0];
  });
  expect_close(got, want, 1e-15);
}

TEST(Sgd, Nesterov) {
  const double lr = 0.05, mu = 0.8;
  auto got = two_steps<double>([&](auto ps) { return Sgd<double>(ps, {.lr = lr, .momentum = mu, .nesterov = true}); });
  auto want = reference([&](double p, double g, int t, std::vector<double>& s) {
    s[0] = t == 1 ? g : mu * s[0] + g;
    return p - lr * (g + mu * s[0]);
  });
  expect_close(got, want, 1e-15);
}

TEST(Sgd, FloatMatchesDouble) {
  const double lr = 0.1, mu = 0.9;
  auto got = two_steps<float>([&](auto ps) { return Sgd<float>(ps, {.lr = lr, .momentum = mu}); });
  auto want = reference([&](double p, double g, int t, std::vector<double>& s) {
    s[0] = t == 1 ? g : mu * s[0] + g;
    return p - lr * s[0];
  });
  expect_close(got, want, 1e-6);
}

// Adam written out: m, v, bias corrections, eps outside the square root.
Rule adam_rule(double lr, double b1, double b2, double eps, double wd, bool decoupled, bool amsgrad) {
  return [=](double p, double g, int t, std::vector<double>& s) {
    if (decoupled) {
      p *= 1 - lr * wd;
    } else {
      g += wd * p;
    }
    s[0] = b1 * s[0] + (1 - b1) * g;
    s[1] = b2 * s[1] + (1 - b2) * g * g;
    s[2] = std::max(s[2], s[1]);
    const double v = amsgrad ? s[2] : s[1];
    const double mhat = s[0] / (1 - std::pow(b1, t));
    const double vhat = v / (1 - std::pow(b2, t));
    return p - lr * mhat / (std::sqrt(vhat) + eps);
  };
}

TEST(Adam, FirstTwoSteps) {
  auto got = two_steps<double>([](auto ps) { return Adam<double>(ps, {.lr = 0.1}); });
  expect_close(got, reference(adam_rule(0.1, 0.9, 0.999, 1e-8, 0, false, false)), 1e-14);
  // With a constant sign the first step moves each element by lr (|mhat| / sqrt(vhat) = 1).
  EXPECT_NEAR(got.first(0, 0), 1.0 - 0.1, 1e-7);
  EXPECT_NEAR(got.first(0, 1), -2.0 + 0.1, 1e-7);
  EXPECT_EQ(got.first(0, 2), 0.5);  // zero gradient: no move
}

TEST(Adam, L2WeightDecayAndLargeEps) {
  auto got = two_steps<double>([](auto ps) {
    return Adam<double>(ps, {.lr = 0.01, .beta1 = 0.8, .beta2 = 0.9, .eps = 0.1, .weight_decay = 0.5});
  });
  expect_close(got, reference(adam_rule(0.01, 0.8, 0.9, 0.1, 0.5, false, false)), 1e-15);
}

TEST(Adam, Amsgrad) {
  // beta2 = 0.5 and a second gradient much smaller than the first make v shrink, so the max matters.
  auto got = two_steps<double>([](auto ps) { return Adam<double>(ps, {.lr = 0.1, .beta2 = 0.5, .amsgrad = true}); });
  auto want = reference(adam_rule(0.1, 0.9, 0.5, 1e-8, 0, false, true));
  expect_close(got, want, 1e-14);
  auto plain = reference(adam_rule(0.1, 0.9, 0.5, 1e-8, 0, false, false));
  EXPECT_GT(std::abs(want.second(0, 0) - plain.second(0, 0)), 1e-3);  // the case really differs
}

TEST(AdamW, DecoupledWeightDecay) {
  auto got = two_steps<double>([](auto ps) { return AdamW<double>(ps, {.lr = 0.1, .weight_decay = 0.2}); });
  expect_close(got, reference(adam_rule(0.1, 0.9, 0.999, 1e-8, 0.2, true, false)), 1e-14);
  // The zero-gradient element only decays: 0.5 (1 - lr wd).
  EXPECT_NEAR(got.first(0, 2), 0.5 * (1 - 0.1 * 0.2), 1e-15);
  EXPECT_EQ(AdamW<double>::default_options().weight_decay, 0.01);
}

TEST(AdamW, FloatMatchesDouble) {
  auto got = two_steps<float>([](auto ps) { return AdamW<float>(ps, {.lr = 0.1, .weight_decay = 0.2}); });
  expect_close(got, reference(adam_rule(0.1, 0.9, 0.999, 1e-8, 0.2, true, false)), 1e-6);
}

TEST(Rmsprop, Plain) {
  const double lr = 0.01, a = 0.9, eps = 1e-8;
  auto got = two_steps<double>([&](auto ps) { return Rmsprop<double>(ps, {.lr = lr, .alpha = a}); });
  auto want = reference([&](double p, double g, int, std::vector<double>& s) {
    s[0] = a * s[0] + (1 - a) * g * g;
    return p - lr * g / (std::sqrt(s[0]) + eps);
  });
  expect_close(got, want, 1e-14);
}

TEST(Rmsprop, CenteredMomentumWeightDecay) {
  const double lr = 0.01, a = 0.9, eps = 1e-3, mu = 0.5, wd = 0.1;
  auto got = two_steps<double>([&](auto ps) {
    return Rmsprop<double>(ps,
                           {.lr = lr, .alpha = a, .eps = eps, .weight_decay = wd, .momentum = mu, .centered = true});
  });
  auto want = reference([&](double p, double g, int, std::vector<double>& s) {
    g += wd * p;
    s[0] = a * s[0] + (1 - a) * g * g;  // square average
    s[1] = a * s[1] + (1 - a) * g;      // gradient average
    const double den = std::sqrt(s[0] - s[1] * s[1]) + eps;
    s[2] = mu * s[2] + g / den;  // momentum buffer
    return p - lr * s[2];
  });
  expect_close(got, want, 1e-14);
}

TEST(Adagrad, LrDecayInitialAccumulatorWeightDecay) {
  const double lr = 0.1, decay = 0.5, init = 0.1, wd = 0.05, eps = 1e-10;
  auto got = two_steps<double>([&](auto ps) {
    return Adagrad<double>(ps, {.lr = lr, .lr_decay = decay, .weight_decay = wd, .initial_accumulator_value = init});
  });
  auto want = reference([&](double p, double g, int t, std::vector<double>& s) {
    if (t == 1) s[0] = init;
    g += wd * p;
    s[0] += g * g;
    return p - lr / (1 + (t - 1) * decay) * g / (std::sqrt(s[0]) + eps);
  });
  expect_close(got, want, 1e-14);
}

TEST(Optimizer, StateTensorsAreNamedByKindSlotAndParameterName) {
  Parameter<double> a(M::Zero(2, 2), "a"), b(M::Zero(1, 3), "b");
  Adam<double> adam({&a, &b}, {.amsgrad = true});
  std::vector<std::string> names;
  for (auto& [name, m] : adam.state_tensors()) {
    names.push_back(name);
    ASSERT_NE(m, nullptr);
  }
  EXPECT_EQ(names,
            (std::vector<std::string>{"adam.m.a", "adam.m.b", "adam.v.a", "adam.v.b", "adam.v_max.a", "adam.v_max.b"}));
  EXPECT_EQ(adam.state_tensors()[1].second->cols(), 3);
  EXPECT_TRUE(Sgd<double>({&a}).state_tensors().empty());  // no momentum, no state
  EXPECT_EQ(Sgd<double>({&a}, {.momentum = 0.9}).state_tensors()[0].first, "sgd.momentum.a");
  EXPECT_EQ(Rmsprop<double>({&a}, {.momentum = 0.9, .centered = true}).state_tensors().size(), 3u);
  EXPECT_NEAR(Adagrad<double>({&a}, {.initial_accumulator_value = 0.3}).state_tensors()[0].second->sum(), 1.2, 1e-15);
}

TEST(Optimizer, FullNamesComeFromNamedParametersOrTheModel) {
  // Two parameters with the same short name, as two layers of a stacked cell have.
  Parameter<double> w0(M::Zero(1, 1), "W"), w1(M::Zero(1, 1), "W");
  const std::vector<std::pair<std::string, Parameter<double>*>> layers = {{"layers.0.W", &w0}, {"layers.1.W", &w1}};
  Sgd<double> named(layers, {.momentum = 0.5});
  EXPECT_EQ(named.parameter_names(), (std::vector<std::string>{"layers.0.W", "layers.1.W"}));
  EXPECT_EQ(named.state_tensors()[1].first, "sgd.momentum.layers.1.W");
  // Built from plain pointers: the model's names (looked up by address) win, in any order.
  Sgd<double> plain({&w1, &w0}, {.momentum = 0.5});
  const auto by_model = plain.state_tensors(layers);
  EXPECT_EQ(by_model[0].first, "sgd.momentum.layers.1.W");
  EXPECT_EQ(by_model[0].second, plain.state_tensors({{"x", &w0}, {"y", &w1}})[0].second);
  // Without the model's names the short names collide, and an unnamed parameter has no key.
  expect_error<ValueError>([&] { (void)plain.state_tensors(); }, {"sgd", "#0", "#1", "'W'", "named_parameters"});
  Parameter<double> anon(M::Zero(1, 1));
  Sgd<double> unnamed({&w0, &anon}, {.momentum = 0.5});
  expect_error<ValueError>([&] { (void)unnamed.state_tensors(); }, {"sgd", "#1", "no name"});
}

TEST(Optimizer, ZeroGradLearningRateAndBadParameterLists) {
  Parameter<double> a(M::Ones(1, 2), "alpha");
  a.grad = M::Ones(1, 2);
  Sgd<double> sgd({&a}, {.lr = 0.5});
  sgd.zero_grad();
  EXPECT_EQ(a.grad.norm(), 0.0);
  sgd.set_learning_rate(0.25);
  EXPECT_EQ(sgd.learning_rate(), 0.25);
  expect_error<ValueError>([&] { sgd.set_learning_rate(-1); }, {"sgd", "learning rate"});
  expect_error<ValueError>([&] { sgd.set_learning_rate(std::nan("")); }, {"learning rate"});
  expect_error<ValueError>([&] { Sgd<double>({&a, &a}); }, {"'alpha'", "twice"});
  expect_error<ValueError>([&] { Adam<double>({&a, nullptr}); }, {"adam", "#1", "null"});
}

TEST(Optimizer, HyperparameterValidation) {
  Parameter<double> a(M::Ones(1, 2), "a");
  std::vector<Parameter<double>*> ps = {&a};
  expect_error<ValueError>([&] { Sgd<double>(ps, {.lr = -0.1}); }, {"sgd", "-0.1"});
  expect_error<ValueError>([&] { Sgd<double>(ps, {.momentum = -1}); }, {"momentum"});
  expect_error<ValueError>([&] { Sgd<double>(ps, {.nesterov = true}); }, {"nesterov"});
  expect_error<ValueError>([&] { Sgd<double>(ps, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}); },
                           {"dampening"});
  expect_error<ValueError>([&] { Adam<double>(ps, {.beta1 = 1.0}); }, {"adam", "beta1", "[0, 1)"});
  expect_error<ValueError>([&] { Adam<double>(ps, {.beta2 = -0.5}); }, {"beta2"});
  expect_error<ValueError>([&] { AdamW<double>(ps, {.eps = -1e-8}); }, {"adamw", "eps"});
  expect_error<ValueError>([&] { Adam<double>(ps, {.weight_decay = -0.1}); }, {"weight_decay"});
  expect_error<ValueError>([&] { Rmsprop<double>(ps, {.alpha = 1.5}); }, {"rmsprop", "alpha"});
  expect_error<ValueError>([&] { Rmsprop<double>(ps, {.momentum = -0.5}); }, {"momentum"});
  expect_error<ValueError>([&] { Adagrad<double>(ps, {.lr_decay = -1}); }, {"adagrad", "lr_decay"});
  expect_error<ValueError>([&] { Adagrad<double>(ps, {.initial_accumulator_value = -1}); },
                           {"initial_accumulator_value"});
}

TEST(Optimizer, GradientShapeMismatchChangesNothing) {
  Parameter<double> a(M::Ones(1, 2), "a"), b(M::Ones(2, 2), "b");
  Sgd<double> sgd({&a, &b}, {.lr = 1});
  a.grad = M::Ones(1, 2);
  b.grad = M::Ones(3, 1);
  expect_error<ShapeError>([&] { sgd.step(); }, {"'b'", "[2 x 2]", "[3 x 1]"});
  EXPECT_EQ(a.value, M::Ones(1, 2));  // a was checked, not updated
  EXPECT_EQ(sgd.step_count(), 0);
}

TEST(LrSchedule, StepLr) {
  StepLr s(0.1, 3, 0.5);
  const double want[] = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025};
  for (int e = 0; e < 7; ++e) EXPECT_NEAR(s.lr_at(e), want[e], 1e-17) << "epoch " << e;
  Parameter<double> a(M::Ones(1, 1));
  Sgd<double> sgd({&a});
  s.apply(sgd, 4);
  EXPECT_NEAR(sgd.learning_rate(), 0.05, 1e-17);
}

TEST(LrSchedule, CosineLr) {
  CosineLr s(1.0, 6, 0.1);
  EXPECT_NEAR(s.lr_at(0), 1.0, 1e-15);
  EXPECT_NEAR(s.lr_at(2), 0.1 + 0.9 * 0.75, 1e-15);  // cos(pi/3) = 1/2
  EXPECT_NEAR(s.lr_at(3), 0.55, 1e-15);              // halfway
  EXPECT_NEAR(s.lr_at(4), 0.1 + 0.9 * 0.25, 1e-15);  // cos(2pi/3) = -1/2
  EXPECT_NEAR(s.lr_at(6), 0.1, 1e-15);
  EXPECT_NEAR(s.lr_at(100), 0.1, 1e-15);  // stays at eta_min
  Parameter<float> a(Matrix<float>::Ones(1, 1));
  Adam<float> adam({&a});
  s.apply(adam, 3);
  EXPECT_NEAR(adam.learning_rate(), 0.55, 1e-15);
}

TEST(LrSchedule, LinearWarmupThenSchedule) {
  StepLr s(0.1, 2, 0.5, Warmup{.steps = 4, .start_factor = 0.25});
  EXPECT_NEAR(s.lr_at(0), 0.025, 1e-17);
  EXPECT_NEAR(s.lr_at(1), 0.1 * (0.25 + 0.75 / 4), 1e-17);
  EXPECT_NEAR(s.lr_at(2), 0.1 * (0.25 + 0.75 / 2), 1e-17);
  EXPECT_NEAR(s.lr_at(4), 0.1, 1e-17);  // the step schedule's epoch 0
  EXPECT_NEAR(s.lr_at(5), 0.1, 1e-17);
  EXPECT_NEAR(s.lr_at(6), 0.05, 1e-17);
  CosineLr c(2.0, 4, 0.0, Warmup{.steps = 2});
  EXPECT_EQ(c.lr_at(0), 0.0);
  EXPECT_NEAR(c.lr_at(1), 1.0, 1e-15);
  EXPECT_NEAR(c.lr_at(2), 2.0, 1e-15);
  EXPECT_NEAR(c.lr_at(4), 1.0, 1e-15);
}

TEST(LrSchedule, Validation) {
  expect_error<ValueError>([] { StepLr(0.1, 0); }, {"StepLr", "step_size"});
  expect_error<ValueError>([] { StepLr(-0.1, 2); }, {"StepLr", "base_lr"});
  expect_error<ValueError>([] { StepLr(0.1, 2, -0.5); }, {"gamma"});
  expect_error<ValueError>([] { CosineLr(0.1, 0); }, {"CosineLr", "t_max"});
  expect_error<ValueError>([] { CosineLr(0.1, 5, -1); }, {"eta_min"});
  expect_error<ValueError>([] { CosineLr(0.1, 5, 0, Warmup{.steps = 2, .start_factor = 2}); }, {"start_factor"});
  expect_error<ValueError>([] { (void)StepLr(0.1, 2).lr_at(-1); }, {"epoch -1"});
}
