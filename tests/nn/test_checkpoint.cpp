// Safetensors checkpoints: bit-exact round trips, the exact bytes of a tiny file, every
// corruption rejected with a precise error and the model untouched, atomic saves.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <tapegrad/nn/checkpoint.h>
#include <tapegrad/nn/optim.h>

#include "support/file_bytes.h"
#include "support/test_names.h"
#include "support/test_support.h"

using namespace tapegrad;
using namespace tapegrad::nn;

namespace {

using tapegrad::testing::expect_error;

using tapegrad::testing::read_bytes;
using tapegrad::testing::write_bytes;

// A safetensors file from a header and data_bytes bytes of filler.
std::string make_file(const std::string& header, std::size_t data_bytes) {
  return tapegrad::testing::safetensors_bytes(header, std::string(data_bytes, '\x11'));
}
std::string set_length(std::string file, std::uint64_t n) {
  for (int i = 0; i < 8; ++i) file[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return file;
}

template <class S>
bool bit_equal(const Matrix<S>& a, const Matrix<S>& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(S)) == 0;
}

// A two-tensor model with awkward values (thirds, -0, a subnormal, extremes) and Adam state.
template <class S>
struct Model {
  Parameter<S> w{Matrix<S>::Zero(2, 3), "W"};
  Parameter<S> b{Matrix<S>::Zero(1, 3), "b"};
  Adam<S> adam{{&w, &b}, {.lr = 0.05}};
  NamedParameters<S> named() { return {{"W", &w}, {"b", &b}}; }
  void fill() {
    w.value << S(1) / S(3), S(-0.0), std::numeric_limits<S>::denorm_min(), std::numeric_limits<S>::max(),
        std::numeric_limits<S>::lowest(), S(2.5);
    b.value << S(-7), S(1e-3), S(0.1);
    for (int k = 1; k <= 2; ++k) {
      w.grad = Matrix<S>::Constant(2, 3, S(0.3) * S(k));
      b.grad = Matrix<S>::Constant(1, 3, S(-0.7) / S(k));
      adam.step();
    }
  }
  // Every tensor's bytes, for "unchanged" checks.
  std::vector<Matrix<S>> snapshot() {
    std::vector<Matrix<S>> out = {w.value, b.value};
    for (auto& [name, m] : adam.state_tensors()) out.push_back(*m);
    return out;
  }
};

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() /
        fmt::format("tapegrad_ckpt_{}_{}", ::testing::UnitTest::GetInstance()->current_test_info()->name(), ::getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add);
    fs::remove_all(dir_);
  }
  // Writes bytes to a file, loads it into a fresh filled model and expects a CheckpointError
  // with `words`, with every tensor and the step count unchanged.
  void expect_rejected(const std::string& bytes, const std::vector<std::string>& words) {
    const fs::path p = dir_ / "bad.safetensors";
    write_bytes(p, bytes);
    Model<double> m;
    m.fill();
    const auto before = m.snapshot();
    std::vector<std::string> all = words;
    all.push_back(p.string());
    expect_error<CheckpointError>([&] { load_checkpoint<double>(p, m.named(), &m.adam); }, all);
    const auto after = m.snapshot();
    ASSERT_EQ(before.size(), after.size());
    for (std::size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(bit_equal(before[i], after[i])) << "tensor " << i;
    EXPECT_EQ(m.adam.step_count(), 2);
  }
  // A valid double checkpoint of Model (W, b, Adam state), as bytes.
  std::string good_file() {
    Model<double> m;
    m.fill();
    save_checkpoint<double>(dir_ / "good.safetensors", m.named(), &m.adam, 10);
    return read_bytes(dir_ / "good.safetensors");
  }
  fs::path dir_;
};

