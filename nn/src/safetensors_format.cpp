// Safetensors parsing, validation, encoding and the atomic write.
#include "safetensors_format.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include <tapegrad/error.h>
#include <tapegrad/nn/checkpoint.h>

namespace tapegrad::nn {
namespace detail {
namespace {

using nlohmann::json;

// Larger headers are refused before parsing (the same cap as the reference implementation).
constexpr std::uint64_t kMaxHeader = 100'000'000;

std::uint64_t read_u64_le(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string shape_str(const std::vector<std::int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw CheckpointError(fmt::format("checkpoint '{}': {}", path, what));
}

std::vector<std::uint8_t> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail(path.string(), fmt::format("cannot open for reading ({})", std::strerror(errno)));
  const std::streamsize size = in.tellg();
  if (size < 0) fail(path.string(), "cannot determine the file size");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size)) fail(path.string(), "read failed");
  return bytes;
}

TensorEntry parse_entry(const std::string& path, const std::string& name, const json& j, std::uint64_t data_size) {
  const auto bad = [&](const std::string& what) { fail(path, fmt::format("tensor '{}': {}", name, what)); };
  if (!j.is_object()) bad(fmt::format("header entry is {}, expected an object", j.type_name()));
  for (const auto& [key, value] : j.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      bad(fmt::format("unexpected header field '{}'", key));
  }
  if (!j.contains("dtype") || !j["dtype"].is_string()) bad("header entry has no string 'dtype'");
  if (!j.contains("shape") || !j["shape"].is_array()) bad("header entry has no 'shape' array");
  if (!j.contains("data_offsets") || !j["data_offsets"].is_array() || j["data_offsets"].size() != 2) {
    bad("header entry has no 'data_offsets' pair [begin, end]");
  }
  TensorEntry e;
  e.dtype = j["dtype"].get<std::string>();
  const std::size_t elem = dtype_size(e.dtype);
  if (elem == 0) bad(fmt::format("unknown dtype '{}'", e.dtype));
  std::uint64_t numel = 1;
  for (const json& d : j["shape"]) {
    if (!d.is_number_unsigned())
      bad(fmt::format("shape {} holds a non-integer or negative dimension", j["shape"].dump()));
    const std::uint64_t n = d.get<std::uint64_t>();
    if (n != 0 && numel > std::numeric_limits<std::uint64_t>::max() / n / elem) bad("shape is too large");
    numel *= n;
    e.shape.push_back(static_cast<std::int64_t>(n));
  }
  for (const json& o : j["data_offsets"]) {
    if (!o.is_number_unsigned())
      bad(fmt::format("data_offsets {} are not non-negative integers", j["data_offsets"].dump()));
  }
  e.begin = j["data_offsets"][0].get<std::uint64_t>();
  e.end = j["data_offsets"][1].get<std::uint64_t>();
  if (e.begin > e.end) bad(fmt::format("data_offsets [{}, {}] run backwards", e.begin, e.end));
  if (e.end > data_size) {
    bad(fmt::format("data_offsets [{}, {}] are out of range: the data section holds {} bytes (file truncated?)",
                    e.begin, e.end, data_size));
  }
  if (e.end - e.begin != numel * elem) {
    bad(fmt::format("data_offsets [{}, {}] hold {} bytes but dtype {} with shape {} needs {}", e.begin, e.end,
                    e.end - e.begin, e.dtype, shape_str(e.shape), numel * elem));
  }
  return e;
}

}  // namespace

