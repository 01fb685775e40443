// The atomic, exclusive file write behind save_checkpoint. The temp file has a random name and
// is created with O_EXCL|O_NOFOLLOW relative to the target's directory (opened once), so two
// savers never share a temp file and a file or symlink planted at any name is never written.
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <tapegrad/error.h>

#include "safetensors_format.h"

namespace tapegrad::nn::detail {
namespace {

// 64 unpredictable bits; if the kernel cannot give them, a mix that is still unique per call.
std::uint64_t random_suffix() {
  std::uint64_t v = 0;
  if (::getrandom(&v, sizeof v, GRND_NONBLOCK) == static_cast<ssize_t>(sizeof v)) return v;
  static std::atomic<std::uint64_t> counter{0};
  const auto now = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return now ^ (static_cast<std::uint64_t>(::getpid()) << 40) ^ (counter.fetch_add(1) * 0x9e3779b97f4a7c15ULL);
}

bool write_all(int fd, const std::vector<std::uint8_t>& bytes, int& err) {
  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      err = w < 0 ? errno : EIO;
      return false;
    }
    written += static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace

void write_atomically(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
  const std::string target = path.string();
  const std::string name = path.filename().string();
  const auto fail = [&](const std::string& what) {
    throw CheckpointError(
        fmt::format("checkpoint '{}': save failed: {}; the previous file (if any) is unchanged", target, what));
  };
  if (name.empty() || name == "." || name == "..") fail("the path names a directory, not a file");
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  const FileHandle dirfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dirfd.get() < 0) fail(fmt::format("cannot create a file in '{}': {}", dir.string(), std::strerror(errno)));

  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    tmp = fmt::format("{}.tmp.{:016x}", name, random_suffix());
    fd = ::openat(dirfd.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) fail(fmt::format("cannot create temp file '{}': {}", (dir / tmp).string(), std::strerror(errno)));
  FileHandle file(fd);
  const auto fail_io = [&](const char* what, int err) {
    file = FileHandle();
    ::unlinkat(dirfd.get(), tmp.c_str(), 0);
    fail(fmt::format("{} '{}': {}", what, (dir / tmp).string(), std::strerror(err)));
  };
  int err = 0;
  if (!write_all(file.get(), bytes, err)) fail_io("cannot write", err);
  if (::fsync(file.get()) != 0) fail_io("cannot fsync", errno);
  const int closed = ::close(file.get());
  const int close_err = errno;
  static_cast<void>(file.release());
  if (closed != 0) fail_io("cannot close", close_err);
  // rename replaces whatever is at the target (a symlink itself, never the file it points to).
  if (::renameat(dirfd.get(), tmp.c_str(), dirfd.get(), name.c_str()) != 0) {
    fail_io("cannot rename over the target", errno);
  }
  // Make the rename durable; a failure here cannot undo it, so it is not reported.
  ::fsync(dirfd.get());
}

}  // namespace tapegrad::nn::detail
