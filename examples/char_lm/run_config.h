// What a run derives from the options and the corpus: the truncation, the optimizer, and the
// checkpoint metadata that a --resume must agree with.
#pragma once

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

/// Adam or SGD over params with --lr.
std::unique_ptr<tapegrad::nn::Optimizer<float>> make_optimizer(const Options& o,
                                                               std::vector<tapegrad::Parameter<float>*> params);

/// Metadata saved with every checkpoint: the model's shape, the vocabulary and the seed.
std::map<std::string, std::string> checkpoint_metadata(const Options& o, const Vocab& vocab);

/// Throws std::runtime_error naming the option when the checkpoint at path was written for a
/// different model (cell, layers, hidden, embed) or vocabulary than o and vocab describe.
void check_resume_compatible(const std::string& path, const Options& o, const Vocab& vocab);

}  // namespace char_lm
