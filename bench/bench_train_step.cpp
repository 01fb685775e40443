// One training step of a recurrent language model (bench/train_step_config.h: model, configs,
// FLOP formula), on the tape, for a vanilla tanh RNN and an LSTM, two ways:
//
//   BM_TrainStep/<rnn|lstm>/<config>/fused     the fastest Tapegrad path: ONE gather_rows of all
//       T*B ids, ONE affine for the input projection of all steps (time-major [T*B x G]), the
//       fused recurrence (rnn_sequence / lstm_sequence), ONE affine head over all T*B rows, ONE
//       softmax_cross_entropy (Sum), backward, SGD.
//   BM_TrainStep/<rnn|lstm>/<config>/unrolled  op by op per time step, as a user writes it by
//       hand: gather, affine(x_t, W_ih, b) + matmul(h, W_hh), gate math (LSTM as nn::LstmCell),
//       head and cross-entropy per step, losses summed.
//   BM_TrainStep/<rnn|lstm|gru|indrnn>/<config>/cell      the same model through the public cell
//       API, as a user writes a custom cell (bench/user_cells.h): Cell::forward_tokens over the
//       split step project_input + recur, the recur step's elementwise math in ONE pointwise call
//       (its backward derived, none written by hand), then the head and cross-entropy as `fused`.
//   BM_TrainStep/<rnn|lstm|gru|indrnn>/<config>/cell_ops  the same cell with that math op by op.
//   The GRU also has `fused` and `table` (gru_sequence, gru_sequence_gather); the IndRNN's `fused`
//   is the hand-written op of examples/indrnn/indrnn_sequence.h, as a user fuses a cell by hand.
//
// Each iteration is a full, realistic step: tape.clear() (buffers reused), parameters recorded
// as leaves, backward, SGD update p -= lr * grad and zero_grad for all six parameters.
// Threads for matrix products: env TAPEGRAD_THREADS (default 1), shown in the `threads`
// counter; env TAPEGRAD_MIN_PARALLEL_WORK overrides the smallest product that may use them
// (tapegrad::set_min_parallel_work), shown in `min_parallel_work`; env TAPEGRAD_MIN_BLAS_WORK the smallest
// product that goes to OpenBLAS in a TAPEGRAD_OPENBLAS build (tapegrad::set_min_blas_work), shown in
// `min_blas_work` (0: none does); env
// TAPEGRAD_KEEP_FREED_MEMORY=1 calls tapegrad::keep_freed_memory(), shown in `keep_freed_memory`; env
// TAPEGRAD_SMALL_PRODUCTS=0 keeps step-shaped products out of small_gemm, shown in `small_products`; env
// TAPEGRAD_BATCHED_WEIGHT_GRADS=0 adds each weight gradient at its step, shown in `batched_weight_grads`. Counters:
// tokens_per_s; gflop_per_step (GEMM GFLOPs of one step, formula in train_step_config.h); gflops (that per second of
// the benchmark thread's CPU time, as Google Benchmark computes rates); loss_per_token (a sanity check: log K = 4.2 at
// the start, falling as the model learns the fixed batch). Wall-clock time is `real_time` in the JSON; `cpu_time`
// counts the benchmark thread only, not the OpenMP workers of a 2-thread product, so
// scripts/bench-compare.sh uses real_time.
#include <benchmark/benchmark.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <tapegrad/kernels/blas.h>
#include <tapegrad/tapegrad.h>

#include "indrnn_sequence.h"  // examples/indrnn
#include "tapegrad_env.h"
#include "train_step_config.h"
#include "user_cells.h"

