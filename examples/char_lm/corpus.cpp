#include "corpus.h"

#include <fstream>
#include <random>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

namespace char_lm {

Vocab::Vocab(const std::string& text) : Vocab() {
  std::array<bool, 256> seen{};
  for (char c : text) seen[static_cast<unsigned char>(c)] = true;
  for (int b = 0; b < 256; ++b) {
    if (!seen[static_cast<std::size_t>(b)]) continue;
    id_[static_cast<std::size_t>(b)] = static_cast<int>(bytes_.size());
    bytes_.push_back(static_cast<char>(b));
  }
}

Vocab Vocab::from_bytes(const std::string& bytes) {
  Vocab v;
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    if (v.id_[b] >= 0) throw std::runtime_error(fmt::format("vocabulary lists byte 0x{:02x} twice", b));
    v.id_[b] = static_cast<int>(v.bytes_.size());
    v.bytes_.push_back(c);
  }
  return v;
}

std::string Vocab::hex() const {
  std::string out;
  for (char c : bytes_) out += fmt::format("{:02x}", static_cast<unsigned char>(c));
  return out;
}

Vocab Vocab::from_hex(const std::string& hex) {
  if (hex.size() % 2 != 0) throw std::runtime_error("vocabulary hex string has an odd length");
  std::string bytes;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    std::size_t used = 0;
    const int b = std::stoi(hex.substr(i, 2), &used, 16);
    if (used != 2) throw std::runtime_error(fmt::format("vocabulary hex string is malformed at {}", i));
    bytes.push_back(static_cast<char>(b));
  }
  return from_bytes(bytes);
}

Corpus load_corpus(const std::filesystem::path& path, int seq_len) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("cannot open the training text {}", path.string()));
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot read the training text {}: {}", path.string(), ec.message()));
  std::string text(size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  if (in.gcount() != static_cast<std::streamsize>(size))
    throw std::runtime_error(fmt::format("cannot read the training text {}", path.string()));
  // Each part needs at least one window of seq_len inputs plus the target after them.
  const std::size_t need = static_cast<std::size_t>(seq_len + 1);
  const std::size_t n_train = text.size() * 9 / 10;
  if (n_train < need || text.size() - n_train < need) {
    throw std::runtime_error(fmt::format(
        "{} has {} bytes: too short for --seq-len {} (each of the 90% training / 10% validation parts needs "
        "at least {} bytes); pass a longer --data file or a smaller --seq-len",
        path.string(), text.size(), seq_len, need));
  }
  Corpus c{path, text.size(), Vocab(text), {}, {}};
  c.train.reserve(n_train);
  c.valid.reserve(text.size() - n_train);
  for (std::size_t i = 0; i < text.size(); ++i) {
    const std::int32_t id = c.vocab.id(static_cast<unsigned char>(text[i]));
    (i < n_train ? c.train : c.valid).push_back(id);
  }
  return c;
}

std::filesystem::path default_data_path(const char* argv0) {
  namespace fs = std::filesystem;
  std::vector<fs::path> candidates = {CHAR_LM_SOURCE_DATA};
  // An installed binary finds the data beside it in <prefix>/share, wherever the prefix moved.
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec && argv0 != nullptr) exe = fs::path(argv0);
  if (!exe.empty())
    candidates.push_back(exe.parent_path() / ".." / "share" / "tapegrad" / "data" / "tinyshakespeare.txt");
  candidates.emplace_back(CHAR_LM_INSTALL_DATA);
  std::string tried;
  for (const fs::path& p : candidates) {
    if (fs::is_regular_file(p, ec)) return p;
    tried += "\n  " + p.string();
  }
  throw std::runtime_error("the default training text tinyshakespeare.txt was not found; looked at:" + tried +
                           "\npass a text file with --data FILE");
}

std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  auto mix = [](std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  return mix(mix(mix(seed) ^ stream) ^ index);
}

namespace {

Batch batch_at(const std::vector<std::int32_t>& ids, const std::vector<std::size_t>& offsets, int seq_len) {
  Batch b;
  b.inputs.assign(static_cast<std::size_t>(seq_len), std::vector<std::int32_t>(offsets.size()));
  b.targets = b.inputs;
  for (std::size_t t = 0; t < static_cast<std::size_t>(seq_len); ++t) {
    for (std::size_t j = 0; j < offsets.size(); ++j) {
      b.inputs[t][j] = ids[offsets[j] + t];
      b.targets[t][j] = ids[offsets[j] + t + 1];
    }
  }
  return b;
}

}  // namespace

Batch training_batch(const std::vector<std::int32_t>& ids, int batch, int seq_len, std::uint64_t seed,
                     std::int64_t step) {
  // Stream 1 is the data order; the sampler and the initial weights use other streams.
  std::mt19937_64 rng(mix_seed(seed, 1, static_cast<std::uint64_t>(step)));
  const std::uint64_t last = ids.size() - static_cast<std::size_t>(seq_len) - 1;  // last valid offset
  std::vector<std::size_t> offsets(static_cast<std::size_t>(batch));
  // rng() % n rather than uniform_int_distribution: the same offsets with every standard library.
  for (std::size_t& o : offsets) o = static_cast<std::size_t>(rng() % (last + 1));
  return batch_at(ids, offsets, seq_len);
}

Batch validation_batch(const std::vector<std::int32_t>& ids, int batch, int seq_len, int i, int n) {
  const std::size_t last = ids.size() - static_cast<std::size_t>(seq_len) - 1;
  const std::size_t windows = static_cast<std::size_t>(batch) * static_cast<std::size_t>(n);
  std::vector<std::size_t> offsets(static_cast<std::size_t>(batch));
  for (std::size_t j = 0; j < offsets.size(); ++j) {
    const std::size_t w = static_cast<std::size_t>(i) * static_cast<std::size_t>(batch) + j;
    offsets[j] = windows > 1 ? last * w / (windows - 1) : 0;
  }
  return batch_at(ids, offsets, seq_len);
}

}  // namespace char_lm
