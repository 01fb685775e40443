// The safetensors container, independent of models: parsing with full validation, and
// encoding. Private to nn/src (nlohmann json never reaches a public header).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace tapegrad::nn::detail {

/// One tensor entry of a parsed header; begin/end are offsets into the data section.
struct TensorEntry {
  std::string dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

/// A validated file held in memory.
struct ParsedFile {
  std::string path;                 ///< for error messages
  std::vector<std::uint8_t> bytes;  ///< the whole file
  std::uint64_t data_start = 0;     ///< 8 + header length
  std::map<std::string, TensorEntry> tensors;
  std::map<std::string, std::string> metadata;
  [[nodiscard]] const std::uint8_t* data(const TensorEntry& e) const { return bytes.data() + data_start + e.begin; }
};

/// Bytes per element of a safetensors dtype, 0 if unknown.
std::size_t dtype_size(const std::string& dtype);

/// Reads path and validates the container (sizes, header JSON, dtypes, shapes, offsets in range,
/// non-overlapping and covering the data). Errors -> CheckpointError naming the file.
ParsedFile parse_safetensors(const std::filesystem::path& path);

/// A tensor to encode: its raw little-endian bytes.
struct EncodeTensor {
  std::string dtype;
  std::vector<std::int64_t> shape;
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;
};

/// The whole file: length, JSON header padded with spaces to a multiple of 8, data in name order.
std::vector<std::uint8_t> encode_safetensors(const std::map<std::string, EncodeTensor>& tensors,
                                             const std::map<std::string, std::string>& metadata);

/// Writes bytes to path atomically (path.tmp.<pid>, fsync, rename, fsync of the directory).
/// On failure removes the temp file, leaves path untouched and throws CheckpointError.
void write_atomically(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes);

}  // namespace tapegrad::nn::detail
