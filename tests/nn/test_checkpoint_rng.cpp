// Generators in checkpoints: a run with dropout (between Stacked layers and on the inputs, under
// overlapping truncated BPTT) checkpointed at step k and resumed in a fresh model, optimizer
// and generators ends with the same parameters bit for bit as the uninterrupted run; corrupt or
// mismatched generator state is a CheckpointError that changes nothing; a checkpoint without
// generator state loads and says so.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <tapegrad/nn/nn.h>

#include "support/file_bytes.h"
#include "support/test_names.h"
#include "support/test_support.h"

using tapegrad::CheckpointError;
using tapegrad::Matrix;
using tapegrad::Tape;
using tapegrad::ValueError;
using tapegrad::Var;

namespace {

using namespace tapegrad::testing;  // expect_error, read_bytes, write_bytes, safetensors_bytes

using Stack = nn::Stacked<nn::RnnCell<float>>;
constexpr Index kBatch = 3, kIn = 4, kHidden = 6;
constexpr int kSteps = 7;  // time steps per sequence

// A two-layer RNN with dropout between the layers, a linear head and dropout on the inputs from
// a generator of its own.
struct Model : nn::Module<float> {
  std::mt19937_64 init;
  Stack rnn;
  nn::Linear<float> head;
  nn::Generator input_noise;
  nn::Adam<float> opt;

  Model(std::uint64_t init_seed, std::uint64_t noise_seed)
      : init(init_seed),
        rnn({.cell = {.input_size = kIn, .hidden_size = kHidden}, .num_layers = 2, .dropout = 0.3, .seed = noise_seed},
            init),
        head({.input_size = kHidden, .output_size = 2}, init),
        input_noise(noise_seed + 1),
        opt(nn::parameters_of<float>({&rnn, &head}), {.lr = 0.02}) {}
  void visit_parameters(const nn::ParameterVisitor<float>& v) override {
    v.child("rnn", rnn);
    v.child("head", head);
  }
  nn::NamedGenerators generators() { return {{"rnn.dropout", &rnn.generator()}, {"input", &input_noise}}; }

  // Training step `step`: a new sequence for both generators, data that depends on the step
  // only, overlapping TBPTT (steps re-recorded) with an Adam update per window.
  void train_step(int step) {
    rnn.generator().next_sequence();
    input_noise.next_sequence();
    std::mt19937_64 data(1000 + static_cast<std::uint64_t>(step));
    std::normal_distribution<float> n(0.0f, 1.0f);
    std::vector<Matrix<float>> xs, ys;
    for (int t = 0; t < kSteps; ++t) {
      Matrix<float> x(kBatch, kIn), y(kBatch, 2);
      for (Index i = 0; i < x.size(); ++i) x.data()[i] = n(data);
      for (Index i = 0; i < y.size(); ++i) y.data()[i] = n(data);
      xs.push_back(x);
      ys.push_back(y);
    }
    Tape<float> tape;
    const nn::StepFn<float> fn = [&](Tape<float>& tp, int t, const nn::State<float>& s) {
      const Var<float> x = nn::dropout(tp.constant(xs[static_cast<std::size_t>(t)]), input_noise, {.p = 0.2});
      nn::State<float> next = rnn.step(x, s);
      const Var<float> loss =
          nn::mse_loss(head.forward(rnn.output(next)), tp.constant(ys[static_cast<std::size_t>(t)]));
      return nn::StepResult<float>{next, loss};
    };
    const nn::UpdateFn update = [&](const nn::UpdateInfo&) {
      opt.step();
      opt.zero_grad();
    };
    std::vector<Matrix<float>> s0(2, Matrix<float>::Zero(kBatch, kHidden));
    nn::run_tbptt<float>(tape, kSteps, s0, fn, update, nn::TbpttConfig::overlapping(2, 4));
  }
  std::vector<Matrix<float>> values() {
    std::vector<Matrix<float>> out;
    for (auto& [name, p] : named_parameters()) out.push_back(p->value);
    return out;
  }
};

bool bit_equal(const std::vector<Matrix<float>>& a, const std::vector<Matrix<float>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].rows() != b[i].rows() || a[i].cols() != b[i].cols()) return false;
    if (std::memcmp(a[i].data(), b[i].data(), sizeof(float) * static_cast<std::size_t>(a[i].size())) != 0) return false;
  }
  return true;
}

class CheckpointRngTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / fmt::format("tapegrad_ckpt_rng_{}_{}",
                                                   ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                                                   ::getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

constexpr int kTotal = 6, kCheckpointAt = 3;

TEST_F(CheckpointRngTest, ResumedRunWithDropoutMatchesTheUninterruptedOneBitForBit) {
  Model straight(1, 50);
  for (int step = 0; step < kTotal; ++step) straight.train_step(step);

  const fs::path path = dir_ / "run.safetensors";
  {
    Model first(1, 50);
    for (int step = 0; step < kCheckpointAt; ++step) first.train_step(step);
    nn::save_checkpoint<float>(path, first, &first.opt, kCheckpointAt, {}, first.generators());
  }
  // Another init and other generator seeds: everything must come from the file.
  Model resumed(2, 77);
  const nn::CheckpointInfo info = nn::load_checkpoint<float>(path, resumed, &resumed.opt, {}, resumed.generators());
  EXPECT_TRUE(info.generators_not_in_file.empty());
  EXPECT_EQ(resumed.rnn.generator().state(), (nn::GeneratorState{50, kCheckpointAt}));
  EXPECT_EQ(resumed.input_noise.state(), (nn::GeneratorState{51, kCheckpointAt}));
  for (int step = static_cast<int>(info.step); step < kTotal; ++step) resumed.train_step(step);
  EXPECT_TRUE(bit_equal(resumed.values(), straight.values()));

  // The test can tell: resuming without the generators' state (fresh sequence counters) ends
  // elsewhere, so the masks really matter to the result.
  Model no_rng(2, 50);
  nn::load_checkpoint<float>(path, no_rng, &no_rng.opt);
  for (int step = kCheckpointAt; step < kTotal; ++step) no_rng.train_step(step);
  EXPECT_FALSE(bit_equal(no_rng.values(), straight.values()));
}

TEST_F(CheckpointRngTest, StateIsReadableMetadata) {
  Model m(1, 5);
  m.rnn.generator().set_sequence(12);
  const fs::path path = dir_ / "m.safetensors";
  nn::save_checkpoint<float>(path, m, nullptr, 0, {{"run", "a"}}, m.generators());
  const nn::SafetensorsFile f = nn::read_safetensors(path);
  EXPECT_EQ(f.metadata.at("rng.rnn.dropout.kind"), nn::Generator::kKind);
  EXPECT_EQ(f.metadata.at("rng.rnn.dropout.seed"), "5");
  EXPECT_EQ(f.metadata.at("rng.rnn.dropout.sequence"), "12");
  EXPECT_EQ(f.metadata.at("rng.input.seed"), "6");
  EXPECT_EQ(f.metadata.at("rng.input.sequence"), "0");
  // Full 64-bit range round trip.
  nn::Generator big(~std::uint64_t{0}, ~std::uint64_t{0} - 1);
  nn::save_checkpoint<float>(path, m, nullptr, 0, {}, {{"big", &big}});
  nn::Generator back;
  nn::load_checkpoint<float>(path, m, nullptr, {}, {{"big", &back}});
  EXPECT_EQ(back.state(), big.state());
}

TEST_F(CheckpointRngTest, CheckpointWithoutGeneratorStateLoadsAndListsThem) {
  Model m(1, 5);
  const fs::path path = dir_ / "plain.safetensors";
  nn::save_checkpoint<float>(path, m, &m.opt, 4);
  Model fresh(2, 9);
  fresh.input_noise.set_sequence(3);
  const nn::CheckpointInfo info = nn::load_checkpoint<float>(path, fresh, &fresh.opt, {}, fresh.generators());
  EXPECT_EQ(info.generators_not_in_file, (std::vector<std::string>{"rnn.dropout", "input"}));
  EXPECT_EQ(fresh.rnn.generator().state(), (nn::GeneratorState{9, 0}));  // unchanged
  EXPECT_EQ(fresh.input_noise.state(), (nn::GeneratorState{10, 3}));
  EXPECT_TRUE(bit_equal(fresh.values(), m.values()));  // the weights did load
}

// Rewrites one metadata entry of a saved checkpoint's header (the data stays as it is).
std::string with_header_edit(const std::string& bytes, const std::string& from, const std::string& to) {
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
  std::string header = bytes.substr(8, n);
  const std::size_t at = header.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) header.replace(at, from.size(), to);
  return safetensors_bytes(header, bytes.substr(8 + n));
}

