// The run's files, checked before anything is trained: every output can be written, and no
// output is an input or another output (compared as files, so links and other spellings of
// the same path count).
#pragma once

#include <filesystem>

#include "options.h"

namespace char_lm {

/// Inputs: the training text `data` and --resume. Outputs: the checkpoint (checkpoint_path),
/// --log-file, and gradient_flow.svg / .csv in --out. Refuses an output that is the same file
/// as an input or as another output (the checkpoint may be the --resume file: that one is read
/// first and replaced atomically); creates --out and the checkpoint's directory and writes a
/// probe file into each output's directory; an output that exists must be a regular file, and
/// an existing --log-file must open for writing. Throws std::runtime_error naming the options
/// and paths.
void check_outputs(const Options& o, const std::filesystem::path& data);

}  // namespace char_lm
