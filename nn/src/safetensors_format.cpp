// Safetensors parsing, validation and encoding. The header is parsed with an event (SAX)
// handler that knows the format's shape, so nesting, duplicate keys, rank and number ranges are
// refused as they are met: no document tree is built from what the file claims, nothing recurses.
#include "safetensors_format.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <limits>
#include <new>
#include <set>

#include <nlohmann/json.hpp>

#include <tapegrad/error.h>
#include <tapegrad/nn/checkpoint.h>

namespace tapegrad::nn {
namespace detail {
namespace {

using nlohmann::json;

constexpr std::uint64_t kMaxBytes = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

std::uint64_t read_u64_le(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string shape_str(const std::vector<std::int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw CheckpointError(fmt::format("checkpoint '{}': {}", path, what));
}

// Reads exactly n bytes at offset; a short read means the file shrank under us.
void pread_all(const ParsedFile& f, std::uint8_t* dst, std::uint64_t n, std::uint64_t offset) {
  std::uint64_t done = 0;
  while (done < n) {
    const std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(n - done, 1U << 30));
    const ssize_t r = ::pread(f.fd.get(), dst + done, chunk, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail(f.path, fmt::format("read failed at byte {}: {}", offset + done, std::strerror(errno)));
    if (r == 0) fail(f.path, fmt::format("file ended at byte {} while reading (truncated while open?)", offset + done));
    done += static_cast<std::uint64_t>(r);
  }
}

// What a JSON value is, for the handler and its messages.
enum class Kind { Null, Bool, Negative, Unsigned, Float, String, Object, Array };

// Each Kind as the messages name it, in the enum's order.
constexpr const char* kKindNames[] = {
    "null",                                                // Null
    "a boolean",                                           // Bool
    "a negative number",                                   // Negative
    "an integer",                                          // Unsigned
    "a non-integer number (or an integer beyond 2^64-1)",  // Float
    "a string",                                            // String
    "an object",                                           // Object
    "an array",                                            // Array
};
static_assert(std::size(kKindNames) == static_cast<std::size_t>(Kind::Array) + 1);
const char* kind_name(Kind k) { return kKindNames[static_cast<std::size_t>(k)]; }

// The header's grammar as a state machine over parser events. Every handler returns false to
// stop the parse at the first violation, with `error` saying what and where.
class HeaderHandler {
 public:
  explicit HeaderHandler(ParsedFile& out) : out_(out) {}
  std::string error;

  bool null() { return value(Kind::Null, "null"); }
  bool boolean(bool b) { return value(Kind::Bool, b ? "true" : "false"); }
  bool number_integer(json::number_integer_t v) {
    if (v == 0) return unsigned_value(0, "-0");  // "-0" is zero
    return value(Kind::Negative, std::to_string(v));
  }
  bool number_unsigned(json::number_unsigned_t v) { return unsigned_value(v, std::to_string(v)); }
  bool number_float(json::number_float_t, const std::string& text) { return value(Kind::Float, printable(text)); }
  bool string(std::string& s) {
    text_ = std::move(s);
    return value(Kind::String, "");
  }
  bool binary(json::binary_t&) { return stop("corrupt header: binary value"); }
  bool start_object(std::size_t) { return value(Kind::Object, ""); }
  bool start_array(std::size_t) { return value(Kind::Array, ""); }
  bool key(std::string& k) {
    if (where_ == Where::Top) {
      if (!top_keys_.insert(k).second)
        return stop(fmt::format("corrupt header: name '{}' appears twice", printable(k)));
      name_ = std::move(k);
    } else if (where_ == Where::Metadata) {
      if (!meta_keys_.insert(k).second) {
        return stop(fmt::format("corrupt header: metadata key '{}' appears twice", printable(k)));
      }
      field_ = std::move(k);
    } else {  // Entry
      if (k != "dtype" && k != "shape" && k != "data_offsets")
        return entry_error(fmt::format("unexpected header field '{}'", printable(k)));
      if (!fields_.insert(k).second) return entry_error(fmt::format("field '{}' appears twice", k));
      field_ = std::move(k);
    }
    return true;
  }
  bool end_object() {
    if (where_ == Where::Entry) {
      where_ = Where::Top;
      return finish_entry();
    }
    where_ = where_ == Where::Metadata ? Where::Top : Where::Done;
    return true;
  }
  bool end_array() {
    where_ = Where::Entry;
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) {
    // The message quotes the last token, which can be long or hold any byte: made printable.
    // "[json.exception.parse_error.101] parse error at line 1, column 25: " is noise here.
    std::string what = e.what();
    if (const auto colon = what.find(": "); colon != std::string::npos) what.erase(0, colon + 2);
    return stop(
        fmt::format("corrupt header: invalid JSON at byte {} of the header: {}", position, printable(what, 240)));
  }

 private:
  enum class Where { Start, Top, Metadata, Entry, Shape, Offsets, Done };

  bool stop(std::string what) {
    error = std::move(what);
    return false;
  }
  bool entry_error(const std::string& what) { return stop(fmt::format("tensor '{}': {}", printable(name_), what)); }
  bool unsigned_value(std::uint64_t v, const std::string& text) {
    number_ = v;
    return value(Kind::Unsigned, text);
  }

  // A value (scalar, or the start of a container) at the current position.
  bool value(Kind k, const std::string& text) {
    const auto described = [&] { return text.empty() ? std::string(kind_name(k)) : text + " (" + kind_name(k) + ")"; };
    switch (where_) {
      case Where::Start:
        if (k != Kind::Object)
          return stop(fmt::format("corrupt header: the header is {}, not a JSON object", kind_name(k)));
        where_ = Where::Top;
        return true;
      case Where::Top:
        if (name_ == "__metadata__") {
          if (k != Kind::Object)
            return stop(fmt::format("corrupt header: __metadata__ is {}, not an object", kind_name(k)));
          where_ = Where::Metadata;
          return true;
        }
        if (k != Kind::Object) return entry_error(fmt::format("header entry is {}, expected an object", kind_name(k)));
        where_ = Where::Entry;
        entry_ = TensorEntry{};
        fields_.clear();
        offsets_.clear();
        return true;
      case Where::Metadata:
        if (k != Kind::String) {
          return stop(
              fmt::format("corrupt header: metadata '{}' is {}, not a string", printable(field_), kind_name(k)));
        }
        out_.metadata[field_] = std::move(text_);
        return true;
      case Where::Entry:
        if (field_ == "dtype") {
          if (k != Kind::String) return entry_error(fmt::format("'dtype' is {}, expected a string", described()));
          entry_.dtype = std::move(text_);
          return true;
        }
        if (k != Kind::Array) return entry_error(fmt::format("'{}' is {}, expected an array", field_, described()));
        where_ = field_ == "shape" ? Where::Shape : Where::Offsets;
        return true;
      case Where::Shape:
        if (k != Kind::Unsigned) {
          return entry_error(fmt::format(
              "shape dimension #{} is {}, expected a non-negative integer{}", entry_.shape.size(), described(),
              k == Kind::Object || k == Kind::Array ? " (the format nests at most 3 levels)" : ""));
        }
        if (entry_.shape.size() == kMaxRank)
          return entry_error(fmt::format("shape has more than {} dimensions", kMaxRank));
        if (number_ > kMaxBytes) {
          return entry_error(
              fmt::format("shape dimension #{} is {}, larger than 2^63-1", entry_.shape.size(), number_));
        }
        entry_.shape.push_back(static_cast<std::int64_t>(number_));
        return true;
      case Where::Offsets:
        if (k != Kind::Unsigned) {
          return entry_error(
              fmt::format("data_offsets hold {}, expected non-negative integers{}", described(),
                          k == Kind::Object || k == Kind::Array ? " (the format nests at most 3 levels)" : ""));
        }
        if (offsets_.size() == 2) return entry_error("data_offsets hold more than two numbers [begin, end]");
        offsets_.push_back(number_);
        return true;
      case Where::Done:
        break;
    }
    return stop("corrupt header: value after the end of the header object");
  }

  // The entry is complete: fields present, dtype known, size arithmetic checked, offsets in range.
  bool finish_entry() {
    if (!fields_.contains("dtype")) return entry_error("header entry has no string 'dtype'");
    if (!fields_.contains("shape")) return entry_error("header entry has no 'shape' array");
    if (offsets_.size() != 2) return entry_error("header entry has no 'data_offsets' pair [begin, end]");
    const std::size_t elem = dtype_size(entry_.dtype);
    if (elem == 0) return entry_error(fmt::format("unknown dtype '{}'", printable(entry_.dtype)));
    // Byte size with every multiplication checked: the product of the non-zero dimensions times
    // the element size must fit in 2^63-1 (a zero dimension still makes the tensor empty).
    std::uint64_t bytes = elem;
    bool empty = false;
    for (const std::int64_t d : entry_.shape) {
      const auto n = static_cast<std::uint64_t>(d);
      if (n == 0) {
        empty = true;
        continue;
      }
      if (bytes > kMaxBytes / n) {
        return entry_error(
            fmt::format("shape {} of {} is too large: more than 2^63-1 bytes", shape_str(entry_.shape), entry_.dtype));
      }
      bytes *= n;
    }
    if (empty) bytes = 0;
    entry_.begin = offsets_[0];
    entry_.end = offsets_[1];
    const std::uint64_t data_size = out_.file_size - out_.data_start;
    if (entry_.begin > entry_.end) {
      return entry_error(fmt::format("data_offsets [{}, {}] run backwards", entry_.begin, entry_.end));
    }
    if (entry_.end > data_size) {
      return entry_error(
          fmt::format("data_offsets [{}, {}] are out of range: the data section holds {} bytes (file truncated?)",
                      entry_.begin, entry_.end, data_size));
    }
    if (entry_.end - entry_.begin != bytes) {
      return entry_error(fmt::format("data_offsets [{}, {}] hold {} bytes but dtype {} with shape {} needs {}",
                                     entry_.begin, entry_.end, entry_.end - entry_.begin, entry_.dtype,
                                     shape_str(entry_.shape), bytes));
    }
    out_.tensors.emplace(name_, std::move(entry_));
    return true;
  }

  ParsedFile& out_;
  Where where_ = Where::Start;
  std::set<std::string> top_keys_;
  std::set<std::string> meta_keys_;
  std::set<std::string> fields_;
  std::string name_;   // the tensor (or __metadata__) being read
  std::string field_;  // the entry field or metadata key whose value comes next
  std::string text_;   // the last string value
  std::uint64_t number_ = 0;
  TensorEntry entry_;
  std::vector<std::uint64_t> offsets_;
};

// Opens a regular file for reading without blocking on a FIFO or device.
void open_regular(ParsedFile& f, const std::filesystem::path& file) {
  f.fd = FileHandle(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (f.fd.get() < 0) fail(f.path, fmt::format("cannot open for reading ({})", std::strerror(errno)));
  struct stat st {};
  if (::fstat(f.fd.get(), &st) != 0) fail(f.path, fmt::format("cannot stat ({})", std::strerror(errno)));
  if (S_ISDIR(st.st_mode)) fail(f.path, "is a directory, not a checkpoint file");
  if (!S_ISREG(st.st_mode)) fail(f.path, "is not a regular file (a FIFO, socket or device), not a checkpoint file");
  f.file_size = static_cast<std::uint64_t>(st.st_size);
}

void parse_header(ParsedFile& out) {
  const std::string& path = out.path;
  const std::uint64_t size = out.file_size;
  if (size < 8) fail(path, fmt::format("file is {} bytes, shorter than the 8-byte header length (truncated)", size));
  std::uint8_t length[8];
  pread_all(out, length, 8, 0);
  const std::uint64_t n = read_u64_le(length);
  if (n > size - 8) {
    fail(path, fmt::format("header length {} is larger than the {} bytes that follow it (truncated or corrupt)", n,
                           size - 8));
  }
  if (n > kMaxHeaderBytes)
    fail(path, fmt::format("header length {} exceeds the limit of {} bytes", n, kMaxHeaderBytes));
  std::vector<std::uint8_t> header(static_cast<std::size_t>(n));
  pread_all(out, header.data(), n, 8);
  if (n < 2 || header[0] != '{') fail(path, "corrupt header: it does not start with '{'");
  out.data_start = 8 + n;
  // The parser stops at a NUL as if the input ended there: what follows would go unread.
  // JSON allows no raw NUL anywhere (inside a string it must be escaped), so any is an error.
  if (const void* nul = std::memchr(header.data(), 0, header.size()); nul != nullptr) {
    fail(path, fmt::format("corrupt header: NUL byte at header byte {} (JSON allows none)",
                           static_cast<const std::uint8_t*>(nul) - header.data()));
  }
  HeaderHandler handler(out);
  const bool ok = json::sax_parse(header.begin(), header.end(), &handler, json::input_format_t::json, true);
  if (!ok) fail(path, handler.error.empty() ? "corrupt header" : handler.error);
}

// The byte ranges must tile the data section exactly: no overlap, no gap, nothing left over.
void check_layout(const ParsedFile& out) {
  std::vector<std::pair<const std::string*, const TensorEntry*>> order;
  for (const auto& [name, e] : out.tensors) order.emplace_back(&name, &e);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.second->begin != b.second->begin ? a.second->begin < b.second->begin : a.second->end < b.second->end;
  });
  std::uint64_t covered = 0;
  const std::string* previous = nullptr;
  for (const auto& [name, e] : order) {
    if (e->begin < covered) {
      fail(out.path, fmt::format("tensors '{}' and '{}' overlap: '{}' ends at byte {} but '{}' begins at {}",
                                 printable(*previous), printable(*name), printable(*previous), covered,
                                 printable(*name), e->begin));
    }
    if (e->begin > covered) {
      fail(out.path, fmt::format("corrupt data layout: bytes [{}, {}) before tensor '{}' belong to no tensor", covered,
                                 e->begin, printable(*name)));
    }
    covered = e->end;
    previous = name;
  }
  const std::uint64_t data_size = out.file_size - out.data_start;
  if (covered != data_size) {
    fail(out.path,
         fmt::format("corrupt data layout: tensors cover {} bytes but the data section holds {}", covered, data_size));
  }
}

}  // namespace

FileHandle& FileHandle::operator=(FileHandle&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

FileHandle::~FileHandle() {
  if (fd_ >= 0) ::close(fd_);
}

std::size_t dtype_size(const std::string& dtype) {
  static const std::map<std::string, std::size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"F64", 8},     {"I64", 8}, {"U64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

std::string printable(const std::string& s, std::size_t max) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (out.size() >= max) return out + fmt::format("... ({} bytes)", s.size());
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  return out;
}

std::size_t invalid_utf8_at(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1fU;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0fU;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07U;
    } else {
      return i;
    }
    if (i + len > s.size()) return i;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3fU);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
    const std::uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += len;
  }
  return std::string::npos;
}

