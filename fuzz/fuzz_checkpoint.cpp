// libFuzzer target: arbitrary bytes as a checkpoint file, loaded into a small model four ways
// (weights only, weights + Adam state, weights ignoring optimizer state, double precision) and
// read with read_safetensors. Only tapegrad::Error may come out; after an error every parameter,
// gradient and optimizer state tensor must be exactly as before (a load is all or nothing).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <tapegrad/error.h>

#include "fuzz_model.h"

namespace {

namespace tg = tapegrad;
namespace nn = tapegrad::nn;

const std::filesystem::path& scratch_file() {
  static const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("tapegrad_fuzz_checkpoint_" + std::to_string(::getpid()));
  return path;
}

template <class S>
bool same(const std::vector<tg::Matrix<S>>& a, const std::vector<tg::Matrix<S>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].rows() != b[i].rows() || a[i].cols() != b[i].cols()) return false;
    // Bitwise: a NaN loaded into a tensor must count as a change too.
    if (a[i].size() != 0 && std::memcmp(a[i].data(), b[i].data(), sizeof(S) * static_cast<std::size_t>(a[i].size())))
      return false;
  }
  return true;
}

// Runs one load; on a tapegrad::Error the model must be unchanged (else abort: a finding).
template <class S, class Load>
void load_and_check(const char* what, tg::fuzz::SmallModel<S>& model, Load&& load) {
  const auto before = model.snapshot();
  const auto step_before = model.adam.step_count();
  const double lr_before = model.adam.learning_rate();
  try {
    load();
  } catch (const tg::Error&) {
    if (!same(before, model.snapshot()) || step_before != model.adam.step_count() ||
        lr_before != model.adam.learning_rate()) {
      std::fprintf(stderr, "fuzz_checkpoint: %s threw but changed the model\n", what);
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& path = scratch_file();
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  tg::fuzz::SmallModel<float> f;
  load_and_check("load (weights)", f, [&] { nn::load_checkpoint<float>(path, f.named()); });
  load_and_check("load (weights + adam)", f, [&] { nn::load_checkpoint<float>(path, f.named(), &f.adam); });
  load_and_check("load (ignore optimizer)", f, [&] {
    nn::LoadOptions o;
    o.ignore_optimizer_state = true;
    nn::load_checkpoint<float>(path, f.named(), nullptr, o);
  });
  tg::fuzz::SmallModel<double> d;
  load_and_check("load (double + adam)", d, [&] { nn::load_checkpoint<double>(path, d.named(), &d.adam); });
  try {
    const nn::SafetensorsFile file = nn::read_safetensors(path);
    (void)file;
  } catch (const tg::Error&) {
  }
  return 0;
}