std::size_t dtype_size(const std::string& dtype) {
  static const std::map<std::string, std::size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"F64", 8},     {"I64", 8}, {"U64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

ParsedFile parse_safetensors(const std::filesystem::path& file) {
  ParsedFile out;
  out.path = file.string();
  const std::string& path = out.path;
  out.bytes = read_file(file);
  const std::uint64_t size = out.bytes.size();
  if (size < 8) fail(path, fmt::format("file is {} bytes, shorter than the 8-byte header length (truncated)", size));
  const std::uint64_t n = read_u64_le(out.bytes.data());
  if (n > size - 8) {
    fail(path, fmt::format("header length {} is larger than the {} bytes that follow it (truncated or corrupt)", n,
                           size - 8));
  }
  if (n > kMaxHeader) fail(path, fmt::format("header length {} exceeds the limit of {} bytes", n, kMaxHeader));
  if (n < 2 || out.bytes[8] != '{') fail(path, "corrupt header: it does not start with '{'");
  out.data_start = 8 + n;
  const std::uint64_t data_size = size - out.data_start;

  // Duplicate top-level keys would be silently merged by the parser: detect them on the way.
  std::set<std::string> keys;
  std::string duplicate;
  const auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && !keys.insert(parsed.get<std::string>()).second) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  json header;
  try {
    const char* begin = reinterpret_cast<const char*>(out.bytes.data() + 8);
    header = json::parse(begin, begin + n, on_event);
  } catch (const json::exception& e) {
    fail(path, fmt::format("corrupt header: invalid JSON ({})", e.what()));
  }
  if (!header.is_object()) fail(path, fmt::format("corrupt header: JSON {} is not an object", header.type_name()));
  if (!duplicate.empty()) fail(path, fmt::format("corrupt header: name '{}' appears twice", duplicate));

  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) fail(path, "corrupt header: __metadata__ is not an object");
      for (const auto& [key, v] : value.items()) {
        if (!v.is_string())
          fail(path, fmt::format("corrupt header: metadata '{}' is {}, not a string", key, v.type_name()));
        out.metadata[key] = v.get<std::string>();
      }
      continue;
    }
    out.tensors[name] = parse_entry(path, name, value, data_size);
  }

  // The byte ranges must tile the data section exactly: no overlap, no gap, nothing left over.
  std::vector<std::pair<const std::string*, const TensorEntry*>> order;
  for (const auto& [name, e] : out.tensors) order.emplace_back(&name, &e);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.second->begin != b.second->begin ? a.second->begin < b.second->begin : a.second->end < b.second->end;
  });
  std::uint64_t covered = 0;
  const std::string* previous = nullptr;
  for (const auto& [name, e] : order) {
    if (e->begin < covered) {
      fail(path, fmt::format("tensors '{}' and '{}' overlap: '{}' ends at byte {} but '{}' begins at {}", *previous,
                             *name, *previous, covered, *name, e->begin));
    }
    if (e->begin > covered) {
      fail(path, fmt::format("corrupt data layout: bytes [{}, {}) before tensor '{}' belong to no tensor", covered,
                             e->begin, *name));
    }
    covered = e->end;
    previous = name;
  }
  if (covered != data_size) {
    fail(path,
         fmt::format("corrupt data layout: tensors cover {} bytes but the data section holds {}", covered, data_size));
  }
  return out;
}

std::vector<std::uint8_t> encode_safetensors(const std::map<std::string, EncodeTensor>& tensors,
                                             const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    header[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.size}}};
    offset += t.size;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // pad so the data starts 8-byte aligned
  std::vector<std::uint8_t> out;
  out.reserve(8 + text.size() + offset);
  const std::uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
  out.insert(out.end(), text.begin(), text.end());
  for (const auto& [name, t] : tensors) out.insert(out.end(), t.data, t.data + t.size);
  return out;
}

void write_atomically(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
  const std::string target = path.string();
  const std::string tmp = fmt::format("{}.tmp.{}", target, ::getpid());
  const auto fail_io = [&](const char* what, int err, bool remove_tmp) {
    if (remove_tmp) ::unlink(tmp.c_str());
    fail(target, fmt::format("save failed: {} '{}': {}; the previous file (if any) is unchanged", what, tmp,
                             std::strerror(err)));
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail_io("cannot create", errno, false);
  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = w < 0 ? errno : EIO;
      ::close(fd);
      fail_io("cannot write", err, true);
    }
    written += static_cast<std::size_t>(w);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail_io("cannot fsync", err, true);
  }
  if (::close(fd) != 0) fail_io("cannot close", errno, true);
  if (::rename(tmp.c_str(), target.c_str()) != 0) fail_io("cannot rename over the target", errno, true);
  // Make the rename itself durable; a failure here cannot undo it, so it is not an error.
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace detail

SafetensorsFile read_safetensors(const std::filesystem::path& path) {
  detail::ParsedFile parsed = detail::parse_safetensors(path);
  SafetensorsFile out;
  out.metadata = std::move(parsed.metadata);
  for (const auto& [name, e] : parsed.tensors) {
    StoredTensor t;
    t.dtype = e.dtype;
    t.shape = e.shape;
    t.bytes.assign(parsed.data(e), parsed.data(e) + (e.end - e.begin));
    out.tensors.emplace(name, std::move(t));
  }
  return out;
}

}  // namespace tapegrad::nn
