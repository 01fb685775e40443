// Checkpoints in the safetensors format (readable by Python's safetensors.numpy.load_file):
// an 8-byte little-endian header length N, N bytes of JSON describing each tensor (dtype,
// shape, byte range) plus string metadata, then the raw little-endian row-major tensor data.
// Saving is atomic and exclusive (a new randomly named temp file, fsync, rename), so concurrent
// savers and planted symlinks cannot damage it; loading validates the whole file against the
// model, and the optimizer state against what its next update needs, before it changes anything.
// Generators (random.h) are saved as "rng.<name>.*" metadata, so a resumed run draws the very
// masks the uninterrupted one would have drawn.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <tapegrad/nn/module.h>
#include <tapegrad/nn/optim.h>
#include <tapegrad/nn/random.h>
#include <tapegrad/parameter.h>

namespace tapegrad::nn {

/// Parameters with the names they are saved under (e.g. Module::named_parameters()).
template <class S>
using NamedParameters = std::vector<std::pair<std::string, Parameter<S>*>>;

/// Generators with the names their state is saved under, e.g. {{"dropout", &gen}}.
using NamedGenerators = std::vector<std::pair<std::string, Generator*>>;

/// One tensor of a safetensors file, as stored.
struct StoredTensor {
  std::string dtype;                ///< "F32", "F64", "I32", ...
  std::vector<std::int64_t> shape;  ///< any rank
  std::vector<std::uint8_t> bytes;  ///< little-endian, row-major
};

/// A whole safetensors file: tensors by name and the "__metadata__" strings.
struct SafetensorsFile {
  std::map<std::string, StoredTensor> tensors;
  std::map<std::string, std::string> metadata;
};

/// Reads and validates any safetensors file (for inspection). Errors -> CheckpointError, also
/// for a tensor larger than the machine's memory.
SafetensorsFile read_safetensors(const std::filesystem::path& path);

/// What a loaded checkpoint carried besides the tensors.
struct CheckpointInfo {
  std::int64_t step = 0;                        ///< the "step" metadata (0 when absent)
  std::map<std::string, std::string> metadata;  ///< every metadata entry, including "step", "optim.*", "rng.*"
  /// Generators given to load_checkpoint whose state the file does not hold (it was saved
  /// without them): they were left as they were, so their masks restart from their own state.
  std::vector<std::string> generators_not_in_file;
};

/// How load_checkpoint treats optimizer state.
struct LoadOptions {
  /// When no optimizer is given: true ignores the file's "optim." tensors (loading weights only),
  /// false treats them as extra names (an error).
  bool ignore_optimizer_state = false;
};

/// Writes params (and the optimizer's state tensors under "optim.<name>", its kind, step count,
/// learning rate and hyperparameters as "optim.*" metadata), the step counter as "step", each
/// generator's kind, seed and sequence as "rng.<name>.kind", "rng.<name>.seed",
/// "rng.<name>.sequence", and `metadata` (keys "step", "optim.*" and "rng.*" are reserved; names
/// and metadata must be UTF-8; generator names non-empty and unique, pointers non-null ->
/// ValueError). Atomic: the file at path is either the old one or one complete new one, also
/// with threads or processes saving to it at once. I/O failure -> CheckpointError.
template <class S>
void save_checkpoint(const std::filesystem::path& path, const NamedParameters<S>& params,
                     std::type_identity_t<Optimizer<S>>* optimizer = nullptr, std::int64_t step = 0,
                     const std::map<std::string, std::string>& metadata = {}, const NamedGenerators& generators = {});

/// Reads the checkpoint at path into params (and the optimizer and generators). Everything is
/// validated first: file kind and size, header, every expected name present and no other, dtype
/// matching S, shapes, offsets, optimizer state the next update can use (step count <= 2^53,
/// finite values, second moments >= 0), and each generator's state (kind Generator::kKind,
/// seed and sequence decimal 64-bit integers, all three keys or none); any problem ->
/// CheckpointError naming the file, the tensor or key and expected vs found, with params,
/// optimizer and generators unchanged. A generator whose state the file does not hold at all
/// is left unchanged and listed in CheckpointInfo::generators_not_in_file.
template <class S>
CheckpointInfo load_checkpoint(const std::filesystem::path& path, const NamedParameters<S>& params,
                               std::type_identity_t<Optimizer<S>>* optimizer = nullptr, const LoadOptions& options = {},
                               const NamedGenerators& generators = {});

/// save_checkpoint with module.named_parameters().
template <class S>
void save_checkpoint(const std::filesystem::path& path, Module<S>& module,
                     std::type_identity_t<Optimizer<S>>* optimizer = nullptr, std::int64_t step = 0,
                     const std::map<std::string, std::string>& metadata = {}, const NamedGenerators& generators = {}) {
  save_checkpoint<S>(path, module.named_parameters(), optimizer, step, metadata, generators);
}

/// load_checkpoint into module.named_parameters().
template <class S>
CheckpointInfo load_checkpoint(const std::filesystem::path& path, Module<S>& module,
                               std::type_identity_t<Optimizer<S>>* optimizer = nullptr, const LoadOptions& options = {},
                               const NamedGenerators& generators = {}) {
  return load_checkpoint<S>(path, module.named_parameters(), optimizer, options, generators);
}

}  // namespace tapegrad::nn
