// Model and optimizer checkpoints on top of the safetensors container: naming, dtype and
// shape checks against the model, then the copy.
#include <tapegrad/nn/checkpoint.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <new>
#include <optional>
#include <set>
#include <stdexcept>

#include <tapegrad/error.h>

#include "checkpoint_rng.h"
#include "safetensors_format.h"

namespace tapegrad::nn {
namespace {

constexpr const char* kOptimPrefix = "optim.";

template <class S>
constexpr const char* dtype_of() {
  return std::is_same_v<S, float> ? "F32" : "F64";
}

bool has_prefix(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// One tensor to save or load with its full name.
template <class S>
struct Target {
  std::string name;
  Matrix<S>* tensor;
};

// The model's parameters then the optimizer's state, with names checked (non-empty, unique).
template <class S>
std::vector<Target<S>> targets_of(const char* who, const NamedParameters<S>& params, Optimizer<S>* optimizer) {
  std::vector<Target<S>> out;
  std::set<std::string> seen;
  const auto add = [&](const std::string& name, Matrix<S>* m) {
    TAPEGRAD_CHECK(!name.empty() && name != "__metadata__", ValueError, "{}: invalid tensor name '{}'", who, name);
    TAPEGRAD_CHECK(seen.insert(name).second, ValueError, "{}: tensor name '{}' is given twice", who, name);
    out.push_back({name, m});
  };
  for (std::size_t i = 0; i < params.size(); ++i) {
    TAPEGRAD_CHECK(params[i].second != nullptr, ValueError, "{}: parameter '{}' (#{}) is null", who, params[i].first,
                   i);
    add(params[i].first, &params[i].second->value);
  }
  if (optimizer != nullptr) {
    for (auto& [name, m] : optimizer->state_tensors(params)) add(kOptimPrefix + name, m);  // keyed by model names
  }
  return out;
}

// Row-major little-endian bytes of m.
template <class S>
std::vector<std::uint8_t> to_bytes(const Matrix<S>& m) {
  std::vector<std::uint8_t> out(static_cast<std::size_t>(m.size()) * sizeof(S));
  if (!out.empty()) std::memcpy(out.data(), m.data(), out.size());
  if constexpr (std::endian::native == std::endian::big) {
    for (std::size_t k = 0; k < out.size(); k += sizeof(S)) std::reverse(out.begin() + k, out.begin() + k + sizeof(S));
  }
  return out;
}

template <class S>
void from_bytes(const std::uint8_t* bytes, Matrix<S>& m) {
  if (m.size() != 0) std::memcpy(m.data(), bytes, static_cast<std::size_t>(m.size()) * sizeof(S));
  if constexpr (std::endian::native == std::endian::big) {
    auto* raw = reinterpret_cast<std::uint8_t*>(m.data());
    for (std::size_t k = 0; k < static_cast<std::size_t>(m.size()) * sizeof(S); k += sizeof(S)) {
      std::reverse(raw + k, raw + k + sizeof(S));
    }
  }
}

template <class T>
bool parse_number(const std::string& s, T& out) {
  const char* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc() && ptr == end;
}

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what) {
  throw CheckpointError(fmt::format("checkpoint '{}': {}", path.string(), what));
}

// The header is JSON, whose strings are UTF-8: anything else is refused before encoding.
void check_utf8(const std::filesystem::path& path, const std::string& what, const std::string& s) {
  const std::size_t at = detail::invalid_utf8_at(s);
  TAPEGRAD_CHECK(at == std::string::npos, ValueError,
                 "save_checkpoint '{}': {} '{}' is not valid UTF-8 (byte {}); names and metadata are JSON strings",
                 path.string(), what, detail::printable(s), at);
}

// Step counts are converted to double in the bias corrections and incremented by every update:
// a count past 2^53 is no longer exact there, and INT64_MAX would overflow on the next step.
constexpr std::int64_t kMaxOptimizerStep = std::int64_t{1} << 53;

// The state slots whose values the update takes a square root of: they must be >= 0.
bool is_nonnegative_slot(const std::string& kind, const std::string& state_name) {
  const std::string prefix = kind + ".";
  if (!has_prefix(state_name, prefix)) return false;
  const std::string slot = state_name.substr(prefix.size(), state_name.find('.', prefix.size()) - prefix.size());
  if (kind == "adam" || kind == "adamw") return slot == "v" || slot == "v_max";
  if (kind == "rmsprop") return slot == "square_avg";
  if (kind == "adagrad") return slot == "sum";
  return false;
}

// Optimizer state the next update will use: finite, and >= 0 where a square root is taken.
template <class S>
void check_state_values(const std::filesystem::path& path, const std::string& file_name, bool nonnegative,
                        const std::vector<std::uint8_t>& bytes) {
  const std::size_t n = bytes.size() / sizeof(S);
  for (std::size_t k = 0; k < n; ++k) {
    std::uint8_t raw[sizeof(S)];
    std::memcpy(raw, bytes.data() + k * sizeof(S), sizeof(S));
    if constexpr (std::endian::native == std::endian::big) std::reverse(raw, raw + sizeof(S));
    S v;
    std::memcpy(&v, raw, sizeof(S));
    if (!std::isfinite(v) || (nonnegative && v < 0)) {
      fail(path,
           fmt::format("tensor '{}': element #{} is {}, but optimizer state must be finite{}; the next update "
                       "would make the weights NaN or infinite",
                       detail::printable(file_name), k, v, nonnegative ? " and >= 0 (a square root is taken)" : ""));
    }
  }
}

template <class S>
void save_checked(const std::filesystem::path& path, const NamedParameters<S>& params, Optimizer<S>* optimizer,
                  std::int64_t step, const std::map<std::string, std::string>& metadata,
                  const NamedGenerators& generators) {
  const std::vector<Target<S>> targets = targets_of<S>("save_checkpoint", params, optimizer);
  for (const Target<S>& t : targets) check_utf8(path, "tensor name", t.name);
  std::map<std::string, std::string> meta;
  for (const auto& [key, value] : metadata) {
    check_utf8(path, "metadata key", key);
    check_utf8(path, fmt::format("metadata value of key '{}':", detail::printable(key)), value);
    TAPEGRAD_CHECK(key != "step" && !has_prefix(key, kOptimPrefix) && !has_prefix(key, detail::kRngPrefix), ValueError,
                   "save_checkpoint: metadata key '{}' is reserved ('step', 'optim.*' and 'rng.*' are written by the "
                   "checkpoint)",
                   detail::printable(key));
    meta[key] = value;
  }
  meta["step"] = std::to_string(step);
  if (optimizer != nullptr) {
    meta["optim.kind"] = optimizer->kind();
    meta["optim.step"] = std::to_string(optimizer->step_count());
    meta["optim.lr"] = fmt::format("{}", optimizer->learning_rate());  // shortest exact round trip
    for (const auto& [name, value] : optimizer->hyperparameters()) meta["optim." + name] = fmt::format("{}", value);
  }
  detail::write_generator_state(path, generators, meta);
  std::vector<std::vector<std::uint8_t>> buffers;
  buffers.reserve(targets.size());
  std::map<std::string, detail::EncodeTensor> tensors;
  for (const Target<S>& t : targets) {
    buffers.push_back(to_bytes(*t.tensor));
    tensors[t.name] = {
        dtype_of<S>(), {t.tensor->rows(), t.tensor->cols()}, buffers.back().data(), buffers.back().size()};
  }
  detail::write_atomically(path, detail::encode_safetensors(tensors, meta));
}

}  // namespace

template <class S>
void save_checkpoint(const std::filesystem::path& path, const NamedParameters<S>& params,
                     std::type_identity_t<Optimizer<S>>* optimizer, std::int64_t step,
                     const std::map<std::string, std::string>& metadata, const NamedGenerators& generators) {
  // Memory and container-size failures become typed errors; nothing has been written then.
  try {
    save_checked<S>(path, params, optimizer, step, metadata, generators);
  } catch (const std::bad_alloc&) {
    fail(path, "save failed: out of memory while encoding; the previous file (if any) is unchanged");
  } catch (const std::length_error&) {
    fail(path, "save failed: the checkpoint is too large to encode; the previous file (if any) is unchanged");
  }
}

namespace {

template <class S>
CheckpointInfo load_checked(const std::filesystem::path& path, const NamedParameters<S>& params,
                            Optimizer<S>* optimizer, const LoadOptions& options, const NamedGenerators& generators) {
  const std::vector<Target<S>> targets = targets_of<S>("load_checkpoint", params, optimizer);
  const detail::ParsedFile file = detail::parse_safetensors(path);

  // 1. Names: every target present, nothing else (bar ignored optimizer state).
  std::set<std::string> expected;
  for (const Target<S>& t : targets) expected.insert(t.name);
  std::vector<std::string> missing;
  std::vector<std::string> extra;
  for (const std::string& name : expected) {
    if (!file.tensors.contains(name)) missing.push_back(detail::printable(name));
  }
  for (const auto& [name, e] : file.tensors) {
    const bool ignored = optimizer == nullptr && options.ignore_optimizer_state && has_prefix(name, kOptimPrefix);
    if (!expected.contains(name) && !ignored) extra.push_back(detail::printable(name));
  }
  if (!missing.empty()) {
    fail(path, fmt::format("missing tensor(s) {}: the model expects them but the file does not hold them",
                           fmt::join(missing, ", ")));
  }
  if (!extra.empty()) {
    fail(path, fmt::format(
                   "extra tensor(s) {}: the file holds them but the model{} has no such name{}", fmt::join(extra, ", "),
                   optimizer ? " and optimizer" : "",
                   optimizer ? "" : " (pass the optimizer, or LoadOptions::ignore_optimizer_state for weights only)"));
  }
  // 2. dtype and shape of each.
  for (const Target<S>& t : targets) {
    const detail::TensorEntry& e = file.tensors.at(t.name);
    if (e.dtype != dtype_of<S>()) {
      fail(path, fmt::format("tensor '{}': dtype mismatch: expected {} but found {}", detail::printable(t.name),
                             dtype_of<S>(), e.dtype));
    }
    const std::vector<std::int64_t> want = {t.tensor->rows(), t.tensor->cols()};
    if (e.shape != want) {
      fail(path, fmt::format("tensor '{}': shape mismatch: expected [{}] but found [{}]", detail::printable(t.name),
                             fmt::join(want, ", "), fmt::join(e.shape, ", ")));
    }
  }
  // 3. Scalars.
  CheckpointInfo info;
  info.metadata = file.metadata;
  if (const auto it = file.metadata.find("step"); it != file.metadata.end()) {
    if (!parse_number(it->second, info.step)) {
      fail(path, fmt::format("metadata 'step' is \"{}\", expected an integer", detail::printable(it->second)));
    }
  }
  std::int64_t optim_step = 0;
  double optim_lr = 0;
  if (optimizer != nullptr) {
    const auto get = [&](const char* key) -> const std::string& {
      const auto it = file.metadata.find(key);
      if (it == file.metadata.end())
        fail(path, fmt::format("metadata '{}' is missing (saved without an optimizer?)", key));
      return it->second;
    };
    const std::string& kind = get("optim.kind");
    if (kind != optimizer->kind()) {
      fail(path, fmt::format("optimizer mismatch: expected optimizer state of '{}' but found '{}'", optimizer->kind(),
                             detail::printable(kind)));
    }
    if (!parse_number(get("optim.step"), optim_step) || optim_step < 0 || optim_step > kMaxOptimizerStep) {
      fail(path, fmt::format("metadata 'optim.step' is \"{}\", expected an integer in [0, 2^53] (larger step counts "
                             "are inexact in the bias corrections and overflow after INT64_MAX)",
                             detail::printable(get("optim.step"))));
    }
    // from_chars accepts "inf": check finiteness here, before any tensor is copied.
    if (!parse_number(get("optim.lr"), optim_lr) || !std::isfinite(optim_lr) || !(optim_lr >= 0)) {
      fail(path, fmt::format("metadata 'optim.lr' is \"{}\", expected a finite non-negative number",
                             detail::printable(get("optim.lr"))));
    }
  }
  const std::vector<std::optional<GeneratorState>> rng = detail::read_generator_state(path, file.metadata, generators);
  // 4. The data, read while the file stays open; optimizer state checked as the update will use it.
  std::vector<std::vector<std::uint8_t>> data;
  data.reserve(targets.size());
  for (const Target<S>& t : targets) data.push_back(detail::read_tensor(file, file.tensors.at(t.name)));
  if (optimizer != nullptr) {
    const std::size_t first_state = targets.size() - optimizer->state_tensors(params).size();
    for (std::size_t i = first_state; i < targets.size(); ++i) {
      const std::string state_name = targets[i].name.substr(std::strlen(kOptimPrefix));
      check_state_values<S>(path, targets[i].name, is_nonnegative_slot(optimizer->kind(), state_name), data[i]);
    }
  }
  // 5. Everything checked: copy.
  for (std::size_t i = 0; i < targets.size(); ++i) from_bytes(data[i].data(), *targets[i].tensor);
  if (optimizer != nullptr) optimizer->restore_scalars(optim_step, optim_lr);
  for (std::size_t i = 0; i < generators.size(); ++i) {
    if (rng[i]) {
      generators[i].second->set_state(*rng[i]);
    } else {
      info.generators_not_in_file.push_back(generators[i].first);
    }
  }
  return info;
}

}  // namespace

template <class S>
CheckpointInfo load_checkpoint(const std::filesystem::path& path, const NamedParameters<S>& params,
                               std::type_identity_t<Optimizer<S>>* optimizer, const LoadOptions& options,
                               const NamedGenerators& generators) {
  try {
    return load_checked<S>(path, params, optimizer, options, generators);
  } catch (const std::bad_alloc&) {
    fail(path, "out of memory while loading; the model and optimizer are unchanged");
  } catch (const std::length_error&) {
    fail(path, "a size in the file is too large to hold; the model and optimizer are unchanged");
  }
}

#define TAPEGRAD_NN_INSTANTIATE_CHECKPOINT(S)                                                          \
  template void save_checkpoint<S>(const std::filesystem::path&, const NamedParameters<S>&,            \
                                   std::type_identity_t<Optimizer<S>>*, std::int64_t,                  \
                                   const std::map<std::string, std::string>&, const NamedGenerators&); \
  template CheckpointInfo load_checkpoint<S>(const std::filesystem::path&, const NamedParameters<S>&,  \
                                             std::type_identity_t<Optimizer<S>>*, const LoadOptions&,  \
                                             const NamedGenerators&);
TAPEGRAD_NN_INSTANTIATE_CHECKPOINT(float)
TAPEGRAD_NN_INSTANTIATE_CHECKPOINT(double)

}  // namespace tapegrad::nn