ParsedFile parse_safetensors(const std::filesystem::path& file) {
  ParsedFile out;
  out.path = file.string();
  try {
    open_regular(out, file);
    parse_header(out);
    check_layout(out);
  } catch (const std::bad_alloc&) {
    fail(out.path, "out of memory while reading the header");
  } catch (const json::exception& e) {  // not expected from the event parser; kept typed anyway
    fail(out.path, fmt::format("corrupt header ({})", printable(e.what())));
  }
  return out;
}

std::vector<std::uint8_t> read_tensor(const ParsedFile& file, const TensorEntry& e) {
  const std::uint64_t n = e.end - e.begin;
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0 && n / static_cast<std::uint64_t>(page) > static_cast<std::uint64_t>(pages)) {
    fail(file.path, fmt::format("a tensor of {} bytes is larger than this machine's memory", n));
  }
  std::vector<std::uint8_t> out;
  try {
    out.resize(static_cast<std::size_t>(n));
  } catch (const std::bad_alloc&) {
    fail(file.path, fmt::format("out of memory reading a tensor of {} bytes", n));
  }
  pread_all(file, out.data(), n, file.data_start + e.begin);
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

}  // namespace detail

SafetensorsFile read_safetensors(const std::filesystem::path& path) {
  const detail::ParsedFile parsed = detail::parse_safetensors(path);
  SafetensorsFile out;
  out.metadata = parsed.metadata;
  try {
    for (const auto& [name, e] : parsed.tensors) {
      StoredTensor t;
      t.dtype = e.dtype;
      t.shape = e.shape;
      t.bytes = detail::read_tensor(parsed, e);
      out.tensors.emplace(name, std::move(t));
    }
  } catch (const std::bad_alloc&) {
    throw CheckpointError(fmt::format("checkpoint '{}': out of memory while reading the tensors", parsed.path));
  }
  return out;
}

}  // namespace tapegrad::nn
