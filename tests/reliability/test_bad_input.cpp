// The bad-input table: one row per misuse of the public API, with the typed error it must raise
// and the words its message must contain. After every error the test checks that nothing was
// damaged: the model's parameter values and gradients are bit-for-bit as before, the checkpoint
// files on disk are byte-for-byte as before (and no stray file appeared), and the same tape and
// model still work: a valid op and backward on them give closed-form gradients.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <tapegrad/nn/checkpoint.h>
#include <tapegrad/nn/clip.h>
#include <tapegrad/nn/linear.h>
#include <tapegrad/nn/loss.h>
#include <tapegrad/nn/lstm_cell.h>
#include <tapegrad/nn/optim.h>
#include <tapegrad/nn/tbptt.h>
#include <tapegrad/nn/unroll.h>
#include <tapegrad/ops.h>
#include <tapegrad/window.h>

#include "../support/file_bytes.h"
#include "../support/test_names.h"
#include "../support/test_support.h"

using M = tg::Matrix<double>;
using V = tg::Var<double>;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

/// An LSTM (in 3, hidden 4) with a linear head: the model every row must leave untouched.
struct Model : nn::Module<double> {
  std::mt19937_64 rng{7};
  nn::LstmCell<double> lstm{{.input_size = 3, .hidden_size = 4}, rng};
  nn::Linear<double> head{{.input_size = 4, .output_size = 2}, rng};
  void visit_parameters(const nn::ParameterVisitor<double>& v) override {
    v.child("lstm", lstm);
    v.child("head", head);
  }
};

using tapegrad::testing::read_bytes;
using tapegrad::testing::safetensors_bytes;
using tapegrad::testing::write_bytes;

/// What every row gets: a tape, the model (non-zero values and gradients), an Adam optimizer
/// over it, and a directory of checkpoint files (one valid, the others broken in one way each).
struct Fixture {
  tg::Tape<double> tape;
  Model model;
  nn::Adam<double> adam{model.parameters()};
  fs::path dir;