TEST_F(CheckpointRngTest, CorruptOrMismatchedStateIsACheckpointErrorThatChangesNothing) {
  Model saved(1, 5);
  saved.rnn.generator().set_sequence(8);
  const fs::path good = dir_ / "good.safetensors";
  nn::save_checkpoint<float>(good, saved, &saved.opt, 2, {}, saved.generators());
  const std::string bytes = read_bytes(good);
  struct Case {
    std::string from, to;
    std::vector<std::string> words;
  };
  const std::vector<Case> cases = {
      {"\"rng.rnn.dropout.kind\":\"splitmix64-keyed-v1\"",
       "\"rng.rnn.dropout.kind\":\"mt19937_64\"",
       {"generator 'rnn.dropout'", "kind mismatch", "splitmix64-keyed-v1", "mt19937_64"}},
      {"\"rng.rnn.dropout.seed\":\"5\"",
       "\"rng.rnn.dropout.seed\":\"-5\"",
       {"generator 'rnn.dropout'", "rng.rnn.dropout.seed", "\"-5\"", "2^64"}},
      {"\"rng.rnn.dropout.sequence\":\"8\"",
       "\"rng.rnn.dropout.sequence\":\"18446744073709551616\"",
       {"rng.rnn.dropout.sequence", "18446744073709551616"}},
      {"\"rng.input.sequence\":\"0\"", "\"rng.input.sequence\":\"zero\"", {"generator 'input'", "\"zero\""}},
      {"\"rng.input.seed\":\"6\"",
       "\"rng.input.sEEd\":\"6\"",
       {"generator 'input'", "'rng.input.seed' is missing", "incomplete"}},
  };
  for (const Case& c : cases) {
    const fs::path bad = dir_ / "bad.safetensors";
    write_bytes(bad, with_header_edit(bytes, c.from, c.to));
    Model target(2, 9);
    target.input_noise.set_sequence(4);
    const auto before = target.values();
    std::vector<std::string> words = c.words;
    words.push_back(bad.string());
    expect_error<CheckpointError>(
        [&] { (void)nn::load_checkpoint<float>(bad, target, &target.opt, {}, target.generators()); }, words);
    EXPECT_TRUE(bit_equal(target.values(), before)) << c.to;
    EXPECT_EQ(target.rnn.generator().state(), (nn::GeneratorState{9, 0})) << c.to;
    EXPECT_EQ(target.input_noise.state(), (nn::GeneratorState{10, 4})) << c.to;
    EXPECT_EQ(target.opt.step_count(), 0) << c.to;
  }
  // Null or repeated generators on load.
  Model target(2, 9);
  expect_error<CheckpointError>(
      [&] {
        (void)nn::load_checkpoint<float>(good, target, &target.opt, {}, {{"x", nullptr}});
      },
      {"generator 'x' is null"});
  nn::Generator g;
  expect_error<CheckpointError>(
      [&] {
        (void)nn::load_checkpoint<float>(good, target, &target.opt, {}, {{"input", &g}, {"input", &g}});
      },
      {"'input' is given twice"});
}

TEST_F(CheckpointRngTest, BadGeneratorArgumentsOnSaveAreValueErrors) {
  Model m(1, 5);
  const fs::path path = dir_ / "m.safetensors";
  nn::Generator g;
  expect_error<ValueError>(
      [&] {
        nn::save_checkpoint<float>(path, m, nullptr, 0, {{"rng.mine", "x"}});
      },
      {"metadata key 'rng.mine' is reserved", "rng.*"});
  expect_error<ValueError>(
      [&] {
        nn::save_checkpoint<float>(path, m, nullptr, 0, {}, {{"", &g}});
      },
      {"save_checkpoint", "generator #0 has an empty name"});
  expect_error<ValueError>(
      [&] {
        nn::save_checkpoint<float>(path, m, nullptr, 0, {}, {{"a", nullptr}});
      },
      {"save_checkpoint", "generator 'a' is null"});
  expect_error<ValueError>(
      [&] {
        nn::save_checkpoint<float>(path, m, nullptr, 0, {}, {{"a", &g}, {"a", &g}});
      },
      {"save_checkpoint", "'a' is given twice"});
  expect_error<ValueError>(
      [&] {
        nn::save_checkpoint<float>(path, m, nullptr, 0, {}, {{"\xff", &g}});
      },
      {"save_checkpoint", "not valid UTF-8"});
  EXPECT_FALSE(fs::exists(path));
}

}  // namespace
