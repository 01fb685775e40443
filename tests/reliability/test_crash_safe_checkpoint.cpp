// Crash-safe checkpoints: a child process saves a large model over and over, alternating two
// known value sets, and the parent kills it with SIGKILL at random moments (before, during and
// after writes). After every kill the checkpoint at the path must load, and bit-for-bit equal
// one of the two value sets: never a partial or mixed file.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <tapegrad/error.h>
#include <tapegrad/nn/checkpoint.h>
#include "../support/test_names.h"

using M = tg::Matrix<float>;

namespace {

/// About 6 MB of float32 in four tensors, so a save takes long enough to be interrupted.
struct BigModel {
  std::vector<tg::Parameter<float>> params;
  BigModel() {
    const std::vector<std::pair<tg::Index, tg::Index>> shapes = {{512, 1024}, {1024, 512}, {256, 1024}, {1, 1024}};
    for (std::size_t k = 0; k < shapes.size(); ++k) {
      params.emplace_back(M::Zero(shapes[k].first, shapes[k].second), "layer" + std::to_string(k));
    }
  }
  nn::NamedParameters<float> named() {
    nn::NamedParameters<float> out;
    for (auto& p : params) out.emplace_back(p.name, &p);
    return out;
  }
  /// Value set 0 or 1: every entry a distinct function of its position and the set.
  void fill(int set) {
    for (std::size_t k = 0; k < params.size(); ++k) {
      M& v = params[k].value;
      for (tg::Index i = 0; i < v.size(); ++i) {
        v.data()[i] = static_cast<float>(set == 0 ? 0.001 * static_cast<double>(i % 9973) + static_cast<double>(k)
                                                  : -1.0 - 0.002 * static_cast<double>(i % 7919));
      }
    }
  }
  [[nodiscard]] bool equals(const BigModel& other) const {
    for (std::size_t k = 0; k < params.size(); ++k) {
      const M& a = params[k].value;
      const M& b = other.params[k].value;
      if (a.rows() != b.rows() || a.cols() != b.cols() ||
          std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<std::size_t>(a.size())) != 0)
        return false;
    }
    return true;
  }
};

// The child: builds both value sets, tells the parent it is ready (one byte on `ready`), then
// saves them alternately forever. Never returns.
[[noreturn]] void save_forever(const fs::path& path, int ready) {
  BigModel sets[2];
  sets[0].fill(0);
  sets[1].fill(1);
  const char byte = 1;
  if (::write(ready, &byte, 1) != 1) _exit(4);
  for (int i = 1;; ++i) {
    try {
      nn::save_checkpoint<float>(path, sets[i % 2].named(), nullptr, i);
    } catch (...) {
      _exit(3);
    }
  }
}

TEST(CrashSafeCheckpoint, SigkillAtRandomPointsNeverLeavesAPartialFile) {
  const fs::path dir = fs::temp_directory_path() / ("tapegrad_crash_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path path = dir / "model.safetensors";

  BigModel expected[2];
  expected[0].fill(0);
  expected[1].fill(1);
  nn::save_checkpoint<float>(path, expected[0].named());  // a checkpoint exists before any kill

  // How long one save takes here, so kill times spread over several saves.
  const auto t0 = std::chrono::steady_clock::now();
  nn::save_checkpoint<float>(path, expected[0].named());
  const auto save_us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
  const long max_delay_us = std::max<long>(2000, 3 * static_cast<long>(save_us.count()));

  std::mt19937 rng(20240617);
  std::uniform_int_distribution<long> delay(0, max_delay_us);
  constexpr int kKills = 50;
  int loaded[2] = {0, 0};
  int temp_files_seen = 0;
  for (int k = 0; k < kKills; ++k) {
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0) << "fork failed";
    if (child == 0) {
      ::close(pipe_fds[0]);
      save_forever(path, pipe_fds[1]);
    }
    ::close(pipe_fds[1]);
    char byte = 0;
    ASSERT_EQ(::read(pipe_fds[0], &byte, 1), 1) << "the saver died before it was ready";
    ::close(pipe_fds[0]);
    std::this_thread::sleep_for(std::chrono::microseconds(delay(rng)));
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the saver ended on its own (status " << status << ") before the kill";

    // A kill in the middle of a write leaves the temporary file, never a damaged target.
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.path() != path) {
        ++temp_files_seen;
        fs::remove(e.path());
      }
    }
    BigModel got;
    try {
      nn::load_checkpoint<float>(path, got.named());
    } catch (const tg::Error& e) {
      FAIL() << "kill " << k << ": the checkpoint does not load: " << e.what();
    }
    const bool is0 = got.equals(expected[0]);
    const bool is1 = got.equals(expected[1]);
    ASSERT_TRUE(is0 || is1) << "kill " << k << ": the loaded values are neither value set (a mixed file)";
    ++loaded[is0 ? 0 : 1];
  }
  std::printf(
      "%d kills (delays up to %ld us, one save ~%lld us): loaded set 0 %d times, set 1 %d times; "
      "%d kills interrupted a write (temporary file left)\n",
      kKills, max_delay_us, static_cast<long long>(save_us.count()), loaded[0], loaded[1], temp_files_seen);
  RecordProperty("interrupted_writes", temp_files_seen);
  fs::remove_all(dir);
}

}  // namespace
