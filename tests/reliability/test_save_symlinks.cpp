// A save never writes through a planted symlink or into a planted file: the temp file has an
// unpredictable name and is created exclusively (O_EXCL|O_NOFOLLOW), and the rename replaces a
// symlink at the target itself, never the file it points to.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <tapegrad/error.h>
#include <tapegrad/nn/checkpoint.h>

#include "../support/file_bytes.h"
#include "../support/test_names.h"

using M = tg::Matrix<double>;
using tapegrad::testing::read_bytes;
using tapegrad::testing::write_bytes;

namespace {

struct Dir {
  fs::path path = fs::temp_directory_path() / ("tapegrad_symlinks_" + std::to_string(::getpid()));
  Dir() {
    fs::remove_all(path);
    fs::create_directories(path / "victims");
  }
  ~Dir() { fs::remove_all(path); }
  Dir(const Dir&) = delete;
  Dir& operator=(const Dir&) = delete;
};

TEST(SaveSymlinks, PlantedSymlinksAtPredictableTempNamesAreNeverWrittenThrough) {
  Dir d;
  const fs::path target = d.path / "model.safetensors";
  const fs::path victim = d.path / "victims" / "passwd";
  write_bytes(victim, "secret");
  // Every name an earlier or a naive saver would use: <path>.tmp.<pid>, <path>.tmp, <path>~ ...
  const std::vector<std::string> names = {"model.safetensors.tmp." + std::to_string(::getpid()),
                                          "model.safetensors.tmp", "model.safetensors~", ".model.safetensors.tmp",
                                          "model.safetensors.tmp.0000000000000000"};
  for (const auto& n : names) fs::create_symlink(victim, d.path / n);
  tg::Parameter<double> w(M::Constant(2, 2, 1.5), "w");
  for (int i = 0; i < 20; ++i) nn::save_checkpoint<double>(target, {{"w", &w}}, nullptr, i);
  EXPECT_EQ(read_bytes(victim), "secret");
  for (const auto& n : names) {
    EXPECT_TRUE(fs::is_symlink(d.path / n)) << n << " was replaced";
    EXPECT_EQ(fs::read_symlink(d.path / n), victim);
  }
  tg::Parameter<double> got(M::Zero(2, 2), "w");
  const nn::CheckpointInfo info = nn::load_checkpoint<double>(target, {{"w", &got}});
  EXPECT_EQ(info.step, 19);
  EXPECT_EQ(got.value, w.value);
  EXPECT_EQ(std::distance(fs::directory_iterator(d.path), fs::directory_iterator()),
            static_cast<std::ptrdiff_t>(names.size() + 2))
      << "temp files left behind";
}

TEST(SaveSymlinks, ASymlinkAtTheTargetIsReplacedNotFollowed) {
  Dir d;
  const fs::path target = d.path / "latest.safetensors";
  const fs::path victim = d.path / "victims" / "other.safetensors";
  write_bytes(victim, "not a checkpoint, and not to be overwritten");
  fs::create_symlink(victim, target);
  tg::Parameter<double> w(M::Constant(1, 3, -2.0), "w");
  nn::save_checkpoint<double>(target, {{"w", &w}});
  EXPECT_EQ(read_bytes(victim), "not a checkpoint, and not to be overwritten");
  EXPECT_FALSE(fs::is_symlink(target));
  EXPECT_TRUE(fs::is_regular_file(target));
  tg::Parameter<double> got(M::Zero(1, 3), "w");
  nn::load_checkpoint<double>(target, {{"w", &got}});
  EXPECT_EQ(got.value, w.value);
}

TEST(SaveSymlinks, ADanglingSymlinkIntoAMissingDirectoryIsNotCreatedThrough) {
  Dir d;
  const fs::path target = d.path / "model.safetensors";
  const fs::path nowhere = d.path / "victims" / "created_by_the_saver";
  fs::create_symlink(nowhere, d.path / ("model.safetensors.tmp." + std::to_string(::getpid())));
  tg::Parameter<double> w(M::Constant(1, 1, 3.0), "w");
  nn::save_checkpoint<double>(target, {{"w", &w}});
  EXPECT_FALSE(fs::exists(nowhere)) << "the saver created a file through a dangling symlink";
}

}  // namespace
