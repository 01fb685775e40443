// Generator state in checkpoint metadata: "rng.<name>.kind", "rng.<name>.seed" and
// "rng.<name>.sequence" (decimal), readable from Python like every other metadata string.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <tapegrad/nn/checkpoint.h>

namespace tapegrad::nn::detail {

inline constexpr const char* kRngPrefix = "rng.";

/// Adds every generator's entries to meta. ValueError for an empty, repeated or non-UTF-8 name
/// or a null generator.
void write_generator_state(const std::filesystem::path& path, const NamedGenerators& generators,
                           std::map<std::string, std::string>& meta);

/// The state each generator is to get, in order; nullopt where the file holds none of its keys.
/// CheckpointError (naming the file, the generator and the key) for a null or repeated
/// generator, some but not all of its keys, another kind, or a seed or sequence that is not a
/// decimal 64-bit unsigned integer.
std::vector<std::optional<GeneratorState>> read_generator_state(const std::filesystem::path& path,
                                                                const std::map<std::string, std::string>& metadata,
                                                                const NamedGenerators& generators);

}  // namespace tapegrad::nn::detail
