// adding_problem: vanishing and exploding gradients on the adding problem (Hochreiter &
// Schmidhuber 1997). A vanilla tanh RNN and an LSTM (nn cells, Adam, MSE) learn to add the two
// marked values of a sequence; the per-step gradient norms ||dL/dh_k|| show why the LSTM can
// and the vanilla RNN cannot reach far back. A linear RNN with sigma_max(W) > 1 then shows the
// opposite failure, exploding gradients, and global-norm clipping as its cure.
//
//   adding_problem [--mode all|compare|explode|clip] [--lengths 50,100,200] [--steps N]
//                  [--hidden H] [--batch B] [--seed S] [--lr X]
//                  [--forget-bias X] [--sgd-lr X] [--clip-norm X] [--out DIR]
//
// Writes into DIR: adding_results.csv, adding_train_loss.csv, adding_grad_flow_T<L>.{csv,svg},
// adding_explode_grad_flow.{csv,svg}, adding_clip_loss.svg. Exit code 0 on success (also
// when a run diverges: that is a reported result), 1 on an error, 2 on a bad option.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <tapegrad/error.h>

#include "adding_data.h"
#include "sections.h"

namespace {

void print_help() {
  std::printf(
      "usage: adding_problem [--mode all|compare|explode|clip] [--lengths 50,100,200] [--steps N]\n"
      "                      [--hidden H] [--batch B] [--seed S] [--lr X] [--forget-bias X]\n"
      "                      [--sgd-lr X] [--clip-norm X] [--out DIR]\n\n"
      "The adding problem: (value, marker) sequences with two markers; the target is the sum of the\n"
      "two marked values. Always answering 1.0 gives MSE %.3f.\n\n"
      "  compare  vanilla tanh RNN vs LSTM (Adam, MSE) at each length: test MSE, and the per-step\n"
      "           gradient norms ||dL/dh_k|| in one log-scale chart per length\n"
      "  explode  linear RNN with sigma_max(W) = 1.2 (> 1/gamma, gamma = 1), plain SGD, no clipping\n"
      "  clip     the same run with global-norm clipping (nn/clip.h)\n"
      "  all      all three (default)\n\n"
      "  --lengths L1,L2,..  sequence lengths (default 50,100,200; explode/clip use the first)\n"
      "  --steps N           training updates per run (default %d)\n"
      "  --hidden H          hidden units (default %d)\n"
      "  --batch B           sequences per update (default %d)\n"
      "  --seed S            seed of weights and data (default %d)\n"
      "  --lr X              Adam learning rate, compare section (default %g)\n"
      "  --forget-bias X     LSTM forget-gate bias at init (default %g)\n"
      "  --sgd-lr X          SGD learning rate, explode/clip sections (default %g)\n"
      "  --clip-norm X       global-norm clipping threshold, clip section (default %g)\n"
      "  --out DIR           where CSV and SVG files go (default %s)\n\n"
      "The defaults are sized to finish in well under a minute; longer runs (e.g. --steps 3000)\n"
      "separate the two models' test MSE much more clearly.\n",
      adding::kBaselineMse, adding::Options{}.steps, adding::Options{}.hidden, adding::Options{}.batch,
      static_cast<int>(adding::Options{}.seed), adding::Options{}.lr, adding::Options{}.forget_bias,
      adding::Options{}.sgd_lr, adding::Options{}.clip_norm, adding::Options{}.out.c_str());
}

bool parse_int(const char* s, int& out) {
  try {
    std::size_t used = 0;
    out = std::stoi(s, &used);
    return used == std::string(s).size() && out > 0;
  } catch (const std::exception&) {
    return false;
  }
}

bool parse_double(const char* s, double& out) {
  try {
    std::size_t used = 0;
    out = std::stod(s, &used);
    return used == std::string(s).size() && std::isfinite(out) && out >= 0.0;
  } catch (const std::exception&) {
    return false;
  }
}

bool parse_lengths(const std::string& s, std::vector<int>& out) {
  out.clear();
  std::size_t at = 0;
  while (at <= s.size()) {
    const std::size_t comma = std::min(s.find(',', at), s.size());
    int v = 0;
    if (!parse_int(s.substr(at, comma - at).c_str(), v) || v < 2) return false;
    out.push_back(v);
    at = comma + 1;
  }
  return !out.empty();
}

// Exit code 2 with a message naming the option and what it wants.
int bad_value(const std::string& option, const char* wants, const char* got) {
  std::fprintf(stderr, "adding_problem: %s wants %s, got '%s'\n", option.c_str(), wants, got);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  adding::Options o;
  int seed = 0;  // stays 0 (keep the default) unless --seed gives a positive one
  const std::map<std::string, int*> int_options{
      {"--steps", &o.steps}, {"--hidden", &o.hidden}, {"--batch", &o.batch}, {"--seed", &seed}};
  const std::map<std::string, double*> number_options{
      {"--lr", &o.lr}, {"--forget-bias", &o.forget_bias}, {"--sgd-lr", &o.sgd_lr}, {"--clip-norm", &o.clip_norm}};
  for (int i = 1; i < argc; ++i) {
    const std::string arg(argv[i]);
    const bool has_value = i + 1 < argc;
    if (arg == "--help" || arg == "-h") {
      print_help();
      return 0;
    } else if (arg == "--mode" && has_value) {
      o.mode = argv[++i];
      if (o.mode != "all" && o.mode != "compare" && o.mode != "explode" && o.mode != "clip") {
        std::fprintf(stderr, "adding_problem: --mode must be all, compare, explode or clip, got '%s'\n",
                     o.mode.c_str());
        return 2;
      }
    } else if (arg == "--lengths" && has_value) {
      if (!parse_lengths(argv[++i], o.lengths)) return bad_value(arg, "integers >= 2 separated by commas", argv[i]);
    } else if (int_options.contains(arg) && has_value) {
      if (!parse_int(argv[++i], *int_options.at(arg))) return bad_value(arg, "a positive integer", argv[i]);
    } else if (number_options.contains(arg) && has_value) {
      if (!parse_double(argv[++i], *number_options.at(arg))) return bad_value(arg, "a finite number >= 0", argv[i]);
    } else if (arg == "--out" && has_value) {
      o.out = argv[++i];
    } else {
      std::fprintf(stderr, "adding_problem: unknown option or missing value '%s' (try --help)\n", argv[i]);
      return 2;
    }
  }
  if (seed > 0) o.seed = static_cast<std::uint64_t>(seed);
  try {
    std::filesystem::create_directories(o.out);
    adding::Results results;
    if (o.mode == "all" || o.mode == "compare") adding::run_compare(o, results);
    if (o.mode == "all" || o.mode == "explode" || o.mode == "clip") adding::run_explode_and_clip(o, results);
    adding::write_results(o, results);
    return 0;
  } catch (const tapegrad::Error& e) {
    std::fprintf(stderr, "adding_problem: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "adding_problem: %s\n", e.what());
    return 1;
  }
}
