// Small hand-written SVG charts with a log-scale y axis (decade ticks), for gradient norms
// that span many orders of magnitude. No dependencies: the SVG is built as a string.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tapegrad::nn {

/// One named curve: y against x. Points with y <= 0 or a non-finite y are left out (a log
/// axis cannot show them).
struct PlotSeries {
  std::string name;
  std::vector<double> x;
  std::vector<double> y;
  bool dashed = false;  ///< Draw as a dashed reference line (e.g. a bound).
};

/// Titles and size of a chart.
struct PlotOptions {
  std::string title;
  std::string x_label = "time step k";
  std::string y_label;
  int width = 860;
  int height = 500;
};

/// An SVG document: x linear, y log10 with a tick and grid line per decade, one `<polyline>`
/// per series (each in its own colour), a legend, the title and axis labels. Throws
/// ValueError if there is no series, a series' x and y differ in length, or no point is
/// positive and finite.
std::string plot_log_svg(std::span<const PlotSeries> series, const PlotOptions& options);

/// Writes plot_log_svg(...) to path atomically.
void write_log_plot(std::span<const PlotSeries> series, const PlotOptions& options, const std::string& path);

/// Writes content to path through a temporary file in the same directory and a rename, so a
/// reader never sees a half-written file. Throws ValueError naming the path on failure.
void write_text_file_atomic(const std::string& path, std::string_view content);

}  // namespace tapegrad::nn
