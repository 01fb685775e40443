// The example's three sections (compare, explode, clip) and what they write.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace adding {

/// Command-line settings.
struct Options {
  std::string mode = "all";
  std::vector<int> lengths{50, 100, 200};
  int steps = 600;
  int hidden = 8;
  int batch = 32;
  std::uint64_t seed = 1;
  double lr = 1e-2;          ///< Adam, compare section
  double forget_bias = 1.0;  ///< LSTM forget-gate bias at init
  double sgd_lr = 1e-2;      ///< plain SGD, explode/clip sections
  double clip_norm = 1.0;    ///< global-norm threshold, clip section
  std::string out = "adding_out";
};

/// One trained run, for adding_results.csv.
struct RunRow {
  std::string section, model;
  int length = 0, steps_done = 0;
  double final_loss = 0.0, test_mse = 0.0, seconds = 0.0;
  std::string status;  // "ok", "diverged at update k"
};
/// One training curve, for adding_train_loss.csv.
struct Curve {
  std::string section, model;
  int length = 0;
  std::vector<double> loss, grad_norm;
};
struct Results {
  std::vector<RunRow> rows;
  std::vector<Curve> curves;
};

/// Vanilla tanh RNN vs LSTM at every length: test MSE and one gradient-flow chart per length.
void run_compare(const Options& o, Results& results);
/// Linear RNN with sigma_max(W) = 1.2 under SGD: without clipping (explode) and with (clip).
void run_explode_and_clip(const Options& o, Results& results);
/// adding_results.csv and adding_train_loss.csv.
void write_results(const Options& o, const Results& results);

}  // namespace adding
