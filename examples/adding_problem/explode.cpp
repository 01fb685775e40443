// Sections "explode" and "clip": a linear RNN whose recurrent matrix has sigma_max(W) = 1.2,
// trained with plain SGD, without and with global-norm clipping.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include <fmt/format.h>

#include <tapegrad/nn/rnn_cell.h>
#include <tapegrad/nn/svg_plot.h>

#include "sections.h"
#include "trainer.h"

namespace adding {

namespace {

constexpr double kScale = 1.2;  // sigma_max(W): with gamma = 1 (identity), gamma * sigma > 1

// The linear RNN h_t = x_t U + h_{t-1} W + b: an RnnCell with the identity as its activation, so
// gamma = 1 and the one-step Jacobian is exactly W^T. W = kScale x a random orthogonal matrix.
nn::RnnCell<double> linear_rnn(const Options& o, std::mt19937_64& rng) {
  return nn::RnnCell<double>(
      {.input_size = 2, .hidden_size = o.hidden, .activation = nn::Activation::Identity, .recurrent_scale = kScale},
      rng);
}

std::string path_in(const Options& o, const std::string& name) {
  return (std::filesystem::path(o.out) / name).string();
}

TrainResult run(const Options& o, int length, const Batch& test, double clip) {
  std::mt19937_64 init_rng(o.seed);  // the same initial weights for both runs
  nn::RnnCell<double> net = linear_rnn(o, init_rng);
  nn::Linear<double> head({.input_size = o.hidden, .output_size = 1}, init_rng);
  TrainConfig cfg;
  cfg.length = length;
  cfg.steps = o.steps;
  cfg.batch = o.batch;
  cfg.lr = o.sgd_lr;
  cfg.sgd = true;
  cfg.clip = clip;
  cfg.seed = o.seed;
  return train(Model<nn::RnnCell<double>>{net, head}, cfg, test);
}

// printf's "-nan" is platform noise; say NaN / Inf.
std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Inf" : "-Inf";
  return fmt::format("{:.3e}", v);
}

void report(Results& results, const std::string& section, int length, const TrainResult& r) {
  const std::string status = r.diverged ? fmt::format("diverged at update {}", r.diverged_at) : std::string("ok");
  results.rows.push_back({section, "rnn_linear_sgd", length, static_cast<int>(r.loss.size()),
                          r.loss.empty() ? 0.0 : r.loss.back(), r.test_mse, r.seconds, status});
  results.curves.push_back({section, "rnn_linear_sgd", length, r.loss, r.grad_norm});
  std::printf("   %-7s first loss %.3e, first gradient norm %.3e\n", section.c_str(), r.loss.front(),
              r.grad_norm.front());
  if (r.diverged) {
    std::printf("           DIVERGED at update %d: loss %s, gradient norm %s (training stopped, nothing applied)\n",
                r.diverged_at, number(r.loss.back()).c_str(), number(r.grad_norm.back()).c_str());
  } else {
    std::printf("           finished %zu updates: last loss %.4f, test MSE %.4f (baseline %.4f), %.1f s\n",
                r.loss.size(), r.loss.back(), r.test_mse, kBaselineMse, r.seconds);
  }
}

// Measured ||dL/dh_k|| at initialisation against ||dL/dh_T|| (gamma sigma_max)^(T-k).
void write_flow(const Options& o, const nn::GradientFlowReport& f) {
  nn::write_csv(f, path_in(o, "adding_explode_grad_flow.csv"));
  std::vector<double> k, measured, bound;
  const double top = f.steps.back().grad_norm;
  const int T = f.steps.back().k;
  for (const auto& s : f.steps) {
    k.push_back(s.k);
    measured.push_back(s.grad_norm);
    bound.push_back(top * std::pow(f.bound, T - s.k));
  }
  const std::vector<nn::PlotSeries> series{
      {"linear RNN, sigma_max(W) = 1.2: measured", k, measured, false},
      {"bound 1.2^(T-k) ||dL/dh_T|| (same line)", k, bound, true},
  };
  nn::PlotOptions po;
  po.title = fmt::format("Linear RNN, sigma_max(W) = 1.2, T = {}, at init", T);
  po.x_label = "time step k (the loss is at k = T)";
  po.y_label = "||dL/dh_k||";
  nn::write_log_plot(series, po, path_in(o, "adding_explode_grad_flow.svg"));
}

void write_loss_chart(const Options& o, int length, const TrainResult& plain, const TrainResult& clipped) {
  auto xs = [](std::size_t n) {
    std::vector<double> v;
    for (std::size_t i = 0; i < n; ++i) v.push_back(static_cast<double>(i));
    return v;
  };
  const std::vector<double> baseline(clipped.loss.size(), kBaselineMse);
  const std::vector<nn::PlotSeries> series{
      {plain.diverged ? fmt::format("SGD, no clipping (NaN/Inf at update {})", plain.diverged_at)
                      : std::string("SGD, no clipping"),
       xs(plain.loss.size()), plain.loss, false},
      {fmt::format("SGD + global-norm clipping at {}", o.clip_norm), xs(clipped.loss.size()), clipped.loss, false},
      {"gradient norm before clipping (clipped run)", xs(clipped.grad_norm.size()), clipped.grad_norm, false},
      {"baseline MSE 0.167 (always answer 1.0)", xs(baseline.size()), baseline, true},
  };
  nn::PlotOptions po;
  po.title = fmt::format("Linear RNN, sigma_max(W) = 1.2, T = {}: SGD training", length);
  po.x_label = "update";
  po.y_label = "batch MSE (and gradient norm)";
  nn::write_log_plot(series, po, path_in(o, "adding_clip_loss.svg"));
}

}  // namespace