namespace {

using tapegrad::Index;
using tapegrad::Matrix;
using tapegrad::Parameter;
using tapegrad::Tape;
using tapegrad::Var;
using tapegrad_bench::Cell;
using tapegrad_bench::TrainConfig;

struct Model {
  Cell cell;
  Parameter<float> E, W_ih, b, W_hh, V, c;
  Parameter<float> b_hh;  // the GRU's recurrent bias; not part of the other models
  Model(Cell cell_, const TrainConfig& cfg)
      : cell(cell_),
        E(Matrix<float>::Random(cfg.vocab, cfg.hidden) * 0.1F, "E"),
        W_ih(Matrix<float>::Random(cfg.hidden, tapegrad_bench::gate_cols(cell, cfg)) * scale(cfg), "W_ih"),
        b(Matrix<float>::Zero(1, tapegrad_bench::gate_cols(cell, cfg)), "b"),
        W_hh(Matrix<float>::Random(cell == Cell::IndRnn ? 1 : cfg.hidden, tapegrad_bench::gate_cols(cell, cfg)) *
                 scale(cfg),
             "W_hh"),  // the IndRNN's u [1 x H]
        V(Matrix<float>::Random(cfg.hidden, cfg.vocab) * scale(cfg), "V"),
        c(Matrix<float>::Zero(1, cfg.vocab), "c"),
        b_hh(Matrix<float>::Zero(1, tapegrad_bench::gate_cols(cell, cfg)), "b_hh") {}
  static float scale(const TrainConfig& cfg) { return 1.0F / std::sqrt(static_cast<float>(cfg.hidden)); }
  // The first parameter whose gradient is all zeros or not finite, or nullptr. A step that
  // leaves a parameter without gradient does less work than training and must not be timed
  // (it would look faster than a real step).
  std::vector<Parameter<float>*> parameters() {
    std::vector<Parameter<float>*> all{&E, &W_ih, &b, &W_hh, &V, &c};
    if (cell == Cell::Gru) all.push_back(&b_hh);
    return all;
  }
  const char* parameter_without_gradient() {
    for (const Parameter<float>* p : parameters()) {
      if (!p->grad.allFinite() || p->grad.isZero(0.0F)) return p->full_name().c_str();
    }
    return nullptr;
  }
  void sgd(float lr) {
    for (Parameter<float>* p : parameters()) {
      p->value -= lr * p->grad;
      p->zero_grad();
    }
  }
};

struct Leaves {
  Var<float> E, W_ih, b, W_hh, V, c;
  Var<float> b_hh;  // GRU only
  Leaves(Tape<float>& tape, Model& m)
      : E(tape.leaf(m.E)),
        W_ih(tape.leaf(m.W_ih)),
        b(tape.leaf(m.b)),
        W_hh(tape.leaf(m.W_hh)),
        V(tape.leaf(m.V)),
        c(tape.leaf(m.c)),
        b_hh(m.cell == Cell::Gru ? tape.leaf(m.b_hh) : Var<float>{}) {}
};

Var<float> fused_loss(Cell cell, const TrainConfig& /*cfg*/, Tape<float>& tape, const Leaves& p,
                      const tapegrad_bench::TokenData& data, const Matrix<float>& zeros) {
  const Var<float> x = tapegrad::gather_rows(p.E, std::span<const std::int32_t>(data.inputs));
  const Var<float> xp = tapegrad::affine(x, p.W_ih, p.b);  // [T*B x G], all steps at once
  const Var<float> h0 = tape.constant(zeros);
  const Var<float> hs = cell == Cell::Rnn      ? tapegrad::rnn_sequence(xp, h0, p.W_hh)
                        : cell == Cell::Gru    ? tapegrad::gru_sequence(xp, h0, p.W_hh, p.b_hh)
                        : cell == Cell::IndRnn ? example::indrnn_sequence(xp, p.W_hh, h0)  // W_hh is u [1 x H]
                                               : tapegrad::lstm_sequence(xp, h0, tape.constant(zeros), p.W_hh).h;
  const Var<float> logits = tapegrad::affine(hs, p.V, p.c);  // [T*B x K]
  return tapegrad::softmax_cross_entropy(logits, std::span<const std::int32_t>(data.targets), tapegrad::Reduction::Sum);
}

// The same model with the embedding folded into the input projection: table = E W_ih + b is
// [K x G], and the input projection of token id is its row (exact algebra: x_t W_ih + b with
// x_t = E[id]). The input GEMM shrinks from T*B rows to K; the gradients of E, W_ih and b flow
// back through the table. The recurrences read the table by id (rnn_sequence_gather,
// lstm_sequence_gather with h and c as two outputs).
Var<float> table_loss(Cell cell, const TrainConfig& /*cfg*/, Tape<float>& tape, const Leaves& p,
                      const tapegrad_bench::TokenData& data, const Matrix<float>& zeros) {
  const Var<float> table = tapegrad::affine(p.E, p.W_ih, p.b);  // [K x G]
  const std::span<const std::int32_t> ids(data.inputs);
  const Var<float> h0 = tape.constant(zeros);
  const Var<float> hs = cell == Cell::Rnn ? tapegrad::rnn_sequence_gather(table, ids, h0, p.W_hh)
                        : cell == Cell::Gru
                            ? tapegrad::gru_sequence_gather(table, ids, h0, p.W_hh, p.b_hh)
                            : tapegrad::lstm_sequence_gather(table, ids, h0, tape.constant(zeros), p.W_hh).h;
  const Var<float> logits = tapegrad::affine(hs, p.V, p.c);  // [T*B x K]
  return tapegrad::softmax_cross_entropy(logits, std::span<const std::int32_t>(data.targets), tapegrad::Reduction::Sum);
}

Var<float> unrolled_loss(Cell cell, const TrainConfig& cfg, Tape<float>& tape, const Leaves& p,
                         const tapegrad_bench::TokenData& data, const Matrix<float>& zeros) {
  using namespace tapegrad;  // NOLINT: the ops read like the equations
  const Index hidden = cfg.hidden;
  const auto batch = static_cast<std::size_t>(cfg.batch);
  Var<float> h = tape.constant(zeros);
  Var<float> c = cell == Cell::Lstm ? tape.constant(zeros) : Var<float>{};
  Var<float> loss;
  for (std::int64_t t = 0; t < cfg.steps; ++t) {
    const std::span<const std::int32_t> in(data.inputs.data() + static_cast<std::size_t>(t) * batch, batch);
    const std::span<const std::int32_t> target(data.targets.data() + static_cast<std::size_t>(t) * batch, batch);
    const Var<float> a = affine(gather_rows(p.E, in), p.W_ih, p.b) + matmul(h, p.W_hh);
    if (cell == Cell::Rnn) {
      h = tanh(a);
    } else {  // as nn::LstmCell: one sigmoid over all four blocks, g from a tanh of its block
      const Var<float> gates = sigmoid(a);
      const Var<float> g = tanh(slice_cols(a, 2 * hidden, hidden));
      c = slice_cols(gates, hidden, hidden) * c + slice_cols(gates, 0, hidden) * g;
      h = slice_cols(gates, 3 * hidden, hidden) * tanh(c);
    }
    const Var<float> step_loss = softmax_cross_entropy(affine(h, p.V, p.c), target, Reduction::Sum);
    loss = t == 0 ? step_loss : loss + step_loss;
  }
  return loss;
}

// The model through the public cell API with a user's cell (user_cells.h): its weights are the
// model's leaves (bind checks their shapes), its sequence Cell::forward_tokens, which projects the
// inputs of all steps in one product and runs the user's recur step by step.
template <class UserCell>
Var<float> cell_loss(Cell cell, const TrainConfig& cfg, Tape<float>& tape, const Leaves& p,
                     const tapegrad_bench::TokenData& data, const Matrix<float>& zeros) {
  static std::optional<UserCell> user;  // built once per config, outside the timed steps' cost
  static std::mt19937_64 rng(0);        // the initial values are never read: the model's leaves are bound
  if (!user || user->hidden_size() != cfg.hidden) user.emplace(tapegrad::nn::CellOptions{cfg.hidden, cfg.hidden}, rng);
  std::vector<Var<float>> weights{p.W_ih, p.W_hh, p.b};
  if (cell == Cell::Gru) weights = {p.W_ih, p.W_hh, p.b, p.b_hh};
  tapegrad::nn::State<float> s0{{tape.constant(zeros)}};
  if (cell == Cell::Lstm) s0.tensors.push_back(tape.constant(zeros));
  const tapegrad::nn::SequenceResult<float> r =
      user->forward_tokens(user->bind(weights), p.E, std::span<const std::int32_t>(data.inputs), s0);
  const Var<float> logits = tapegrad::affine(r.outputs, p.V, p.c);  // [T*B x K]
  return tapegrad::softmax_cross_entropy(logits, std::span<const std::int32_t>(data.targets), tapegrad::Reduction::Sum);
}

using LossFn = Var<float> (*)(Cell, const TrainConfig&, Tape<float>&, const Leaves&, const tapegrad_bench::TokenData&,
                              const Matrix<float>&);

void BM_TrainStep(benchmark::State& state, Cell cell, TrainConfig cfg, LossFn loss_fn, const char* kind) {
  const int threads = tapegrad::set_num_threads(tapegrad_bench::env_threads());
  const std::int64_t min_parallel_work = tapegrad_bench::env_min_parallel_work();
  const std::int64_t min_blas_work = tapegrad_bench::env_min_blas_work();
  const bool keep_freed_memory = tapegrad_bench::env_keep_freed_memory();
  const bool small_products = tapegrad_bench::env_small_products();
  const bool batched_weight_grads = tapegrad_bench::env_batched_weight_grads();
  Model model(cell, cfg);
  const tapegrad_bench::TokenData data(cfg);
  const Matrix<float> zeros = Matrix<float>::Zero(cfg.batch, cfg.hidden);
  const float lr = tapegrad_bench::sgd_lr(cfg);
  Tape<float> tape;
  const auto step = [&] {
    tape.clear();
    const Leaves leaves(tape, model);
    const Var<float> loss = loss_fn(cell, cfg, tape, leaves, data, zeros);
    tape.backward(loss);
    return loss;
  };
  // One untimed step first: it sizes the tape's buffers (a cold step of the large configs is
  // slower, and with --benchmark_min_time below one step Google Benchmark would time only that
  // one), and its gradients show that the step trains.
  step();
  if (const char* name = model.parameter_without_gradient()) {
    state.SkipWithError((std::string("parameter ") + name + " got no finite nonzero gradient").c_str());
    return;
  }
  model.sgd(lr);
  float last_loss = 0.0F;
  for (auto _ : state) {
    const Var<float> loss = step();
    model.sgd(lr);
    last_loss = loss.item();
    benchmark::DoNotOptimize(last_loss);
  }
  tapegrad_bench::report_step_counters(state, cell, cfg, threads);
  state.counters["min_parallel_work"] = static_cast<double>(min_parallel_work);
  // 0 when no product goes to OpenBLAS (a build without TAPEGRAD_OPENBLAS, or its AVX2 kernels).
  state.counters["min_blas_work"] =
      min_blas_work == tapegrad::kernels::kNoBlasWork ? 0.0 : static_cast<double>(min_blas_work);
  state.counters["keep_freed_memory"] = keep_freed_memory ? 1 : 0;
  state.counters["small_products"] = small_products ? 1 : 0;
  state.counters["batched_weight_grads"] = batched_weight_grads ? 1 : 0;
  state.counters["loss_per_token"] = static_cast<double>(last_loss) / static_cast<double>(cfg.batch * cfg.steps);
  state.SetLabel(kind);
}

bool register_all() {
  for (const Cell cell : {Cell::Rnn, Cell::Lstm}) {
    for (const TrainConfig& cfg : tapegrad_bench::kTrainConfigs) {
      const std::string base = std::string("BM_TrainStep/") + tapegrad_bench::cell_name(cell) + "/" + cfg.name + "/";
      benchmark::RegisterBenchmark((base + "fused").c_str(), BM_TrainStep, cell, cfg, &fused_loss, "fused")
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark((base + "table").c_str(), BM_TrainStep, cell, cfg, &table_loss, "table")
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark((base + "unrolled").c_str(), BM_TrainStep, cell, cfg, &unrolled_loss, "unrolled")
          ->Unit(benchmark::kMillisecond);
    }
  }
  using tapegrad_bench::PointwiseIndRnn;
  using tapegrad_bench::UserGru;
  using tapegrad_bench::UserLstm;
  using tapegrad_bench::UserRnn;
  struct CellPaths {
    Cell cell;
    LossFn pointwise, ops;
  };
  const CellPaths cell_paths[] = {
      {Cell::Rnn, &cell_loss<UserRnn<true>>, &cell_loss<UserRnn<false>>},
      {Cell::Lstm, &cell_loss<UserLstm<true>>, &cell_loss<UserLstm<false>>},
      {Cell::Gru, &cell_loss<UserGru<true>>, &cell_loss<UserGru<false>>},
      {Cell::IndRnn, &cell_loss<PointwiseIndRnn>, &cell_loss<example::IndRnnCell<float>>},
  };
  for (const CellPaths& paths : cell_paths) {
    for (const TrainConfig& cfg : tapegrad_bench::kTrainConfigs) {
      const std::string base =
          std::string("BM_TrainStep/") + tapegrad_bench::cell_name(paths.cell) + "/" + cfg.name + "/";
      if (paths.cell == Cell::Gru || paths.cell == Cell::IndRnn) {
        benchmark::RegisterBenchmark((base + "fused").c_str(), BM_TrainStep, paths.cell, cfg, &fused_loss, "fused")
            ->Unit(benchmark::kMillisecond);
      }
      if (paths.cell == Cell::Gru) {
        benchmark::RegisterBenchmark((base + "table").c_str(), BM_TrainStep, paths.cell, cfg, &table_loss, "table")
            ->Unit(benchmark::kMillisecond);
      }
      benchmark::RegisterBenchmark((base + "cell").c_str(), BM_TrainStep, paths.cell, cfg, paths.pointwise, "cell")
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark((base + "cell_ops").c_str(), BM_TrainStep, paths.cell, cfg, paths.ops, "cell_ops")
          ->Unit(benchmark::kMillisecond);
    }
  }
  return true;
}

const bool registered = register_all();

}  // namespace
