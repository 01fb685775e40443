// Checked parsing of char_lm's numbers: each validator reads the whole text itself and names
// the range, so nothing wraps (-1 as 2^64 - 1), clamps (2^64 as 2^64 - 1) or passes as NaN.
#pragma once

#include <cstdint>

#include <CLI/CLI.hpp>

namespace char_lm {

/// A whole number in [lo, hi], in decimal digits only (an optional leading '+').
CLI::Validator whole_number(std::int64_t lo, std::int64_t hi);

/// A seed: any whole number in [0, 2^64 - 1], in decimal digits only.
CLI::Validator seed_number();

/// A real number in [lo, hi] (NaN is outside every range).
CLI::Validator real_in(double lo, double hi);

/// A real number in (lo, hi].
CLI::Validator real_above(double lo, double hi);

}  // namespace char_lm