template <class S>
void round_trip(const fs::path& path) {
  Model<S> src;
  src.fill();
  save_checkpoint<S>(path, src.named(), &src.adam, 42, {{"run", "abc"}});
  Model<S> dst;
  dst.adam.set_learning_rate(0.9);
  const CheckpointInfo info = load_checkpoint<S>(path, dst.named(), &dst.adam);
  const auto a = src.snapshot();
  const auto b = dst.snapshot();
  ASSERT_EQ(a.size(), 2u + 4u);  // W, b, adam m and v for each
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(bit_equal(a[i], b[i])) << "tensor " << i;
  EXPECT_EQ(info.step, 42);
  EXPECT_EQ(info.metadata.at("run"), "abc");
  EXPECT_EQ(info.metadata.at("optim.kind"), "adam");
  EXPECT_EQ(dst.adam.step_count(), 2);
  EXPECT_EQ(dst.adam.learning_rate(), 0.05);
  // Both continue identically.
  for (Model<S>* m : {&src, &dst}) {
    m->w.grad.setConstant(S(0.01));
    m->b.grad.setConstant(S(-0.02));
    m->adam.step();
  }
  EXPECT_TRUE(bit_equal(src.w.value, dst.w.value));
}

}  // namespace

TEST_F(CheckpointTest, RoundTripIsBitExactForDoubleAndFloat) {
  round_trip<double>(dir_ / "d.safetensors");
  round_trip<float>(dir_ / "f.safetensors");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 2);  // no temp files left
}

TEST_F(CheckpointTest, BytesOfATinyFileAreTheSafetensorsLayout) {
  Parameter<float> w(Matrix<float>(1, 2), "w");
  w.value << 1.0f, -2.0f;
  save_checkpoint<float>(dir_ / "tiny.safetensors", {{"w", &w}}, nullptr, 7);
  // u64 LE header length 88, the JSON (84 bytes) padded with 4 spaces, then 1.0f and -2.0f LE.
  const std::string header = R"({"__metadata__":{"step":"7"},"w":{"data_offsets":[0,8],"dtype":"F32","shape":[1,2]}})";
  const std::string expected =
      std::string("\x58\0\0\0\0\0\0\0", 8) + header + "    " + std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8);
  EXPECT_EQ(read_bytes(dir_ / "tiny.safetensors"), expected);

  const SafetensorsFile f = read_safetensors(dir_ / "tiny.safetensors");
  ASSERT_EQ(f.tensors.size(), 1u);
  const StoredTensor& t = f.tensors.at("w");
  EXPECT_EQ(t.dtype, "F32");
  EXPECT_EQ(t.shape, (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(std::string(t.bytes.begin(), t.bytes.end()), std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8));
  EXPECT_EQ(f.metadata.at("step"), "7");
}

TEST_F(CheckpointTest, ReadsAFileWrittenByAnotherTool) {
  // Hand-written: an unpadded header, keys in another order, an I32 tensor, no "step".
  const std::string header =
      R"({"x":{"dtype":"I32","shape":[3],"data_offsets":[0,12]},"__metadata__":{"format":"pt"}})";
  write_bytes(dir_ / "other.safetensors", make_file(header, 12));
  const SafetensorsFile f = read_safetensors(dir_ / "other.safetensors");
  EXPECT_EQ(f.tensors.at("x").shape, (std::vector<std::int64_t>{3}));
  EXPECT_EQ(f.tensors.at("x").bytes.size(), 12u);
  EXPECT_EQ(f.metadata.at("format"), "pt");
}

TEST_F(CheckpointTest, TruncatedFilesAreRejected) {
  const std::string good = good_file();
  const std::size_t n = static_cast<std::size_t>(static_cast<unsigned char>(good[0])) |
                        static_cast<std::size_t>(static_cast<unsigned char>(good[1])) << 8;
  expect_rejected("", {"0 bytes", "shorter than the 8-byte header length"});
  expect_rejected(good.substr(0, 5), {"5 bytes", "truncated"});
  expect_rejected(good.substr(0, 8), {"header length", "larger than the 0 bytes"});
  expect_rejected(good.substr(0, 8 + n / 2), {"header length", "truncated"});
  expect_rejected(good.substr(0, 8 + n), {"out of range", "truncated"});
  expect_rejected(good.substr(0, good.size() - 1), {"out of range", "truncated"});
}

