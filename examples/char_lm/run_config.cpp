#include "run_config.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>

#include <tapegrad/nn/checkpoint.h>

namespace char_lm {

tapegrad::nn::TbpttConfig truncation(const Options& o) {
  using tapegrad::nn::TbpttConfig;
  if (o.tau >= 0) return TbpttConfig::per_output_window(o.tau);
  if (o.k1 > 0) return o.k2 > o.k1 ? TbpttConfig::overlapping(o.k1, o.k2) : TbpttConfig::chunked(o.k1);
  return TbpttConfig::chunked(std::max(1, o.seq_len / 2));
}

std::unique_ptr<tapegrad::nn::Optimizer<float>> make_optimizer(const Options& o,
                                                               tapegrad::nn::ParameterList<float> params) {
  if (o.optimizer == "sgd") {
    tapegrad::nn::SgdOptions so;
    so.lr = o.lr;
    return std::make_unique<tapegrad::nn::Sgd<float>>(std::move(params), so);
  }
  tapegrad::nn::AdamOptions ao;
  ao.lr = o.lr;
  return std::make_unique<tapegrad::nn::Adam<float>>(std::move(params), ao);
}

void check_resumed_counts(const Options& o, std::int64_t step, std::int64_t optimizer_steps) {
  if (step < 0 || step > kMaxSteps) {
    throw std::runtime_error(
        fmt::format("--resume {}: the checkpoint is at step {}, outside [0, {}] (the range of --steps)", o.resume, step,
                    kMaxSteps));
  }
  // Both factors are bounded by the option ranges, so the product cannot overflow.
  const std::int64_t updates = std::max<std::int64_t>(0, o.steps - step) * o.seq_len;
  if (optimizer_steps > std::numeric_limits<std::int64_t>::max() - updates) {
    throw std::runtime_error(
        fmt::format("--resume {}: the optimizer's step count {} leaves no room for this run's up to {} updates",
                    o.resume, optimizer_steps, updates));
  }
}

std::map<std::string, std::string> checkpoint_metadata(const Options& o, const Vocab& vocab) {
  return {{"char_lm.cell", o.cell},
          {"char_lm.layers", std::to_string(o.layers)},
          {"char_lm.hidden", std::to_string(o.hidden)},
          {"char_lm.embed", std::to_string(o.embed)},
          {"char_lm.seed", std::to_string(o.seed)},
          {"char_lm.vocab_hex", vocab.hex()}};
}

void check_resume_compatible(const std::string& path, const Options& o, const Vocab& vocab) {
  const auto meta = tapegrad::nn::read_safetensors(path).metadata;
  const auto expected = checkpoint_metadata(o, vocab);
  for (const char* key : {"char_lm.cell", "char_lm.layers", "char_lm.hidden", "char_lm.embed"}) {
    const auto it = meta.find(key);
    if (it == meta.end()) {
      throw std::runtime_error(fmt::format("--resume {}: not a char_lm checkpoint (no '{}' metadata)", path, key));
    }
    if (it->second != expected.at(key)) {
      const std::string option = std::string(key).substr(8);
      throw std::runtime_error(fmt::format("--resume {}: the checkpoint was trained with --{} {}, this run has --{} {}",
                                           path, option, it->second, option, expected.at(key)));
    }
  }
  const auto it = meta.find("char_lm.vocab_hex");
  if (it == meta.end() || it->second != expected.at("char_lm.vocab_hex")) {
    throw std::runtime_error(fmt::format(
        "--resume {}: the checkpoint's vocabulary differs from the one of the training text (was it trained on "
        "another --data file?)",
        path));
  }
}

}  // namespace char_lm
