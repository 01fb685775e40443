// What a run derives from the options and the corpus: the truncation, the optimizer, and the
// checkpoint metadata that a --resume must agree with.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <tapegrad/nn/optim.h>
#include <tapegrad/nn/tbptt.h>

#include "corpus.h"
#include "options.h"

namespace char_lm {

/// --tau -> per-output window; --k1 [--k2] -> chunked or overlapping; neither -> chunked seq-len/2.
tapegrad::nn::TbpttConfig truncation(const Options& o);

/// Adam or SGD over params (named, so a non-finite step names the parameter) with --lr.
std::unique_ptr<tapegrad::nn::Optimizer<float>> make_optimizer(const Options& o,
                                                               tapegrad::nn::ParameterList<float> params);

/// Throws std::runtime_error unless a checkpoint's step lies in [0, kMaxSteps] and its
/// optimizer step count leaves room for this run's updates (at most --seq-len per step), so a
/// crafted count neither overflows nor makes the run endless.
void check_resumed_counts(const Options& o, std::int64_t step, std::int64_t optimizer_steps);

/// Metadata saved with every checkpoint: the model's shape, the vocabulary and the seed.
std::map<std::string, std::string> checkpoint_metadata(const Options& o, const Vocab& vocab);

/// Throws std::runtime_error naming the option when the checkpoint at path was written for a
/// different model (cell, layers, hidden, embed) or vocabulary than o and vocab describe.
void check_resume_compatible(const std::string& path, const Options& o, const Vocab& vocab);

}  // namespace char_lm