  Fixture() {
    dir = fs::temp_directory_path() / ("tapegrad_bad_input_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    double g = 0.125;
    for (auto* p : model.parameters()) {
      for (Eigen::Index i = 0; i < p->grad.size(); ++i) p->grad.data()[i] = (g += 0.25);
    }
    nn::save_checkpoint<double>(file("good"), model, &adam, 3);
    const std::string good = read_bytes(file("good"));
    write_bytes(file("truncated"), good.substr(0, good.size() - 7));
    std::string corrupt = good;
    corrupt[8] = 'x';  // the header no longer starts with '{'
    write_bytes(file("corrupt_header"), corrupt);
    std::string long_header = good;
    long_header[6] = '\x01';  // header length ~2^48: past the end of the file
    write_bytes(file("header_length"), long_header);
    {  // the same names in float: a dtype mismatch for a double model
      std::vector<tg::Parameter<float>> ps;
      nn::NamedParameters<float> named;
      const auto originals = model.named_parameters();
      ps.reserve(originals.size());
      for (const auto& [name, p] : originals) ps.emplace_back(p->value.cast<float>(), name);
      for (std::size_t i = 0; i < ps.size(); ++i) named.emplace_back(originals[i].first, &ps[i]);
      nn::save_checkpoint<float>(file("float"), named);
    }
    auto named = model.named_parameters();
    nn::NamedParameters<double> missing(named.begin(), named.end() - 1);
    nn::save_checkpoint<double>(file("missing"), missing);
    tg::Parameter<double> extra(M::Ones(1, 1), "extra");
    nn::NamedParameters<double> with_extra = named;
    with_extra.emplace_back("extra", &extra);
    nn::save_checkpoint<double>(file("extra"), with_extra);
    tg::Parameter<double> wide(M::Ones(1, 3), "head.b");
    nn::NamedParameters<double> reshaped = named;
    reshaped.back().second = &wide;
    nn::save_checkpoint<double>(file("shape"), reshaped);
    // The good file with optim.lr = inf (it parses as a number but is no learning rate); the
    // spaces keep the header length.
    std::string lr_inf = good;
    const std::string lr = R"("optim.lr":"0.001")";
    const auto at = lr_inf.find(lr);
    if (at == std::string::npos) throw std::runtime_error("fixture: no optim.lr in the header");
    lr_inf.replace(at, lr.size(), R"("optim.lr":"inf"  )");
    write_bytes(file("lr_inf"), lr_inf);
    write_bytes(file("step_text"), safetensors_bytes(R"({"__metadata__":{"step":"twelve"}})", ""));
    // The model now differs from every file, so any partial load would show.
    for (auto* p : model.parameters()) p->value.array() += 1.0;
  }
  ~Fixture() { fs::remove_all(dir); }

  [[nodiscard]] fs::path file(const std::string& name) const { return dir / (name + ".safetensors"); }
  /// Loads `name` into the model (and Adam).
  void load(const std::string& name, bool with_optimizer = true) {
    nn::load_checkpoint<double>(file(name), model, with_optimizer ? &adam : nullptr);
  }
};

using Kind = tg::testing::ErrorKind;
using tg::testing::is_kind;
using tg::testing::kind_name;

struct Row {
  const char* name;
  Kind kind;
  std::vector<std::string> words;
  std::function<void(Fixture&)> misuse;
};

V var(Fixture& f, Eigen::Index r, Eigen::Index c, double start = 0.5) {
  M m(r, c);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = start + 0.25 * static_cast<double>(i);
  return f.tape.variable(m);
}

std::vector<std::int32_t> targets(std::initializer_list<std::int32_t> t) { return t; }

// The four broadcasting binary ops plus maximum/minimum on [2 x 3] and [3 x 2].
Row binary_row(const char* name, V (*op)(const V&, const V&)) {
  return {name, Kind::Shape, {name, "[2 x 3]", "[3 x 2]"}, [op](Fixture& f) { op(var(f, 2, 3), var(f, 3, 2)); }};
}

std::vector<Row> rows() {
  std::vector<Row> r;
  // ---- shapes in every binary op and in matmul / affine / losses
  r.push_back(binary_row("add", &tg::add<double>));
  r.push_back(binary_row("sub", &tg::sub<double>));
  r.push_back(binary_row("mul", &tg::mul<double>));
  r.push_back(binary_row("div", &tg::div<double>));
  r.push_back(binary_row("maximum", &tg::maximum<double>));
  r.push_back(binary_row("minimum", &tg::minimum<double>));
  r.push_back({"matmul", Kind::Shape, {"matmul", "[2 x 3]", "[2 x 3]"}, [](Fixture& f) {
                 tg::matmul(var(f, 2, 3), var(f, 2, 3));
               }});
  r.push_back({"affine_bias", Kind::Shape, {"affine", "b is [2 x 4]"}, [](Fixture& f) {
                 tg::affine(var(f, 2, 3), var(f, 3, 4), var(f, 2, 4));
               }});
  r.push_back({"mse_loss", Kind::Shape, {"mse_loss", "[2 x 3]", "[3 x 2]"}, [](Fixture& f) {
                 tg::mse_loss(var(f, 2, 3), var(f, 3, 2));
               }});
  r.push_back({"where_cond", Kind::Shape, {"where", "cond is [1 x 1]"}, [](Fixture& f) {
                 tg::where(M::Ones(1, 1), var(f, 2, 3), var(f, 2, 3));
               }});
  r.push_back({"concat_cols", Kind::Shape, {"concat_cols", "part 1"}, [](Fixture& f) {
                 tg::concat_cols<double>({var(f, 2, 3), var(f, 3, 3)});
               }});
  r.push_back({"slice_rows", Kind::Shape, {"slice_rows", "out of range"}, [](Fixture& f) {
                 tg::slice_rows(var(f, 2, 3), 1, 5);
               }});
  r.push_back({"reshape_overflow", Kind::Shape, {"reshape", "cannot reshape"}, [](Fixture& f) {
                 tg::reshape(var(f, 2, 2), tg::Index{1} << 62, 4);  // rows * cols overflows int64
               }});
  // ---- class targets and indices
  r.push_back({"ce_target_too_big", Kind::Value, {"softmax_cross_entropy", "target 3", "K = 3"}, [](Fixture& f) {
                 const auto t = targets({0, 3});
                 tg::softmax_cross_entropy(var(f, 2, 3), std::span<const std::int32_t>(t));
               }});
  r.push_back({"ce_target_negative", Kind::Value, {"softmax_cross_entropy", "target -1"}, [](Fixture& f) {
                 const auto t = targets({-1, 0});
                 tg::softmax_cross_entropy(var(f, 2, 3), std::span<const std::int32_t>(t));
               }});
  r.push_back({"ce_target_count", Kind::Shape, {"softmax_cross_entropy", "3 targets", "[2 x 3]"}, [](Fixture& f) {
                 const auto t = targets({0, 1, 2});
                 tg::softmax_cross_entropy(var(f, 2, 3), std::span<const std::int32_t>(t));
               }});
  r.push_back({"nn_cross_entropy_range", Kind::Value, {"cross_entropy", "target 7"}, [](Fixture& f) {
                 const auto t = targets({7, 0});
                 nn::cross_entropy(var(f, 2, 3), std::span<const std::int32_t>(t));
               }});
  r.push_back({"nll_negative", Kind::Value, {"nll_loss", "target -5"}, [](Fixture& f) {
                 const auto t = targets({1, -5});
                 nn::nll_loss(var(f, 2, 3), std::span<const std::int32_t>(t));
               }});
  r.push_back({"pick_range", Kind::Value, {"pick", "index 3"}, [](Fixture& f) {
                 const auto t = targets({3, 0});
                 tg::pick(var(f, 2, 3), std::span<const std::int32_t>(t));
               }});
  r.push_back({"gather_negative", Kind::Value, {"gather_rows", "index[0] = -1"}, [](Fixture& f) {
                 const auto t = targets({-1});
                 tg::gather_rows(var(f, 2, 3), std::span<const std::int32_t>(t));
               }});
  // ---- empty tensors
  r.push_back({"mean_empty", Kind::Shape, {"mean", "empty"}, [](Fixture& f) { tg::mean(var(f, 0, 3)); }});
  r.push_back({"softmax_empty", Kind::Shape, {"softmax", "empty"}, [](Fixture& f) { tg::softmax(var(f, 2, 0)); }});
  r.push_back(
      {"log_softmax_empty", Kind::Shape, {"log_softmax", "empty"}, [](Fixture& f) { tg::log_softmax(var(f, 0, 0)); }});
  r.push_back({"ce_empty", Kind::Shape, {"softmax_cross_entropy", "empty"}, [](Fixture& f) {
                 tg::softmax_cross_entropy(var(f, 0, 3), std::span<const std::int32_t>());
               }});
  r.push_back({"backward_empty_loss", Kind::Shape, {"backward", "not a scalar"}, [](Fixture& f) {
                 f.tape.backward(tg::tanh(var(f, 0, 1)));
               }});
  // ---- anomaly mode: op and time step named
  r.push_back({"anomaly_forward_nan", Kind::Numeric, {"log", "time step 3", "NaN"}, [](Fixture& f) {
                 f.tape.set_anomaly_mode(true);
                 const V x = var(f, 1, 2, -1.0);
                 auto scope = f.tape.time_step(3);
                 tg::log(x);
               }});
  r.push_back({"anomaly_forward_inf", Kind::Numeric, {"exp", "time step 0", "Inf"}, [](Fixture& f) {
                 f.tape.set_anomaly_mode(true);
                 const V x = var(f, 1, 2, 1000.0);
                 auto scope = f.tape.time_step(0);
                 tg::exp(x);
               }});
  r.push_back(
      {"anomaly_backward_inf", Kind::Numeric, {"backward gradient", "sqrt", "time step 5", "Inf"}, [](Fixture& f) {
         f.tape.set_anomaly_mode(true);
         const V x = f.tape.variable(M::Zero(1, 2));
         V y;
         {
           auto scope = f.tape.time_step(5);
           y = tg::sqrt(x);  // d sqrt(x)/dx = 1/(2 sqrt(0)) = Inf
         }
         f.tape.backward(tg::sum(y));
       }});
  r.push_back({"anomaly_leaf_nan", Kind::Numeric, {"leaf value", "NaN"}, [](Fixture& f) {
                 f.tape.set_anomaly_mode(true);
                 f.tape.constant(M::Constant(1, 1, kNaN));
               }});
  // ---- tape misuse
  r.push_back({"stale_after_clear", Kind::Tape, {"cleared or rewound"}, [](Fixture& f) {
                 const V x = var(f, 1, 2);
                 f.tape.clear();
                 tg::tanh(x);
               }});
  r.push_back({"stale_after_rewind", Kind::Tape, {"grad", "cleared or rewound"}, [](Fixture& f) {
                 const tg::Mark m = f.tape.mark();
                 const V x = var(f, 1, 2);
                 f.tape.rewind(m);
                 (void)x.grad();
               }});
  r.push_back({"backward_released_twice", Kind::Tape, {"released", "backward twice"}, [](Fixture& f) {
                 const V x = var(f, 1, 2);
                 const tg::Mark m = f.tape.mark();
                 const V loss = tg::sum(tg::tanh(x));
                 tg::BackwardOptions o;
                 o.from = m;
                 o.release = true;
                 f.tape.backward(loss, o);
                 f.tape.backward(loss, o);
               }});
  r.push_back({"hook_after_consumed", Kind::Tape, {"register_hook", "already consumed"}, [](Fixture& f) {
                 const V x = var(f, 1, 2);
                 const V h = tg::tanh(x);
                 tg::sum(h);
                 h.register_hook([](M& g) { g *= 2; });
               }});
  r.push_back(
      {"hook_empty", Kind::Value, {"register_hook", "empty"}, [](Fixture& f) { var(f, 1, 2).register_hook({}); }});
  r.push_back({"other_tape", Kind::Tape, {"add", "another tape"}, [](Fixture& f) {
                 tg::Tape<double> other;
                 tg::add(var(f, 1, 2), other.variable(M::Ones(1, 2)));
               }});
  r.push_back({"empty_var", Kind::Tape, {"empty handle"}, [](Fixture& f) { tg::mul(var(f, 1, 2), V{}); }});
  r.push_back({"seed_shape", Kind::Shape, {"backward", "seed is [2 x 2]", "[1 x 2]"}, [](Fixture& f) {
                 f.tape.backward(tg::tanh(var(f, 1, 2)), M::Ones(2, 2));
               }});
  r.push_back({"rewind_past_end", Kind::Tape, {"rewind", "past the end"}, [](Fixture& f) {
                 var(f, 1, 2);
                 const tg::Mark m = f.tape.mark();
                 f.tape.clear();
                 f.tape.rewind(m);
               }});
  r.push_back({"rewind_stale_mark", Kind::Tape, {"rewind", "stale"}, [](Fixture& f) {
                 var(f, 1, 2);
                 const tg::Mark m = f.tape.mark();  // 1 value
                 tg::tanh(var(f, 1, 2));            // 3 values, 1 entry
                 const tg::Mark late = f.tape.mark();
                 f.tape.rewind(m);
                 var(f, 2, 2);
                 var(f, 2, 2);
                 tg::tanh(var(f, 2, 2));  // the tape is longer again, but not the one `late` was taken on
                 f.tape.rewind(late);
               }});
  r.push_back({"slice_overflow", Kind::Shape, {"slice_cols", "out of range"}, [](Fixture& f) {
                 tg::slice_cols(var(f, 2, 3), std::numeric_limits<tg::Index>::max(), 2);  // begin + count overflows
               }});
  // ---- cells and sequences
  r.push_back({"lstm_state_shape", Kind::Shape, {"LstmCell.step", "state tensor", "[2 x 5]"}, [](Fixture& f) {
                 nn::State<double> s{{f.tape.constant(M::Zero(2, 4)), f.tape.constant(M::Zero(2, 5))}};
                 f.model.lstm.step(var(f, 2, 3), s);
               }});
  r.push_back({"lstm_state_count", Kind::Shape, {"LstmCell.step", "1 tensor(s)", "expected 2"}, [](Fixture& f) {
                 nn::State<double> s{{f.tape.constant(M::Zero(2, 4))}};
                 f.model.lstm.step(var(f, 2, 3), s);
               }});
  r.push_back({"lstm_input_width", Kind::Shape, {"LstmCell.step", "input x is [2 x 5]"}, [](Fixture& f) {
                 f.model.lstm.step(var(f, 2, 5), f.model.lstm.initial_state(f.tape, 2));
               }});
  r.push_back({"unroll_zero_length", Kind::Value, {"unroll", "empty"}, [](Fixture& f) {
                 nn::many_to_many(f.model.lstm, std::vector<V>{}, f.model.lstm.initial_state(f.tape, 2));
               }});
  r.push_back({"unroll_length_zero_row", Kind::Value, {"lengths[1] = 0"}, [](Fixture& f) {
                 const std::vector<V> xs = {var(f, 2, 3), var(f, 2, 3)};
                 const auto lengths = targets({2, 0});
                 nn::many_to_one(f.model.lstm, xs, f.model.lstm.initial_state(f.tape, 2),
                                 std::span<const std::int32_t>(lengths));
               }});
  r.push_back({"tbptt_zero_steps", Kind::Value, {"run_tbptt", "num_steps is 0"}, [](Fixture& f) {
                 nn::run_tbptt<double>(
                     f.tape, 0, {M::Zero(1, 4)},
                     [](tg::Tape<double>&, int, const nn::State<double>& s) {
                       return nn::StepResult<double>{s, {}};
                     },
                     [](const nn::UpdateInfo&) {}, nn::TbpttConfig::full());
               }});
  // ---- truncation settings
  r.push_back({"tbptt_k2_lt_k1", Kind::Value, {"k2 >= k1", "k2 = 3", "k1 = 5"}, [](Fixture&) {
                 nn::TbpttConfig::overlapping(5, 3).validate();
               }});
  r.push_back({"tbptt_tau_negative", Kind::Value, {"tau", "-1"}, [](Fixture&) {
                 nn::TbpttConfig::per_output_window(-1).validate();
               }});
  r.push_back({"tbptt_chunk_zero", Kind::Value, {"k1 >= 1", "k1 = 0"}, [](Fixture&) {
                 nn::TbpttConfig::chunked(0).validate();
               }});
  r.push_back({"window_tau_negative", Kind::Value, {"backward_per_output_window", "tau", "-2"}, [](Fixture& f) {
                 tg::backward_per_output_window(f.tape, 3, -2, [](int) { return V{}; });
               }});
  // ---- clipping thresholds and non-finite gradients
  r.push_back({"clip_norm_negative", Kind::Value, {"clip_grad_norm", "max_norm = -1"}, [](Fixture& f) {
                 nn::clip_grad_norm(f.model.parameters(), -1.0);
               }});
  r.push_back({"clip_per_parameter_nan", Kind::Value, {"clip_grad_norm_per_parameter", "nan"}, [](Fixture& f) {
                 nn::clip_grad_norm_per_parameter(f.model.parameters(), kNaN);
               }});
  r.push_back({"clip_value_negative", Kind::Value, {"clip_grad_value", "value = -0.5"}, [](Fixture& f) {
                 nn::clip_grad_value(f.model.parameters(), -0.5);
               }});
  r.push_back({"clipper_nan", Kind::Value, {"Clipper", "threshold"}, [](Fixture&) {
                 nn::Clipper c(nn::Clipper::Mode::Norm, kNaN);
               }});
  r.push_back({"clip_non_finite_grad", Kind::Numeric, {"clip_grad_norm", "'bad' (Inf)"}, [](Fixture&) {
                 tg::Parameter<double> bad(M::Ones(1, 2), "bad");
                 bad.grad(0, 1) = kInf;
                 nn::clip_grad_norm({&bad}, 1.0);
               }});
  // ---- optimizers
  r.push_back({"optimizer_param_twice", Kind::Value, {"adam", "given twice", "'lstm.W_ih' (#5)"}, [](Fixture& f) {
                 auto ps = f.model.parameters();
                 ps.push_back(ps.front());
                 nn::Adam<double> twice(ps);
               }});
  r.push_back({"optimizer_lr_negative", Kind::Value, {"sgd", "learning rate -0.1"}, [](Fixture& f) {
                 nn::Sgd<double> sgd(f.model.parameters(), {.lr = -0.1});
               }});
  r.push_back(
      {"optimizer_lr_nan", Kind::Value, {"adam", "learning rate"}, [](Fixture& f) { f.adam.set_learning_rate(kNaN); }});
  r.push_back({"adam_beta1_one", Kind::Value, {"adam", "beta1"}, [](Fixture& f) {
                 nn::Adam<double> a(f.model.parameters(), {.beta1 = 1.0});
               }});
  // ---- checkpoints
  r.push_back({"ckpt_truncated", Kind::Checkpoint, {"truncated.safetensors", "truncated"}, [](Fixture& f) {
                 f.load("truncated");
               }});
  r.push_back(
      {"ckpt_corrupt_header", Kind::Checkpoint, {"corrupt header"}, [](Fixture& f) { f.load("corrupt_header"); }});
  r.push_back({"ckpt_header_length", Kind::Checkpoint, {"header length"}, [](Fixture& f) { f.load("header_length"); }});
  r.push_back({"ckpt_wrong_dtype", Kind::Checkpoint, {"dtype mismatch", "expected F64", "found F32"}, [](Fixture& f) {
                 f.load("float", false);
               }});
  r.push_back({"ckpt_missing_tensor", Kind::Checkpoint, {"missing tensor", "head.b"}, [](Fixture& f) {
                 f.load("missing", false);
               }});
  r.push_back(
      {"ckpt_extra_tensor", Kind::Checkpoint, {"extra tensor", "extra"}, [](Fixture& f) { f.load("extra", false); }});
  r.push_back(
      {"ckpt_shape_mismatch", Kind::Checkpoint, {"head.b", "shape mismatch", "[1, 2]", "[1, 3]"}, [](Fixture& f) {
         f.load("shape", false);
       }});
  r.push_back(
      {"ckpt_optimizer_state_missing", Kind::Checkpoint, {"missing tensor", "optim.adam.m.lstm.W_ih"}, [](Fixture& f) {
         f.load("missing", true);
       }});
  r.push_back(
      {"ckpt_no_file", Kind::Checkpoint, {"nope.safetensors", "cannot open"}, [](Fixture& f) { f.load("nope"); }});
  r.push_back({"ckpt_step_not_integer", Kind::Checkpoint, {"metadata 'step'", "twelve"}, [](Fixture& f) {
                 nn::load_checkpoint<double>(f.file("step_text"), nn::NamedParameters<double>{});
               }});
  r.push_back({"ckpt_lr_infinite", Kind::Checkpoint, {"optim.lr", "inf"}, [](Fixture& f) { f.load("lr_inf"); }});
  r.push_back({"ckpt_save_bad_dir", Kind::Checkpoint, {"save failed", "previous file"}, [](Fixture& f) {
                 nn::save_checkpoint<double>(f.dir / "no_such_dir" / "x.safetensors", f.model);
               }});
  r.push_back({"ckpt_save_reserved_key", Kind::Value, {"metadata key 'step'", "reserved"}, [](Fixture& f) {
                 nn::save_checkpoint<double>(f.file("good"), f.model, nullptr, 0, {{"step", "1"}});
               }});
  r.push_back({"ckpt_save_duplicate_name", Kind::Value, {"'head.W'", "given twice"}, [](Fixture& f) {
                 auto named = f.model.named_parameters();
                 named.push_back(named[named.size() - 2]);
                 nn::save_checkpoint<double>(f.file("good"), named);
               }});
  return r;
}

class BadInput : public ::testing::TestWithParam<Row> {};

std::map<std::string, std::string> files_in(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out[e.path().filename().string()] = read_bytes(e.path());
  return out;
}

bool bit_equal(const M& a, const M& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         (a.size() == 0 || std::memcmp(a.data(), b.data(), sizeof(double) * static_cast<std::size_t>(a.size())) == 0);
}

TEST_P(BadInput, TypedErrorNamesTheProblemAndDamagesNothing) {
  const Row& row = GetParam();
  Fixture f;
  std::vector<M> values;
  std::vector<M> grads;
  for (auto* p : f.model.parameters()) {
    values.push_back(p->value);
    grads.push_back(p->grad);
  }
  const auto files = files_in(f.dir);
  const auto adam_step = f.adam.step_count();
  const double adam_lr = f.adam.learning_rate();

  bool thrown = false;
  try {
    row.misuse(f);
  } catch (const tg::Error& e) {
    thrown = true;
    EXPECT_TRUE(is_kind(e, row.kind)) << "expected " << kind_name(row.kind) << ", got: " << e.what();
    const std::string msg = e.what();
    for (const std::string& w : row.words) EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in: " << msg;
  }
  ASSERT_TRUE(thrown) << "no tapegrad::Error for " << row.name;

  // Nothing damaged: parameters, gradients, optimizer scalars, files.
  const auto params = f.model.parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(bit_equal(params[i]->value, values[i])) << params[i]->name << " value changed";
    EXPECT_TRUE(bit_equal(params[i]->grad, grads[i])) << params[i]->name << " grad changed";
  }
  EXPECT_EQ(f.adam.step_count(), adam_step);
  EXPECT_EQ(f.adam.learning_rate(), adam_lr);
  EXPECT_EQ(files_in(f.dir), files) << "a checkpoint file changed, vanished or appeared";

