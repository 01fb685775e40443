// bptt_compare: the gradients tapegrad computes for recurrent models, side by side with a
// hand-derived BPTT written from the equations in plain Eigen (hand_<model>.h), per parameter
// and per time step (dL/dh_t, and dL/dc_t for the LSTM).
//
//   bptt_compare [--model rnn|stacked|lstm|gru|all] [--json] [--help]
//
// Exit code: 0 when every difference is within 1e-9 (float64), 1 on a mismatch, 2 on a bad option.
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <tapegrad/error.h>

#include "models.h"
#include "report.h"

namespace {

constexpr int kMaxTau = 4;

void print_help() {
  std::printf(
      "usage: bptt_compare [--model rnn|stacked|lstm|gru|all] [--json] [--help]\n\n"
      "Computes the gradients of small recurrent models twice: with tapegrad's tape through the nn\n"
      "cells (RnnCell, Stacked<RnnCell>, LstmCell, GruCell) and with a hand-derived BPTT in plain\n"
      "Eigen. Every model reads out softmax(h_t V + c) with a summed cross-entropy.\n\n"
      "  rnn      vanilla tanh RNN; full BPTT and the per-output window tau = 1..%d\n"
      "           (the loss of output t reaches steps t..t-tau, like numpy's bptt_truncate)\n"
      "  stacked  two vanilla layers: the delta recursion through time and through layers\n"
      "  lstm     LSTM, gates i, f, g, o; dL/dh_t and dL/dc_t per step\n"
      "  gru      GRU with PyTorch's equations\n"
      "  all      every model (default)\n\n"
      "Prints the max abs difference per parameter (and mode), and of dL/dh_t per step, with a\n"
      "PASS/FAIL verdict.\n\n"
      "  --json   print the same results as JSON\n"
      "  --help   show this text\n\n"
      "exit code: 0 everything within %.0e, 1 a mismatch, 2 a bad option\n",
      kMaxTau, bptt::kTolerance);
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  std::string model = "all";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg(argv[i]);
    if (arg == "--json") {
      json = true;
    } else if (arg == "--model" && i + 1 < argc) {
      model = argv[++i];
    } else if (arg == "--help" || arg == "-h") {
      print_help();
      return 0;
    } else {
      std::fprintf(stderr, "bptt_compare: unknown option '%s' (try --help)\n", argv[i]);
      return 2;
    }
  }
  if (model != "all" && model != "rnn" && model != "stacked" && model != "lstm" && model != "gru") {
    std::fprintf(stderr, "bptt_compare: --model must be rnn, stacked, lstm, gru or all, got '%s'\n", model.c_str());
    return 2;
  }
  try {
    std::vector<bptt::ModelResult> results;
    const bool all = model == "all";
    if (all || model == "rnn") results.push_back(bptt::compare_rnn(kMaxTau));
    if (all || model == "stacked") results.push_back(bptt::compare_stacked());
    if (all || model == "lstm") results.push_back(bptt::compare_lstm());
    if (all || model == "gru") results.push_back(bptt::compare_gru());
    if (json) {
      bptt::print_json(results);
    } else {
      bptt::print_tables(results);
    }
    for (const auto& r : results) {
      if (!r.pass()) return 1;
    }
    return 0;
  } catch (const tapegrad::Error& e) {
    std::fprintf(stderr, "bptt_compare: %s\n", e.what());
    return 1;
  }
}
