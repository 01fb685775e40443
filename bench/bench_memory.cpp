// Time and peak memory of one LSTM language-model training step, plain vs recompute(sqrt T).
//
// Model (float32): embedding E [K x H], W_ih [H x 4H] + b [1 x 4H], W_hh [H x 4H] (gates i, f,
// g, o), head V [H x K] + c [1 x K]. One step: forward over T steps, summed cross-entropy,
// backward, SGD. Three modes, all with fused ops:
//   plain     : the whole sequence on one tape (x = gather_rows(E), xp = x W_ih + b,
//               lstm_sequence, the h columns, logits).
//   recompute : segments of k = ceil(sqrt T) steps, each one recompute() op that returns
//               {h_last, c_last, segment loss}; the main tape keeps only those, the scratch tape
//               one segment's activations at a time.
//   lean      : the whole sequence on one tape, nothing kept but what BPTT needs: the table
//               E W_ih + b [K x 4H], lstm_sequence_gather (gates, h, c), logits; backward with
//               release = true (aux tensors and inner gradients freed as the sweep passes).
//
// Memory, measured once per benchmark on a fresh tape (buffers allocated inside the step):
//   peak_rss_MB   : VmHWM after the step minus VmRSS before it (the kernel's peak-RSS counter
//                   is reset with "5" > /proc/self/clear_refs; malloc_trim first), i.e. the
//                   peak resident memory above the model (parameters and their gradients).
//   tape_MB       : bytes of values the tapes keep (tape_value_bytes of the main tape after
//                   forward + the scratch tape's peak); gradients are not counted.
//   needed_MB     : activations strictly needed for BPTT, T * B * (6 H + K) floats: per step the
//                   gates i, f, g, o, c_t and h_t ([B x 6H]; tanh(c_t) can be recomputed from
//                   c_t) and the head's probabilities [B x K] (the CE gradient is p - onehot);
//                   token ids are data, not activations.
//   peak_over_needed = peak_rss_MB / needed_MB.
// Run: bench_memory --benchmark_format=json > memory.json; plot_memory memory.json (see
// docs/memory.md) makes the table and docs/img/memory_scaling.svg.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <tapegrad/ops.h>
#include <tapegrad/recompute.h>
#include <tapegrad/tape.h>
#include <tapegrad/threading.h>

