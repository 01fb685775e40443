// The training loop's bad-input table: one row per way a training step or an optimizer
// checkpoint can go wrong (NaN/Inf gradients, updates that overflow, corrupt optimizer state,
// step counts at their limit, shapes, state names that do not match), with the typed error it
// must raise and the words its message must contain. After every error, parameters,
// gradients, optimizer state (every tensor, the step count, the learning rate, the skip count)
// and the checkpoint files are compared bit for bit with copies taken just before.
// Then: OnNonFinite::Skip skips and counts; and optimizer state restored into an optimizer
// built in another order continues exactly as an uninterrupted run.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <tapegrad/nn/checkpoint.h>
#include <tapegrad/nn/linear.h>
#include <tapegrad/nn/optim.h>

#include "../support/test_names.h"
#include "../support/test_support.h"

using M = tg::Matrix<double>;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

/// Two layers of the same shape: their weights share a short name ("W") and a shape, the
/// case where state handed over by position would land on the wrong parameter unnoticed.
struct Net : nn::Module<double> {
  std::mt19937_64 rng;
  nn::Linear<double> enc;
  nn::Linear<double> dec;
  explicit Net(std::uint64_t seed) : rng(seed), enc({3, 3}, rng), dec({3, 3}, rng) {}
  void visit_parameters(const nn::ParameterVisitor<double>& v) override {
    v.child("enc", enc);
    v.child("dec", dec);
  }
};

/// Deterministic gradients that depend on the current values (as a real loss's do) and differ
/// per parameter (k is the parameter's position in the model, not in the optimizer).
void set_gradients(Net& net, int t) {
  int k = 0;
  for (auto& [name, p] : net.named_parameters()) {
    ++k;
    p->grad = ((p->value.array() * (1.0 + k)).sin() * (0.5 + 0.25 * t) + 0.1 * k).matrix();
  }
}

std::unique_ptr<nn::Optimizer<double>> make(const std::string& kind, nn::ParameterList<double> params) {
  if (kind == "sgd") return std::make_unique<nn::Sgd<double>>(params, nn::SgdOptions{.lr = 0.1, .momentum = 0.9});
  if (kind == "adamw") return std::make_unique<nn::AdamW<double>>(params, nn::AdamOptions{.lr = 0.05});
  if (kind == "rmsprop") {
    return std::make_unique<nn::Rmsprop<double>>(params,
                                                 nn::RmspropOptions{.lr = 0.01, .momentum = 0.5, .centered = true});
  }
  if (kind == "adagrad") return std::make_unique<nn::Adagrad<double>>(params, nn::AdagradOptions{.lr = 0.1});
  if (kind == "amsgrad")
    return std::make_unique<nn::Adam<double>>(params, nn::AdamOptions{.lr = 0.05, .amsgrad = true});
  return std::make_unique<nn::Adam<double>>(params, nn::AdamOptions{.lr = 0.05});
}

// A file's bytes (sized read: istreambuf_iterator trips GCC 12's -Wnull-dereference here).
std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::string out(static_cast<std::size_t>(fs::file_size(p)), '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  return out;
}

bool bit_equal(const M& a, const M& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(double)) == 0;
}

/// Everything a failed step or load must leave as it was.
struct Snapshot {
  std::vector<M> values, grads, state;
  std::vector<std::string> state_names;
  std::int64_t step_count = 0, skipped = 0;
  double lr = 0;
  std::map<std::string, std::string> files;
};

/// What every row gets: the model (non-zero values and gradients), an optimizer of the row's
/// kind built from the model's full names and stepped twice, and a directory of checkpoints.
struct Fixture {
  Net net{11};
  std::unique_ptr<nn::Optimizer<double>> opt;
  fs::path dir;