TEST_F(CheckpointTest, CorruptHeaderIsRejected) {
  std::string bad = good_file();
  bad[9] = '#';  // the quote opening the first key
  expect_rejected(bad, {"corrupt header", "invalid JSON"});
  expect_rejected(set_length(good_file(), 1'000'000), {"header length 1000000 is larger than"});
  expect_rejected(make_file("[1,2]", 0), {"corrupt header"});
  expect_rejected(
      make_file(
          R"({"W":{"dtype":"F64","shape":[2,3],"data_offsets":[0,48]},"W":{"dtype":"F64","shape":[2,3],"data_offsets":[0,48]}})",
          48),
      {"'W' appears twice"});
  expect_rejected(make_file(R"({"__metadata__":{"step":7}})", 0), {"metadata 'step'", "not a string"});
  expect_rejected(make_file(R"({"W":{"dtype":"F64","shape":[2,3],"data_offsets":[0,40]}})", 40),
                  {"tensor 'W'", "hold 40 bytes", "needs 48"});
  expect_rejected(make_file(R"({"W":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}})", 1), {"unknown dtype 'Q7'"});
}

TEST_F(CheckpointTest, OverlappingAndGappedOffsetsAreRejected) {
  // W needs 48 bytes, b 24: b starting at 40 overlaps the end of W.
  expect_rejected(make_file(R"({"W":{"dtype":"F64","shape":[2,3],"data_offsets":[0,48]},)"
                            R"("b":{"dtype":"F64","shape":[1,3],"data_offsets":[40,64]}})",
                            64),
                  {"'W' and 'b' overlap"});
  expect_rejected(make_file(R"({"W":{"dtype":"F64","shape":[2,3],"data_offsets":[8,56]}})", 56),
                  {"bytes [0, 8)", "belong to no tensor"});
  expect_rejected(make_file(R"({"W":{"dtype":"F64","shape":[2,3],"data_offsets":[0,48]}})", 50),
                  {"tensors cover 48 bytes but the data section holds 50"});
}

