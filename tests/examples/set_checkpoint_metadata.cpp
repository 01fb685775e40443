// Test tool: copies a safetensors checkpoint with one metadata value replaced, as a crafted
// or corrupt file would carry it (e.g. a step count near INT64_MAX). The header is rewritten
// as text; the tensor bytes are copied unchanged.
//   set_checkpoint_metadata <in> <out> <key> <value>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fputs("usage: set_checkpoint_metadata <in> <out> <key> <value>\n", stderr);
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary | std::ios::ate);
  std::vector<char> bytes(static_cast<std::size_t>(std::max<std::streamoff>(0, in.tellg())));
  in.seekg(0);
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (bytes.size() < 8) return 3;
  std::uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(k)]);
  if (n > bytes.size() - 8) return 3;
  std::string header(bytes.data() + 8, n);
  // Metadata values are strings: replace "key":"old" (preceded by '{' or ',', so "step" does not
  // match "optim.step").
  for (const char* before : {"{", ","}) {
    const std::string needle = std::string(before) + "\"" + argv[3] + "\":\"";
    const std::size_t at = header.find(needle);
    if (at == std::string::npos) continue;
    const std::size_t start = at + needle.size();
    const std::size_t end = header.find('"', start);
    header.replace(start, end - start, argv[4]);
    std::ofstream out(argv[2], std::ios::binary);
    const std::uint64_t len = header.size();
    for (int k = 0; k < 8; ++k) out.put(static_cast<char>((len >> (8 * k)) & 0xFF));
    out << header;
    out.write(bytes.data() + 8 + n, static_cast<std::streamsize>(bytes.size() - 8 - n));
    return out ? 0 : 4;
  }
  std::fprintf(stderr, "set_checkpoint_metadata: no metadata key '%s' in %s\n", argv[3], argv[1]);
  return 5;
}
