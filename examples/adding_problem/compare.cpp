// Section "compare": a vanilla tanh RNN and an LSTM on the adding problem at each length.
#include <cstdio>
#include <filesystem>
#include <string>

#include <fmt/format.h>
#include <Eigen/SVD>

#include <tapegrad/nn/lstm_cell.h>
#include <tapegrad/nn/rnn_cell.h>
#include <tapegrad/nn/svg_plot.h>

#include "sections.h"
#include "trainer.h"

namespace adding {

namespace {

constexpr int kTestBatch = 512;

std::string path_in(const Options& o, const std::string& name) {
  return (std::filesystem::path(o.out) / name).string();
}

std::vector<double> grad_norms(const nn::GradientFlowReport& r) {
  std::vector<double> v;
  for (const auto& s : r.steps) v.push_back(s.grad_norm);
  return v;
}

std::vector<double> ks(const nn::GradientFlowReport& r) {
  std::vector<double> v;
  for (const auto& s : r.steps) v.push_back(s.k);
  return v;
}

// The fitted decay of ||dL/dh_k|| (diagnostics.h's summarize), without the W bound.
std::string describe(const nn::GradientFlowReport& r) {
  return fmt::format("{}, x{:.3f} per step back, {:+.1f} decades over {} steps", nn::verdict_name(r.verdict),
                     r.decay_rate, r.decades, r.steps.back().k - r.steps.front().k);
}

void record(Results& results, const std::string& model, int length, const TrainResult& r) {
  results.rows.push_back({"compare", model, length, static_cast<int>(r.loss.size()),
                          r.loss.empty() ? 0.0 : r.loss.back(), r.test_mse, r.seconds,
                          r.diverged ? fmt::format("diverged at update {}", r.diverged_at) : std::string("ok")});
  results.curves.push_back({"compare", model, length, r.loss, r.grad_norm});
}

// ||dL/dh_k|| of both models, after training and at initialisation, as CSV and one chart.
void write_flow(const Options& o, int length, const nn::GradientFlowReport& rnn0, const nn::GradientFlowReport& rnn,
                const nn::GradientFlowReport& lstm0, const nn::GradientFlowReport& lstm) {
  std::string csv = "k,rnn_tanh_trained,lstm_trained,rnn_tanh_init,lstm_init\n";
  for (std::size_t i = 0; i < rnn.steps.size(); ++i) {
    csv += fmt::format("{},{},{},{},{}\n", rnn.steps[i].k, rnn.steps[i].grad_norm, lstm.steps[i].grad_norm,
                       rnn0.steps[i].grad_norm, lstm0.steps[i].grad_norm);
  }
  const std::string stem = fmt::format("adding_grad_flow_T{}", length);
  nn::write_text_file_atomic(path_in(o, stem + ".csv"), csv);
  const std::vector<nn::PlotSeries> series{
      {"vanilla tanh RNN, trained", ks(rnn), grad_norms(rnn), false},
      {"LSTM, trained", ks(lstm), grad_norms(lstm), false},
      {"vanilla tanh RNN, at init", ks(rnn0), grad_norms(rnn0), false},
      {"LSTM, at init", ks(lstm0), grad_norms(lstm0), false},
  };
  nn::PlotOptions po;
  po.title = fmt::format("Adding problem T = {}, {} updates: gradient from step T", length, o.steps);
  po.x_label = "time step k (the loss is at k = T)";
  po.y_label = "||dL/dh_k||";
  nn::write_log_plot(series, po, path_in(o, stem + ".svg"));
}

}  // namespace

void run_compare(const Options& o, Results& results) {
  std::printf("== compare: vanilla tanh RNN vs LSTM (hidden %d, batch %d, %d Adam updates, lr %g, seed %llu)\n",
              o.hidden, o.batch, o.steps, o.lr, static_cast<unsigned long long>(o.seed));
  std::printf("   baseline: always answering 1.0 gives test MSE %.4f\n\n", kBaselineMse);
  for (int length : o.lengths) {
    std::mt19937_64 data_rng(o.seed * 7919 + static_cast<std::uint64_t>(length));
    const Batch test = make_batch(data_rng, kTestBatch, length);
    const Batch probe = make_batch(data_rng, o.batch, length);  // where ||dL/dh_k|| is measured
    TrainConfig cfg;
    cfg.length = length;
    cfg.steps = o.steps;
    cfg.batch = o.batch;
    cfg.lr = o.lr;
    cfg.seed = o.seed;

    std::mt19937_64 init_rng(o.seed);
    nn::RnnCell<double> rnn({.input_size = 2, .hidden_size = o.hidden}, init_rng);
    nn::Linear<double> rnn_head({.input_size = o.hidden, .output_size = 1}, init_rng);
    Model<nn::RnnCell<double>> rnn_model{rnn, rnn_head};
    const auto rnn0 = grad_norms(rnn_model, probe);
    const TrainResult rr = train(rnn_model, cfg, test);
    const auto rnn1 = grad_norms(rnn_model, probe);

    nn::LstmCell<double> lstm({.input_size = 2, .hidden_size = o.hidden, .forget_bias = o.forget_bias}, init_rng);
    nn::Linear<double> lstm_head({.input_size = o.hidden, .output_size = 1}, init_rng);
    Model<nn::LstmCell<double>> lstm_model{lstm, lstm_head};
    const auto lstm0 = grad_norms(lstm_model, probe);
    const TrainResult lr = train(lstm_model, cfg, test);
    const auto lstm1 = grad_norms(lstm_model, probe);

    record(results, "rnn_tanh", length, rr);
    record(results, "lstm", length, lr);
    write_flow(o, length, rnn0, rnn1, lstm0, lstm1);

    const auto ratio = [](const nn::GradientFlowReport& r) {
      return r.steps.front().grad_norm / r.steps.back().grad_norm;
    };
    std::printf("   T = %3d  test MSE  vanilla RNN %.4f   LSTM %.4f   (baseline %.4f)   [%.1f s + %.1f s]\n", length,
                rr.test_mse, lr.test_mse, kBaselineMse, rr.seconds, lr.seconds);
    std::printf("            ||dL/dh_0|| / ||dL/dh_T|| after training: vanilla %.2e, LSTM %.2e\n", ratio(rnn1),
                ratio(lstm1));
    const double sigma = Eigen::JacobiSVD<Eigen::MatrixXd>(Eigen::MatrixXd(rnn.W_hh.value)).singularValues()(0);
    std::printf("            vanilla: %s; gamma*sigma_max(W_hh) = %.3f\n", describe(rnn1).c_str(), sigma);
    std::printf("            LSTM:    %s\n", describe(lstm1).c_str());
  }
  std::printf("\n   (short default runs; longer ones, e.g. --steps 3000, separate the two models much more clearly)\n");
  std::printf("   wrote %s/adding_grad_flow_T<L>.{csv,svg}\n\n", o.out.c_str());
}

}  // namespace adding