namespace {

using tapegrad::Matrix;
using tapegrad::Parameter;
using tapegrad::Tape;
using tapegrad::Var;
using F = float;

constexpr std::int64_t kBatch = 8;
constexpr std::int64_t kVocab = 65;

struct Model {
  Parameter<F> E, Wih, b, Whh, V, c;
  explicit Model(std::int64_t h)
      : E(Matrix<F>::Random(kVocab, h) * 0.1F, "E"),
        Wih(Matrix<F>::Random(h, 4 * h) * (1.0F / std::sqrt(static_cast<F>(h))), "W_ih"),
        b(Matrix<F>::Zero(1, 4 * h), "b"),
        Whh(Matrix<F>::Random(h, 4 * h) * (1.0F / std::sqrt(static_cast<F>(h))), "W_hh"),
        V(Matrix<F>::Random(h, kVocab) * 0.1F, "V"),
        c(Matrix<F>::Zero(1, kVocab), "c") {}
  std::vector<Parameter<F>*> params() { return {&E, &Wih, &b, &Whh, &V, &c}; }
  void sgd(F lr) {
    for (Parameter<F>* p : params()) {
      p->value -= lr * p->grad;
      p->zero_grad();
    }
  }
  std::size_t bytes() {  // values and gradients
    std::size_t n = 0;
    for (Parameter<F>* p : params()) n += 2 * static_cast<std::size_t>(p->value.size()) * sizeof(F);
    return n;
  }
};

struct Tokens {
  std::vector<std::int32_t> inputs, targets;  // time-major: entry t * B + b
  explicit Tokens(std::int64_t steps) {
    std::mt19937 rng(42);
    std::uniform_int_distribution<std::int32_t> token(0, kVocab - 1);
    std::vector<std::int32_t> stream(static_cast<std::size_t>((steps + 1) * kBatch));
    for (auto& id : stream) id = token(rng);
    inputs.assign(stream.begin(), stream.end() - kBatch);
    targets.assign(stream.begin() + kBatch, stream.end());
  }
};

// Steps [begin, begin + len) on `tape` from state (h0, c0): returns {h_last, c_last, summed CE}.
std::vector<Var<F>> lstm_steps(Tape<F>& tape, Model& m, const Tokens& tok, std::int64_t begin, std::int64_t len,
                               const Var<F>& h0, const Var<F>& c0) {
  const auto at = static_cast<std::size_t>(begin * kBatch);
  const auto n = static_cast<std::size_t>(len * kBatch);
  const std::span<const std::int32_t> in(tok.inputs.data() + at, n);
  const std::span<const std::int32_t> target(tok.targets.data() + at, n);
  const Var<F> x = tapegrad::gather_rows(tape.leaf(m.E), in);
  const Var<F> xp = tapegrad::affine(x, tape.leaf(m.Wih), tape.leaf(m.b));
  const tapegrad::LstmStates<F> hc = tapegrad::lstm_sequence(xp, h0, c0, tape.leaf(m.Whh));
  const Var<F>& hs = hc.h;
  const Var<F> loss = tapegrad::softmax_cross_entropy(tapegrad::affine(hs, tape.leaf(m.V), tape.leaf(m.c)), target,
                                                      tapegrad::Reduction::Sum);
  return {tapegrad::slice_rows(hc.h, (len - 1) * kBatch, kBatch),
          tapegrad::slice_rows(hc.c, (len - 1) * kBatch, kBatch), loss};
}

struct StepResult {
  F loss = 0;
  std::size_t tape_bytes = 0;  // main tape values after forward + scratch peak
};

// The lean plain step's loss: one lstm_sequence_gather over a [K x 4H] table, the head on h.
Var<F> lean_loss(Tape<F>& tape, Model& m, const Tokens& tok, const Var<F>& h0, const Var<F>& c0) {
  const Var<F> table = tapegrad::affine(tape.leaf(m.E), tape.leaf(m.Wih), tape.leaf(m.b));
  const tapegrad::LstmStates<F> s = tapegrad::lstm_sequence_gather(table, tok.inputs, h0, c0, tape.leaf(m.Whh));
  return tapegrad::softmax_cross_entropy(tapegrad::affine(s.h, tape.leaf(m.V), tape.leaf(m.c)), tok.targets,
                                         tapegrad::Reduction::Sum);
}

enum class Mode { Plain = 0, Recompute = 1, Lean = 2 };
const char* mode_name(Mode mode) {
  return mode == Mode::Plain ? "plain" : mode == Mode::Recompute ? "recompute" : "lean";
}

// One training step; k is the recompute segment length (used in Mode::Recompute only).
StepResult train_step(Tape<F>& tape, Model& m, const Tokens& tok, std::int64_t steps, Mode mode, std::int64_t k) {
  tape.clear();
  const std::int64_t h = m.Whh.value.rows();
  const Var<F> h0 = tape.constant(Matrix<F>::Zero(kBatch, h));
  const Var<F> c0 = tape.constant(Matrix<F>::Zero(kBatch, h));
  Var<F> loss;
  tapegrad::reset_recompute_stats<F>();
  if (mode == Mode::Plain) {
    loss = lstm_steps(tape, m, tok, 0, steps, h0, c0)[2];
  } else if (mode == Mode::Lean) {
    loss = lean_loss(tape, m, tok, h0, c0);
  } else {
    Var<F> hh = h0, cc = c0;
    for (std::int64_t begin = 0; begin < steps; begin += k) {
      const std::int64_t len = std::min(k, steps - begin);
      const std::vector<Var<F>> out =
          tapegrad::recompute<F>({hh, cc}, [&m, &tok, begin, len](Tape<F>& sub, std::span<const Var<F>> in) {
            return lstm_steps(sub, m, tok, begin, len, in[0], in[1]);
          });
      hh = out[0];
      cc = out[1];
      loss = loss.empty() ? out[2] : tapegrad::add(loss, out[2]);
    }
  }
  StepResult r;
  r.tape_bytes = tapegrad::tape_value_bytes(tape);
  tape.backward(loss, tapegrad::BackwardOptions{.release = mode == Mode::Lean});
  r.tape_bytes += tapegrad::recompute_stats<F>().scratch_peak_bytes;
  r.loss = loss.item();
  m.sgd(0.05F / static_cast<F>(steps * kBatch));
  return r;
}

/// Threads for matrix products: env TAPEGRAD_THREADS (default 1).
int env_threads() {
  const char* s = std::getenv("TAPEGRAD_THREADS");
  const int n = s != nullptr ? std::atoi(s) : 1;
  return n >= 1 ? n : 1;
}

// kB fields of /proc/self/status ("VmRSS", "VmHWM").
double status_mb(const std::string& field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) / 1024.0;
  }
  return -1.0;
}