  explicit Fixture(const std::string& kind) : opt(make(kind, net.named_parameters())) {
    dir = fs::temp_directory_path() / ("tapegrad_bad_training_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (int t = 1; t <= 2; ++t) {
      set_gradients(net, t);
      opt->step();
    }
    set_gradients(net, 3);
    nn::save_checkpoint<double>(file("good"), net, opt.get(), 2);
  }
  ~Fixture() { fs::remove_all(dir); }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  [[nodiscard]] fs::path file(const std::string& name) const { return dir / (name + ".safetensors"); }
  tg::Parameter<double>& param(const std::string& name) {
    for (auto& [n, p] : net.named_parameters()) {
      if (n == name) return *p;
    }
    throw std::runtime_error("fixture: no parameter " + name);
  }
  M& state(const std::string& name) {
    for (auto& [n, m] : opt->state_tensors(net.named_parameters())) {
      if (n == name) return *m;
    }
    throw std::runtime_error("fixture: no state " + name);
  }
  /// The same model weights with optimizer state under other names or shapes: `optim` is an
  /// optimizer over other Parameter objects (not in the model), so its own names are used.
  void save_with(const std::string& name, nn::Optimizer<double>& optim) {
    nn::save_checkpoint<double>(file(name), net.named_parameters(), &optim, 2);
  }

  Snapshot snapshot() {
    Snapshot s;
    for (auto* p : net.parameters()) {
      s.values.push_back(p->value);
      s.grads.push_back(p->grad);
    }
    for (auto& [n, m] : opt->state_tensors(net.named_parameters())) {
      s.state_names.push_back(n);
      s.state.push_back(*m);
    }
    s.step_count = opt->step_count();
    s.skipped = opt->skipped_steps();
    s.lr = opt->learning_rate();
    for (const auto& e : fs::directory_iterator(dir)) s.files[e.path().string()] = file_bytes(e.path());
    return s;
  }
};

void expect_same(const Snapshot& a, const Snapshot& b, const std::string& row) {
  ASSERT_EQ(a.values.size(), b.values.size()) << row;
  for (std::size_t i = 0; i < a.values.size(); ++i) {
    EXPECT_TRUE(bit_equal(a.values[i], b.values[i])) << row << ": parameter #" << i << " value changed";
    EXPECT_TRUE(bit_equal(a.grads[i], b.grads[i])) << row << ": parameter #" << i << " gradient changed";
  }
  EXPECT_EQ(a.state_names, b.state_names) << row;
  for (std::size_t i = 0; i < a.state.size() && i < b.state.size(); ++i) {
    EXPECT_TRUE(bit_equal(a.state[i], b.state[i])) << row << ": state " << a.state_names[i] << " changed";
  }
  EXPECT_EQ(a.step_count, b.step_count) << row;
  EXPECT_EQ(a.skipped, b.skipped) << row;
  EXPECT_EQ(std::memcmp(&a.lr, &b.lr, sizeof(double)), 0) << row << ": learning rate changed";
  EXPECT_EQ(a.files, b.files) << row << ": the checkpoint files changed";
}

using Kind = tg::testing::ErrorKind;
using tg::testing::is_kind;

struct Row {
  const char* name;
  const char* optimizer;  // the fixture's optimizer kind
  Kind kind;
  std::vector<std::string> words;
  std::function<void(Fixture&)> prepare;  // sets up the misuse (before the snapshot)
  std::function<void(Fixture&)> misuse;   // must throw
};

void step(Fixture& f) { f.opt->step(); }
void nothing(Fixture&) {}

