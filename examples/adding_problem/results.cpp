// adding_results.csv (one row per trained run) and adding_train_loss.csv (every update).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include <fmt/format.h>

#include <tapegrad/nn/svg_plot.h>

#include "adding_data.h"
#include "sections.h"

namespace adding {

namespace {
// fmt writes a NaN with its sign bit as "-nan"; a CSV reader wants one spelling.
std::string num(double v) { return std::isnan(v) ? std::string("nan") : fmt::format("{}", v); }
}  // namespace

void write_results(const Options& o, const Results& results) {
  std::string csv =
      "section,model,length,updates,hidden,batch,seed,final_batch_loss,test_mse,baseline_mse,seconds,status\n";
  for (const RunRow& r : results.rows) {
    csv +=
        fmt::format("{},{},{},{},{},{},{},{},{},{},{:.3f},{}\n", r.section, r.model, r.length, r.steps_done, o.hidden,
                    o.batch, o.seed, num(r.final_loss), num(r.test_mse), kBaselineMse, r.seconds, r.status);
  }
  tapegrad::nn::write_text_file_atomic((std::filesystem::path(o.out) / "adding_results.csv").string(), csv);
  std::string curves = "section,model,length,update,loss,grad_norm\n";
  for (const Curve& c : results.curves) {
    for (std::size_t i = 0; i < c.loss.size(); ++i) {
      curves +=
          fmt::format("{},{},{},{},{},{}\n", c.section, c.model, c.length, i, num(c.loss[i]), num(c.grad_norm[i]));
    }
  }
  tapegrad::nn::write_text_file_atomic((std::filesystem::path(o.out) / "adding_train_loss.csv").string(), curves);
  std::printf("wrote %s/adding_results.csv, %s/adding_train_loss.csv\n", o.out.c_str(), o.out.c_str());
}

}  // namespace adding
