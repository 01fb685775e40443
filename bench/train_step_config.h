// The training-step workloads shared by bench_train_step, bench_gemm_rate and the LibTorch peer
// (bench/peers): configs, token data, thread count from the environment, and the FLOP formula.
// Plain C++ only, so the peer can include it without Tapegrad.
//
// One training step: forward over the whole sequence, summed cross-entropy, backward, SGD on
// every parameter. Model (float32): embedding E [K x H] (embedding dim = H), input projection
// W_ih [H x G] + bias [1 x G], recurrence W_hh [H x G], head V [H x K] + c [1 x K]; G = H for the
// tanh RNN, 4H for the LSTM (gates i, f, g, o), 3H for the GRU (gates r, z, n; it also has the
// recurrent bias b_hh [1 x 3H]). The IndRNN (bench_train_step only) has G = H and a recurrent
// weight u [1 x H] per unit instead of W_hh, so no recurrence GEMM.
//
// GEMM FLOPs of one step, forward + backward, with N = T * B rows:
//   forward : input projection 2 N H G, recurrence 2 N H G (T products [B x H][H x G]),
//             head 2 N H K
//   backward: each product A W has two gradient products of the same size (dA = dY W^T and
//             dW = A^T dY), so twice the forward
//   total   : 6 N H (2 G + K)   (IndRNN: 6 N H (G + K))
// Gathers, elementwise gate math, softmax and the SGD update are not counted (O(N H), O(N K)).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

namespace tapegrad_bench {

/// One workload: batch B, hidden H (= embedding dim), vocabulary K, sequence length T.
struct TrainConfig {
  const char* name;
  std::int64_t batch, hidden, vocab, steps;
};

inline constexpr TrainConfig kTrainConfigs[] = {
    {"tiny", 1, 32, 65, 25},      {"small", 16, 128, 65, 50}, {"medium", 32, 512, 65, 50},
    {"large", 64, 1024, 256, 35}, {"long", 8, 256, 65, 1000},
};

enum class Cell { Rnn, Lstm, Gru, IndRnn };

inline const char* cell_name(Cell cell) {
  static constexpr const char* kNames[] = {"rnn", "lstm", "gru", "indrnn"};  // in the enum's order
  static_assert(std::size(kNames) == static_cast<std::size_t>(Cell::IndRnn) + 1);
  return kNames[static_cast<std::size_t>(cell)];
}
/// Columns of the gate pre-activations: H for the RNN and IndRNN, 4H for the LSTM, 3H for the GRU.
inline std::int64_t gate_cols(Cell cell, const TrainConfig& cfg) {
  return cell == Cell::Lstm ? 4 * cfg.hidden : (cell == Cell::Gru ? 3 * cfg.hidden : cfg.hidden);
}

/// GEMM FLOPs of one training step, forward + backward: 6 N H (2 G + K), N = T * B (the IndRNN
/// has no recurrence GEMM: 6 N H (G + K)).
inline double step_gemm_flops(Cell cell, const TrainConfig& cfg) {
  const double n = static_cast<double>(cfg.steps * cfg.batch);
  const double h = static_cast<double>(cfg.hidden);
  const double g = static_cast<double>(gate_cols(cell, cfg));
  const double recurrence = cell == Cell::IndRnn ? 0.0 : g;
  return 6.0 * n * h * (g + recurrence + static_cast<double>(cfg.vocab));
}

/// The counters both sides report for a training-step benchmark, so their JSON reads alike:
/// tokens_per_s, gflops (step_gemm_flops per second), gflop_per_step and threads.
inline void report_step_counters(benchmark::State& state, Cell cell, const TrainConfig& cfg, int threads) {
  const double tokens = static_cast<double>(cfg.batch * cfg.steps);
  state.counters["tokens_per_s"] = benchmark::Counter(tokens, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["gflops"] =
      benchmark::Counter(step_gemm_flops(cell, cfg) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["gflop_per_step"] = step_gemm_flops(cell, cfg) * 1e-9;
  state.counters["threads"] = threads;
}

/// Threads for matrix products: env TAPEGRAD_THREADS (default 1).
inline int env_threads() {
  const char* s = std::getenv("TAPEGRAD_THREADS");
  const int n = s != nullptr ? std::atoi(s) : 1;
  return n >= 1 ? n : 1;
}

/// Input ids and next-token targets, both time-major: entry t * B + b is step t, batch row b.
struct TokenData {
  std::vector<std::int32_t> inputs, targets;
  explicit TokenData(const TrainConfig& cfg) {
    std::mt19937 rng(42);
    std::uniform_int_distribution<std::int32_t> token(0, static_cast<std::int32_t>(cfg.vocab - 1));
    const auto n = static_cast<std::size_t>(cfg.batch * cfg.steps);
    const auto b = static_cast<std::size_t>(cfg.batch);
    std::vector<std::int32_t> stream(n + b);  // T + 1 steps; targets are the following step
    for (auto& id : stream) id = token(rng);
    inputs.assign(stream.begin(), stream.begin() + static_cast<std::ptrdiff_t>(n));
    targets.assign(stream.begin() + static_cast<std::ptrdiff_t>(b), stream.end());
  }
};

/// SGD step size: 0.05 per token, so the summed loss's gradients keep values sane over
/// thousands of benchmark iterations (a NaN would change the timing).
inline float sgd_lr(const TrainConfig& cfg) { return 0.05F / static_cast<float>(cfg.batch * cfg.steps); }

}  // namespace tapegrad_bench