std::vector<Row> rows() {
  std::vector<Row> r;
  // ---- non-finite gradients, in every optimizer
  r.push_back({"nan_gradient",
               "adam",
               Kind::Numeric,
               {"adam.step", "'dec.W'", "non-finite gradient", "nan at [1, 2]"},
               [](Fixture& f) { f.param("dec.W").grad(1, 2) = kNaN; },
               step});
  r.push_back({"inf_gradient",
               "sgd",
               Kind::Numeric,
               {"sgd.step", "'enc.b'", "inf at [0, 1]"},
               [](Fixture& f) { f.param("enc.b").grad(0, 1) = kInf; },
               step});
  r.push_back({"minus_inf_gradient",
               "rmsprop",
               Kind::Numeric,
               {"rmsprop.step", "'dec.b'", "-inf at [0, 2]"},
               [](Fixture& f) { f.param("dec.b").grad(0, 2) = -kInf; },
               step});
  r.push_back({"nan_gradient_adamw",
               "adamw",
               Kind::Numeric,
               {"adamw.step", "'enc.W'", "nan at [0, 0]"},
               [](Fixture& f) { f.param("enc.W").grad(0, 0) = kNaN; },
               step});
  r.push_back({"nan_gradient_adagrad",
               "adagrad",
               Kind::Numeric,
               {"adagrad.step", "'dec.W'", "nan at [2, 1]"},
               [](Fixture& f) { f.param("dec.W").grad(2, 1) = kNaN; },
               step});
  // Only the last parameter is bad: the earlier ones must not have been updated either.
  r.push_back({"nan_gradient_last_parameter",
               "adam",
               Kind::Numeric,
               {"'dec.b'", "#3"},
               [](Fixture& f) { f.param("dec.b").grad(0, 0) = kNaN; },
               step});
  // ---- finite gradients, non-finite update: rolled back
  r.push_back({"update_overflows",
               "sgd",
               Kind::Numeric,
               {"sgd.step", "update of parameter 'enc.W'", "not finite"},
               [](Fixture& f) {
                 f.opt->set_learning_rate(1e300);
                 for (auto* p : f.net.parameters()) p->grad.setConstant(1e200);
               },
               step});
  r.push_back({"negative_adam_second_moment",
               "adam",
               Kind::Numeric,
               {"adam.step", "'dec.b'", "not finite"},
               [](Fixture& f) {
                 f.state("adam.v.dec.b").setConstant(-1.0);  // what a corrupt checkpoint could hold
               },
               step});
  r.push_back({"negative_adagrad_sum",
               "adagrad",
               Kind::Numeric,
               {"adagrad.step", "'enc.b'", "not finite"},
               [](Fixture& f) { f.state("adagrad.sum.enc.b")(0, 1) = -5.0; },
               step});
  r.push_back({"nan_in_momentum",
               "sgd",
               Kind::Numeric,
               {"sgd.step", "update of parameter 'dec.W'", "not finite"},
               [](Fixture& f) { f.state("sgd.momentum.dec.W")(0, 0) = kNaN; },
               step});
  // ---- counts and shapes
  r.push_back(
      {"step_count_at_max",
       "adam",
       Kind::Value,
       {"adam.step", "9223372036854775807", "overflow"},
       [](Fixture& f) { f.opt->restore_scalars(std::numeric_limits<std::int64_t>::max(), f.opt->learning_rate()); },
       step});
  r.push_back({"gradient_shape",
               "adam",
               Kind::Shape,
               {"adam.step", "'dec.b'", "[1 x 3]", "[3 x 1]"},
               [](Fixture& f) { f.param("dec.b").grad = M::Ones(3, 1); },
               step});
  r.push_back({"state_shape",
               "rmsprop",
               Kind::Shape,
               {"rmsprop.step", "state 'grad_avg'", "'enc.W'", "[2 x 2]"},
               [](Fixture& f) { f.state("rmsprop.grad_avg.enc.W") = M::Zero(2, 2); },
               step});
  r.push_back({"negative_step_count", "adam", Kind::Value, {"adam", "step count -1"}, nothing, [](Fixture& f) {
                 f.opt->restore_scalars(-1, 0.1);
               }});
  r.push_back({"nan_learning_rate", "adam", Kind::Value, {"adam", "learning rate nan"}, nothing, [](Fixture& f) {
                 f.opt->set_learning_rate(kNaN);
               }});
  // ---- state names: ambiguous short names, and checkpoints whose state does not match
  r.push_back({"ambiguous_short_names",
               "adam",
               Kind::Value,
               {"adam", "#0", "#2", "'W'", "named_parameters"},
               nothing,
               [](Fixture&) {
                 // Two top-level modules: their parameters' full names are "W", "b", "W", "b".
                 std::mt19937_64 rng(1);
                 nn::Linear<double> first({2, 2}, rng);
                 nn::Linear<double> second({2, 2}, rng);
                 nn::Adam<double> by_pointer(nn::parameters_of<double>({&first, &second}));
                 (void)by_pointer.state_tensors();
               }});
  r.push_back({"unnamed_parameter", "adam", Kind::Value, {"adam", "#0", "no name"}, nothing, [](Fixture&) {
                 tg::Parameter<double> anon(M::Ones(1, 1));
                 nn::Adam<double> a({&anon});
                 (void)a.state_tensors();
               }});
  r.push_back({"ckpt_state_missing",
               "adam",
               Kind::Checkpoint,
               {"missing tensor", "optim.adam.m.dec.b", "subset"},
               [](Fixture& f) {
                 nn::Adam<double> subset({&f.param("enc.W"), &f.param("enc.b"), &f.param("dec.W")});
                 nn::save_checkpoint<double>(f.file("subset"), f.net, &subset, 2);
               },
               [](Fixture& f) { nn::load_checkpoint<double>(f.file("subset"), f.net, f.opt.get()); }});
  r.push_back({"ckpt_state_extra",
               "adam",
               Kind::Checkpoint,
               {"extra tensor", "optim.adam.m.aux", "with_aux"},
               [](Fixture& f) {
                 tg::Parameter<double> aux(M::Ones(1, 1), "aux");
                 std::vector<tg::Parameter<double>*> ps = f.net.parameters();
                 ps.push_back(&aux);
                 nn::Adam<double> more(ps);
                 nn::save_checkpoint<double>(f.file("with_aux"), f.net, &more, 2);
               },
               [](Fixture& f) { nn::load_checkpoint<double>(f.file("with_aux"), f.net, f.opt.get()); }});
  r.push_back({"ckpt_state_shape",
               "adam",
               Kind::Checkpoint,
               {"tensor 'optim.adam.m.dec.b'", "shape mismatch", "expected [1, 3] but found [2, 2]"},
               [](Fixture& f) {
                 tg::Parameter<double> wrong(M::Ones(2, 2), "dec.b");  // not in the model: named by its own name
                 nn::Adam<double> other({&f.param("enc.W"), &f.param("enc.b"), &f.param("dec.W"), &wrong});
                 nn::save_checkpoint<double>(f.file("reshaped"), f.net, &other, 2);
               },
               [](Fixture& f) { nn::load_checkpoint<double>(f.file("reshaped"), f.net, f.opt.get()); }});
  r.push_back({"ckpt_state_by_position",
               "adam",
               Kind::Checkpoint,
               {"missing tensor", "optim.adam.m.enc.W"},
               [](Fixture& f) {
                 // State keyed "0".."3" (by position), as older files held it: refused, not guessed.
                 std::vector<tg::Parameter<double>> copies;
                 for (auto* p : f.net.parameters()) copies.emplace_back(p->value, std::to_string(copies.size()));
                 nn::Adam<double> positional({&copies[0], &copies[1], &copies[2], &copies[3]});
                 f.save_with("positional", positional);
               },
               [](Fixture& f) { nn::load_checkpoint<double>(f.file("positional"), f.net, f.opt.get()); }});
  r.push_back({"ckpt_other_optimizer",
               "adamw",
               Kind::Checkpoint,
               {"missing tensor", "optim.adamw.m.enc.W"},
               [](Fixture& f) {
                 nn::Adam<double> adam(f.net.named_parameters());
                 nn::save_checkpoint<double>(f.file("adam"), f.net, &adam, 2);
               },
               [](Fixture& f) { nn::load_checkpoint<double>(f.file("adam"), f.net, f.opt.get()); }});
  return r;
}

}  // namespace

