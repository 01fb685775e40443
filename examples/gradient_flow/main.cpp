// Gradient flow through an unrolled recurrence, drawn as the pictures of docs/diagnostics.md:
//   gradient_flow_vanilla.svg  the full report (dL/dh_k, one-step and product Jacobian norms,
//                              the gamma * sigma_max(W) bound) for a tanh RNN whose W is 0.9 x
//                              an orthogonal matrix;
//   gradient_flow_compare.svg  ||dL/dh_k|| for tanh RNNs with W = s x orthogonal, s = 0.5 .. 2,
//                              and for an LSTM, all on one chart.
// Usage: gradient_flow [output_dir] [--steps T]    (writes .svg, .csv and .json files)
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <tapegrad/nn/diagnostics.h>
#include <tapegrad/nn/lstm_cell.h>
#include <tapegrad/nn/rnn_cell.h>
#include <tapegrad/nn/svg_plot.h>
#include <tapegrad/ops.h>

using namespace tapegrad;
using M = Matrix<double>;

namespace {

constexpr Index kHidden = 32;
constexpr Index kInput = 4;

M random_matrix(Index r, Index c, std::mt19937_64& rng, double scale) {
  std::normal_distribution<double> n(0.0, scale);
  M m(r, c);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = n(rng);
  return m;
}

// Unrolls a cell over T random inputs from a variable h_0 (c_0 constant for an LSTM), with one
// loss at the end, and measures the gradient flow through the h states.
template <class Cell>
nn::GradientFlowReport measure(Cell& cell, const M& W, int steps, std::mt19937_64& rng, double input_scale = 1.0) {
  Tape<double> tape;
  nn::State<double> s = cell.initial_state(tape, 1);
  s.tensors[0] = tape.variable(random_matrix(1, kHidden, rng, 0.1));  // h_0 on the gradient path
  std::vector<Var<double>> hs{s.h()};
  for (int t = 0; t < steps; ++t) {
    s = cell.step(tape.constant(random_matrix(1, kInput, rng, input_scale)), s);
    hs.push_back(s.h());
  }
  const Var<double> loss = mse_loss(hs.back(), tape.constant(random_matrix(1, kHidden, rng, 0.5)));
  return nn::gradient_flow(tape, loss, hs, W, nn::kTanhGamma);
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_dir = ".";
  int steps = 50;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--steps" && i + 1 < argc) {
      steps = std::atoi(argv[++i]);
    } else {
      out_dir = a;
    }
  }
  try {
    std::mt19937_64 rng(2024);
    // 1. The full report for one vanilla RNN. Strong inputs push tanh into saturation, so the
    //    one-step norm drops below the gamma * sigma_max(W) bound at some steps.
    nn::RnnCell<double> vanilla({.input_size = kInput, .hidden_size = kHidden, .recurrent_scale = 0.9}, rng);
    const nn::GradientFlowReport report = measure(vanilla, vanilla.W_hh.value, steps, rng, 3.0);
    std::cout << "vanilla tanh RNN, W = 0.9 x orthogonal: " << report.summary() << "\n";
    nn::write_svg(report, out_dir + "/gradient_flow_vanilla.svg",
                  "tanh RNN, W = 0.9 \u00d7 orthogonal (H = 32, strong inputs)");
    nn::write_csv(report, out_dir + "/gradient_flow_vanilla.csv");
    nn::write_json(report, out_dir + "/gradient_flow_vanilla.json");

    // 2. ||dL/dh_k|| for several recurrent scales and an LSTM on one chart.
    std::vector<nn::PlotSeries> curves;
    auto add_curve = [&](const std::string& name, const nn::GradientFlowReport& r) {
      nn::PlotSeries s{name, {}, {}, false};
      for (const nn::GradientFlowStep& st : r.steps) {
        s.x.push_back(st.k);
        s.y.push_back(st.grad_norm);
      }
      curves.push_back(std::move(s));
      std::cout << name << ": " << r.summary() << "\n";
    };
    for (double scale : {0.5, 1.0, 1.5, 2.0}) {
      nn::RnnCell<double> cell({.input_size = kInput, .hidden_size = kHidden, .recurrent_scale = scale}, rng);
      add_curve("tanh RNN, W = " + std::to_string(scale).substr(0, 3) + " \u00d7 orthogonal",
                measure(cell, cell.W_hh.value, steps, rng));
    }
    nn::LstmCell<double> lstm({.input_size = kInput, .hidden_size = kHidden}, rng);
    // An LSTM has no single recurrent matrix: pass the candidate block of W_hh (bound for reference only).
    add_curve("LSTM (forget bias 1)", measure(lstm, M(lstm.W_hh.value.middleCols(2 * kHidden, kHidden)), steps, rng));
    nn::PlotOptions opt;
    opt.title = "||dL/dh_k|| for a loss at step T: vanilla RNNs vs LSTM";
    opt.y_label = "||dL/dh_k|| (log scale)";
    nn::write_log_plot(curves, opt, out_dir + "/gradient_flow_compare.svg");
    std::cout << "wrote " << out_dir << "/gradient_flow_{vanilla,compare}.svg\n";
  } catch (const Error& e) {
    std::cerr << "gradient_flow: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
