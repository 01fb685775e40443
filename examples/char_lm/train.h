// The training run for one cell type: build or resume the model, train with truncated BPTT
// (nn/tbptt.h) and global-norm clipping, validate, checkpoint, write the gradient-flow
// picture, and sample. Everything random is a function of (--seed, step), so a resumed run
// repeats an uninterrupted one exactly. On several ranks (ranks.h) each trains on its share of
// every global batch, the gradients are summed before clipping, and rank 0 does all the printing
// and writing.
#pragma once

#include <cmath>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <future>
#include <limits>
#include <memory>
#include <numbers>
#include <optional>
#include <random>
#include <stdexcept>

#include <fmt/format.h>

#include <tapegrad/nn/checkpoint.h>
#include <tapegrad/nn/clip.h>
#include <tapegrad/nn/loss.h>
#include <tapegrad/nn/lr_schedule.h>
#include <tapegrad/nn/tbptt.h>

#include "chunks.h"
#include "corpus.h"
#include "evaluate.h"
#include "gradient_flow.h"
#include "model.h"
#include "options.h"
#include "progress.h"
#include "ranks.h"
#include "run_config.h"
#include "sample.h"

namespace char_lm {

namespace nn = tapegrad::nn;

/// Trains, evaluates, saves and samples as the options say. Returns the exit code.
template <class Cell>
int train_and_sample(const Options& o, const Corpus& corpus, Ranks& ranks) {
  const double baseline = std::log(static_cast<double>(corpus.vocab.size()));
  std::mt19937_64 init_rng(mix_seed(o.seed, 0, 0));  // stream 0: the initial weights
  Model<Cell> model({corpus.vocab.size(), o.embed, o.hidden, o.layers, o.dropout, mix_seed(o.seed, 3, 0)}, init_rng);
  const std::vector<tapegrad::Parameter<S>*> params = model.parameters();
  std::unique_ptr<nn::Optimizer<S>> opt = make_optimizer(o, model.named_parameters());
  const nn::TbpttConfig config = truncation(o);
  config.validate();
  // Chunked and full truncation record each chunk as a few whole-sequence ops (chunks.h);
  // overlapping windows and tau re-record single steps, so they step through run_tbptt.
  const bool whole_chunks =
      !o.per_step && (config.mode == nn::TbpttMode::Chunked || config.mode == nn::TbpttMode::Full);
  const int chunk = config.mode == nn::TbpttMode::Full ? o.seq_len : config.k1;

  std::int64_t start = 0;
  if (!o.resume.empty()) {
    check_resume_compatible(o.resume, o, corpus.vocab);
    start = nn::load_checkpoint<S>(o.resume, model, opt.get()).step;
    check_resumed_counts(o, start, opt->step_count());
  }
  // Every rank built (or loaded) the same model; rank 0's values win all the same. The
  // optimizer state needs no copy: it follows from the same gradients on every rank.
  ranks.share_parameters(params);
  // This rank's sequences of each global batch. Its loss is weighted by its share of the batch,
  // so the summed gradient is the global batch's mean loss's, whatever the number of ranks.
  const Share share = ranks.share_of(o.batch, ranks.rank());
  const S weight = static_cast<S>(share.rows()) / static_cast<S>(o.batch);
  model.set_mask_first_row(share.begin);  // the global batch's masks: the trajectory does not depend on N
  const bool lead = ranks.lead();
  const std::filesystem::path out_dir(o.out);
  const std::filesystem::path ckpt(checkpoint_path(o));
  if (lead) {
    std::filesystem::create_directories(out_dir);
    if (ckpt.has_parent_path()) std::filesystem::create_directories(ckpt.parent_path());
  }

  std::size_t n_params = 0;
  for (const auto* p : params) n_params += static_cast<std::size_t>(p->size());
  const std::int64_t tokens_per_step = static_cast<std::int64_t>(o.batch) * o.seq_len;
  const std::optional<nn::CosineLr> cosine =
      o.lr_schedule == "cosine"
          ? std::optional<nn::CosineLr>(std::in_place, o.lr, std::max<std::int64_t>(o.steps - 1, 1), o.lr_min)
          : std::nullopt;
  if (lead) {
    fmt::print("data     {}: {} bytes, vocabulary {} bytes, {} train / {} validation tokens\n", corpus.path.string(),
               corpus.num_bytes, corpus.vocab.size(), corpus.train.size(), corpus.valid.size());
    fmt::print("baseline uniform guess: ln({}) = {:.3f} nats/char ({:.3f} bits/char)\n", corpus.vocab.size(), baseline,
               baseline / std::numbers::ln2);
    fmt::print("model    embed {} -> {} x {} {} -> linear {}: {} parameters (float32)\n", o.embed, o.layers, o.hidden,
               o.cell, corpus.vocab.size(), n_params);
    fmt::print("training {} lr {}{}, dropout {}, clip {}, {} ({}), batch {} x {} chars = {} tokens/step, seed {}\n",
               o.optimizer, o.lr, cosine ? fmt::format(" cosine to {} at step {}", o.lr_min, o.steps) : std::string(),
               o.dropout, o.clip > 0 ? fmt::format("global norm {}", o.clip) : std::string("off"), config.describe(),
               whole_chunks ? "whole-chunk ops" : "per-step ops", o.batch, o.seq_len, tokens_per_step, o.seed);
    if (start > 0) fmt::print("resumed  from {} at step {}\n", o.resume, start);
    if (ranks.size() > 1) {
      fmt::print("ranks    {} processes, {} to {} sequences of each batch per rank, gradients summed\n", ranks.size(),
                 ranks.share_of(o.batch, ranks.size() - 1).rows(), ranks.share_of(o.batch, 0).rows());
    }
    if (start >= o.steps) fmt::print("nothing to train: the run is already at step {} (--steps {})\n", start, o.steps);
    std::fflush(stdout);
  }

  std::unique_ptr<std::FILE, int (*)(std::FILE*)> log(nullptr, &std::fclose);
  if (lead && !o.log_file.empty()) {
    log.reset(std::fopen(o.log_file.c_str(), "w"));
    if (!log) throw std::runtime_error(fmt::format("--log-file: cannot write {}", o.log_file));
    std::fputs("step,train_loss,grad_norm\n", log.get());
  }

  Progress progress(lead ? Progress::style_from(o.progress) : Progress::Style::None, start + 1, o.steps,
                    tokens_per_step, baseline);
  double last_val = std::numeric_limits<double>::quiet_NaN();
  auto report_val = [&](std::int64_t s, double v) {
    last_val = v;
    progress.message(fmt::format("step {:>5}  validation loss {:.4f} nats/char ({:.3f} bits/char), uniform {:.3f}", s,
                                 v, v / std::numbers::ln2, baseline));
  };
  // With --threads >= 2 a validation pass runs on a copy of the model on a worker thread.
  struct PendingEval {
    std::int64_t step;
    std::future<double> loss;
  };
  std::deque<PendingEval> pending;
  auto drain = [&](bool wait) {
    while (!pending.empty() &&
           (wait || pending.front().loss.wait_for(std::chrono::seconds(0)) == std::future_status::ready)) {
      report_val(pending.front().step, pending.front().loss.get());
      pending.pop_front();
    }
  };
  auto validate = [&](std::int64_t s) {
    if (o.threads >= 2) {
      pending.push_back({s, std::async(std::launch::async, [m = model, &corpus, &o]() mutable {
                           m.train(false);
                           return validation_loss(m, corpus.valid, o.batch, o.seq_len, o.eval_batches);
                         })});
    } else {
      model.train(false);
      report_val(s, validation_loss(model, corpus.valid, o.batch, o.seq_len, o.eval_batches));
      model.train(true);
    }
  };
  auto save = [&](std::int64_t s) {
    nn::save_checkpoint<S>(ckpt, model, opt.get(), s, checkpoint_metadata(o, corpus.vocab));
  };

  Tape<S> tape;
  const std::vector<Matrix<S>> zero = model.zero_state(share.rows());
  const S inv_len = S(1) / static_cast<S>(o.seq_len) * weight;
  const double clip_at = o.clip > 0 ? o.clip : std::numeric_limits<double>::infinity();
  double first_loss = std::numeric_limits<double>::quiet_NaN(), last_loss = first_loss;
  std::int64_t updates = 0, clipped = 0;
  for (std::int64_t s = start + 1; s <= o.steps; ++s) {
    const Batch batch = rows_of(training_batch(corpus.train, o.batch, o.seq_len, o.seed, s), share);
    model.set_mask_step(s);
    opt->set_learning_rate(cosine ? cosine->lr_at(s - 1) : o.lr);
    // Each position's loss is the batch mean divided by seq_len, so a step's summed loss is
    // the mean loss per character and the gradient does not grow with --seq-len (inv_len also
    // carries the rank's weight).
    nn::StepFn<S> step = [&](Tape<S>& t, int i, const nn::State<S>& state) -> nn::StepResult<S> {
      const auto ti = static_cast<std::size_t>(i);
      auto r = model.step(model.bind(t), batch.inputs[ti], state);
      return {r.next, nn::cross_entropy(r.logits, batch.targets[ti]) * inv_len};
    };
    double norm = 0.0;
    nn::UpdateFn update = [&](const nn::UpdateInfo&) {
      ranks.sum_gradients();  // the global norm below is the global batch's
      const nn::ClipReport c = nn::clip_grad_norm(params, clip_at);
      norm = std::max(norm, c.norm_seen);
      clipped += c.clipped ? 1 : 0;
      ++updates;
      opt->step();
      opt->zero_grad();
    };
    const double total =
        ranks.sum(whole_chunks ? train_chunks(model, tape, batch, chunk, zero, update, weight)
                               : nn::run_tbptt<S>(tape, o.seq_len, zero, step, update, config).total_loss);
    if (!std::isfinite(total)) {
      throw std::runtime_error(
          fmt::format("step {}: the training loss is {} (try a smaller --lr or --clip)", s, total));
    }
    if (s == start + 1) first_loss = total;
    last_loss = total;
    if (log) std::fputs(fmt::format("{},{:.9g},{:.9g}\n", s, total, norm).c_str(), log.get());
    progress.update(s, total, norm);
    drain(false);
    if (lead && o.eval_every > 0 && s % o.eval_every == 0) {
      save(s);
      validate(s);
    }
  }
  drain(true);
  progress.finish();
  if (!lead) return 0;
  const bool trained = o.steps > start;
  if (trained && (o.eval_every == 0 || o.steps % o.eval_every != 0)) validate(o.steps);
  drain(true);
  if (trained) save(o.steps);

  if (trained) {
    fmt::print("done     {} steps in {:.1f} s, {:.0f} tokens/s, {} updates ({} clipped)\n", o.steps - start,
               progress.seconds(), progress.tokens_per_second(), updates, clipped);
    fmt::print("loss     train {:.4f} -> {:.4f}, validation {:.4f} nats/char; uniform baseline ln({}) = {:.3f}\n",
               first_loss, last_loss, last_val, corpus.vocab.size(), baseline);
    fmt::print("saved    {} (step {}, weights + {} state)\n", ckpt.string(), o.steps, opt->kind());
  }

  model.train(false);  // the diagnostic and the sample read the deterministic network
  // The gradient-flow picture of the last step's first sequence.
  const std::int64_t last = std::max<std::int64_t>(o.steps, 1);
  const Batch last_batch = training_batch(corpus.train, 1, o.seq_len, o.seed, last);
  const auto flow =
      write_gradient_flow(model, last_batch, out_dir,
                          fmt::format("char_lm {}: gradient flow at step {} (top layer, full BPTT)", o.cell, last));
  fmt::print(
      "gradient flow  {}\n               ||dh_{}/dh_0|| = {:.3g} (how much of the first character reaches the last "
      "state)\n"
      "               -> {}, {}\n",
      flow.summary(), o.seq_len, flow.steps.front().product_spectral, (out_dir / "gradient_flow.svg").string(),
      (out_dir / "gradient_flow.csv").string());

  if (o.sample > 0) {
    const std::string prime = o.prime.empty() ? std::string(1, corpus.vocab.byte(corpus.train.front())) : o.prime;
    const std::string text = sample_text(model, corpus.vocab, prime, o.sample, o.temperature,
                                         mix_seed(o.seed, 2, static_cast<std::uint64_t>(last)));
    fmt::print("sample   (temperature {}, {} chars after \"{}\"):\n{}{}\n", o.temperature, o.sample, prime, prime,
               text);
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace char_lm
