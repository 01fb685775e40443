// learning_curve: draws a char_lm run's learning curve as an SVG (docs/quality.md's picture).
// Reads the --log-file CSV (step,train_loss,grad_norm) and the run's printed output, whose
// "step N  validation loss X nats/char" lines carry the validation curve:
//
//   char_lm ... --log-file loss.csv --progress plain > run.log
//   learning_curve loss.csv run.log curve.svg [--title TEXT]
//
// The training loss is averaged over windows of 25 steps (one step's loss is one batch: noisy).
#include <cstdio>
#include <exception>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <tapegrad/nn/svg_plot.h>

namespace {

struct Curve {
  std::vector<double> step, loss;
};

Curve read_train_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("learning_curve: cannot read the loss CSV " + path);
  Curve c;
  std::string line;
  std::getline(in, line);  // header
  int line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    std::istringstream fields(line);
    std::string step, loss;
    if (!std::getline(fields, step, ',') || !std::getline(fields, loss, ',')) {
      throw std::runtime_error("learning_curve: " + path + " line " + std::to_string(line_no) +
                               ": expected step,train_loss,grad_norm");
    }
    c.step.push_back(std::stod(step));
    c.loss.push_back(std::stod(loss));
  }
  return c;
}

Curve read_validation(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("learning_curve: cannot read the run output " + path);
  static const std::regex kLine(R"(step\s+(\d+)\s+validation loss\s+([0-9.]+))");
  Curve c;
  std::string line;
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, kLine)) {
      c.step.push_back(std::stod(m[1].str()));
      c.loss.push_back(std::stod(m[2].str()));
    }
  }
  return c;
}

Curve window_mean(const Curve& c, std::size_t window) {
  Curve out;
  for (std::size_t begin = 0; begin + window <= c.step.size(); begin += window) {
    double sum = 0;
    for (std::size_t i = begin; i < begin + window; ++i) sum += c.loss[i];
    out.step.push_back(c.step[begin + window - 1]);
    out.loss.push_back(sum / static_cast<double>(window));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 4) {
      std::fprintf(stderr, "usage: learning_curve LOSS.csv RUN.log OUT.svg [--title TEXT]\n");
      return 2;
    }
    std::string title = "char_lm learning curve";
    for (int i = 4; i + 1 < argc; i += 2) {
      if (std::string(argv[i]) == "--title") {
        title = argv[i + 1];
      } else {
        std::fprintf(stderr, "learning_curve: unknown option %s\n", argv[i]);
        return 2;
      }
    }
    const Curve train = window_mean(read_train_csv(argv[1]), 25);
    const Curve val = read_validation(argv[2]);
    if (train.step.empty() && val.step.empty()) throw std::runtime_error("learning_curve: no points to draw");
    std::vector<tapegrad::nn::PlotSeries> series;
    if (!train.step.empty()) series.push_back({"training loss (mean of 25 steps)", train.step, train.loss});
    if (!val.step.empty()) series.push_back({"validation loss", val.step, val.loss});
    const double last = val.step.empty() ? train.step.back() : val.step.back();
    const double first = train.step.empty() ? val.step.front() : train.step.front();
    series.push_back({"bar 1.55 nats/char", {first, last}, {1.55, 1.55}, true});
    tapegrad::nn::PlotOptions options;
    options.title = title;
    options.x_label = "training step";
    options.y_label = "nats per character";
    tapegrad::nn::write_log_plot(series, options, argv[3]);
    std::printf("wrote %s: %zu training points, %zu validation points\n", argv[3], train.step.size(), val.step.size());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
