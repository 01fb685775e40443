// Writes the checkpoint seed corpus. The first byte of each seed is fuzz_checkpoint's mode:
// 0 + a file as raw bytes (valid checkpoints of the fuzz model with Adam, RMSprop and Adagrad
// state in float and double, a truncated one, one with a corrupt header, 3 bytes), and
// 1 or 3 + a fixed pseudo-random recipe (3 also saves with a name from the input).
// Usage: make_seeds <dir>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include "fuzz_model.h"

namespace nn = tapegrad::nn;
namespace fs = std::filesystem;

namespace {

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Saves with `save`, then stores mode byte 0 + the file as the seed `name`.
template <class Save>
std::string raw_seed(const fs::path& dir, const std::string& name, Save&& save) {
  const fs::path tmp = dir / (name + ".tmp_seed");
  save(tmp);
  const std::string bytes = read(tmp);
  fs::remove(tmp);
  write(dir / (name + ".raw"), std::string(1, '\0') + bytes);
  return bytes;
}

template <class S>
void step_twice(tapegrad::fuzz::SmallModel<S>& m, nn::Optimizer<S>& o) {
  for (int i = 0; i < 2; ++i) {
    m.W.grad.setConstant(S(0.5));
    m.b.grad.setConstant(S(-1));
    o.step();
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds <dir>\n");
    return 2;
  }
  const fs::path dir = argv[1];
  fs::create_directories(dir);
  tapegrad::fuzz::SmallModel<float> f;
  raw_seed(dir, "weights_f32", [&](const fs::path& p) { nn::save_checkpoint<float>(p, f.named()); });
  step_twice(f, f.adam);
  const std::string adam = raw_seed(dir, "adam_f32", [&](const fs::path& p) {
    nn::save_checkpoint<float>(p, f.named(), &f.adam, 2, {{"note", "seed"}});
  });
  step_twice(f, f.rmsprop);
  raw_seed(dir, "rmsprop_f32", [&](const fs::path& p) { nn::save_checkpoint<float>(p, f.named(), &f.rmsprop, 2); });
  step_twice(f, f.adagrad);
  raw_seed(dir, "adagrad_f32", [&](const fs::path& p) { nn::save_checkpoint<float>(p, f.named(), &f.adagrad, 2); });
  tapegrad::fuzz::SmallModel<double> d;
  raw_seed(dir, "adam_f64", [&](const fs::path& p) { nn::save_checkpoint<double>(p, d.named(), &d.adam, 7); });
  write(dir / "truncated.raw", std::string(1, '\0') + adam.substr(0, adam.size() - 9));
  std::string corrupt = adam;
  corrupt[8] = '[';
  write(dir / "corrupt_header.raw", std::string(1, '\0') + corrupt);
  write(dir / "short.raw", std::string(1, '\0') + "abc");
  std::mt19937 rng(20261202);
  for (const int mode : {1, 3}) {
    for (const std::size_t n : {16, 64, 256, 1024}) {
      std::string s(1, static_cast<char>(mode));
      for (std::size_t i = 0; i < n; ++i) s.push_back(static_cast<char>(rng() & 0xff));
      write(dir / ("recipe_" + std::to_string(mode) + "_" + std::to_string(n) + ".bin"), s);
    }
  }
  return 0;
}