TEST(BadTraining, EveryRowRaisesItsTypedErrorAndChangesNothing) {
  int n = 0;
  for (const Row& row : rows()) {
    SCOPED_TRACE(row.name);
    Fixture f(row.optimizer);
    row.prepare(f);
    const Snapshot before = f.snapshot();
    try {
      row.misuse(f);
      ADD_FAILURE() << row.name << ": no exception";
    } catch (const tg::Error& e) {
      EXPECT_TRUE(is_kind(e, row.kind)) << row.name << ": wrong error type: " << e.what();
      const std::string msg = e.what();
      for (const std::string& w : row.words) {
        EXPECT_NE(msg.find(w), std::string::npos) << row.name << ": '" << w << "' not in: " << msg;
      }
    }
    expect_same(before, f.snapshot(), row.name);
    ++n;
  }
  EXPECT_EQ(n, 22);
}

TEST(BadTraining, SkipPolicySkipsAndCountsNonFiniteSteps) {
  for (const char* kind : {"adam", "amsgrad", "adamw", "sgd", "rmsprop", "adagrad"}) {
    SCOPED_TRACE(kind);
    Fixture f(kind);
    f.opt->set_non_finite_policy(nn::OnNonFinite::Skip);
    // A NaN gradient: skipped, counted, nothing else changes.
    f.param("dec.W").grad(0, 1) = kNaN;
    Snapshot want = f.snapshot();
    f.opt->step();
    want.skipped = 1;
    expect_same(want, f.snapshot(), std::string(kind) + " nan gradient");
    // An update that overflows: rolled back, skipped, counted.
    f.opt->set_learning_rate(1e300);
    for (auto* p : f.net.parameters()) p->grad.setConstant(1e200);
    want = f.snapshot();
    f.opt->step();
    want.skipped = 2;
    expect_same(want, f.snapshot(), std::string(kind) + " overflow");
    // A finite step still applies and counts as a step, not a skip.
    f.opt->set_learning_rate(0.01);
    set_gradients(f.net, 3);
    const M before = f.param("enc.W").value;
    f.opt->step();
    EXPECT_EQ(f.opt->step_count(), 3);
    EXPECT_EQ(f.opt->skipped_steps(), 2);
    EXPECT_FALSE(bit_equal(before, f.param("enc.W").value));
  }
}

