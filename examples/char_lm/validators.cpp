#include "validators.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <string>

#include <fmt/format.h>

namespace char_lm {
namespace {

constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

// Parses all of text as T (from_chars: no sign for unsigned, no whitespace, no hex); "" on success.
template <class T>
std::string parse_all(const std::string& text, T& out) {
  const char* first = text.data();
  const char* last = text.data() + text.size();
  if (first != last && *first == '+') ++first;  // from_chars refuses '+'; "+3" is 3
  if (first == last) return "is empty";
  const auto [ptr, ec] = std::from_chars(first, last, out);
  if (ec == std::errc::result_out_of_range) return "is out of range";
  if (ec != std::errc() || ptr != last) return "is not a number";
  return {};
}

}  // namespace

CLI::Validator whole_number(std::int64_t lo, std::int64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        std::int64_t v = 0;
        const std::string bad = parse_all(text, v);
        if (!bad.empty() || v < lo || v > hi) {
          return fmt::format("must be a whole number in [{}, {}], got '{}'", lo, hi, text);
        }
        return {};
      },
      fmt::format("INT in [{}, {}]", lo, hi));
}

CLI::Validator seed_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        std::uint64_t v = 0;
        if (!parse_all(text, v).empty()) {
          return fmt::format("must be a whole number in [0, {}], got '{}'", kMax, text);
        }
        return {};
      },
      fmt::format("INT in [0, {}]", kMax));
}

CLI::Validator real_in(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        double v = 0;
        const std::string bad = parse_all(text, v);
        if (!bad.empty() || !(v >= lo && v <= hi)) return fmt::format("must be in [{}, {}], got '{}'", lo, hi, text);
        return {};
      },
      fmt::format("NUMBER in [{}, {}]", lo, hi));
}

CLI::Validator real_above(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        double v = 0;
        const std::string bad = parse_all(text, v);
        if (!bad.empty() || !(v > lo && v <= hi)) {
          return fmt::format("must be > {} and <= {}, got '{}'", lo, hi, text);
        }
        return {};
      },
      fmt::format("NUMBER in ({}, {}]", lo, hi));
}

}  // namespace char_lm
