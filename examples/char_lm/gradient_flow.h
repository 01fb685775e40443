// The gradient-flow picture of the last training step: the first sequence of the last batch is
// re-recorded with full BPTT from a zero h_0, and diagnostics.h measures ||dL/dh_k|| of the top
// layer for every k, the step Jacobians and their products, written as SVG and CSV.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <tapegrad/nn/diagnostics.h>
#include <tapegrad/nn/loss.h>

#include "corpus.h"
#include "model.h"

namespace char_lm {

/// The top layer's recurrent matrix as the H x H block diagnostics expects: W_hh itself for a
/// tanh RNN, the tanh (candidate) gate's block for LSTM (i f g o) and GRU (r z n).
template <class Cell>
Matrix<S> recurrent_block(Model<Cell>& model) {
  const Matrix<S>& w = model.rnn().layer(model.rnn().num_layers() - 1).W_hh.value;
  const Eigen::Index h = w.rows();
  return w.cols() == h ? w : Matrix<S>(w.middleCols(2 * h, h));
}

/// Writes gradient_flow.svg and gradient_flow.csv into out_dir; returns the report.
template <class Cell>
tapegrad::nn::GradientFlowReport write_gradient_flow(Model<Cell>& model, const Batch& batch,
                                                     const std::filesystem::path& out_dir, const std::string& title) {
  Tape<S> tape;
  auto w = model.bind(tape);
  tapegrad::nn::State<S> s;
  for (const Matrix<S>& m : model.zero_state(1)) s.tensors.push_back(tape.variable(m));  // h_0 gets a gradient
  const std::size_t top = model.rnn().num_layers() - 1;
  std::vector<Var<S>> hs = {model.rnn().layer_state(s, top).h()};
  Var<S> loss;
  const int T = static_cast<int>(batch.inputs.size());
  for (int t = 0; t < T; ++t) {
    auto scope = tape.time_step(t);
    const auto ti = static_cast<std::size_t>(t);
    const std::int32_t in[1] = {batch.inputs[ti][0]};
    const std::int32_t target[1] = {batch.targets[ti][0]};
    auto r = model.step(w, in, s);
    Var<S> l = tapegrad::nn::cross_entropy(r.logits, target) * (S(1) / static_cast<S>(T));
    loss = loss.empty() ? l : loss + l;
    s = r.next;
    hs.push_back(model.rnn().layer_state(s, top).h());
  }
  auto report = tapegrad::nn::gradient_flow(tape, loss, hs, recurrent_block(model), tapegrad::nn::kTanhGamma);
  tapegrad::nn::write_svg(report, (out_dir / "gradient_flow.svg").string(), title);
  tapegrad::nn::write_csv(report, (out_dir / "gradient_flow.csv").string());
  return report;
}

}  // namespace char_lm
