#include "run_config.h"

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
                                                               std::vector<tapegrad::Parameter<float>*> params) {
  if (o.optimizer == "sgd") {
    tapegrad::nn::SgdOptions so;
    so.lr = o.lr;
    return std::make_unique<tapegrad::nn::Sgd<float>>(std::move(params), so);
  }
  tapegrad::nn::AdamOptions ao;
  ao.lr = o.lr;
  return std::make_unique<tapegrad::nn::Adam<float>>(std::move(params), ao);
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
