// char_lm: the main Tapegrad demo. A character-level language model (embedding -> stacked
// LSTM/GRU/RNN -> linear head) trained with truncated BPTT on Shakespeare (or any --data
// text), with a live progress line, validation loss, a checkpoint, a gradient-flow picture
// and generated text. `char_lm --help` lists every option.
#include <cstdio>
#include <exception>
#include <optional>

#include <fmt/format.h>
#include <Eigen/Core>

#include <tapegrad/error.h>
#include <tapegrad/nn/gru_cell.h>
#include <tapegrad/nn/lstm_cell.h>
#include <tapegrad/nn/rnn_cell.h>
#include <tapegrad/threading.h>

#include "corpus.h"
#include "options.h"
#include "output_paths.h"
#include "ranks.h"
#include "train.h"

int main(int argc, char** argv) {
  const char_lm::ParseResult parsed = char_lm::parse_options(argc, argv);
  if (!parsed.options) return parsed.exit_code;
  const char_lm::Options& o = *parsed.options;
  std::optional<char_lm::Ranks> ranks;
  try {
    ranks.emplace();
    if (o.threads >= 2) Eigen::initParallel();  // Eigen's lazily built tables, before a second thread uses them
    tapegrad::set_num_threads(o.threads);       // large GEMMs (the batched projections, the head) split
    tapegrad::keep_freed_memory();              // Eigen's per-product buffers reused, not page-faulted in again
    const auto path = o.data.empty() ? char_lm::default_data_path(argv[0]) : std::filesystem::path(o.data);
    if (ranks->lead())
      char_lm::check_outputs(o, path);  // before any training: a bad output fails now, not after the run
    const char_lm::Corpus corpus = char_lm::load_corpus(path, o.seq_len);
    if (o.cell == "rnn") return char_lm::train_and_sample<tapegrad::nn::RnnCell<float>>(o, corpus, *ranks);
    if (o.cell == "gru") return char_lm::train_and_sample<tapegrad::nn::GruCell<float>>(o, corpus, *ranks);
    return char_lm::train_and_sample<tapegrad::nn::LstmCell<float>>(o, corpus, *ranks);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "\nchar_lm: error: {}\n", e.what());
    std::fflush(stderr);
    if (ranks) ranks->abort_job(1);  // the other ranks may be waiting for this one
    return 1;
  }
}