TEST_F(CheckpointTest, ModelMismatchesAreRejected) {
  const fs::path p = dir_ / "m.safetensors";
  write_bytes(p, good_file());
  // Wrong dtype: a double file into a float model.
  {
    Model<float> m;
    expect_error<CheckpointError>([&] { load_checkpoint<float>(p, m.named(), &m.adam); },
                                  {p.string(), "dtype mismatch", "expected F32 but found F64"});
    EXPECT_EQ(m.w.value.norm(), 0.0f);
  }
  Model<double> m;
  m.fill();
  const auto before = m.snapshot();
  // Missing name: the model has a tensor the file lacks.
  Parameter<double> extra(Matrix<double>::Zero(1, 1), "extra");
  NamedParameters<double> more = m.named();
  more.emplace_back("extra", &extra);
  expect_error<CheckpointError>([&] { load_checkpoint<double>(p, more, &m.adam); },
                                {p.string(), "missing tensor(s) extra"});
  // Extra name: the file holds a tensor the model lacks.
  NamedParameters<double> fewer = {{"W", &m.w}};
  Adam<double> adam_w({&m.w});
  expect_error<CheckpointError>([&] { load_checkpoint<double>(p, fewer, &adam_w); },
                                {p.string(), "extra tensor(s)", "b"});
  // Optimizer state without an optimizer is extra unless ignored.
  expect_error<CheckpointError>([&] { load_checkpoint<double>(p, m.named()); },
                                {"extra tensor(s) optim.adam.m.W", "ignore_optimizer_state"});
  // Shape mismatch.
  Parameter<double> w32(Matrix<double>::Zero(3, 2), "W");
  NamedParameters<double> reshaped = {{"W", &w32}, {"b", &m.b}};
  expect_error<CheckpointError>(
      [&] { load_checkpoint<double>(p, reshaped, nullptr, {.ignore_optimizer_state = true}); },
      {p.string(), "tensor 'W'", "shape mismatch", "expected [3, 2] but found [2, 3]"});
  EXPECT_EQ(w32.value.norm(), 0.0);
  const auto after = m.snapshot();
  for (std::size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(bit_equal(before[i], after[i])) << "tensor " << i;
  // Weights only: fine when asked for.
  Model<double> fresh;
  EXPECT_EQ(load_checkpoint<double>(p, fresh.named(), nullptr, {.ignore_optimizer_state = true}).step, 10);
  EXPECT_TRUE(bit_equal(fresh.w.value, m.w.value));
  // Missing file.
  expect_error<CheckpointError>([&] { load_checkpoint<double>(dir_ / "nope", fresh.named()); },
                                {"nope", "cannot open"});
}

TEST_F(CheckpointTest, SaveArgumentChecks) {
  Model<double> m;
  expect_error<ValueError>(
      [&] {
        save_checkpoint<double>(dir_ / "x", m.named(), nullptr, 0, {{"step", "1"}});
      },
      {"'step'", "reserved"});
  NamedParameters<double> twice = {{"W", &m.w}, {"W", &m.b}};
  expect_error<ValueError>([&] { save_checkpoint<double>(dir_ / "x", twice); }, {"'W'", "twice"});
  EXPECT_FALSE(fs::exists(dir_ / "x"));
}

TEST_F(CheckpointTest, FailedSaveLeavesThePreviousFileIntact) {
  const fs::path p = dir_ / "ckpt.safetensors";
  Model<double> m;
  m.fill();
  save_checkpoint<double>(p, m.named(), &m.adam, 1);
  const std::string previous = read_bytes(p);
  const Matrix<double> saved_w = m.w.value;
  m.w.value.setConstant(5);

  // 1. The target is a directory: the rename fails, the directory and its contents stay.
  const fs::path taken = dir_ / "taken.safetensors";
  fs::create_directory(taken);
  write_bytes(taken / "inside", "kept");
  expect_error<CheckpointError>([&] { save_checkpoint<double>(taken, m.named(), &m.adam, 2); },
                                {taken.string(), "save failed", "unchanged"});
  EXPECT_EQ(read_bytes(taken / "inside"), "kept");
  fs::remove_all(taken);
  const auto only_the_checkpoint = [&] {
    std::vector<fs::path> left;
    for (const auto& e : fs::directory_iterator(dir_)) left.push_back(e.path());
    return left == std::vector<fs::path>{p};
  };
  EXPECT_TRUE(only_the_checkpoint()) << "a failed save left a temp file";

  // 2. The write itself fails half-way (file size limit): the partial temp file is removed.
  Parameter<double> big(Matrix<double>::Ones(64, 64), "big");
  {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    struct sigaction old {};
    sigaction(SIGXFSZ, &ignore, &old);
    rlimit saved{};
    getrlimit(RLIMIT_FSIZE, &saved);
    rlimit small = saved;
    small.rlim_cur = 4096;
    setrlimit(RLIMIT_FSIZE, &small);
    try {
      save_checkpoint<double>(p, {{"big", &big}});
      ADD_FAILURE() << "save under a 4 KiB file size limit succeeded";
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find("cannot write"), std::string::npos) << e.what();
    }
    setrlimit(RLIMIT_FSIZE, &saved);
    sigaction(SIGXFSZ, &old, nullptr);
  }
  EXPECT_EQ(read_bytes(p), previous);
  EXPECT_TRUE(only_the_checkpoint()) << "a failed write left its temp file";

  // 3. The directory does not exist.
  expect_error<CheckpointError>([&] { save_checkpoint<double>(dir_ / "missing" / "c.safetensors", m.named()); },
                                {"missing", "cannot create"});

  // 4. An unwritable directory (root ignores permissions, so only checked as a normal user).
  if (::geteuid() != 0) {
    fs::permissions(dir_, fs::perms::owner_read | fs::perms::owner_exec, fs::perm_options::replace);
    expect_error<CheckpointError>([&] { save_checkpoint<double>(p, m.named(), &m.adam, 3); }, {"save failed"});
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add);
    EXPECT_EQ(read_bytes(p), previous);
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);  // only the checkpoint
  Model<double> check;
  EXPECT_EQ(load_checkpoint<double>(p, check.named(), &check.adam).step, 1);
  EXPECT_TRUE(bit_equal(check.w.value, saved_w));
}
