// The structure-aware half of fuzz_checkpoint: fuzz bytes read as a recipe for a checkpoint
// file that is valid except where the recipe says otherwise. Each tensor entry, the metadata,
// the header and the data section take a few mutations from the defect kinds a loader must
// refuse (JSON nesting bombs, duplicate keys and fields, shapes and offsets with huge, negative
// or non-integer numbers, wrong dtypes, NUL and garbage in the header, optimizer step counts
// and state values the next update cannot use) and a wrong file kind (directory, FIFO, 1 TiB
// sparse file). When the bytes run out every choice falls back to "valid".
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace tapegrad::fuzz {

/// Reads choices from the fuzz input; past its end every choice is 0.
class Choices {
 public:
  Choices(const std::uint8_t* data, std::size_t size) : p_(data), n_(size) {}
  std::uint8_t byte() { return i_ < n_ ? p_[i_++] : 0; }
  /// A number in [0, k).
  std::size_t pick(std::size_t k) {
    if (k <= 256) return k == 0 ? 0 : byte() % k;
    const std::size_t hi = byte();
    return ((hi << 8) | byte()) % k;
  }
  /// True with probability about 1 / (k * rarity) (never once the input is used up).
  bool one_in(std::size_t k) { return i_ < n_ && pick(k * rarity_) == 0; }
  /// Scales how rare every defect is: 1 puts one in most sites, 64 leaves most files valid.
  void set_rarity(std::size_t r) { rarity_ = r; }
  [[nodiscard]] bool done() const { return i_ >= n_; }

 private:
  const std::uint8_t* p_;
  std::size_t n_;
  std::size_t i_ = 0;
  std::size_t rarity_ = 1;
};

/// What kind of path the recipe asks the loader to open.
enum class FileKind { Regular, Directory, Fifo, Missing, Sparse };

struct Recipe {
  std::string bytes;  ///< the file (Regular, Sparse: its start)
  FileKind kind = FileKind::Regular;
};

namespace recipe_detail {

inline std::string nest(Choices& c) {
  static const int depths[] = {4, 64, 5000, 200000};
  const int depth = depths[c.pick(4)];
  const bool objects = c.pick(2) == 0;
  std::string s;
  for (int i = 0; i < depth; ++i) s += objects ? "{\"a\":" : "[";
  s += "1";
  for (int i = 0; i < depth; ++i) s += objects ? "}" : "]";
  return s;
}

/// An interesting JSON number (as text) for a dimension or an offset; `fit` is the right one.
inline std::string number(Choices& c, std::uint64_t fit) {
  static const char* const odd[] = {"0",
                                    "1",
                                    "-1",
                                    "-0",
                                    "1.5",
                                    "1e3",
                                    "4294967296",
                                    "4611686018427387904",
                                    "9223372036854775807",
                                    "9223372036854775808",
                                    "18446744073709551615",
                                    "18446744073709551616",
                                    "340282366920938463463374607431768211456",
                                    "\"3\"",
                                    "null",
                                    "true"};
  switch (c.pick(8)) {
    case 0:
      return odd[c.pick(sizeof odd / sizeof *odd)];
    case 1:
      return std::to_string(fit + 1);
    case 2:
      return std::to_string(fit - 1);  // wraps at 0 on purpose
    case 3:
      return std::to_string(fit * (1 + c.pick(4)));
    default:
      return std::to_string(fit);
  }
}

inline std::string name(Choices& c, const std::string& valid, const std::string& previous) {
  if (!c.one_in(3)) return valid;
  switch (c.pick(8)) {
    case 0:
      return previous;  // a duplicate
    case 1:
      return "__metadata__";
    case 2:
      return valid.empty() ? "" : "\\u" + std::string("00") + "57";  // "\u0057" == "W"
    case 3:
      return std::string(1 + c.pick(200) * 50, 'n');
    case 4:
      return "\\u0001x\\n";
    case 5:
      return "W\xff\xfe";  // raw bytes that are not UTF-8
    case 6:
      return valid + "x";
    default:
      return valid;
  }
}

inline std::string dtype(Choices& c, const std::string& valid) {
  static const char* const odd[] = {"\"F32\"", "\"F64\"", "\"I32\"", "\"BOOL\"", "\"F8_E5M2\"", "\"U64\"",
                                    "\"F33\"", "\"\"",    "64",      "null",     "[\"F32\"]",   "{\"F32\":1}"};
  return c.one_in(6) ? odd[c.pick(sizeof odd / sizeof *odd)] : "\"" + valid + "\"";
}

}  // namespace recipe_detail

/// One tensor the recipe writes: name, dtype and shape of the valid file, and its values.
struct RecipeTensor {
  std::string name;
  std::string dtype;  ///< "F32" or "F64"
  std::vector<std::uint64_t> shape;
  std::vector<double> values;
};

/// Builds the file. `tensors` are the valid contents (model parameters, optimizer state);
/// `optimizer` is the kind whose state is present ("" for weights only).
inline Recipe make_recipe(Choices& c, std::vector<RecipeTensor> tensors, const std::string& optimizer) {
  namespace d = recipe_detail;
  static const std::size_t rarities[] = {1, 2, 4, 8, 16, 64};
  c.set_rarity(rarities[c.pick(6)]);
  Recipe r;
  // Values: small by default, sometimes the ones an optimizer cannot use.
  static const double pokes[] = {-1.0, -1e-30, -0.0, 1e30, 1e300, __builtin_nan(""), __builtin_inf(), -__builtin_inf()};
  for (auto& t : tensors) {
    // Second moments and accumulators are >= 0 in a file a real run wrote.
    const bool nonnegative = t.name.find(".v.") != std::string::npos || t.name.find(".v_max.") != std::string::npos ||
                             t.name.find("square_avg") != std::string::npos ||
                             t.name.find(".sum.") != std::string::npos;
    for (auto& v : t.values) v = static_cast<double>(static_cast<int>(c.byte()) - (nonnegative ? 0 : 100)) / 16.0;
    while (!t.values.empty() && c.one_in(6)) t.values[c.pick(t.values.size())] = pokes[c.pick(8)];
  }
  // The data section, in order, and each entry's fields.
  std::string data;
  std::vector<std::string> entries;
  std::string previous = "W";
  for (auto& t : tensors) {
    const std::size_t elem = t.dtype == "F32" ? 4 : 8;
    const std::uint64_t begin = data.size();
    for (const double v : t.values) {
      if (elem == 4) {
        const auto f = static_cast<float>(v);
        data.append(reinterpret_cast<const char*>(&f), 4);
      } else {
        data.append(reinterpret_cast<const char*>(&v), 8);
      }
    }
    const std::uint64_t end = data.size();
    std::string shape;
    std::size_t rank = t.shape.size();
    if (c.one_in(10)) rank = c.pick(2) == 0 ? 0 : 60 + c.pick(10);
    for (std::size_t k = 0; k < rank; ++k) {
      const std::uint64_t fit = k < t.shape.size() ? t.shape[k] : 1;
      shape += (k ? "," : "") + (c.one_in(5) ? d::number(c, fit) : std::to_string(fit));
    }
    std::vector<std::string> fields = {
        "\"dtype\":" + d::dtype(c, t.dtype), "\"shape\":" + (c.one_in(25) ? d::nest(c) : "[" + shape + "]"),
        "\"data_offsets\":" + (c.one_in(25) ? d::nest(c)
                                            : "[" + (c.one_in(5) ? d::number(c, begin) : std::to_string(begin)) + "," +
                                                  (c.one_in(5) ? d::number(c, end) : std::to_string(end)) +
                                                  (c.one_in(20) ? ",0" : "") + "]")};
    if (c.one_in(15)) fields.push_back(fields[c.pick(fields.size())]);  // a duplicate field
    if (c.one_in(20)) fields.push_back("\"extra\":" + d::nest(c));      // an unknown field
    if (c.one_in(20)) fields.erase(fields.begin() + static_cast<long>(c.pick(fields.size())));
    if (fields.size() > 1 && c.one_in(4)) std::swap(fields[0], fields[fields.size() - 1]);
    std::string body;
    for (const auto& f : fields) body += (body.empty() ? "" : ",") + f;
    const std::string n = d::name(c, t.name, previous);
    previous = t.name;
    entries.push_back("\"" + n + "\":" + (c.one_in(30) ? d::nest(c) : "{" + body + "}"));
  }
  // Metadata: the optimizer's scalars, sometimes values it cannot use, duplicates, non-strings.
  static const char* const steps[] = {
      "0",   "7", "9007199254740992", "9007199254740993", "9223372036854775807", "-1", "abc", "9223372036854775808",
      "1e3", ""};
  static const char* const lrs[] = {"0.001", "0", "nan", "inf", "-1", "1e308", "0x1p-3", "abc"};
  std::vector<std::string> meta = {"\"step\":\"" + std::string(c.one_in(6) ? steps[c.pick(10)] : "3") + "\""};
  if (!optimizer.empty()) {
    meta.push_back("\"optim.kind\":\"" + (c.one_in(10) ? std::string("sgd") : optimizer) + "\"");
    meta.push_back("\"optim.step\":\"" + std::string(c.one_in(3) ? steps[c.pick(10)] : "2") + "\"");
    meta.push_back("\"optim.lr\":\"" + std::string(c.one_in(4) ? lrs[c.pick(8)] : "0.001") + "\"");
  }
  if (c.one_in(8)) meta.push_back(meta[c.pick(meta.size())]);  // a duplicate key
  if (c.one_in(12)) meta.push_back("\"n\":" + (c.pick(2) ? d::nest(c) : std::string("5")));
  if (c.one_in(12)) meta.push_back("\"caf\\u00e9\":\"na\xc3\xafve\"");
  std::string meta_body;
  for (const auto& m : meta) meta_body += (meta_body.empty() ? "" : ",") + m;
  entries.insert(entries.begin() + static_cast<long>(c.pick(entries.size() + 1)),
                 "\"__metadata__\":{" + meta_body + "}");
  if (c.one_in(20)) entries.push_back(entries[c.pick(entries.size())]);  // a duplicate name
  // The header: whitespace, a top-level nesting bomb, NUL, garbage after the object.
  std::string header;
  if (c.one_in(40)) {
    header = d::nest(c);
  } else {
    header = "{";
    for (const auto& e : entries) header += (header.size() > 1 ? (c.one_in(10) ? " ,\n " : ",") : "") + e;
    header += "}";
  }
  switch (c.one_in(4) ? c.pick(4) : 4) {
    case 0:
      header += std::string(1 + c.pick(7), '\0');
      break;
    case 1:
      header += " x";
      break;
    case 2:
      header = " " + header;
      break;
    case 3:
      header.insert(c.pick(header.size() + 1), 1, static_cast<char>(c.byte()));
      break;
    default:
      header.append((8 - header.size() % 8) % 8, ' ');
  }
  std::uint64_t length = header.size();
  switch (c.one_in(4) ? c.pick(4) : 4) {
    case 0:
      length += 1 + c.pick(16);
      break;
    case 1:
      length -= 1 + c.pick(std::min<std::size_t>(header.size(), 16));
      break;
    case 2:
      length = 100'000'001;
      break;
    case 3:
      length = ~std::uint64_t{0} - c.pick(16);
      break;
    default:
      break;
  }
  switch (c.one_in(6) ? c.pick(2) : 2) {
    case 0:
      data.resize(data.size() - std::min<std::size_t>(data.size(), 1 + c.pick(16)));
      break;
    case 1:
      data.append(1 + c.pick(16), '\0');
      break;
    default:
      break;
  }
  r.bytes.assign(8, '\0');
  for (int i = 0; i < 8; ++i) r.bytes[static_cast<std::size_t>(i)] = static_cast<char>(length >> (8 * i));
  r.bytes += header + data;
  // Rarely, a path that is not a regular file (or whose size is not its contents).
  static const FileKind kinds[] = {FileKind::Directory, FileKind::Fifo, FileKind::Missing, FileKind::Sparse};
  if (c.one_in(40)) r.kind = kinds[c.pick(4)];
  return r;
}

}  // namespace tapegrad::fuzz
