// bptt_compare: the gradients tapegrad computes for a vanilla RNN, side by side with a
// hand-derived BPTT (hand_bptt.h), for full BPTT and for the per-output truncated window
// (numpy's bptt_truncate = tau, via tapegrad::backward_per_output_window).
//
//   bptt_compare [--json] [--help]
//
// Prints the max |autodiff - hand| per parameter and mode with a PASS/FAIL verdict; the exit
// code is 0 when every difference is within the tolerance, 1 otherwise, 2 on a bad option.
#include <cstdint>
#include <cstdio>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <tapegrad/tapegrad.h>
#include <tapegrad/window.h>

#include "hand_bptt.h"

namespace tg = tapegrad;
using Eigen::MatrixXd;
using M = tg::Matrix<double>;

namespace {

constexpr double kTolerance = 1e-9;
constexpr int kMaxTau = 4;
constexpr const char* kParamNames[] = {"U", "W", "V", "b", "c", "h0"};

struct Problem {
  hand::RnnParams params;
  std::vector<MatrixXd> xs;
  std::vector<std::vector<std::int32_t>> targets;
};

// A small RNN and sequence from a fixed seed: T = 8 steps, batch 2, 4 inputs, 6 hidden, 5 classes.
Problem make_problem() {
  const int T = 8, B = 2, in = 4, H = 6, K = 5;
  std::mt19937 rng(20240601);
  std::uniform_real_distribution<double> u(-0.8, 0.8);
  auto rnd = [&](int r, int c) { return MatrixXd(MatrixXd::NullaryExpr(r, c, [&] { return u(rng); })); };
  Problem p;
  p.params = {rnd(in, H), rnd(H, H), rnd(H, K), rnd(1, H), rnd(1, K), rnd(B, H)};
  std::uniform_int_distribution<std::int32_t> cls(0, K - 1);
  for (int t = 0; t < T; ++t) {
    p.xs.push_back(rnd(B, in));
    std::vector<std::int32_t> y(B);
    for (auto& k : y) k = cls(rng);
    p.targets.push_back(y);
  }
  return p;
}

// The same RNN on the tape: every weight (and h0) a Parameter, each step a few ops.
struct TapeRnn {
  tg::Parameter<double> U, W, V, b, c, h0;
  explicit TapeRnn(const hand::RnnParams& p)
      : U(M(p.U), "U"), W(M(p.W), "W"), V(M(p.V), "V"), b(M(p.b), "b"), c(M(p.c), "c"), h0(M(p.h0), "h0") {}

