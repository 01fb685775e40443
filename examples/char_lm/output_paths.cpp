#include "output_paths.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

namespace char_lm {
namespace {

namespace fs = std::filesystem;

struct NamedPath {
  std::string option;  // e.g. "--log-file", or "--out (gradient_flow.svg)"
  fs::path path;
  bool may_be_resume = false;  // the checkpoint: read first, then replaced atomically
};

// A file's identity: device and inode when it exists, else its absolute path with the
// existing part resolved (two spellings of a file still to be created compare equal).
struct FileId {
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  std::string resolved;
};

FileId identify(const fs::path& p) {
  FileId id;
  struct stat st {};
  if (::stat(p.c_str(), &st) == 0) {
    id.exists = true;
    id.dev = st.st_dev;
    id.ino = st.st_ino;
    return id;
  }
  std::error_code ec;
  const fs::path absolute = fs::absolute(p, ec);
  const fs::path resolved = fs::weakly_canonical(absolute, ec);
  id.resolved = ec ? absolute.lexically_normal().string() : resolved.string();
  return id;
}

bool same_file(const FileId& a, const FileId& b) {
  if (a.exists != b.exists) return false;
  return a.exists ? a.dev == b.dev && a.ino == b.ino : a.resolved == b.resolved;
}

[[noreturn]] void refuse(const NamedPath& what, const std::string& why) {
  throw std::runtime_error(fmt::format("{} {}: {} (checked before training)", what.option, what.path.string(), why));
}

// Creates dir if needed and writes (then removes) a probe file in it: the only sure test that
// files can be created there (permissions, read-only file systems, /proc, full quotas).
void probe_directory(const NamedPath& what, const fs::path& dir, bool create) {
  std::error_code ec;
  if (create) fs::create_directories(dir, ec);
  if (ec) refuse(what, fmt::format("cannot create the directory {}: {}", dir.string(), ec.message()));
  if (!fs::is_directory(dir, ec)) refuse(what, fmt::format("{} is not a directory", dir.string()));
  for (int k = 0;; ++k) {
    const fs::path probe = dir / fmt::format(".char_lm_probe.{}.{}", ::getpid(), k);
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::close(fd);
      ::unlink(probe.c_str());
      return;
    }
    if (errno != EEXIST || k >= 100) {
      refuse(what, fmt::format("cannot write into the directory {}: {}", dir.string(), std::strerror(errno)));
    }
  }
}

fs::path parent_or_dot(const fs::path& p) { return p.has_parent_path() ? p.parent_path() : fs::path("."); }

}  // namespace

void check_outputs(const Options& o, const fs::path& data) {
  std::vector<NamedPath> inputs = {{"--data", data}};
  if (!o.resume.empty()) inputs.push_back({"--resume", o.resume});
  const fs::path out(o.out);
  std::vector<NamedPath> outputs = {{o.save.empty() ? "--out (checkpoint)" : "--save", checkpoint_path(o), true},
                                    {"--out (gradient_flow.svg)", out / "gradient_flow.svg"},
                                    {"--out (gradient_flow.csv)", out / "gradient_flow.csv"}};
  if (!o.log_file.empty()) outputs.push_back({"--log-file", o.log_file});

  // 1. No output is an input or another output.
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const FileId id = identify(outputs[i].path);
    for (const NamedPath& in : inputs) {
      if (outputs[i].may_be_resume && in.option == "--resume") continue;
      if (same_file(id, identify(in.path))) {
        refuse(outputs[i], fmt::format("is the same file as {} {}; writing it would destroy that input", in.option,
                                       in.path.string()));
      }
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (same_file(id, identify(outputs[j].path))) {
        refuse(outputs[i], fmt::format("is the same file as {} {}", outputs[j].option, outputs[j].path.string()));
      }
    }
  }
  // 2. Every output can be written: its directory takes a new file, and an existing output is
  // a regular file (an existing log file must also open for writing; it is not truncated here).
  probe_directory({"--out", out}, out, true);
  for (const NamedPath& w : outputs) {
    const bool is_log = w.option == "--log-file";
    probe_directory(w, parent_or_dot(w.path), !is_log);
    std::error_code ec;
    const fs::file_status st = fs::status(w.path, ec);
    if (!fs::exists(st)) continue;
    if (!fs::is_regular_file(st)) refuse(w, "exists and is not a regular file");
    if (is_log) {
      const int fd = ::open(w.path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
      if (fd < 0) refuse(w, fmt::format("cannot be opened for writing: {}", std::strerror(errno)));
      ::close(fd);
    }
  }
}

}  // namespace char_lm