  // Still working, on the same tape and model: loss = sum(x^2) + sum(x W + b) has closed-form
  // gradients dL/dx = 2x + 1 W^T, dL/dW = x^T 1, dL/db = B (per column).
  f.model.zero_grad();
  M x0(3, 4);
  for (Eigen::Index i = 0; i < x0.size(); ++i) x0.data()[i] = 0.1 * static_cast<double>(i) - 0.4;
  const V x = f.tape.variable(x0);
  const V loss = tg::add(tg::sum(tg::square(x)), tg::sum(f.model.head.forward(x)));
  f.tape.backward(loss);
  const M ones = M::Ones(3, 2);
  EXPECT_TRUE(x.grad().isApprox(2 * x0 + ones * f.model.head.W.value.transpose(), 1e-14));
  EXPECT_TRUE(f.model.head.W.grad.isApprox(x0.transpose() * ones, 1e-14));
  EXPECT_TRUE(f.model.head.b.grad.isApprox(M::Constant(1, 2, 3.0), 1e-14));
  // And the optimizer still steps.
  f.adam.step();
  EXPECT_EQ(f.adam.step_count(), adam_step + 1);
}

INSTANTIATE_TEST_SUITE_P(Table, BadInput, ::testing::ValuesIn(rows()),
                         [](const ::testing::TestParamInfo<Row>& row) { return std::string(row.param.name); });

TEST(BadInputTable, HasAtLeastFortyRows) { EXPECT_GE(rows().size(), 40u); }

}  // namespace
