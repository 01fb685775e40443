// The LibTorch peer of bench_train_step: the same model, data, configs and step (see
// bench/train_step_config.h), float32 on the CPU, two ways:
//
//   BM_TorchStep/<rnn|lstm|gru|indrnn>/<config>/unrolled  by hand with torch ops, written the fast
//       way a careful user would: one embedding lookup of all T*B ids, one addmm for the input
//       projection of all steps (unbound into per-step views), per step addmm(xp_t, h, W_hh) + tanh
//       (RNN), the LSTM gate math (chunk into i, f, g, o), the GRU's (addmm(b_hh, h, W_hh) chunked
//       into r, z, n) or the IndRNN's relu(xp_t + u * h) (u [1 x H], no recurrence GEMM), one cat
//       of the hidden states, one addmm head, one cross_entropy (sum), backward, SGD
//       p -= lr * grad under NoGradGuard.
//   BM_TorchStep/<rnn|lstm>/<config>/table  the same hand-written step with the embedding folded
//       into the input projection, as bench_train_step's `table` path: table = addmm(b, E, W_ih)
//       [K x G], then one embedding lookup of all T*B ids into it (exact algebra; the input GEMM
//       has K rows instead of T*B).
//   BM_TorchStep/<rnn|lstm|gru>/<config>/nn  torch::nn::Embedding + torch::nn::RNN (tanh),
//       torch::nn::LSTM or torch::nn::GRU over [T x B x H] + torch::nn::Linear, cross_entropy
//       (sum), torch::optim::SGD. nn::RNN/LSTM carry two biases (b_ih, b_hh) where the
//       hand-written model has one; the GEMM work is the same.
//
// Threads: env TAPEGRAD_THREADS (default 1) goes to torch::set_num_threads and to OpenBLAS
// (openblas_set_num_threads, found with dlsym: OpenBLAS's pthread build keeps its own pool).
// Debian's OpenBLAS 0.3.21 does not recognise every AVX-512 CPU and then falls back to its slow
// SSE3 "Prescott" kernels: run with OPENBLAS_CORETYPE=SkylakeX there (scripts/bench-compare.sh
// does); main() warns otherwise.
// The JSON context records which libblas.so.3 the process mapped, the OpenBLAS config, and
// whether oneDNN (MKLDNN) is enabled; main() also prints them to stderr.
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <torch/torch.h>

#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "train_step_config.h"

