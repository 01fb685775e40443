// libFuzzer target for checkpoint files. The first input byte picks the mode: even, the rest of
// the input is the file as raw bytes; odd, the rest is a recipe (checkpoint_recipe.h) for a
// near-valid file with structured defects, and the path may be a directory, a FIFO, missing or
// a 1 TiB sparse file. The file is then loaded into a small model in float and double, weights
// only, ignoring optimizer state, and with Adam, RMSprop and Adagrad; and read with
// read_safetensors. Only tapegrad::Error may come out. After an error every parameter, gradient
// and optimizer state tensor, step count and learning rate must be exactly as before. After an
// accepted load of moderate values (finite, |x| < 1e6) one optimizer step with finite gradients
// must leave every weight finite: a load never accepts state the next update cannot use.
// Recipes with bit 1 of the mode byte set also save under a name and metadata taken from the
// input (any bytes): only a typed error, or a file that loads back with the same metadata.
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <type_traits>

#include <tapegrad/error.h>

#include "checkpoint_recipe.h"
#include "fuzz_model.h"

namespace {

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
namespace fs = std::filesystem;

const fs::path& scratch_dir() {
  static const fs::path dir = [] {
    const fs::path d = fs::temp_directory_path() / ("tapegrad_fuzz_checkpoint_" + std::to_string(::getpid()));
    fs::create_directories(d);
    // The last input may have left a FIFO or a 1 TiB sparse file there.
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(fs::temp_directory_path() / ("tapegrad_fuzz_checkpoint_" + std::to_string(::getpid())), ec);
    });
    return d;
  }();
  return dir;
}

// Outcome counts, printed at exit when TAPEGRAD_FUZZ_STATS is set (figures for the docs).
struct Stats {
  long inputs = 0, recipes = 0, loads = 0, typed = 0, accepted = 0, stepped = 0, saves = 0, saves_typed = 0;
  ~Stats() {
    if (std::getenv("TAPEGRAD_FUZZ_STATS") == nullptr) return;
    std::fprintf(stderr,
                 "fuzz_checkpoint stats: %ld inputs (%ld recipes), %ld loads: %ld typed errors, %ld accepted "
                 "(%ld followed by an optimizer step); %ld saves, %ld typed errors\n",
                 inputs, recipes, loads, typed, accepted, stepped, saves, saves_typed);
  }
};
Stats stats;

[[noreturn]] void finding(const char* what, const char* how) {
  std::fprintf(stderr, "fuzz_checkpoint: %s: %s\n", what, how);
  std::abort();
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

template <class S>
bool moderate(const std::vector<tg::Matrix<S>>& tensors) {
  for (const auto& m : tensors) {
    for (tg::Index i = 0; i < m.size(); ++i) {
      if (!(std::abs(m.data()[i]) < S(1e6))) return false;
    }
  }
  return true;
}

// One load: on a tapegrad::Error the model must be unchanged; on success with moderate values,
// the next optimizer step must keep the weights finite.
template <class S, class Load>
void load_and_check(const char* what, tg::fuzz::SmallModel<S>& model, std::type_identity_t<nn::Optimizer<S>>* optimizer,
                    Load&& load) {
  const auto before = model.snapshot();
  const auto step_before = optimizer ? optimizer->step_count() : 0;
  const double lr_before = optimizer ? optimizer->learning_rate() : 0;
  ++stats.loads;
  try {
    load();
  } catch (const tg::Error&) {
    ++stats.typed;
    if (!same(before, model.snapshot()) ||
        (optimizer && (step_before != optimizer->step_count() || lr_before != optimizer->learning_rate()))) {
      finding(what, "threw but changed the model");
    }
    return;
  }
  ++stats.accepted;
  // A learning rate above 1 may overflow any update; the API itself allows it, so no finding.
  if (optimizer == nullptr || !moderate(model.snapshot()) || !(optimizer->learning_rate() <= 1)) return;
  model.W.grad.setConstant(S(0.5));
  model.b.grad.setConstant(S(-0.25));
  optimizer->step();
  ++stats.stepped;
  if (!model.W.value.allFinite() || !model.b.value.allFinite()) {
    finding(what, "accepted optimizer state whose next update makes the weights non-finite");
  }
}

template <class S>
std::vector<tg::fuzz::RecipeTensor> valid_tensors(tg::fuzz::SmallModel<S>& m, nn::Optimizer<S>* optimizer) {
  std::vector<tg::fuzz::RecipeTensor> out;
  const char* dtype = sizeof(S) == 4 ? "F32" : "F64";
  const auto add = [&](const std::string& name, const tg::Matrix<S>& v) {
    out.push_back({name,
                   dtype,
                   {static_cast<std::uint64_t>(v.rows()), static_cast<std::uint64_t>(v.cols())},
                   std::vector<double>(static_cast<std::size_t>(v.size()))});
  };
  add("W", m.W.value);
  add("b", m.b.value);
  if (optimizer) {
    for (auto& [name, t] : optimizer->state_tensors()) add("optim." + name, *t);
  }
  return out;
}

// Puts the recipe at path as the kind of file it asks for.
void materialize(const tg::fuzz::Recipe& r, const fs::path& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  switch (r.kind) {
    case tg::fuzz::FileKind::Directory:
      fs::create_directory(path);
      return;
    case tg::fuzz::FileKind::Fifo:
      ::mkfifo(path.c_str(), 0600);
      return;
    case tg::fuzz::FileKind::Missing:
      return;
    case tg::fuzz::FileKind::Regular:
    case tg::fuzz::FileKind::Sparse:
      break;
  }
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(r.bytes.data(), static_cast<std::streamsize>(r.bytes.size()));
  }
  if (r.kind == tg::fuzz::FileKind::Sparse) fs::resize_file(path, std::uint64_t{1} << 40);
}

