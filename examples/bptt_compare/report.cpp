#include "report.h"

#include <cmath>
#include <cstdio>
#include <string>

namespace bptt {

namespace {

const char* verdict(bool ok) { return ok ? "PASS" : "FAIL"; }

bool within(double d) { return d <= kTolerance; }  // false for NaN

void print_model(const ModelResult& r) {
  std::printf("== %s: %s\n", r.model.c_str(), r.description.c_str());
  std::printf("   loss L = %.12f\n\n", r.loss);
  std::printf("   %-24s", "max |autodiff - hand|");
  for (const ModeResult& m : r.modes) std::printf(" %10s", m.mode.c_str());
  std::printf("\n");
  for (std::size_t k = 0; k < r.modes.front().params.size(); ++k) {
    std::printf("   %-24s", r.modes.front().params[k].name.c_str());
    bool ok = true;
    for (const ModeResult& m : r.modes) {
      std::printf(" %10.2e", m.params[k].diff);
      ok = ok && within(m.params[k].diff);
    }
    std::printf("  %s\n", verdict(ok));
  }
  std::printf("\n   %-24s", "step t (full BPTT)");
  for (const std::string& n : r.state_names) std::printf(" %12s", n.c_str());
  std::printf("\n");
  for (const StepDiff& s : r.steps) {
    std::printf("   %-24d", s.t);
    bool ok = true;
    for (double d : s.diff) {
      std::printf(" %12.2e", d);
      ok = ok && within(d);
    }
    std::printf("  %s\n", verdict(ok));
  }
  std::printf("\n   %s: %s\n\n", r.model.c_str(),
              r.pass() ? "PASS, autodiff matches the hand derivation" : "FAIL, some gradients differ");
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out;
}

// JSON has no NaN/Inf: a non-finite difference is written as null (and fails the verdict).
std::string json_number(double d) {
  if (!std::isfinite(d)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", d);
  return buf;
}

}  // namespace

void print_tables(const std::vector<ModelResult>& results) {
  std::printf("bptt_compare: hand-derived BPTT (plain Eigen) vs tapegrad autodiff through nn cells, float64\n");
  std::printf("tolerance %.0e on every max abs difference\n\n", kTolerance);
  bool all = true;
  for (const ModelResult& r : results) {
    print_model(r);
    all = all && r.pass();
  }
  std::printf("%s\n", all ? "PASS: every model, parameter, mode and step matches"
                          : "FAIL: some gradients differ from the hand derivation");
}

void print_json(const std::vector<ModelResult>& results) {
  bool all = true;
  for (const ModelResult& r : results) all = all && r.pass();
  std::printf("{\"tolerance\": %g, \"pass\": %s, \"models\": [", kTolerance, all ? "true" : "false");
  for (std::size_t i = 0; i < results.size(); ++i) {
    const ModelResult& r = results[i];
    std::printf("%s\n {\"model\": \"%s\", \"description\": \"%s\", \"pass\": %s, \"loss\": %s,\n  \"modes\": [",
                i ? "," : "", r.model.c_str(), json_escape(r.description).c_str(), r.pass() ? "true" : "false",
                json_number(r.loss).c_str());
    for (std::size_t m = 0; m < r.modes.size(); ++m) {
      std::printf("%s{\"mode\": \"%s\", \"max_abs_diff\": {", m ? ", " : "", r.modes[m].mode.c_str());
      for (std::size_t k = 0; k < r.modes[m].params.size(); ++k) {
        std::printf("%s\"%s\": %s", k ? ", " : "", json_escape(r.modes[m].params[k].name).c_str(),
                    json_number(r.modes[m].params[k].diff).c_str());
      }
      std::printf("}}");
    }
    std::printf("],\n  \"steps\": [");
    for (std::size_t s = 0; s < r.steps.size(); ++s) {
      std::printf("%s{\"t\": %d", s ? ", " : "", r.steps[s].t);
      for (std::size_t k = 0; k < r.steps[s].diff.size(); ++k) {
        std::printf(", \"%s\": %s", json_escape(r.state_names[k]).c_str(), json_number(r.steps[s].diff[k]).c_str());
      }
      std::printf("}");
    }
    std::printf("]}");
  }
  std::printf("\n]}\n");
}

}  // namespace bptt