namespace {

using tapegrad_bench::Cell;
using tapegrad_bench::TrainConfig;

// ---- environment ---------------------------------------------------------------------------

int set_threads(int n) {
  torch::set_num_threads(n);
  using SetFn = void (*)(int);
  if (auto* fn = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(n);
  return torch::get_num_threads();
}

int openblas_threads() {
  using GetFn = int (*)();
  auto* fn = reinterpret_cast<GetFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return fn != nullptr ? fn() : -1;
}

std::string openblas_config() {
  using ConfigFn = char* (*)();
  auto* fn = reinterpret_cast<ConfigFn>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  return fn != nullptr ? std::string(fn()) : std::string("not loaded");
}

/// The BLAS shared objects this process mapped (resolved paths from /proc/self/maps).
std::string mapped_blas() {
  std::ifstream maps("/proc/self/maps");
  std::string line, found;
  while (std::getline(maps, line)) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    if ((path.find("blas") != std::string::npos || path.find("dnnl") != std::string::npos) &&
        found.find(path) == std::string::npos) {
      found += (found.empty() ? "" : " ") + path;
    }
  }
  return found;
}

// ---- data ----------------------------------------------------------------------------------

struct TorchData {
  torch::Tensor inputs, targets;  // int64, [T*B], time-major
  explicit TorchData(const TrainConfig& cfg) {
    const tapegrad_bench::TokenData d(cfg);
    inputs = torch::tensor(std::vector<std::int64_t>(d.inputs.begin(), d.inputs.end()), torch::kLong);
    targets = torch::tensor(std::vector<std::int64_t>(d.targets.begin(), d.targets.end()), torch::kLong);
  }
};

torch::Tensor uniform(std::int64_t rows, std::int64_t cols, double scale) {
  return (torch::rand({rows, cols}) * 2 - 1) * scale;
}

// ---- hand-written model ---------------------------------------------------------------------

struct Unrolled {
  Cell cell;
  TrainConfig cfg;
  bool table;                         // fold the embedding into the input projection
  std::vector<torch::Tensor> params;  // E, W_ih, b, W_hh (IndRNN: u [1 x H]), V, c (GRU: and b_hh)
  Unrolled(Cell c, const TrainConfig& config, bool fold_table) : cell(c), cfg(config), table(fold_table) {
    const std::int64_t g = tapegrad_bench::gate_cols(cell, cfg);
    const double s = 1.0 / std::sqrt(static_cast<double>(cfg.hidden));
    const std::int64_t recurrent_rows = cell == Cell::IndRnn ? 1 : cfg.hidden;
    params = {uniform(cfg.vocab, cfg.hidden, 0.1), uniform(cfg.hidden, g, s),         torch::zeros({g}),
              uniform(recurrent_rows, g, s),       uniform(cfg.hidden, cfg.vocab, s), torch::zeros({cfg.vocab})};
    if (cell == Cell::Gru) params.push_back(torch::zeros({g}));
    for (auto& p : params) p.set_requires_grad(true);
  }
  torch::Tensor loss(const TorchData& data) const {
    const auto& [E, W_ih, b, V, c_out] = std::tie(params[0], params[1], params[2], params[4], params[5]);
    const std::int64_t batch = cfg.batch;
    const torch::Tensor xp = table ? torch::embedding(torch::addmm(b, E, W_ih), data.inputs)   // [K x G] rows
                                   : torch::addmm(b, torch::embedding(E, data.inputs), W_ih);  // [T*B x G]
    // One unbind into per-step views: its backward is one stack. A narrow per step would cost a
    // zero-filled [T*B x G] gradient per step in backward (quadratic in T).
    const std::vector<torch::Tensor> xp_steps = xp.view({cfg.steps, batch, xp.size(1)}).unbind(0);
    torch::Tensor h = torch::zeros({batch, cfg.hidden});
    torch::Tensor c = torch::zeros({batch, cfg.hidden});
    std::vector<torch::Tensor> hs;
    hs.reserve(static_cast<std::size_t>(cfg.steps));
    for (std::int64_t t = 0; t < cfg.steps; ++t) {
      h = next_h(xp_steps[static_cast<std::size_t>(t)], h, c);
      hs.push_back(h);
    }
    const torch::Tensor logits = torch::addmm(c_out, torch::cat(hs, 0), V);  // [T*B x K]
    return torch::nn::functional::cross_entropy(
        logits, data.targets, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  }
  // One step of the recurrence from h (and the LSTM's c, updated in place).
  torch::Tensor next_h(const torch::Tensor& xp_t, const torch::Tensor& h, torch::Tensor& c) const {
    const torch::Tensor& W_hh = params[3];
    switch (cell) {
      case Cell::Rnn:
        return torch::tanh(torch::addmm(xp_t, h, W_hh));
      case Cell::Lstm: {
        const auto gates = torch::addmm(xp_t, h, W_hh).chunk(4, 1);
        c = torch::sigmoid(gates[1]) * c + torch::sigmoid(gates[0]) * torch::tanh(gates[2]);
        return torch::sigmoid(gates[3]) * torch::tanh(c);
      }
      case Cell::Gru: {  // nn::GruCell's equations: r scales the recurrent part of the candidate
        const auto x = xp_t.chunk(3, 1);
        const auto g = torch::addmm(params[6], h, W_hh).chunk(3, 1);
        const torch::Tensor r = torch::sigmoid(x[0] + g[0]);
        const torch::Tensor z = torch::sigmoid(x[1] + g[1]);
        return (1 - z) * torch::tanh(x[2] + r * g[2]) + z * h;
      }
      case Cell::IndRnn:
        return torch::relu(xp_t + W_hh * h);
    }
    return h;
  }
  void step(const TorchData& data, float lr) {
    const torch::Tensor l = loss(data);
    l.backward();
    torch::NoGradGuard no_grad;
    for (auto& p : params) {
      p.sub_(p.grad(), lr);
      p.mutable_grad().zero_();
    }
    benchmark::DoNotOptimize(l.item<float>());
  }
};

// ---- torch::nn model -------------------------------------------------------------------------

struct NnModel {
  Cell cell;
  TrainConfig cfg;
  torch::nn::Embedding emb;
  torch::nn::RNN rnn{nullptr};
  torch::nn::LSTM lstm{nullptr};
  torch::nn::GRU gru{nullptr};
  torch::nn::Linear head;
  std::unique_ptr<torch::optim::SGD> opt;
  NnModel(Cell c, const TrainConfig& config, float lr)
      : cell(c), cfg(config), emb(cfg.vocab, cfg.hidden), head(cfg.hidden, cfg.vocab) {
    std::vector<torch::Tensor> params = emb->parameters();
    if (cell == Cell::Rnn) {
      rnn = torch::nn::RNN(torch::nn::RNNOptions(cfg.hidden, cfg.hidden).nonlinearity(torch::kTanh));
      for (auto& p : rnn->parameters()) params.push_back(p);
    } else if (cell == Cell::Lstm) {
      lstm = torch::nn::LSTM(torch::nn::LSTMOptions(cfg.hidden, cfg.hidden));
      for (auto& p : lstm->parameters()) params.push_back(p);
    } else {
      gru = torch::nn::GRU(torch::nn::GRUOptions(cfg.hidden, cfg.hidden));
      for (auto& p : gru->parameters()) params.push_back(p);
    }
    for (auto& p : head->parameters()) params.push_back(p);
    opt = std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(lr));
  }
  void step(const TorchData& data) {
    opt->zero_grad();
    const torch::Tensor x = emb(data.inputs.view({cfg.steps, cfg.batch}));  // [T x B x H]
    const torch::Tensor out = cell == Cell::Rnn    ? std::get<0>(rnn->forward(x))
                              : cell == Cell::Lstm ? std::get<0>(lstm->forward(x))
                                                   : std::get<0>(gru->forward(x));
    const torch::Tensor logits = head(out.reshape({cfg.steps * cfg.batch, cfg.hidden}));
    const torch::Tensor l = torch::nn::functional::cross_entropy(
        logits, data.targets, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    l.backward();
    opt->step();
    benchmark::DoNotOptimize(l.item<float>());
  }
};

// ---- benchmarks ------------------------------------------------------------------------------

void report(benchmark::State& state, Cell cell, const TrainConfig& cfg, int threads) {
  tapegrad_bench::report_step_counters(state, cell, cfg, threads);
  state.SetLabel("openblas_threads=" + std::to_string(openblas_threads()));
}

void BM_TorchUnrolled(benchmark::State& state, Cell cell, TrainConfig cfg, bool table) {
  const int threads = set_threads(tapegrad_bench::env_threads());
  torch::manual_seed(1);
  Unrolled model(cell, cfg, table);
  const TorchData data(cfg);
  const float lr = tapegrad_bench::sgd_lr(cfg);
  model.step(data, lr);  // untimed, as in bench_train_step: the first step allocates
  for (auto _ : state) model.step(data, lr);
  report(state, cell, cfg, threads);
}

void BM_TorchNn(benchmark::State& state, Cell cell, TrainConfig cfg) {
  const int threads = set_threads(tapegrad_bench::env_threads());
  torch::manual_seed(1);
  NnModel model(cell, cfg, tapegrad_bench::sgd_lr(cfg));
  const TorchData data(cfg);
  model.step(data);  // untimed, as in bench_train_step: the first step allocates
  for (auto _ : state) model.step(data);
  report(state, cell, cfg, threads);
}

void register_all() {
  for (const Cell cell : {Cell::Rnn, Cell::Lstm, Cell::Gru, Cell::IndRnn}) {
    for (const TrainConfig& cfg : tapegrad_bench::kTrainConfigs) {
      const std::string base = std::string("BM_TorchStep/") + tapegrad_bench::cell_name(cell) + "/" + cfg.name + "/";
      benchmark::RegisterBenchmark((base + "unrolled").c_str(), BM_TorchUnrolled, cell, cfg, false)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark((base + "table").c_str(), BM_TorchUnrolled, cell, cfg, true)
          ->Unit(benchmark::kMillisecond);
      if (cell != Cell::IndRnn) {  // torch::nn has no IndRNN
        benchmark::RegisterBenchmark((base + "nn").c_str(), BM_TorchNn, cell, cfg)->Unit(benchmark::kMillisecond);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = set_threads(tapegrad_bench::env_threads());
  const std::string blas = mapped_blas();
  const std::string dnnl = at::globalContext().userEnabledMkldnn() ? "enabled" : "disabled";
  std::cerr << "bench_torch_step: libtorch " << TORCH_VERSION << ", threads " << threads << ", openblas threads "
            << openblas_threads() << "\n  mapped: " << blas << "\n  openblas: " << openblas_config()
            << "\n  mkldnn (oneDNN) " << (at::hasMKLDNN() ? "built" : "not built") << ", " << dnnl << "\n";
  if (openblas_config().find("Prescott") != std::string::npos && __builtin_cpu_supports("avx512f")) {
    std::cerr << "bench_torch_step: WARNING: OpenBLAS runs its SSE3 Prescott kernels on an AVX-512 CPU; set "
                 "OPENBLAS_CORETYPE=SkylakeX for the peer's best setup\n";
  }
  benchmark::AddCustomContext("torch_version", TORCH_VERSION);
  benchmark::AddCustomContext("torch_threads", std::to_string(threads));
  benchmark::AddCustomContext("torch_mapped_blas", blas);
  benchmark::AddCustomContext("openblas_config", openblas_config());
  benchmark::AddCustomContext("torch_mkldnn", std::string(at::hasMKLDNN() ? "built, " : "not built, ") + dnnl);
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