// Three steps, save, a fresh model and an optimizer over its parameters in another order (and
// from plain pointers, so the short names "W"/"b" collide), load, one more step: every value
// and every state tensor equals the uninterrupted four-step run bit for bit.
TEST(BadTraining, StateRestoredIntoAnotherOrderContinuesExactly) {
  const fs::path dir = fs::temp_directory_path() / ("tapegrad_reorder_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  for (const char* kind : {"adam", "amsgrad", "adamw", "sgd", "rmsprop", "adagrad"}) {
    SCOPED_TRACE(kind);
    Net whole(5);
    auto opt_whole = make(kind, whole.named_parameters());
    Net first(5);
    auto opt_first = make(kind, first.named_parameters());
    for (int t = 1; t <= 3; ++t) {
      set_gradients(whole, t);
      opt_whole->step();
      set_gradients(first, t);
      opt_first->step();
    }
    const fs::path path = dir / (std::string(kind) + ".safetensors");
    nn::save_checkpoint<double>(path, first, opt_first.get(), 3);

    Net resumed(99);  // other initial weights: the load must replace them
    std::vector<tg::Parameter<double>*> swapped = {&resumed.dec.W, &resumed.dec.b, &resumed.enc.W, &resumed.enc.b};
    auto opt_resumed = make(kind, swapped);  // index i here is index i +- 2 in the saved run, same shapes
    nn::load_checkpoint<double>(path, resumed, opt_resumed.get());
    EXPECT_EQ(opt_resumed->step_count(), 3);

    set_gradients(whole, 4);
    opt_whole->step();
    set_gradients(resumed, 4);
    opt_resumed->step();
    const auto a = whole.named_parameters();
    const auto b = resumed.named_parameters();
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_TRUE(bit_equal(a[i].second->value, b[i].second->value)) << a[i].first;
    }
    const auto sa = opt_whole->state_tensors(a);
    auto sb = opt_resumed->state_tensors(b);
    std::map<std::string, M> by_name;
    for (auto& [n, m] : sb) by_name[n] = *m;
    ASSERT_EQ(sa.size(), by_name.size());
    for (const auto& [n, m] : sa) {
      ASSERT_TRUE(by_name.contains(n)) << n;
      EXPECT_TRUE(bit_equal(*m, by_name[n])) << n;
    }
    // The test has teeth: the two same-shaped weights' states differ, so a swap would show.
    if (!sa.empty()) {
      const std::string slot = sa.front().first.substr(0, sa.front().first.rfind(".enc.W"));
      EXPECT_FALSE(bit_equal(by_name[slot + ".enc.W"], by_name[slot + ".dec.W"])) << slot;
    }
  }
  fs::remove_all(dir);
}
