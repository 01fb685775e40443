// plot_memory: reads bench_memory's JSON and writes the scaling picture (four log-log panels:
// time and peak memory against T at H = 256, and against H at T = 100, for the plain, recompute
// and lean modes, with the strictly-needed activations as a dashed reference) plus a markdown
// table on stdout.
//
//   bench_memory --benchmark_format=json --benchmark_out=memory.json --benchmark_out_format=json
//   plot_memory memory.json docs/img/memory_scaling.svg > table.md
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

struct Row {
  double t = 0, h = 0, k = 0, cpu_ms = 0, real_ms = 0, peak_mb = 0, tape_mb = 0, needed_mb = 0;
  std::string mode;  // bench_memory's label: plain, recompute or lean
};

struct ModeStyle {
  const char* mode;
  const char* legend;
  const char* color;
};
constexpr ModeStyle kModes[] = {
    {"plain", "plain", "#1b9e77"}, {"recompute", "recompute(sqrt T)", "#d95f02"}, {"lean", "lean", "#7570b3"}};

struct Series {
  std::string name, color;
  std::vector<double> x, y;
  bool dashed = false;
};

std::string fmt_tick(double v) {
  char buf[32];
  if (v >= 1000 && std::fmod(v, 1000) == 0) {
    std::snprintf(buf, sizeof buf, "%gk", v / 1000);
  } else {
    std::snprintf(buf, sizeof buf, "%g", v);
  }
  return buf;
}

// One log-log panel at (ox, oy) of size w x h; decade grid on y, a tick per x value used.
std::string panel(double ox, double oy, double w, double h, const std::string& title, const std::string& xlabel,
                  const std::string& ylabel, const std::vector<Series>& series) {
  double xmin = 1e300, xmax = 0, ymin = 1e300, ymax = 0;
  std::vector<double> xticks;
  for (const auto& s : series) {
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!(s.y[i] > 0)) continue;
      xmin = std::min(xmin, s.x[i]);
      xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, s.y[i]);
      ymax = std::max(ymax, s.y[i]);
      if (std::find(xticks.begin(), xticks.end(), s.x[i]) == xticks.end()) xticks.push_back(s.x[i]);
    }
  }
  const double lx0 = std::log10(xmin) - 0.08, lx1 = std::log10(xmax) + 0.08;
  const double ly0 = std::floor(std::log10(ymin)), ly1 = std::ceil(std::log10(ymax));
  const double px = ox + 70, py = oy + 40, pw = w - 90, ph = h - 110;
  const auto X = [&](double v) { return px + (std::log10(v) - lx0) / (lx1 - lx0) * pw; };
  const auto Y = [&](double v) { return py + ph - (std::log10(v) - ly0) / (ly1 - ly0) * ph; };
  std::string out;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "<text x='%.1f' y='%.1f' font-size='15' font-weight='bold'>%s</text>\n"
                "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='none' stroke='#444'/>\n",
                px, oy + 22, title.c_str(), px, py, pw, ph);
  out += buf;
  for (double d = ly0; d <= ly1 + 1e-9; d += 1) {
    const double v = std::pow(10.0, d);
    std::snprintf(buf, sizeof buf,
                  "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#ddd'/>"
                  "<text x='%.1f' y='%.1f' font-size='12' text-anchor='end'>%s</text>\n",
                  px, Y(v), px + pw, Y(v), px - 6, Y(v) + 4, fmt_tick(v).c_str());
    out += buf;
  }
  for (double v : xticks) {
    std::snprintf(buf, sizeof buf,
                  "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#eee'/>"
                  "<text x='%.1f' y='%.1f' font-size='12' text-anchor='middle'>%s</text>\n",
                  X(v), py, X(v), py + ph, X(v), py + ph + 16, fmt_tick(v).c_str());
    out += buf;
  }
  std::snprintf(buf, sizeof buf,
                "<text x='%.1f' y='%.1f' font-size='13' text-anchor='middle'>%s</text>\n"
                "<text x='%.1f' y='%.1f' font-size='13' text-anchor='middle' transform='rotate(-90 %.1f %.1f)'>%s"
                "</text>\n",
                px + pw / 2, py + ph + 36, xlabel.c_str(), ox + 18, py + ph / 2, ox + 18, py + ph / 2, ylabel.c_str());
  out += buf;
  double ly = py + ph + 56;
  double lxp = px;
  for (const auto& s : series) {
    std::string pts;
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!(s.y[i] > 0)) continue;
      std::snprintf(buf, sizeof buf, "%.1f,%.1f ", X(s.x[i]), Y(s.y[i]));
      pts += buf;
      if (!s.dashed) {
        std::snprintf(buf, sizeof buf, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>\n", X(s.x[i]), Y(s.y[i]),
                      s.color.c_str());
        out += buf;
      }
    }
    std::snprintf(buf, sizeof buf, "<polyline points='%s' fill='none' stroke='%s' stroke-width='2'%s/>\n", pts.c_str(),
                  s.color.c_str(), s.dashed ? " stroke-dasharray='6 4'" : "");
    out += buf;
    std::snprintf(buf, sizeof buf,
                  "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='%s' stroke-width='2'%s/>"
                  "<text x='%.1f' y='%.1f' font-size='12'>%s</text>\n",
                  lxp, ly, lxp + 22, ly, s.color.c_str(), s.dashed ? " stroke-dasharray='6 4'" : "", lxp + 27, ly + 4,
                  s.name.c_str());
    out += buf;
    lxp += 40 + 7.0 * static_cast<double>(s.name.size());
  }
  return out;
}