  tg::Var<double> step(tg::Tape<double>& tape, const Problem& p, int t, tg::Var<double>& h) {
    if (t == 0) h = tape.leaf(h0);
    auto x = tape.constant(M(p.xs[static_cast<std::size_t>(t)]));
    h = tg::tanh(tg::add(tg::add(tg::matmul(x, tape.leaf(U)), tg::matmul(h, tape.leaf(W))), tape.leaf(b)));
    auto logits = tg::add(tg::matmul(h, tape.leaf(V)), tape.leaf(c));
    const auto& y = p.targets[static_cast<std::size_t>(t)];
    return tg::softmax_cross_entropy(logits, std::span<const std::int32_t>(y), tg::Reduction::Sum);
  }
  [[nodiscard]] std::vector<const M*> grads() const { return {&U.grad, &W.grad, &V.grad, &b.grad, &c.grad, &h0.grad}; }
};

struct Row {
  std::string mode;
  std::vector<double> diff;  // per parameter, in kParamNames order
  bool pass = true;
};

// tau < 0: full BPTT (one backward of the summed loss); else the per-output window.
Row compare(const Problem& p, int tau) {
  const int T = static_cast<int>(p.xs.size());
  TapeRnn net(p.params);
  tg::Tape<double> tape;
  tg::Var<double> h;
  if (tau < 0) {
    tg::Var<double> loss;
    for (int t = 0; t < T; ++t) {
      auto s = tape.time_step(t);
      auto lt = net.step(tape, p, t, h);
      loss = t == 0 ? lt : tg::add(loss, lt);
    }
    tape.backward(loss);
  } else {
    tg::backward_per_output_window(tape, T, tau, [&](int t) { return net.step(tape, p, t, h); });
  }
  const hand::RnnGrads g = hand::rnn_bptt(p.params, p.xs, p.targets, tau);
  const MatrixXd* expected[] = {&g.dU, &g.dW, &g.dV, &g.db, &g.dc, &g.dh0};
  Row row;
  row.mode = tau < 0 ? "full" : "tau=" + std::to_string(tau);
  const auto got = net.grads();
  for (std::size_t k = 0; k < got.size(); ++k) {
    const double d = (*got[k] - *expected[k]).cwiseAbs().maxCoeff();
    row.diff.push_back(d);
    row.pass = row.pass && d <= kTolerance;  // a NaN fails too
  }
  return row;
}

void print_table(const std::vector<Row>& rows, bool all_pass) {
  std::printf("Vanilla RNN (T = 8, B = 2, in = 4, H = 6, K = 5, seed 20240601), float64\n");
  std::printf("max |autodiff - hand-derived| per parameter (tolerance %.0e)\n\n", kTolerance);
  std::printf("%-7s", "mode");
  for (const char* n : kParamNames) std::printf(" %10s", n);
  std::printf("  verdict\n");
  for (const Row& r : rows) {
    std::printf("%-7s", r.mode.c_str());
    for (double d : r.diff) std::printf(" %10.2e", d);
    std::printf("  %s\n", r.pass ? "PASS" : "FAIL");
  }
  std::printf("\n%s\n", all_pass ? "PASS: autodiff matches the hand derivation in every mode"
                                 : "FAIL: some gradients differ from the hand derivation");
}

void print_json(const std::vector<Row>& rows, bool all_pass) {
  std::printf("{\"tolerance\": %g, \"pass\": %s, \"modes\": [", kTolerance, all_pass ? "true" : "false");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::printf("%s\n  {\"mode\": \"%s\", \"pass\": %s, \"max_abs_diff\": {", i ? "," : "", rows[i].mode.c_str(),
                rows[i].pass ? "true" : "false");
    for (std::size_t k = 0; k < rows[i].diff.size(); ++k) {
      std::printf("%s\"%s\": %.17g", k ? ", " : "", kParamNames[k], rows[i].diff[k]);
    }
    std::printf("}}");
  }
  std::printf("\n]}\n");
}

void print_help() {
  std::printf(
      "usage: bptt_compare [--json] [--help]\n\n"
      "Computes the gradients of a small vanilla RNN (h_t = tanh(x_t U + h_{t-1} W + b),\n"
      "softmax(h_t V + c), summed cross-entropy) twice: with tapegrad's tape and with a\n"
      "hand-derived BPTT in plain Eigen. Modes: full BPTT, and the per-output truncated window\n"
      "tau = 1..%d (the loss of output t reaches steps t..t-tau, like numpy's bptt_truncate).\n"
      "Prints the max abs difference per parameter and mode with a PASS/FAIL verdict.\n\n"
      "  --json   print the same results as JSON\n"
      "  --help   show this text\n\n"
      "exit code: 0 all modes within %.0e, 1 a mismatch, 2 a bad option\n",
      kMaxTau, kTolerance);
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg(argv[i]);
    if (arg == "--json") {
      json = true;
    } else if (arg == "--help" || arg == "-h") {
      print_help();
      return 0;
    } else {
      std::fprintf(stderr, "bptt_compare: unknown option '%s' (try --help)\n", argv[i]);
      return 2;
    }
  }
  try {
    const Problem p = make_problem();
    std::vector<Row> rows;
    rows.push_back(compare(p, -1));
    for (int tau = 1; tau <= kMaxTau; ++tau) rows.push_back(compare(p, tau));
    bool all_pass = true;
    for (const Row& r : rows) all_pass = all_pass && r.pass;
    if (json) {
      print_json(rows, all_pass);
    } else {
      print_table(rows, all_pass);
    }
    return all_pass ? 0 : 1;
  } catch (const tg::Error& e) {
    std::fprintf(stderr, "bptt_compare: %s\n", e.what());
    return 1;
  }
}