void run_explode_and_clip(const Options& o, Results& results) {
  const int length = o.lengths.front();
  std::printf("== explode / clip: linear RNN h_t = x_t U + h_{t-1} W + b, sigma_max(W) = %.1f, T = %d\n", kScale,
              length);
  std::printf("   gamma = 1 (identity), so gamma * sigma_max(W) = %.1f > 1: dL/dh_k grows like %.1f^(T-k)\n", kScale,
              kScale);
  std::printf("   plain SGD, lr %g (Adam would rescale the huge gradient and hide the explosion)\n", o.sgd_lr);
  std::mt19937_64 data_rng(o.seed * 7919 + static_cast<std::uint64_t>(length));
  const Batch test = make_batch(data_rng, 512, length);
  const Batch probe = make_batch(data_rng, o.batch, length);
  {
    std::mt19937_64 init_rng(o.seed);
    nn::RnnCell<double> net = linear_rnn(o, init_rng);
    nn::Linear<double> head({.input_size = o.hidden, .output_size = 1}, init_rng);
    const auto f = flow(Model<nn::RnnCell<double>>{net, head}, probe, net.W_hh.value, 1.0);
    std::printf("   at init: %s\n", f.summary().c_str());
    std::printf("            ||dL/dh_0|| / ||dL/dh_T|| = %.3e (bound %.1f^%d = %.3e)\n",
                f.steps.front().grad_norm / f.steps.back().grad_norm, f.bound, length, std::pow(f.bound, length));
    write_flow(o, f);
  }
  const bool both = o.mode == "all";
  TrainResult plain, clipped;
  if (both || o.mode == "explode") {
    plain = run(o, length, test, 0.0);
    report(results, "explode", length, plain);
  }
  if (both || o.mode == "clip") {
    clipped = run(o, length, test, o.clip_norm);
    report(results, "clip", length, clipped);
    std::printf("           %d of %zu updates were clipped (global norm > %g)\n", clipped.clipped, clipped.loss.size(),
                o.clip_norm);
  }
  if (both) write_loss_chart(o, length, plain, clipped);
  std::printf("   wrote %s/adding_explode_grad_flow.{csv,svg}%s\n\n", o.out.c_str(),
              both ? ", adding_clip_loss.svg" : "");
}

}  // namespace adding
