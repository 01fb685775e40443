// Saving and validating generator state (see checkpoint_rng.h).
#include "checkpoint_rng.h"

#include <array>
#include <charconv>
#include <set>

#include <tapegrad/error.h>

#include "safetensors_format.h"

namespace tapegrad::nn::detail {
namespace {

constexpr std::array<const char*, 3> kFields = {"kind", "seed", "sequence"};

std::string key_of(const std::string& name, const char* field) {
  return fmt::format("{}{}.{}", kRngPrefix, name, field);
}

bool parse_u64(const std::string& s, std::uint64_t& out) {
  const char* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, out);
  return !s.empty() && ec == std::errc() && ptr == end;
}

// Non-empty, unique names and non-null generators; `who` and the error type say which side.
template <class E>
void check_names(const char* who, const std::filesystem::path& path, const NamedGenerators& generators) {
  std::set<std::string> seen;
  for (std::size_t i = 0; i < generators.size(); ++i) {
    const std::string& name = generators[i].first;
    TAPEGRAD_CHECK(!name.empty(), E, "{} '{}': generator #{} has an empty name", who, path.string(), i);
    TAPEGRAD_CHECK(generators[i].second != nullptr, E, "{} '{}': generator '{}' is null", who, path.string(),
                   printable(name));
    TAPEGRAD_CHECK(seen.insert(name).second, E, "{} '{}': generator name '{}' is given twice", who, path.string(),
                   printable(name));
  }
}

}  // namespace

void write_generator_state(const std::filesystem::path& path, const NamedGenerators& generators,
                           std::map<std::string, std::string>& meta) {
  check_names<ValueError>("save_checkpoint", path, generators);
  for (const auto& [name, gen] : generators) {
    const std::size_t at = invalid_utf8_at(name);
    TAPEGRAD_CHECK(at == std::string::npos, ValueError,
                   "save_checkpoint '{}': generator name '{}' is not valid UTF-8 (byte {})", path.string(),
                   printable(name), at);
    meta[key_of(name, "kind")] = Generator::kKind;
    meta[key_of(name, "seed")] = std::to_string(gen->seed());
    meta[key_of(name, "sequence")] = std::to_string(gen->sequence());
  }
}

std::vector<std::optional<GeneratorState>> read_generator_state(const std::filesystem::path& path,
                                                                const std::map<std::string, std::string>& metadata,
                                                                const NamedGenerators& generators) {
  check_names<CheckpointError>("load_checkpoint", path, generators);
  std::vector<std::optional<GeneratorState>> out;
  for (const auto& entry : generators) {
    // A named reference, not a structured binding: clang 14 (the fuzz build) cannot capture those.
    const std::string& name = entry.first;
    std::array<const std::string*, kFields.size()> found{};
    std::size_t present = 0;
    for (std::size_t f = 0; f < kFields.size(); ++f) {
      const auto it = metadata.find(key_of(name, kFields[f]));
      if (it != metadata.end()) {
        found[f] = &it->second;
        ++present;
      }
    }
    if (present == 0) {
      out.emplace_back(std::nullopt);
      continue;
    }
    const auto fail = [&](const std::string& what) -> void {
      throw CheckpointError(fmt::format("checkpoint '{}': generator '{}': {}", path.string(), printable(name), what));
    };
    for (std::size_t f = 0; f < kFields.size(); ++f) {
      if (found[f] == nullptr) {
        fail(fmt::format("metadata '{}' is missing but other 'rng.{}.*' entries are present (incomplete state)",
                         printable(key_of(name, kFields[f])), printable(name)));
      }
    }
    if (*found[0] != Generator::kKind) {
      fail(fmt::format("kind mismatch: expected '{}' but found '{}' (the state of another generator)", Generator::kKind,
                       printable(*found[0])));
    }
    GeneratorState state;
    for (std::size_t f = 1; f < kFields.size(); ++f) {
      std::uint64_t& field = f == 1 ? state.seed : state.sequence;
      if (!parse_u64(*found[f], field)) {
        fail(fmt::format("metadata '{}' is \"{}\", expected a decimal integer in [0, 2^64)",
                         printable(key_of(name, kFields[f])), printable(*found[f])));
      }
    }
    out.emplace_back(state);
  }
  return out;
}

}  // namespace tapegrad::nn::detail