struct MemoryResult {
  double peak_rss_mb = -1.0;
  double tape_mb = 0.0;
};

// One step on a fresh tape with every scratch buffer released first: the growth of the
// resident set during the step is the step's own memory.
MemoryResult measure_memory(Model& m, const Tokens& tok, std::int64_t steps, Mode mode, std::int64_t k) {
  tapegrad::release_recompute_scratch<F>();
  auto tape = std::make_unique<Tape<F>>();
  malloc_trim(0);
  const double before = status_mb("VmRSS");
  bool reset = false;
  {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";
    clear.flush();
    reset = static_cast<bool>(clear);
  }
  const StepResult r = train_step(*tape, m, tok, steps, mode, k);
  MemoryResult out;
  if (reset) out.peak_rss_mb = status_mb("VmHWM") - before;
  out.tape_mb = static_cast<double>(r.tape_bytes) / (1024.0 * 1024.0);
  tape.reset();
  tapegrad::release_recompute_scratch<F>();
  return out;
}

// args: T, H, mode (0 plain, 1 recompute with segments of ceil(sqrt T), 2 lean).
void BM_LstmMemory(benchmark::State& state) {
  tapegrad::set_num_threads(env_threads());
  const std::int64_t steps = state.range(0);
  const std::int64_t h = state.range(1);
  const auto mode = static_cast<Mode>(state.range(2));
  const std::int64_t k =
      mode == Mode::Recompute ? static_cast<std::int64_t>(std::ceil(std::sqrt(static_cast<double>(steps)))) : 0;
  Model m(h);
  const Tokens tok(steps);
  const MemoryResult mem = measure_memory(m, tok, steps, mode, k);
  Tape<F> tape;
  for (auto _ : state) {
    benchmark::DoNotOptimize(train_step(tape, m, tok, steps, mode, k).loss);
  }
  const double needed_mb = static_cast<double>(steps * kBatch * (6 * h + kVocab)) * sizeof(F) / (1024.0 * 1024.0);
  state.counters["T"] = static_cast<double>(steps);
  state.counters["H"] = static_cast<double>(h);
  state.counters["k"] = static_cast<double>(k);
  state.counters["peak_rss_MB"] = mem.peak_rss_mb;
  state.counters["tape_MB"] = mem.tape_mb;
  state.counters["needed_MB"] = needed_mb;
  state.counters["model_MB"] = static_cast<double>(m.bytes()) / (1024.0 * 1024.0);
  state.counters["peak_over_needed"] = mem.peak_rss_mb / needed_mb;
  state.counters["threads"] = static_cast<double>(tapegrad::num_threads());
  state.SetLabel(mode_name(mode));
}

void memory_args(benchmark::internal::Benchmark* b) {
  for (int mode : {0, 1, 2}) {
    for (std::int64_t t : {100, 1000, 10000}) b->Args({t, 256, mode});
    for (std::int64_t h : {64, 128, 512, 1024}) b->Args({100, h, mode});
  }
}

}  // namespace

BENCHMARK(BM_LstmMemory)->ArgNames({"T", "H", "mode"})->Apply(memory_args)->Unit(benchmark::kMillisecond);
