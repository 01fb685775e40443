// A new op defined outside the library, checked with gradcheck, then used in a recurrent cell
// that trains. See docs/extending.md for the walk-through.
//
//   custom_op [--steps N] [--seed S]
#include <cstdlib>
#include <iostream>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <tapegrad/gradcheck.h>
#include <tapegrad/tapegrad.h>

namespace tg = tapegrad;

// ---- the new op: forward and backward side by side ---------------------------------------
// softsign(x) = x / (1 + |x|);   d/dx = 1 / (1 + |x|)^2
template <class S>
tg::Var<S> softsign(const tg::Var<S>& x) {
  return tg::apply<S>(
      {"softsign", x.shape()}, {x},
      [](tg::OpCtx<S>& c) { c.y().array() = c.x(0).array() / (S(1) + c.x(0).array().abs()); },
      [](tg::OpCtx<S>& c) {
        if (c.needs_grad(0)) c.gx(0).array() += c.gy().array() / (S(1) + c.x(0).array().abs()).square();
      });
}

// A two-input op: a gated blend y = g * a + (1 - g) * b, elementwise.
//   dy/da = g,  dy/db = 1 - g,  dy/dg = a - b
template <class S>
tg::Var<S> blend(const tg::Var<S>& g, const tg::Var<S>& a, const tg::Var<S>& b) {
  TAPEGRAD_CHECK(g.shape() == a.shape() && a.shape() == b.shape(), tg::ShapeError,
                 "blend: g is {}, a is {}, b is {}; all three must have one shape", g.shape(), a.shape(), b.shape());
  return tg::apply<S>(
      {"blend", a.shape()}, {g, a, b},
      [](tg::OpCtx<S>& c) {
        c.y().array() = c.x(0).array() * c.x(1).array() + (S(1) - c.x(0).array()) * c.x(2).array();
      },
      [](tg::OpCtx<S>& c) {
        const auto gy = c.gy().array();
        if (c.needs_grad(0)) c.gx(0).array() += gy * (c.x(1).array() - c.x(2).array());
        if (c.needs_grad(1)) c.gx(1).array() += gy * c.x(0).array();
        if (c.needs_grad(2)) c.gx(2).array() += gy * (S(1) - c.x(0).array());
      });
}

namespace {

int parse_int(const std::string& flag, const char* text, int lo, int hi) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < lo || v > hi) {
    std::cerr << "custom_op: " << flag << " must be an integer in [" << lo << ", " << hi << "], got '" << text << "'\n";
    std::exit(2);
  }
  return static_cast<int>(v);
}

// Step 1: the op's gradient against central finite differences, in double precision.
bool check_ops() {
  using M = tg::Matrix<double>;
  M x = M::Random(3, 4);
  auto softsign_check = tg::gradcheck([](std::span<const tg::Var<double>> in) { return softsign(in[0]); }, {x});
  std::cout << "gradcheck softsign: " << (softsign_check.ok ? "PASS" : "FAIL") << "\n"
            << softsign_check.message() << "\n";
  M g = (M::Random(2, 3).array() * 0.5 + 0.5).matrix();
  auto blend_check = tg::gradcheck([](std::span<const tg::Var<double>> in) { return blend(in[0], in[1], in[2]); },
                                   {g, M::Random(2, 3), M::Random(2, 3)});
  std::cout << "gradcheck blend: " << (blend_check.ok ? "PASS" : "FAIL") << "\n" << blend_check.message() << "\n";
  return softsign_check.ok && blend_check.ok;
}

// Step 2: a recurrent cell built from the new ops, trained to output its input delayed by
// two steps: h_t = blend(sigmoid(x_t Ug + h Wg), softsign(x_t U + h W + b), h), y_t = h_t V.
struct DelayTask {
  static constexpr int kHidden = 16;
  static constexpr int kSteps = 12;
  static constexpr int kBatch = 16;
  tg::Parameter<float> U, W, b, Ug, Wg, V;

