// Training one model on the adding problem and measuring its gradient flow. A "cell" here is
// anything shaped like the nn cells (step / output / initial_state / parameters): nn::RnnCell
// (tanh, or the identity for the linear RNN) or nn::LstmCell. The read-out is an nn::Linear H -> 1 on the
// last hidden state, the loss nn::mse_loss.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <tapegrad/nn/clip.h>
#include <tapegrad/nn/diagnostics.h>
#include <tapegrad/nn/linear.h>
#include <tapegrad/nn/loss.h>
#include <tapegrad/nn/optim.h>
#include <tapegrad/nn/state.h>

#include "adding_data.h"

namespace adding {

namespace tg = tapegrad;
namespace nn = tapegrad::nn;

/// How one model is trained.
struct TrainConfig {
  int length = 50;
  int steps = 200;
  int batch = 32;
  double lr = 1e-2;
  bool sgd = false;        ///< plain SGD instead of Adam (Adam's per-parameter scaling hides explosion)
  double clip = 0.0;       ///< > 0: global-norm clipping at this threshold (nn/clip.h)
  std::uint64_t seed = 1;  ///< training batches
};

/// What training produced.
struct TrainResult {
  std::vector<double> loss;       ///< per update: the batch MSE before the update
  std::vector<double> grad_norm;  ///< per update: the global gradient norm before any clipping
  double test_mse = std::nan("");
  bool diverged = false;  ///< a loss or gradient became NaN/Inf; training stopped there
  int diverged_at = -1;
  int clipped = 0;  ///< updates whose gradient was scaled down
  double seconds = 0.0;
};

/// The model: a cell and its read-out.
template <class Cell>
struct Model {
  Cell& cell;
  nn::Linear<double>& head;

  std::vector<tg::Parameter<double>*> parameters() {
    auto p = cell.parameters();
    for (auto* q : head.parameters()) p.push_back(q);
    return p;
  }

  /// Records the whole sequence; hs (optional) receives h_0 (a variable) .. h_T.
  tg::Var<double> loss(tg::Tape<double>& tape, const Batch& b, std::vector<tg::Var<double>>* hs = nullptr) {
    nn::State<double> s = cell.initial_state(tape, b.target.rows());
    if (hs != nullptr) {  // h_0 as a variable so dL/dh_0 is measured too
      s.tensors[0] = tape.variable(s.tensors[0].value());
      hs->assign(1, s.h());
    }
    for (std::size_t t = 0; t < b.xs.size(); ++t) {
      auto scope = tape.time_step(static_cast<int>(t));
      s = cell.step(tape.constant(b.xs[t]), s);
      if (hs != nullptr) hs->push_back(cell.output(s));
    }
    return nn::mse_loss(head.forward(cell.output(s)), tape.constant(b.target));
  }
};

inline double global_norm(const std::vector<tg::Parameter<double>*>& params) {
  double sq = 0.0;
  for (const auto* p : params) sq += p->grad.squaredNorm();
  return std::sqrt(sq);
}

template <class Cell>
TrainResult train(Model<Cell> model, const TrainConfig& cfg, const Batch& test) {
  const auto start = std::chrono::steady_clock::now();
  const auto params = model.parameters();
  std::unique_ptr<nn::Optimizer<double>> opt;
  if (cfg.sgd) {
    opt = std::make_unique<nn::Sgd<double>>(params, nn::SgdOptions{.lr = cfg.lr});
  } else {
    opt = std::make_unique<nn::Adam<double>>(params, nn::AdamOptions{.lr = cfg.lr});
  }
  std::mt19937_64 data_rng(cfg.seed);
  tg::Tape<double> tape;
  TrainResult r;
  for (int step = 0; step < cfg.steps; ++step) {
    const Batch b = make_batch(data_rng, cfg.batch, cfg.length);
    tape.clear();
    const auto loss = model.loss(tape, b);
    const double value = loss.item();
    opt->zero_grad();
    tape.backward(loss);
    const double norm = global_norm(params);
    r.loss.push_back(value);
    r.grad_norm.push_back(norm);
    if (!std::isfinite(value) || !std::isfinite(norm)) {  // report and stop, never apply NaN/Inf
      r.diverged = true;
      r.diverged_at = step;
      break;
    }
    if (cfg.clip > 0.0 && nn::clip_grad_norm(params, cfg.clip).clipped) ++r.clipped;
    opt->step();
  }
  if (!r.diverged) {
    tape.clear();
    r.test_mse = model.loss(tape, test).item();
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

/// ||dL/dh_k|| only, from one backward sweep (Var::grad of every h_k), summarised with
/// diagnostics.h's fit; the Jacobian columns stay NaN. Cheap enough for long sequences.
template <class Cell>
nn::GradientFlowReport grad_norms(Model<Cell> model, const Batch& b) {
  tg::Tape<double> tape;
  std::vector<tg::Var<double>> hs;
  const auto loss = model.loss(tape, b, &hs);
  tape.backward(loss, tg::BackwardOptions{.accumulate_parameters = false});
  nn::GradientFlowReport r;
  const double nan = std::nan("");
  for (std::size_t k = 0; k < hs.size(); ++k) {
    r.steps.push_back({static_cast<int>(k), hs[k].grad().norm(), nan, nan, nan, nan});
  }
  r.gamma = r.sigma_max_w = r.bound = nan;
  nn::summarize(r);
  return r;
}

/// ||dL/dh_k|| and the one-step Jacobian norms for the MSE on batch b (diagnostics.h).
template <class Cell>
nn::GradientFlowReport flow(Model<Cell> model, const Batch& b, const tg::Matrix<double>& W, double gamma) {
  tg::Tape<double> tape;
  std::vector<tg::Var<double>> hs;
  const auto loss = model.loss(tape, b, &hs);
  nn::GradientFlowOptions o;
  o.product_norms = false;
  return nn::gradient_flow(tape, loss, hs, W, gamma, o);
}

}  // namespace adding
