// recompute(): an LSTM language model trained through segments of k steps must give exactly the
// gradients of plain single-tape BPTT (which test_bptt_contract ties to a hand-derived BPTT),
// keep O(T/k) entries and O(T/k) value bytes on the main tape and O(k) on the scratch tape
// (counted against closed forms of what each op stores), and fail loudly where it cannot help.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include <tapegrad/ops.h>
#include <tapegrad/recompute.h>
#include <tapegrad/tape.h>

namespace tapegrad {
namespace {

using M = Matrix<double>;
using V = Var<double>;

struct Dims {
  Index B = 2, H = 3, In = 4, K = 5;
  int T = 6;
};

// LSTM (gates i, f, g, o in column blocks) with a linear+softmax head on every step.
struct Model {
  Parameter<double> Wih, Whh, b, Vo, c;
  explicit Model(const Dims& d, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(-0.6, 0.6);
    const auto rnd = [&](Index r, Index cols) { return M(M::NullaryExpr(r, cols, [&] { return u(rng); })); };
    Wih = Parameter<double>(rnd(d.In, 4 * d.H), "Wih");
    Whh = Parameter<double>(rnd(d.H, 4 * d.H), "Whh");
    b = Parameter<double>(rnd(1, 4 * d.H), "b");
    Vo = Parameter<double>(rnd(d.H, d.K), "V");
    c = Parameter<double>(rnd(1, d.K), "c");
  }
  std::vector<Parameter<double>*> params() { return {&Wih, &Whh, &b, &Vo, &c}; }
  void zero_grad() {
    for (auto* p : params()) p->zero_grad();
  }
};

struct Data {
  std::vector<M> x;                          // x[t] is [B x In]
  std::vector<std::vector<std::int32_t>> y;  // y[t] has B targets; y[T] is the final head's
  M h0, c0;
  Data(const Dims& d, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    std::uniform_int_distribution<std::int32_t> cls(0, static_cast<std::int32_t>(d.K - 1));
    const auto rnd = [&](Index r, Index cols) { return M(M::NullaryExpr(r, cols, [&] { return u(rng); })); };
    for (int t = 0; t < d.T; ++t) x.push_back(rnd(d.B, d.In));
    for (int t = 0; t <= d.T; ++t) {
      y.emplace_back(static_cast<std::size_t>(d.B));
      for (auto& v : y.back()) v = cls(rng);
    }
    h0 = rnd(d.B, d.H) * 0.5;
    c0 = rnd(d.B, d.H) * 0.5;
  }
};

struct State {
  V h, c, loss;  // loss: summed cross-entropy so far (empty before the first step)
};

V add_loss(const V& total, const V& l) { return total.empty() ? l : add(total, l); }

// One LSTM step with its head's loss, entirely on h's tape.
// Values kept per step: x In, affine/matmul/add 3 x 4H, 4 slices + 4 gate activations H each,
// f*c, i*g, c 3H, tanh(c), h 2H, logits K, CE aux K, CE 1, the running loss add 1:
//   B (In + 25 H + 2 K) + 2 doubles (the first step has no running-loss add: one fewer).
State lstm_step(Tape<double>& tape, Model& m, const Dims& d, const M& x, const std::vector<std::int32_t>& y,
                const State& s) {
  const V xc = tape.constant(x);
  const V a = add(affine(xc, tape.leaf(m.Wih), tape.leaf(m.b)), matmul(s.h, tape.leaf(m.Whh)));
  const V i = sigmoid(slice_cols(a, 0, d.H));
  const V f = sigmoid(slice_cols(a, d.H, d.H));
  const V g = tanh(slice_cols(a, 2 * d.H, d.H));
  const V o = sigmoid(slice_cols(a, 3 * d.H, d.H));
  const V c = add(mul(f, s.c), mul(i, g));
  const V h = mul(o, tanh(c));
  const V l = softmax_cross_entropy(affine(h, tape.leaf(m.Vo), tape.leaf(m.c)), y, Reduction::Sum);
  return {h, c, add_loss(s.loss, l)};
}

// Steps [begin, end) of the model on the tape of s.
State lstm_steps(Tape<double>& tape, Model& m, const Data& data, const Dims& d, State s, int begin, int end) {
  for (int t = begin; t < end; ++t) {
    s = lstm_step(tape, m, d, data.x[static_cast<std::size_t>(t)], data.y[static_cast<std::size_t>(t)], s);
  }
  return s;
}

// The final head on the main tape: V and c are used inside AND outside the segments.
V final_loss(Tape<double>& tape, Model& m, const Data& data, const Dims& d, const V& h) {
  return softmax_cross_entropy(affine(h, tape.leaf(m.Vo), tape.leaf(m.c)), data.y[static_cast<std::size_t>(d.T)],
                               Reduction::Sum);
}

struct Grads {
  double loss = 0;
  std::vector<M> params;
  M h0, c0;
};

Grads collect(Model& m, double loss, const V& h0, const V& c0) {
  Grads g;
  g.loss = loss;
  for (auto* p : m.params()) g.params.push_back(p->grad);
  if (h0.requires_grad()) g.h0 = h0.grad();
  if (c0.requires_grad()) g.c0 = c0.grad();
  return g;
}

Grads plain_bptt(Model& m, const Data& data, const Dims& d, bool state_grad = true) {
  m.zero_grad();
  Tape<double> tape;
  const V h0 = state_grad ? tape.variable(data.h0) : tape.constant(data.h0);
  const V c0 = state_grad ? tape.variable(data.c0) : tape.constant(data.c0);
  const State s = lstm_steps(tape, m, data, d, {h0, c0, {}}, 0, d.T);
  const V total = add(s.loss, final_loss(tape, m, data, d, s.h));
  tape.backward(total);
  return collect(m, total.item(), h0, c0);
}

// Segments of k steps, each one recompute() returning {h, c, segment loss}.
std::vector<V> lstm_segment(Tape<double>& sub, std::span<const V> in, Model& m, const Data& data, const Dims& d,
                            int begin, int len) {
  const State s = lstm_steps(sub, m, data, d, {in[0], in[1], {}}, begin, begin + len);
  return {s.h, s.c, s.loss};
}

// Chains recompute() segments of at most k steps over steps [begin, end): segment(b, len) gives
// the fn of the segment starting at step b, which returns {h, c, segment loss, ...}.
using SegmentFactory = std::function<RecomputeFn<double>(int begin, int len)>;
State chain_segments(State s, int begin, int end, int k, const SegmentFactory& segment) {
  for (int b = begin; b < end; b += k) {
    const std::vector<V> out = recompute<double>({s.h, s.c}, segment(b, std::min(k, end - b)));
    s = {out[0], out[1], add_loss(s.loss, out[2])};
  }
  return s;
}
// The segment factory of plain LSTM segments.
SegmentFactory lstm_segments(Model& m, const Data& data, const Dims& d) {
  return [&m, &data, d](int begin, int len) {
    return [&m, &data, d, begin, len](Tape<double>& sub, std::span<const V> in) {
      return lstm_segment(sub, in, m, data, d, begin, len);
    };
  };
}

struct RecomputeRun {
  Grads grads;
  std::size_t entries = 0, value_bytes = 0, scratch_peak = 0, backward_runs = 0;
};

RecomputeRun recompute_bptt(Model& m, const Data& data, const Dims& d, int k, bool state_grad = true) {
  m.zero_grad();
  reset_recompute_stats<double>();
  Tape<double> tape;
  const V h0 = state_grad ? tape.variable(data.h0) : tape.constant(data.h0);
  const V c0 = state_grad ? tape.variable(data.c0) : tape.constant(data.c0);
  const State s = chain_segments({h0, c0, {}}, 0, d.T, k, lstm_segments(m, data, d));
  const V total = add(s.loss, final_loss(tape, m, data, d, s.h));
  RecomputeRun run;
  run.entries = tape.num_entries();
  run.value_bytes = tape_value_bytes(tape);
  tape.backward(total);
  run.grads = collect(m, total.item(), h0, c0);
  run.scratch_peak = recompute_stats<double>().scratch_peak_bytes;
  run.backward_runs = recompute_stats<double>().backward_runs;
  return run;
}

// max |a - b| relative to max(1, max |b|).
double rel_diff(const M& a, const M& b) {
  EXPECT_EQ(shape_of(a), shape_of(b));
  if (shape_of(a) != shape_of(b)) return 1.0;
  if (b.size() == 0) return 0.0;
  return (a - b).cwiseAbs().maxCoeff() / std::max(1.0, b.cwiseAbs().maxCoeff());
}

void expect_same(const Grads& got, const Grads& want, double tol, const std::string& what) {
  EXPECT_LE(std::abs(got.loss - want.loss), tol * std::max(1.0, std::abs(want.loss))) << what;
  ASSERT_EQ(got.params.size(), want.params.size());
  for (std::size_t p = 0; p < want.params.size(); ++p) {
    EXPECT_LE(rel_diff(got.params[p], want.params[p]), tol) << what << " parameter " << p;
  }
  EXPECT_LE(rel_diff(got.h0, want.h0), tol) << what << " h0";
  EXPECT_LE(rel_diff(got.c0, want.c0), tol) << what << " c0";
}

// A model over T steps, its data and the plain-BPTT gradients recompute() must reproduce;
// Parameter::grad is zeroed again afterwards.
struct Problem {
  Dims d;
  Model m;
  Data data;
  Grads want;
  Problem(int T, std::uint64_t seed, bool state_grad = true)
      : d{.T = T}, m(d, seed), data(d, seed + 1), want(plain_bptt(m, data, d, state_grad)) {
    m.zero_grad();
  }
};

int isqrt_ceil(int t) { return std::max(1, static_cast<int>(std::ceil(std::sqrt(static_cast<double>(t))))); }

TEST(Recompute, GradientsEqualPlainBpttForEverySegmentLength) {
  for (int T : {1, 2, 5, 9, 17, 40}) {
    Dims d;
    d.T = T;
    Model m(d, 7 + static_cast<std::uint64_t>(T));
    const Data data(d, 100 + static_cast<std::uint64_t>(T));
    const Grads want = plain_bptt(m, data, d);
    for (int k : {1, 3, isqrt_ceil(T), T}) {
      const RecomputeRun run = recompute_bptt(m, data, d, k);
      expect_same(run.grads, want, 1e-12, fmt::format("T={} k={}", T, k));
      EXPECT_EQ(run.backward_runs, static_cast<std::size_t>((T + k - 1) / k)) << "one re-run per segment";
    }
  }
}

TEST(Recompute, GradientOfInitialStateMatchesFiniteDifferences) {
  Dims d;
  d.T = 5;
  Model m(d, 3);
  Data data(d, 4);
  const RecomputeRun run = recompute_bptt(m, data, d, 2);
  // Central differences of the plain forward loss in h0 and c0 (independent of any backward).
  const auto loss_at = [&](const M& h0, const M& c0) {
    Data p = data;
    p.h0 = h0;
    p.c0 = c0;
    Tape<double> tape;
    const State s = lstm_steps(tape, m, p, d, {tape.constant(p.h0), tape.constant(p.c0), {}}, 0, d.T);
    return add(s.loss, final_loss(tape, m, p, d, s.h)).item();
  };
  const double eps = 1e-6;
  for (Index r = 0; r < d.B; ++r) {
    for (Index col = 0; col < d.H; ++col) {
      M hp = data.h0, hm = data.h0, cp = data.c0, cm = data.c0;
      hp(r, col) += eps;
      hm(r, col) -= eps;
      cp(r, col) += eps;
      cm(r, col) -= eps;
      EXPECT_NEAR(run.grads.h0(r, col), (loss_at(hp, data.c0) - loss_at(hm, data.c0)) / (2 * eps), 1e-7);
      EXPECT_NEAR(run.grads.c0(r, col), (loss_at(data.h0, cp) - loss_at(data.h0, cm)) / (2 * eps), 1e-7);
    }
  }
}

TEST(Recompute, MainTapeHoldsSegmentOutputsOnlyAndScratchOneSegment) {
  Dims d;
  d.T = 36;
  Model m(d, 11);
  const Data data(d, 12);
  const std::size_t B = static_cast<std::size_t>(d.B), H = static_cast<std::size_t>(d.H);
  const std::size_t K = static_cast<std::size_t>(d.K), In = static_cast<std::size_t>(d.In);
  const std::size_t per_step = B * (In + 25 * H + 2 * K) + 2;  // doubles kept per step (see lstm_step)
  const std::size_t head = B * K * 2 + 1 + H * K + K;          // final logits, CE aux, CE; V, c leaves
  {
    // Plain tape: everything, T steps (the first without a running-loss add), leaves, final head.
    Tape<double> tape;
    const State s = lstm_steps(tape, m, data, d, {tape.variable(data.h0), tape.variable(data.c0), {}}, 0, d.T);
    static_cast<void>(add(s.loss, final_loss(tape, m, data, d, s.h)));
    const std::size_t leaves = In * 4 * H + H * 4 * H + 4 * H + H * K + K + 2 * B * H;
    EXPECT_EQ(tape_value_bytes(tape),
              sizeof(double) * (leaves + static_cast<std::size_t>(d.T) * per_step - 1 + (head - H * K - K) + 1));
  }
  for (int k : {1, 4, 6, 36}) {
    const RecomputeRun run = recompute_bptt(m, data, d, k);
    const std::size_t segs = static_cast<std::size_t>((d.T + k - 1) / k);
    // Main tape per segment: ONE "recompute" entry (a [0 x 0] token with the outputs h, c, loss
    // as extra outputs); segments' losses are summed by segs - 1 adds; the final head is affine,
    // CE, add. Values: h0, c0, per segment h, c, loss (2 B H + 1), the adds, the head, V and c.
    EXPECT_EQ(run.entries, segs + (segs - 1) + 3) << "k=" << k;
    EXPECT_EQ(run.value_bytes, sizeof(double) * (2 * B * H + segs * (2 * B * H + 1) + (segs - 1) + head + 1))
        << "k=" << k;
    // Scratch: one segment of k steps (the first without a running-loss add), its leaves (all
    // five parameters, the two input states) and the 1x1 seed op.
    const std::size_t leaves = In * 4 * H + H * 4 * H + 4 * H + H * K + K + 2 * B * H;
    EXPECT_EQ(run.scratch_peak, sizeof(double) * (leaves + static_cast<std::size_t>(k) * per_step - 1 + 1))
        << "k=" << k;
  }
}

TEST(Recompute, UnusedOutputsGetNoWorkAndChangeNothing) {
  Problem problem(8, 5);
  auto& [d, m, data, want] = problem;
  // The same segments, each also returning an output nobody uses (tanh of c), and a last segment
  // run twice: the second copy's outputs are all unused, so backward must not re-run it.
  m.zero_grad();
  reset_recompute_stats<double>();
  Tape<double> tape;
  const V h0 = tape.variable(data.h0), c0 = tape.variable(data.c0);
  V h = h0, c = c0, total;
  const int k = 3;
  for (int begin = 0; begin < d.T; begin += k) {
    const int len = std::min(k, d.T - begin);
    const auto fn = [&m, &data, d, begin, len](Tape<double>& sub, std::span<const V> in) {
      std::vector<V> out = lstm_segment(sub, in, m, data, d, begin, len);
      out.push_back(tanh(out[1]));
      return out;
    };
    const std::vector<V> out = recompute<double>({h, c}, fn);
    ASSERT_EQ(out.size(), 4U);
    static_cast<void>(recompute<double>({h, c}, fn));  // entirely unused
    h = out[0];
    c = out[1];
    total = add_loss(total, out[2]);
  }
  total = add(total, final_loss(tape, m, data, d, h));
  tape.backward(total);
  expect_same(collect(m, total.item(), h0, c0), want, 1e-12, "unused outputs");
  EXPECT_EQ(recompute_stats<double>().backward_runs, 3U) << "only the used copies are re-run";
  EXPECT_EQ(recompute_stats<double>().forward_runs, 6U);
}

TEST(Recompute, InputsWithoutGradientAndConstantSegments) {
  Problem problem(7, 8, /*state_grad=*/false);
  auto& [d, m, data, want] = problem;
  const RecomputeRun run = recompute_bptt(m, data, d, 3, /*state_grad=*/false);
  expect_same(run.grads, want, 1e-12, "constant h0, c0");
  // Nothing needs a gradient: the outputs are constants and nothing is recorded.
  Tape<double> tape;
  const V x = tape.constant(M::Constant(2, 2, 0.5));
  const std::size_t entries = tape.num_entries();
  const std::vector<V> out =
      recompute<double>({x}, [](Tape<double>&, std::span<const V> in) { return std::vector<V>{tanh(in[0])}; });
  EXPECT_EQ(tape.num_entries(), entries);
  EXPECT_FALSE(out[0].requires_grad());
  EXPECT_NEAR(out[0].value()(1, 1), std::tanh(0.5), 1e-15);
}

TEST(Recompute, OutputsAreValuesOfFnAndDuplicatedInputsAccumulate) {
  // y = [x * x, x], z = sum(y0) + 3 sum(y1) + sum(x * w): dz/dx = 2x + 3 + w, dz/dw = x.
  Tape<double> tape;
  M xv(2, 2);
  xv << 0.5, -1.0, 2.0, 0.25;
  const M wv = M::Constant(2, 2, 0.75);
  Parameter<double> w(wv, "w");
  const V x = tape.variable(xv);
  const std::vector<V> y = recompute<double>({x, x}, [&w](Tape<double>& sub, std::span<const V> in) {
    return std::vector<V>{mul(in[0], in[1]), in[0], mul(in[1], sub.leaf(w))};
  });
  EXPECT_EQ(y[0].value(), M(xv.array().square()));
  EXPECT_EQ(y[1].value(), xv);
  const V z = add(add(sum(y[0]), mul_scalar(sum(y[1]), 3.0)), sum(y[2]));
  tape.backward(z);
  EXPECT_LE(rel_diff(x.grad(), M((2.0 * xv.array() + 3.0 + wv.array()).matrix())), 1e-15);
  EXPECT_LE(rel_diff(w.grad, xv), 1e-15);
}

TEST(Recompute, BackwardOptionsReachTheInnerSweep) {
  Problem problem(6, 13);
  auto& [d, m, data, want] = problem;
  int hook_calls = 0;
  m.zero_grad();
  reset_recompute_stats<double>();
  Tape<double> tape;
  const V h0 = tape.variable(data.h0), c0 = tape.variable(data.c0);
  std::vector<Mark> marks;
  const State s = chain_segments({h0, c0, {}}, 0, d.T, 2, [&](int begin, int len) -> RecomputeFn<double> {
    marks.push_back(tape.mark());  // called right before each segment is recorded
    return [&m, &data, d, begin, len, &hook_calls](Tape<double>& sub, std::span<const V> in) {
      in[0].register_hook([&hook_calls](M&) { ++hook_calls; });
      return lstm_segment(sub, in, m, data, d, begin, len);
    };
  });
  const V total = add(s.loss, final_loss(tape, m, data, d, s.h));
  // accumulate_parameters = false and run_hooks = false: no Parameter::grad, no hook, but the
  // state gradients are those of plain BPTT.
  BackwardOptions probe;
  probe.accumulate_parameters = false;
  probe.run_hooks = false;
  tape.backward(total, probe);
  for (auto* p : m.params()) EXPECT_EQ(p->grad.cwiseAbs().maxCoeff(), 0.0) << p->name;
  EXPECT_EQ(hook_calls, 0);
  EXPECT_LE(rel_diff(h0.grad(), want.h0), 1e-12);
  // Default options: hooks run once per segment per sweep; parameters match plain BPTT.
  tape.backward(total);
  EXPECT_EQ(hook_calls, 3);
  expect_same(collect(m, total.item(), h0, c0), want, 1e-12, "default options");
  // A window from the last segment's mark re-runs only that segment.
  reset_recompute_stats<double>();
  BackwardOptions window;
  window.from = marks.back();
  tape.backward(total, window);
  EXPECT_EQ(recompute_stats<double>().backward_runs, 1U);
}

TEST(Recompute, NestedSegmentsMatchPlainBptt) {
  Problem problem(8, 15);
  auto& [d, m, data, want] = problem;
  m.zero_grad();
  Tape<double> tape;
  const V h0 = tape.variable(data.h0), c0 = tape.variable(data.c0);
  // Two outer segments of 4 steps, each made of two inner recompute segments of 2 steps.
  const SegmentFactory inner = lstm_segments(m, data, d);
  const State s = chain_segments({h0, c0, {}}, 0, d.T, 4, [&inner](int outer, int len) -> RecomputeFn<double> {
    return [&inner, outer, len](Tape<double>&, std::span<const V> in) {
      const State t = chain_segments({in[0], in[1], {}}, outer, outer + len, 2, inner);
      return std::vector<V>{t.h, t.c, t.loss};
    };
  });
  const V total = add(s.loss, final_loss(tape, m, data, d, s.h));
  tape.backward(total);
  expect_same(collect(m, total.item(), h0, c0), want, 1e-12, "nested");
}

TEST(Recompute, ErrorsNameRecomputeAndKeepTheirType) {
  Tape<double> tape;
  const V x = tape.variable(M::Constant(2, 3, 0.1));
  const auto identity = [](Tape<double>&, std::span<const V> in) { return std::vector<V>{in[0]}; };
  EXPECT_THROW(recompute<double>(std::span<const V>{}, identity), ValueError);
  EXPECT_THROW(recompute<double>({x}, RecomputeFn<double>{}), ValueError);
  EXPECT_THROW(recompute<double>({V{}}, identity), TapeError);
  const auto message = [](auto&& call) {
    try {
      call();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // fn returns no outputs; a Var of the main tape; a bad shape inside fn.
  EXPECT_THROW(recompute<double>({x}, [](Tape<double>&, std::span<const V>) { return std::vector<V>{}; }), ValueError);
  EXPECT_THROW(recompute<double>({x}, [&x](Tape<double>&, std::span<const V>) { return std::vector<V>{x}; }),
               TapeError);
  const auto bad_shape = [](Tape<double>&, std::span<const V> in) { return std::vector<V>{matmul(in[0], in[0])}; };
  EXPECT_THROW(recompute<double>({x}, bad_shape), ShapeError);
  const std::string msg = message([&] { recompute<double>({x}, bad_shape); });
  EXPECT_NE(msg.find("recompute (forward)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("matmul"), std::string::npos) << msg;
  // A fn that is not deterministic is caught when backward re-runs it.
  int calls = 0;
  const std::vector<V> y = recompute<double>({x}, [&calls](Tape<double>&, std::span<const V> in) {
    return std::vector<V>{mul_scalar(in[0], static_cast<double>(++calls))};
  });
  const V loss = sum(y[0]);
  EXPECT_THROW(tape.backward(loss), ValueError);
  const std::string nd = message([&] { tape.backward(loss); });
  EXPECT_NE(nd.find("deterministic"), std::string::npos) << nd;
  // The tape and the scratch pool stay usable after errors.
  const std::vector<V> ok =
      recompute<double>({x}, [](Tape<double>&, std::span<const V> in) { return std::vector<V>{mul(in[0], in[0])}; });
  tape.backward(sum(ok[0]));
  EXPECT_LE(rel_diff(x.grad(), M::Constant(2, 3, 0.2)), 1e-15);
  EXPECT_NO_THROW(release_recompute_scratch<double>());
}

}  // namespace
}  // namespace tapegrad