  explicit DelayTask(std::mt19937_64& rng) {
    std::normal_distribution<float> n(0.0f, 1.0f);
    auto init = [&](int r, int c, float scale, const char* name) {
      tg::Matrix<float> m(r, c);
      for (tg::Index i = 0; i < m.size(); ++i) m.data()[i] = scale * n(rng);
      return tg::Parameter<float>(m, name);
    };
    U = init(1, kHidden, 1.0f, "U");
    W = init(kHidden, kHidden, 0.3f, "W");
    b = tg::Parameter<float>(tg::Matrix<float>::Zero(1, kHidden), "b");
    Ug = init(1, kHidden, 1.0f, "Ug");
    Wg = init(kHidden, kHidden, 0.3f, "Wg");
    V = init(kHidden, 1, 0.3f, "V");
  }
  std::vector<tg::Parameter<float>*> parameters() { return {&U, &W, &b, &Ug, &Wg, &V}; }

  // One sequence batch: loss = mean over steps t >= 2 of (y_t - x_{t-2})^2.
  tg::Var<float> loss(tg::Tape<float>& tape, const tg::Matrix<float>& xs) {
    auto h = tape.constant(tg::Matrix<float>::Zero(kBatch, kHidden));
    tg::Var<float> total;
    for (int t = 0; t < kSteps; ++t) {
      auto step = tape.time_step(t);
      auto x = tape.constant(xs.col(t));
      auto gate = tg::sigmoid(tg::matmul(x, tape.leaf(Ug)) + tg::matmul(h, tape.leaf(Wg)));
      auto candidate = softsign(tg::matmul(x, tape.leaf(U)) + tg::matmul(h, tape.leaf(W)) + tape.leaf(b));
      h = blend(gate, candidate, h);
      if (t < 2) continue;
      auto err = tg::mse_loss(tg::matmul(h, tape.leaf(V)), tape.constant(xs.col(t - 2)));
      total = total.valid() ? total + err : err;
    }
    return total / static_cast<float>(kSteps - 2);
  }
};

}  // namespace

int main(int argc, char** argv) {
  int steps = 400;
  int seed = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << "custom_op: defines softsign and blend outside the library, checks them with gradcheck,\n"
                   "then trains a recurrent cell built from them to repeat its input two steps later.\n"
                   "  --steps N   training steps (default 400)\n  --seed S    random seed (default 1)\n";
      return 0;
    }
    if ((a == "--steps" || a == "--seed") && i + 1 < argc) {
      (a == "--steps" ? steps : seed) = parse_int(a, argv[++i], a == "--steps" ? 1 : 0, 1000000);
    } else {
      std::cerr << "custom_op: unknown option '" << a << "' (see --help)\n";
      return 2;
    }
  }
  if (!check_ops()) return 1;

  std::mt19937_64 rng(static_cast<std::uint64_t>(seed));
  DelayTask task(rng);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  tg::Tape<float> tape;
  const float lr = 0.05f;
  // Adam by hand (the example needs nothing but autodiff): m, v per parameter.
  std::vector<tg::Matrix<float>> m, v;
  for (auto* p : task.parameters()) {
    m.push_back(tg::Matrix<float>::Zero(p->value.rows(), p->value.cols()));
    v.push_back(m.back());
  }
  float first = 0, last = 0;
  for (int step = 1; step <= steps; ++step) {
    tg::Matrix<float> xs(DelayTask::kBatch, DelayTask::kSteps);
    for (tg::Index i = 0; i < xs.size(); ++i) xs.data()[i] = u(rng);
    tape.clear();
    for (auto* p : task.parameters()) p->zero_grad();
    auto loss = task.loss(tape, xs);
    tape.backward(loss);
    const auto params = task.parameters();
    for (std::size_t k = 0; k < params.size(); ++k) {
      auto& g = params[k]->grad;
      m[k] = 0.9f * m[k] + 0.1f * g;
      v[k] = 0.999f * v[k] + 0.001f * g.cwiseProduct(g);
      const float c1 = 1.0f - std::pow(0.9f, static_cast<float>(step));
      const float c2 = 1.0f - std::pow(0.999f, static_cast<float>(step));
      params[k]->value.array() -= lr * (m[k].array() / c1) / ((v[k].array() / c2).sqrt() + 1e-8f);
    }
    if (step == 1) first = loss.item();
    last = loss.item();
    if (step == 1 || step % 50 == 0) std::cout << "step " << step << "  mse " << loss.item() << "\n";
  }
  // Always answering 0 gives E[x^2] = 1/3 for x uniform in [-1, 1].
  std::cout << "first mse " << first << ", final mse " << last << " (answering 0: 0.333)\n";
  return last < first ? 0 : 1;
}