void load_every_way(const fs::path& path) {
  tg::fuzz::SmallModel<float> f;
  load_and_check("load (weights)", f, nullptr, [&] { nn::load_checkpoint<float>(path, f.named()); });
  load_and_check("load (ignore optimizer)", f, nullptr, [&] {
    nn::LoadOptions o;
    o.ignore_optimizer_state = true;
    nn::load_checkpoint<float>(path, f.named(), nullptr, o);
  });
  load_and_check("load (adam)", f, &f.adam, [&] { nn::load_checkpoint<float>(path, f.named(), &f.adam); });
  load_and_check("load (rmsprop)", f, &f.rmsprop, [&] { nn::load_checkpoint<float>(path, f.named(), &f.rmsprop); });
  load_and_check("load (adagrad)", f, &f.adagrad, [&] { nn::load_checkpoint<float>(path, f.named(), &f.adagrad); });
  tg::fuzz::SmallModel<double> d;
  load_and_check("load (double + adam)", d, &d.adam, [&] { nn::load_checkpoint<double>(path, d.named(), &d.adam); });
  try {
    const nn::SafetensorsFile file = nn::read_safetensors(path);
    (void)file;
  } catch (const tg::Error&) {
  }
}

// A save under a name and metadata from the input: a typed error, or a file that loads back.
void save_from_input(tg::fuzz::Choices& c, const fs::path& path) {
  std::string name;
  std::string key;
  std::string value;
  for (std::size_t n = c.pick(12); n > 0; --n) name.push_back(static_cast<char>(c.byte()));
  for (std::size_t n = c.pick(8); n > 0; --n) key.push_back(static_cast<char>(c.byte()));
  for (std::size_t n = c.pick(16); n > 0; --n) value.push_back(static_cast<char>(c.byte()));
  tg::fuzz::SmallModel<float> m;
  ++stats.saves;
  try {
    nn::save_checkpoint<float>(path, {{name, &m.W}}, nullptr, 1, {{key, value}});
  } catch (const tg::Error&) {
    ++stats.saves_typed;
    return;
  }
  tg::fuzz::SmallModel<float> back;
  try {
    const nn::CheckpointInfo info = nn::load_checkpoint<float>(path, {{name, &back.W}});
    if (info.metadata.at(key) != value) finding("save", "metadata did not round-trip");
  } catch (const tg::Error&) {
    finding("save", "a saved checkpoint does not load back");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fs::path path = scratch_dir() / "input.safetensors";
  ++stats.inputs;
  if (size == 0 || data[0] % 2 == 0) {
    tg::fuzz::Recipe raw;
    if (size > 0) raw.bytes.assign(reinterpret_cast<const char*>(data + 1), size - 1);
    materialize(raw, path);
    load_every_way(path);
    return 0;
  }
  tg::fuzz::Choices c(data + 1, size - 1);
  ++stats.recipes;
  // Which valid contents the recipe starts from: float or double, with which optimizer's state.
  tg::fuzz::SmallModel<float> f;
  tg::fuzz::SmallModel<double> d;
  tg::fuzz::Recipe r;
  switch (c.pick(5)) {
    case 0:
      r = tg::fuzz::make_recipe(c, valid_tensors<float>(f, nullptr), "");
      break;
    case 1:
      r = tg::fuzz::make_recipe(c, valid_tensors<float>(f, &f.rmsprop), "rmsprop");
      break;
    case 2:
      r = tg::fuzz::make_recipe(c, valid_tensors<float>(f, &f.adagrad), "adagrad");
      break;
    case 3:
      r = tg::fuzz::make_recipe(c, valid_tensors<double>(d, &d.adam), "adam");
      break;
    default:
      r = tg::fuzz::make_recipe(c, valid_tensors<float>(f, &f.adam), "adam");
  }
  materialize(r, path);
  load_every_way(path);
  if (data[0] & 2) save_from_input(c, scratch_dir() / "saved.safetensors");
  return 0;
}
