// Log-scale line charts as hand-written SVG, and atomic text-file writes.
#include <tapegrad/nn/svg_plot.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include <tapegrad/error.h>

namespace tapegrad::nn {
namespace {

constexpr const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                    "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};
constexpr int kNumColours = sizeof(kColours) / sizeof(kColours[0]);

std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

bool plottable(double y) { return std::isfinite(y) && y > 0.0; }

// A tick step of 1, 2 or 5 times a power of ten giving at most max_ticks ticks over span.
double nice_step(double span, int max_ticks) {
  if (!(span > 0.0)) return 1.0;
  const double raw = span / max_ticks;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * p >= raw) return m * p;
  }
  return 10.0 * p;
}

// "10" with a superscript exponent; plain numbers for 0.01 .. 1000.
std::string decade_label(int e) {
  if (e >= -2 && e <= 3) return fmt::format("{}", std::pow(10.0, e));
  return fmt::format("10<tspan dy=\"-7\" font-size=\"10\">{}</tspan>", e);
}

std::string number_label(double v) {
  if (std::abs(v - std::round(v)) < 1e-9) return fmt::format("{}", static_cast<long long>(std::llround(v)));
  return fmt::format("{:g}", v);
}

}  // namespace

std::string plot_log_svg(std::span<const PlotSeries> series, const PlotOptions& options) {
  TAPEGRAD_CHECK(!series.empty(), ValueError, "plot_log_svg: no series to plot");
  TAPEGRAD_CHECK(options.width >= 200 && options.height >= 150, ValueError,
                 "plot_log_svg: the chart is {} x {} pixels; it needs at least 200 x 150", options.width,
                 options.height);
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo;
  double y_lo = std::numeric_limits<double>::infinity(), y_hi = -y_lo;
  for (const PlotSeries& s : series) {
    TAPEGRAD_CHECK(s.x.size() == s.y.size(), ValueError, "plot_log_svg: series '{}' has {} x values but {} y values",
                   s.name, s.x.size(), s.y.size());
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!plottable(s.y[i]) || !std::isfinite(s.x[i])) continue;
      x_lo = std::min(x_lo, s.x[i]);
      x_hi = std::max(x_hi, s.x[i]);
      y_lo = std::min(y_lo, s.y[i]);
      y_hi = std::max(y_hi, s.y[i]);
    }
  }
  TAPEGRAD_CHECK(std::isfinite(y_lo), ValueError,
                 "plot_log_svg: no series has a positive finite point to show on a log axis ('{}')", options.title);
  if (x_hi <= x_lo) {
    x_lo -= 0.5;
    x_hi += 0.5;
  }
  int d_lo = static_cast<int>(std::floor(std::log10(y_lo) + 1e-12));
  int d_hi = static_cast<int>(std::ceil(std::log10(y_hi) - 1e-12));
  if (d_hi <= d_lo) d_hi = d_lo + 1;

  // Layout: the legend sits right of the plot area so it never hides a line.
  std::size_t longest = 0;
  for (const PlotSeries& s : series) longest = std::max(longest, s.name.size());
  const double legend_w = std::clamp(44.0 + 7.8 * static_cast<double>(longest), 120.0, 340.0);
  const double W = options.width, H = options.height;
  const double left = 78, top = 52, bottom = 62;
  const double right = legend_w + 24;
  const double pw = W - left - right, ph = H - top - bottom;
  auto px = [&](double x) { return left + (x - x_lo) / (x_hi - x_lo) * pw; };
  auto py = [&](double y) { return top + (d_hi - std::log10(y)) / (d_hi - d_lo) * ph; };

  std::string o;
  o += fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"13\">\n",
      options.width, options.height);
  o += fmt::format("<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"white\"/>\n", W, H);
  // Centred over the plot area unless a long title would run off the left edge (~9.6 px a
  // character in 17 px bold).
  const double title_w = 9.6 * static_cast<double>(options.title.size());
  const double title_x = std::min(std::max(left + pw / 2, title_w / 2 + 8), W / 2);
  o += fmt::format(
      "<text x=\"{:.1f}\" y=\"30\" text-anchor=\"middle\" font-size=\"17\" font-weight=\"bold\">{}</text>\n", title_x,
      escape(options.title));

  // y axis: a grid line and tick per decade; labels thinned to at most ~10; minor ticks when
  // few decades are shown.
  const int decades = d_hi - d_lo;
  const int label_every = std::max(1, (decades + 9) / 10);
  o += "<g class=\"y-axis\">\n";
  for (int e = d_lo; e <= d_hi; ++e) {
    const double y = py(std::pow(10.0, e));
    o += fmt::format(
        "<line class=\"decade\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#dddddd\"/>\n", left,
        y, left + pw, y);
    o += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"black\"/>\n", left - 6, y,
                     left, y);
    if (e % label_every == 0) {  // multiples, so 1 = 10^0 is always labelled when shown
      o += fmt::format("<text class=\"decade-label\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n",
                       left - 10, y + 4.5, decade_label(e));
    }
    if (decades <= 6 && e < d_hi) {
      for (int m = 2; m <= 9; ++m) {
        const double tick = m * std::pow(10.0, e);
        const double ym = py(tick);
        o += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"black\"/>\n", left - 3,
                         ym, left, ym);
        // With one or two decades the decade labels alone leave most of the axis unreadable
        // (a loss curve between 1 and 10), so 2, 3 and 5 get a label and a faint grid line.
        if (decades <= 2 && (m == 2 || m == 3 || m == 5)) {
          o += fmt::format(
              "<line class=\"minor\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#f0f0f0\"/>\n",
              left, ym, left + pw, ym);
          o += fmt::format(
              "<text class=\"minor-label\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\" font-size=\"11\">{}</text>\n",
              left - 8, ym + 4, number_label(tick));
        }
      }
    }
  }
  o += "</g>\n";

  // x axis: ticks at 1, 2 or 5 times a power of ten.
  const double step = nice_step(x_hi - x_lo, 10);
  o += "<g class=\"x-axis\">\n";
  for (double x = std::ceil(x_lo / step - 1e-9) * step; x <= x_hi + 1e-9 * step; x += step) {
    const double X = px(x);
    o += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#eeeeee\"/>\n", X, top, X,
                     top + ph);
    o += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"black\"/>\n", X, top + ph,
                     X, top + ph + 6);
    o += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", X, top + ph + 21,
                     number_label(x));
  }
  o += "</g>\n";
  o += fmt::format(
      "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"none\" stroke=\"black\"/>\n", left,
      top, pw, ph);
  o += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", left + pw / 2, H - 18,
                   escape(options.x_label));
  o += fmt::format(
      "<text x=\"{0:.1f}\" y=\"{1:.1f}\" text-anchor=\"middle\" transform=\"rotate(-90 {0:.1f} {1:.1f})\">{2}</text>\n",
      20.0, top + ph / 2, escape(options.y_label));

  // Curves (dashed reference lines first, in grey, so the measured curves lie on top), with
  // dots when there are few points, then the legend in series order.
  auto colour_of = [&](std::size_t i) { return series[i].dashed ? "#555555" : kColours[i % kNumColours]; };
  for (int pass = 0; pass < 2; ++pass) {
    for (std::size_t i = 0; i < series.size(); ++i) {
      const PlotSeries& s = series[i];
      if (s.dashed != (pass == 0)) continue;
      std::string points;
      std::size_t n = 0;
      for (std::size_t j = 0; j < s.x.size(); ++j) {
        if (!plottable(s.y[j]) || !std::isfinite(s.x[j])) continue;
        points += fmt::format("{}{:.2f},{:.2f}", n == 0 ? "" : " ", px(s.x[j]), py(s.y[j]));
        ++n;
      }
      o += fmt::format(
          "<polyline class=\"series\" data-name=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} "
          "points=\"{}\"/>\n",
          escape(s.name), colour_of(i), s.dashed ? " stroke-dasharray=\"7 5\"" : "", points);
      if (n <= 40 && !s.dashed) {
        o += fmt::format("<g fill=\"{}\">", colour_of(i));
        for (std::size_t j = 0; j < s.x.size(); ++j) {
          if (!plottable(s.y[j]) || !std::isfinite(s.x[j])) continue;
          o += fmt::format("<circle cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"2.6\"/>", px(s.x[j]), py(s.y[j]));
        }
        o += "</g>\n";
      }
    }
  }
  for (std::size_t i = 0; i < series.size(); ++i) {
    const double lx = left + pw + 18, ly = top + 14 + 22.0 * static_cast<double>(i);
    o += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"2\"{}/>\n", lx, ly,
        lx + 26, ly, colour_of(i), series[i].dashed ? " stroke-dasharray=\"7 5\"" : "");
    o += fmt::format("<text class=\"legend\" x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", lx + 32, ly + 4.5,
                     escape(series[i].name));
  }
  o += "</svg>\n";
  return o;
}

void write_log_plot(std::span<const PlotSeries> series, const PlotOptions& options, const std::string& path) {
  write_text_file_atomic(path, plot_log_svg(series, options));
}

void write_text_file_atomic(const std::string& path, std::string_view content) {
  namespace fs = std::filesystem;
  TAPEGRAD_CHECK(!path.empty(), ValueError, "write_text_file_atomic: the path is empty");
  const fs::path target(path);
  fs::path tmp = target;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    TAPEGRAD_CHECK(out.good(), ValueError, "write_text_file_atomic: cannot open '{}' for writing: {}", tmp.string(),
                   std::strerror(errno));
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    if (!out.good()) {
      std::error_code ignored;
      fs::remove(tmp, ignored);
      detail::raise<ValueError>("write_text_file_atomic: writing '{}' failed", tmp.string());
    }
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    detail::raise<ValueError>("write_text_file_atomic: cannot rename '{}' to '{}': {}", tmp.string(), path,
                              ec.message());
  }
}

}  // namespace tapegrad::nn
