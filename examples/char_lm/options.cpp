#include "options.h"

#include <filesystem>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>

#include "validators.h"

namespace char_lm {

namespace {

// Checks that involve more than one option (CLI11 validators see one value at a time).
void check_combinations(const Options& o) {
  if (o.k2 > 0 && o.k1 == 0) throw CLI::ValidationError("--k2", "needs --k1 (k2 is how far each update reaches back)");
  if (o.k1 > o.seq_len) {
    throw CLI::ValidationError(
        "--k1", "is " + std::to_string(o.k1) + " but must be <= --seq-len (" + std::to_string(o.seq_len) + ")");
  }
  if (o.k2 > 0 && o.k2 < o.k1) {
    throw CLI::ValidationError("--k2",
                               "is " + std::to_string(o.k2) + " but must be >= --k1 (" + std::to_string(o.k1) + ")");
  }
  if (o.k2 > o.seq_len) {
    throw CLI::ValidationError(
        "--k2", "is " + std::to_string(o.k2) + " but must be <= --seq-len (" + std::to_string(o.seq_len) + ")");
  }
}

}  // namespace

ParseResult parse_options(int argc, char** argv) {
  Options o;
  CLI::App app{
      "char_lm: trains a character-level language model (embedding -> stacked recurrent cell -> linear head, "
      "softmax cross-entropy) with truncated BPTT on Tapegrad, then generates text.\n"
      "Tokens are the bytes of the text (any UTF-8 or ASCII file works; a multi-byte character is several "
      "tokens); the vocabulary is the set of distinct bytes. The first 90% of the file is trained on, the last "
      "10% is held out for validation. Runs are reproducible: the batches of step s and every random draw are "
      "functions of (--seed, s), so --resume continues exactly where a run stopped.",
      "char_lm"};
  app.option_defaults()->always_capture_default()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.get_formatter()->column_width(34);

  app.add_option("--cell", o.cell, "Recurrent cell: rnn (tanh), lstm or gru")
      ->check(CLI::IsMember({"rnn", "lstm", "gru"}));
  app.add_option("--layers", o.layers, "Stacked recurrent layers")->check(whole_number(1, 8));
  app.add_option("--hidden", o.hidden, "Hidden units per layer")->check(whole_number(1, 4096));
  app.add_option("--embed", o.embed, "Width of the character embedding")->check(whole_number(1, 4096));
  app.add_option("--seq-len", o.seq_len, "Characters per training sequence (the state starts at zero for each)")
      ->check(whole_number(2, 100000));
  auto* k1 = app.add_option("--k1", o.k1,
                            "Truncated BPTT: update every k1 steps (k1 = k2: disjoint chunks). "
                            "Default when neither --k1 nor --tau is given: --seq-len / 2")
                 ->check(whole_number(1, 100000));
  auto* k2 = app.add_option("--k2", o.k2,
                            "Truncated BPTT: each update back-propagates the last k1 losses through the last k2 "
                            "steps (k1 <= k2 <= --seq-len; default k1)")
                 ->check(whole_number(1, 100000));
  auto* tau = app.add_option("--tau", o.tau,
                             "Per-output window instead of --k1/--k2: each loss reaches back tau steps, one update "
                             "per sequence")
                  ->check(whole_number(0, 100000));
  tau->excludes(k1)->excludes(k2);
  for (CLI::Option* opt : {k1, k2, tau}) opt->default_str("");  // 'not given', not a value
  app.add_option("--clip", o.clip, "Global gradient-norm threshold (0 disables clipping; the norm is reported)")
      ->check(real_in(0.0, 1e6));
  app.add_option("--lr", o.lr, "Learning rate")->check(real_above(0.0, 10.0));
  app.add_option("--lr-schedule", o.lr_schedule,
                 "constant, or cosine: the rate falls from --lr to --lr-min over --steps (one value per step)")
      ->check(CLI::IsMember({"constant", "cosine"}));
  app.add_option("--lr-min", o.lr_min, "The last learning rate of --lr-schedule cosine")->check(real_in(0.0, 10.0));
  app.add_option("--dropout", o.dropout,
                 "Dropout probability on each layer's output (between layers and before the head), training only; "
                 "masks are functions of (--seed, step), so --resume repeats them")
      ->check(real_in(0.0, 0.95));
  app.add_option("--optimizer", o.optimizer, "Optimizer")->check(CLI::IsMember({"adam", "sgd"}));
  app.add_option("--steps", o.steps,
                 "Training steps in all (one step = one batch of --batch sequences of --seq-len characters); "
                 "with --resume, training continues up to this step")
      ->check(whole_number(0, kMaxSteps));
  app.add_option("--seed", o.seed, "Seed of the initial weights, the batch order and the sampler")
      ->check(seed_number());
  app.add_option("--data", o.data,
                 "Training text (UTF-8 or ASCII; bytes are the tokens). Default: the bundled "
                 "data/tinyshakespeare.txt")
      ->check(CLI::ExistingFile);
  app.add_option("--resume", o.resume,
                 "Checkpoint to continue from (weights, optimizer state, step); the model options must match it")
      ->check(CLI::ExistingFile);
  app.add_option("--save", o.save, "Where to write the checkpoint (default: <out>/char_lm.safetensors)");
  app.add_option("--sample", o.sample, "Characters to generate after training (0: none)")
      ->check(whole_number(0, 1000000));
  app.add_option("--temperature", o.temperature, "Sampling temperature (lower: more conservative)")
      ->check(real_above(0.0, 100.0));
  app.add_option("--prime", o.prime, "Text the sample starts from (default: the first character of the data)");
  const int hw = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  app.add_option("--threads", o.threads,
                 "Threads: Eigen may split large matrix products over this many threads "
                 "(tapegrad::set_num_threads), and with 2 or more each validation pass runs on a worker thread "
                 "while the next steps train")
      ->check(whole_number(1, std::max(hw, 64)));
  app.add_flag("--per-step", o.per_step,
               "Record every time step as its own ops (nn::run_tbptt) also for chunked and full truncation, "
               "instead of each chunk as one whole-sequence forward: slower, but the recording a reader follows "
               "op by op (overlapping --k2 and --tau always run per step)");
  app.add_option("--batch", o.batch, "Sequences per step")->check(whole_number(1, 4096));
  app.add_option("--eval-every", o.eval_every, "Validation loss on held-out text every N steps (0: only at the end)")
      ->check(whole_number(0, 10000000));
  app.add_option("--eval-batches", o.eval_batches, "Batches of held-out text per validation pass")
      ->check(whole_number(1, 10000));
  app.add_option("--out", o.out,
                 "Output directory: checkpoint, gradient-flow picture (gradient_flow.svg) and its CSV "
                 "(gradient_flow.csv) of the last step");
  app.add_option("--log-file", o.log_file,
                 "Also write a machine-readable loss log (CSV: step,train_loss,grad_norm) to this file");
  app.add_option("--progress", o.progress,
                 "Progress display: auto (one updating line on a terminal, plain lines otherwise), tty, plain, none")
      ->check(CLI::IsMember({"auto", "tty", "plain", "none"}));

  try {
    app.parse(argc, argv);
    check_combinations(o);
  } catch (const CLI::ParseError& e) {
    return {std::nullopt, app.exit(e)};
  }
  return {o, 0};
}

std::string checkpoint_path(const Options& o) {
  if (!o.save.empty()) return o.save;
  return (std::filesystem::path(o.out) / "char_lm.safetensors").string();
}

}  // namespace char_lm
