// Concurrent saves to one path: threads of one process, and separate processes (one of them
// killed with SIGKILL in the middle of its saves), while readers load the same path. Every load
// must succeed and give exactly one saver's value set: never a 0-byte, partial or mixed file.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <tapegrad/error.h>
#include <tapegrad/nn/checkpoint.h>
#include "../support/test_names.h"

using M = tg::Matrix<float>;

namespace {

/// Two tensors (about 400 KB), filled as a function of the saver's id so each id is recognisable.
struct Model {
  tg::Parameter<float> a{M::Zero(256, 256), "a"};
  tg::Parameter<float> b{M::Zero(128, 256), "b"};
  explicit Model(int id = -1) {
    for (tg::Index i = 0; i < a.value.size(); ++i) a.value.data()[i] = static_cast<float>(id * 100000 + i % 4099);
    for (tg::Index i = 0; i < b.value.size(); ++i) b.value.data()[i] = static_cast<float>(-id - 0.5 * (i % 77));
  }
  nn::NamedParameters<float> named() { return {{"a", &a}, {"b", &b}}; }
  /// The id whose values this holds, or -1 for none (a mixed or foreign file).
  [[nodiscard]] int id(int ids) const {
    for (int k = 0; k < ids; ++k) {
      const Model m(k);
      if (std::memcmp(a.value.data(), m.a.value.data(), sizeof(float) * static_cast<std::size_t>(a.value.size())) ==
              0 &&
          std::memcmp(b.value.data(), m.b.value.data(), sizeof(float) * static_cast<std::size_t>(b.value.size())) == 0)
        return k;
    }
    return -1;
  }
};

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<fs::path> others(const fs::path& dir, const fs::path& keep) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path() != keep) out.push_back(e.path());
  }
  return out;
}

/// Loads path once; returns the saver id it holds, or -1 with the reason in `error`.
int load_once(const fs::path& path, int ids, std::string& error) {
  Model got;
  try {
    nn::load_checkpoint<float>(path, got.named());
  } catch (const tg::Error& e) {
    error = e.what();
    return -1;
  }
  const int id = got.id(ids);
  if (id < 0) error = "the loaded values belong to no saver (a mixed file)";
  return id;
}

