// The safetensors container, independent of models: parsing with full validation, and
// encoding. Private to nn/src (nlohmann json never reaches a public header).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace tapegrad::nn::detail {

/// Limits applied before anything is allocated from what the file claims.
inline constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;  ///< the reference implementation's cap
inline constexpr std::size_t kMaxRank = 64;                    ///< NumPy's limit on dimensions
/// Nesting the format needs: the top object, an entry or __metadata__, a shape or offsets array.
inline constexpr int kMaxDepth = 3;

/// One tensor entry of a parsed header; begin/end are offsets into the data section.
struct TensorEntry {
  std::string dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

/// An open file descriptor, closed on destruction.
class FileHandle {
 public:
  explicit FileHandle(int fd = -1) : fd_(fd) {}
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  FileHandle(FileHandle&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  FileHandle& operator=(FileHandle&& o) noexcept;
  ~FileHandle();
  [[nodiscard]] int get() const { return fd_; }
  /// Gives up ownership (after the caller closed it).
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

/// A file whose header is validated against its size; the data stays on disk until read_tensor().
/// The descriptor is kept open, so a concurrent save (a rename over the path) cannot mix files.
struct ParsedFile {
  std::string path;  ///< for error messages
  FileHandle fd;
  std::uint64_t file_size = 0;
  std::uint64_t data_start = 0;  ///< 8 + header length
  std::map<std::string, TensorEntry> tensors;
  std::map<std::string, std::string> metadata;
};

/// Bytes per element of a safetensors dtype, 0 if unknown.
std::size_t dtype_size(const std::string& dtype);

/// Opens path (a regular file; a directory, FIFO or device is refused without blocking), reads
/// and validates the header: size caps, JSON nesting, duplicate keys, dtypes, shapes with checked
/// arithmetic, offsets in range, non-overlapping and tiling the data section exactly. Errors ->
/// CheckpointError naming the file.
ParsedFile parse_safetensors(const std::filesystem::path& path);

/// Reads one tensor's bytes from the open file (refused, typed, if larger than physical memory).
std::vector<std::uint8_t> read_tensor(const ParsedFile& file, const TensorEntry& e);

/// `s` for an error message: printable ASCII kept, other bytes as \xNN, cut after `max` characters.
std::string printable(const std::string& s, std::size_t max = 80);

/// The first byte offset where s is not valid UTF-8, or npos.
std::size_t invalid_utf8_at(const std::string& s);

/// A tensor to encode: its raw little-endian bytes.
struct EncodeTensor {
  std::string dtype;
  std::vector<std::int64_t> shape;
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;
};

/// The whole file: length, JSON header padded with spaces to a multiple of 8, data in name order.
/// Names and metadata must be valid UTF-8 (the caller checks; json would throw).
std::vector<std::uint8_t> encode_safetensors(const std::map<std::string, EncodeTensor>& tensors,
                                             const std::map<std::string, std::string>& metadata);

/// Writes bytes to path atomically: a new temp file with a random name in path's directory,
/// created with O_CREAT|O_EXCL|O_NOFOLLOW (a planted file or symlink is never opened), fsync,
/// rename over path, fsync of the directory. On failure removes the temp file, leaves path
/// untouched and throws CheckpointError.
void write_atomically(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes);

}  // namespace tapegrad::nn::detail
