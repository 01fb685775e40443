// The live training line: step, loss, bits per character, tokens/s and ETA. On a terminal one
// line is rewritten in place (\r); otherwise (a pipe, a log file, CI) plain lines are printed
// at a modest rate so logs stay short.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace char_lm {

/// Prints progress for steps [first_step, last_step].
class Progress {
 public:
  enum class Style { Tty, Plain, None };
  /// "auto" picks Tty when stdout is a terminal, else Plain.
  static Style style_from(const std::string& name);

  Progress(Style style, std::int64_t first_step, std::int64_t last_step, std::int64_t tokens_per_step, double baseline);

  /// After step `step` with its mean train loss (nats per character) and gradient norm.
  void update(std::int64_t step, double loss, double grad_norm);
  /// Prints a whole line (e.g. a validation result) without breaking the live line.
  void message(const std::string& line);
  /// Ends the live line.
  void finish();
  /// Tokens per second over the steps so far.
  [[nodiscard]] double tokens_per_second() const;
  [[nodiscard]] double seconds() const;

 private:
  [[nodiscard]] std::string line(std::int64_t step, double loss, double grad_norm) const;

  Style style_;
  std::int64_t first_step_, last_step_, tokens_per_step_;
  double baseline_;
  std::int64_t steps_done_ = 0;
  std::int64_t plain_every_;
  bool line_open_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace char_lm
