// Writes the checkpoint seed corpus: valid checkpoints of the fuzz model (weights only, with
// Adam state after two steps, in float and double, with metadata). Usage: make_seeds <dir>
#include <cstdio>
#include <filesystem>

#include "fuzz_model.h"

namespace nn = tapegrad::nn;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds <dir>\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  tapegrad::fuzz::SmallModel<float> f;
  nn::save_checkpoint<float>(dir / "weights_f32.safetensors", f.named());
  for (int i = 0; i < 2; ++i) {
    f.W.grad.setConstant(0.5f);
    f.b.grad.setConstant(-1.0f);
    f.adam.step();
  }
  nn::save_checkpoint<float>(dir / "adam_f32.safetensors", f.named(), &f.adam, 2, {{"note", "seed"}});
  tapegrad::fuzz::SmallModel<double> d;
  nn::save_checkpoint<double>(dir / "adam_f64.safetensors", d.named(), &d.adam, 7);
  return 0;
}