std::vector<Series> pick(const std::vector<Row>& rows, bool vs_t, bool memory) {
  std::vector<Series> out;
  const auto select = [&](const Row& r) { return vs_t ? r.h == 256 : r.t == 100; };
  for (const ModeStyle& m : kModes) {
    Series s{m.legend, m.color, {}, {}, false};
    for (const Row& r : rows) {
      if (r.mode != m.mode || !select(r)) continue;
      s.x.push_back(vs_t ? r.t : r.h);
      s.y.push_back(memory ? r.peak_mb : r.cpu_ms);
    }
    out.push_back(s);
  }
  if (memory) {
    Series s{"strictly needed", "#555", {}, {}, true};
    for (const Row& r : rows) {
      if (r.mode != "plain" || !select(r)) continue;
      s.x.push_back(vs_t ? r.t : r.h);
      s.y.push_back(r.needed_mb);
    }
    out.push_back(s);
  }
  for (auto& s : out) {  // sort by x
    std::vector<std::size_t> idx(s.x.size());
    for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return s.x[a] < s.x[b]; });
    Series t = s;
    for (std::size_t i = 0; i < idx.size(); ++i) {
      t.x[i] = s.x[idx[i]];
      t.y[i] = s.y[idx[i]];
    }
    s = t;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: plot_memory <bench_memory.json> <out.svg>\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::cerr << "plot_memory: cannot read " << argv[1] << "\n";
    return 1;
  }
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    std::cerr << "plot_memory: " << argv[1] << " is not JSON: " << e.what() << "\n";
    return 1;
  }
  std::vector<Row> rows;
  for (const auto& b : doc.value("benchmarks", nlohmann::json::array())) {
    if (!b.contains("peak_rss_MB")) continue;
    Row r;
    r.t = b.at("T").get<double>();
    r.h = b.at("H").get<double>();
    r.k = b.at("k").get<double>();
    r.cpu_ms = b.at("cpu_time").get<double>();
    r.real_ms = b.at("real_time").get<double>();
    r.peak_mb = b.at("peak_rss_MB").get<double>();
    r.tape_mb = b.at("tape_MB").get<double>();
    r.needed_mb = b.at("needed_MB").get<double>();
    r.mode = b.value("label", "");
    rows.push_back(r);
  }
  if (rows.empty()) {
    std::cerr << "plot_memory: no bench_memory rows in " << argv[1] << "\n";
    return 1;
  }
  const double W = 1100, H = 860;
  std::string svg =
      "<svg xmlns='http://www.w3.org/2000/svg' width='1100' height='860' font-family='sans-serif'>\n"
      "<rect width='100%' height='100%' fill='white'/>\n";
  svg += panel(0, 0, W / 2, H / 2, "Time per step vs T (B=8, H=256, K=65)", "T (steps)", "CPU ms per step",
               pick(rows, true, false));
  svg += panel(W / 2, 0, W / 2, H / 2, "Peak memory vs T (H=256)", "T (steps)", "peak RSS above model, MB",
               pick(rows, true, true));
  svg += panel(0, H / 2, W / 2, H / 2, "Time per step vs H (T=100)", "H (hidden)", "CPU ms per step",
               pick(rows, false, false));
  svg += panel(W / 2, H / 2, W / 2, H / 2, "Peak memory vs H (T=100)", "H (hidden)", "peak RSS above model, MB",
               pick(rows, false, true));
  svg += "</svg>\n";
  std::ofstream out(argv[2]);
  out << svg;
  if (!out) {
    std::cerr << "plot_memory: cannot write " << argv[2] << "\n";
    return 1;
  }
  // The markdown table: one line per (T, H), the three modes side by side.
  struct Line {
    const Row* plain = nullptr;
    const Row* rec = nullptr;
    const Row* lean = nullptr;
  };
  std::map<std::pair<double, double>, Line> lines;
  for (const Row& r : rows) {
    Line& l = lines[{r.t, r.h}];
    (r.mode == "plain" ? l.plain : r.mode == "recompute" ? l.rec : l.lean) = &r;
  }
  std::printf(
      "| T | H | k | plain ms | recompute ms | lean ms | needed MB | plain peak MB | plain / needed | "
      "recompute peak MB | recompute cut | lean peak MB | lean / needed | plain tape MB | recompute tape MB | "
      "lean tape MB |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& [key, l] : lines) {
    const Row* p = l.plain;
    const Row* q = l.rec;
    const Row* z = l.lean;
    if (p == nullptr || q == nullptr || z == nullptr) continue;
    std::printf(
        "| %g | %g | %g | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %.1f | %.1f%% | %.1f | %.2f | %.1f | %.1f | "
        "%.1f |\n",
        key.first, key.second, q->k, p->cpu_ms, q->cpu_ms, z->cpu_ms, p->needed_mb, p->peak_mb,
        p->peak_mb / p->needed_mb, q->peak_mb, 100.0 * (1.0 - q->peak_mb / p->peak_mb), z->peak_mb,
        z->peak_mb / z->needed_mb, p->tape_mb, q->tape_mb, z->tape_mb);
  }
  return 0;
}
