#include "progress.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include <unistd.h>

#include <fmt/format.h>

namespace char_lm {

Progress::Style Progress::style_from(const std::string& name) {
  if (name == "tty") return Style::Tty;
  if (name == "plain") return Style::Plain;
  if (name == "none") return Style::None;
  return isatty(STDOUT_FILENO) != 0 ? Style::Tty : Style::Plain;
}

Progress::Progress(Style style, std::int64_t first_step, std::int64_t last_step, std::int64_t tokens_per_step,
                   double baseline)
    : style_(style),
      first_step_(first_step),
      last_step_(last_step),
      tokens_per_step_(tokens_per_step),
      baseline_(baseline),
      // About 20 plain lines per run (and every line for short runs).
      plain_every_(std::max<std::int64_t>(1, (last_step - first_step + 1) / 20)),
      start_(std::chrono::steady_clock::now()) {}

double Progress::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

double Progress::tokens_per_second() const {
  const double s = seconds();
  return s > 0 ? static_cast<double>(steps_done_ * tokens_per_step_) / s : 0.0;
}

std::string Progress::line(std::int64_t step, double loss, double grad_norm) const {
  const double per_step = steps_done_ > 0 ? seconds() / static_cast<double>(steps_done_) : 0.0;
  const double eta = per_step * static_cast<double>(last_step_ - step);
  const int width = static_cast<int>(std::to_string(last_step_).size());
  return fmt::format(
      "step {:>{}}/{}  loss {:.4f} (uniform {:.3f})  {:.3f} bits/char  |g| {:6.3f}  {:6.0f} tok/s  ETA {:3.0f}s", step,
      width, last_step_, loss, baseline_, loss / std::numbers::ln2, grad_norm, tokens_per_second(), eta);
}

void Progress::update(std::int64_t step, double loss, double grad_norm) {
  ++steps_done_;
  if (style_ == Style::None) return;
  if (style_ == Style::Tty) {
    // Separate writes: GCC 12 misreports a string concatenation here (-Wrestrict).
    std::fputs("\r", stdout);
    std::fputs(line(step, loss, grad_norm).c_str(), stdout);
    std::fputs("\x1b[K", stdout);
    line_open_ = true;
  } else if ((step - first_step_ + 1) % plain_every_ == 0 || step == last_step_ || step == first_step_) {
    std::puts(line(step, loss, grad_norm).c_str());
  }
  std::fflush(stdout);
}

void Progress::message(const std::string& text) {
  if (line_open_) std::fputs("\r\x1b[K", stdout);
  std::puts(text.c_str());
  line_open_ = false;
  std::fflush(stdout);
}

void Progress::finish() {
  if (line_open_) std::fputs("\n", stdout);
  line_open_ = false;
  std::fflush(stdout);
}

}  // namespace char_lm