TEST(ConcurrentSave, ThreadsSavingToOnePathWhileOthersLoadIt) {
  const fs::path dir = fresh_dir("tapegrad_threads_save");
  const fs::path path = dir / "shared.safetensors";
  constexpr int kSavers = 4;
  constexpr int kSavesEach = 25;
  constexpr int kReaders = 2;
  {
    Model first(0);
    nn::save_checkpoint<float>(path, first.named());
  }
  std::atomic<int> savers_running{kSavers};
  std::atomic<int> reads{0};
  std::atomic<int> save_errors{0};
  std::mutex mu;
  std::vector<std::string> failures;
  std::vector<std::thread> threads;
  for (int s = 0; s < kSavers; ++s) {
    threads.emplace_back([&, s] {
      Model m(s);
      for (int i = 0; i < kSavesEach; ++i) {
        try {
          nn::save_checkpoint<float>(path, m.named(), nullptr, i);
        } catch (const tg::Error& e) {
          ++save_errors;
          const std::lock_guard<std::mutex> lock(mu);
          failures.push_back(std::string("save: ") + e.what());
        }
      }
      --savers_running;
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&] {
      while (savers_running.load() > 0) {
        std::string error;
        if (load_once(path, kSavers, error) < 0) {
          const std::lock_guard<std::mutex> lock(mu);
          failures.push_back("load: " + error);
        }
        ++reads;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(failures.empty()) << failures.size() << " failures, the first: " << failures.front();
  EXPECT_EQ(save_errors.load(), 0);
  EXPECT_GT(reads.load(), 0);
  std::string error;
  EXPECT_GE(load_once(path, kSavers, error), 0) << error;
  EXPECT_TRUE(others(dir, path).empty()) << "saves that finished left temp files";
  std::printf("%d threads x %d saves to one path, %d concurrent loads: all complete and exact\n", kSavers, kSavesEach,
              reads.load());
  RecordProperty("loads", reads.load());
  fs::remove_all(dir);
}

// A child: saves its value set `saves` times (or forever for saves < 0), then exits 0.
[[noreturn]] void child_saver(const fs::path& path, int id, int saves, int ready) {
  Model m(id);
  const char byte = 1;
  if (::write(ready, &byte, 1) != 1) _exit(4);
  for (int i = 0; saves < 0 || i < saves; ++i) {
    try {
      nn::save_checkpoint<float>(path, m.named(), nullptr, i);
    } catch (...) {
      _exit(3);
    }
  }
  _exit(0);
}

pid_t spawn(const fs::path& path, int id, int saves) {
  int fds[2];
  if (::pipe(fds) != 0) return -1;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    child_saver(path, id, saves, fds[1]);
  }
  ::close(fds[1]);
  char byte = 0;
  const bool ready = ::read(fds[0], &byte, 1) == 1;
  ::close(fds[0]);
  return ready ? pid : -1;
}

TEST(ConcurrentSave, ProcessesSavingToOnePathOneKilledMidSave) {
  const fs::path dir = fresh_dir("tapegrad_procs_save");
  const fs::path path = dir / "shared.safetensors";
  constexpr int kSavers = 3;   // ids 0..2 finish normally
  constexpr int kRounds = 20;  // each round: the savers plus one victim (id 3) that is killed
  constexpr int kSavesEach = 12;
  constexpr int kIds = kSavers + 1;
  {
    Model first(0);
    nn::save_checkpoint<float>(path, first.named());
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> delay_us(0, 30000);
  int kills = 0;
  int loads = 0;
  int temp_files_left = 0;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<pid_t> savers;
    for (int s = 0; s < kSavers; ++s) {
      savers.push_back(spawn(path, s, kSavesEach));
      ASSERT_GT(savers.back(), 0) << "saver " << s << " did not start";
    }
    const pid_t victim = spawn(path, kSavers, -1);
    ASSERT_GT(victim, 0);
    // Load while they save; kill the victim at a random moment in the middle of it.
    const auto kill_at = std::chrono::steady_clock::now() + std::chrono::microseconds(delay_us(rng));
    bool killed = false;
    for (int i = 0; i < 40 || !killed; ++i) {
      if (!killed && std::chrono::steady_clock::now() >= kill_at) {
        ASSERT_EQ(::kill(victim, SIGKILL), 0);
        killed = true;
      }
      std::string error;
      ASSERT_GE(load_once(path, kIds, error), 0) << "round " << round << ", load " << i << ": " << error;
      ++loads;
    }
    int status = 0;
    ASSERT_EQ(::waitpid(victim, &status, 0), victim);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the victim ended on its own: " << status;
    ++kills;
    for (const pid_t pid : savers) {
      ASSERT_EQ(::waitpid(pid, &status, 0), pid);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a saver failed (status " << status << ")";
    }
    // Nothing lost: the path holds one complete save. Only the killed saver may leave a temp file.
    std::string error;
    ASSERT_GE(load_once(path, kIds, error), 0) << "after round " << round << ": " << error;
    ++loads;
    const auto left = others(dir, path);
    EXPECT_LE(left.size(), 1U) << "more temp files than killed savers";
    for (const auto& p : left) {
      EXPECT_NE(p.filename().string().find("shared.safetensors.tmp."), std::string::npos) << p;
      ++temp_files_left;
      fs::remove(p);
    }
  }
  std::printf(
      "%d rounds of %d saving processes + 1 killed with SIGKILL: %d kills survived, %d loads all "
      "complete and exact, %d temp files left by the killed savers\n",
      kRounds, kSavers, kills, loads, temp_files_left);
  RecordProperty("kills", kills);
  fs::remove_all(dir);
}

}  // namespace
