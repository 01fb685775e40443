// char_lm's command line: every option with its default, parsed and range-checked by CLI11.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace char_lm {

/// The largest --steps (and the largest step a --resume checkpoint may be at).
constexpr std::int64_t kMaxSteps = 10000000;

/// Everything the command line can set. The defaults are the demo run (scripts/demo.sh).
struct Options {
  std::string cell = "lstm";  ///< rnn | lstm | gru
  int layers = 1;
  int hidden = 128;
  int embed = 32;
  int seq_len = 64;
  int k1 = 0;    ///< 0: not given (see truncation())
  int k2 = 0;    ///< 0: not given
  int tau = -1;  ///< -1: not given
  double clip = 5.0;
  double lr = 3e-3;
  std::string lr_schedule = "constant";  ///< constant | cosine (from --lr down to --lr-min over --steps)
  double lr_min = 0.0;
  double dropout = 0.0;  ///< between layers and before the head, in training only
  std::string optimizer = "adam";
  int steps = 500;
  std::uint64_t seed = 1;
  std::string data;  ///< empty: the bundled tinyshakespeare.txt
  std::string resume;
  std::string save;  ///< empty: <out>/char_lm.safetensors
  int sample = 400;
  double temperature = 0.8;
  std::string prime;
  int threads = 1;
  bool per_step = false;  ///< record chunked/full truncation step by step (run_tbptt) too
  int batch = 32;
  int eval_every = 100;
  int eval_batches = 4;
  std::string out = "out/char_lm";
  std::string log_file;
  std::string progress = "auto";  ///< auto | tty | plain | none
};

/// Parses argv. Returns the options, or the process exit code when the program must stop
/// (0 after --help, non-zero after a bad value, with the message already printed).
struct ParseResult {
  std::optional<Options> options;
  int exit_code = 0;
};
ParseResult parse_options(int argc, char** argv);

/// The checkpoint path: --save, or char_lm.safetensors in --out.
std::string checkpoint_path(const Options& o);

}  // namespace char_lm
