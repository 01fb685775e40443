// Gradient-flow diagnostics against closed forms: a linear recurrence with W = a * orthogonal
// (every one-step norm is a, every product a^(T-k)), the gamma * sigma_max(W) bound for tanh,
// a hand-computed dL/dh_k, CSV/JSON round trips and SVG structure.
#include <gtest/gtest.h>

#include <Eigen/QR>
#include <Eigen/SVD>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <tapegrad/nn/diagnostics.h>
#include <tapegrad/nn/rnn_cell.h>
#include <tapegrad/nn/svg_plot.h>
#include <tapegrad/ops.h>

#include "support/test_support.h"

using namespace tapegrad;
using nn::GradientFlowReport;
using M = Matrix<double>;

namespace {

using tapegrad::testing::expect_error;
using tapegrad::testing::random_matrix;

M random_orthogonal(Index n, std::mt19937_64& rng) {
  const Eigen::MatrixXd a = random_matrix(n, n, rng);
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(a);
  return qr.householderQ() * Eigen::MatrixXd::Identity(n, n);
}

double sigma_max(const M& m) {
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(m);
  return svd.singularValues()(0);
}

// h_t = h_{t-1} W (linear), loss = sum(h_T * v). Records h_0 as a variable.
struct LinearChain {
  Tape<double> tape;
  std::vector<Var<double>> hs;
  Var<double> loss;
  M v;
  LinearChain(const M& W, const M& h0, const M& v_) : v(v_) {
    hs.push_back(tape.variable(h0));
    const Var<double> w = tape.constant(W);
    for (std::size_t t = 0; t + 1 < 21; ++t) hs.push_back(matmul(hs.back(), w));
    loss = sum(hs.back() * tape.constant(v));
  }
};

bool same(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

}  // namespace

// ---- closed forms ---------------------------------------------------------------------------

TEST(GradientFlow, LinearOrthogonalRecurrenceHasNormAPerStep) {
  std::mt19937_64 rng(3);
  const Index H = 5;
  const int T = 20;
  for (double a : {0.8, 1.0, 1.25}) {
    const M W = a * random_orthogonal(H, rng);
    const M v = random_matrix(2, H, rng);
    LinearChain c(W, random_matrix(2, H, rng), v);
    for (nn::JacobianBlock block : {nn::JacobianBlock::FirstRow, nn::JacobianBlock::Full}) {
      nn::GradientFlowOptions opt;
      opt.block = block;
      const GradientFlowReport r = nn::gradient_flow<double>(c.tape, c.loss, c.hs, W, nn::kTanhGamma, opt);
      ASSERT_EQ(r.steps.size(), static_cast<std::size_t>(T + 1));
      // With B = 2 rows the full Jacobian is I_2 (x) (a Q)^T: same spectral norm, sqrt(2) x Frobenius.
      const double rows = block == nn::JacobianBlock::Full ? 2.0 : 1.0;
      EXPECT_NEAR(r.sigma_max_w, a, 1e-12);
      EXPECT_NEAR(r.bound, a, 1e-12);
      EXPECT_TRUE(std::isnan(r.steps[0].step_spectral));
      for (int k = 0; k <= T; ++k) {
        const auto& s = r.steps[static_cast<std::size_t>(k)];
        EXPECT_EQ(s.k, k);
        if (k >= 1) {
          EXPECT_NEAR(s.step_spectral, a, 1e-12) << "k " << k;
          EXPECT_NEAR(s.step_frobenius, a * std::sqrt(rows * H), 1e-12) << "k " << k;
        }
        EXPECT_NEAR(s.product_spectral, std::pow(a, T - k), 1e-12 * std::pow(a, T - k)) << "k " << k;
        // dL/dh_k = v (W^(T-k))^T and an orthogonal factor keeps norms: ||v|| a^(T-k).
        EXPECT_NEAR(s.grad_norm, v.norm() * std::pow(a, T - k), 1e-11 * std::pow(a, T - k)) << "k " << k;
      }
      EXPECT_NEAR(r.decay_rate, a, 1e-10);
      EXPECT_NEAR(r.decades, T * std::log10(a), 1e-9);
      const nn::FlowVerdict expected =
          a < 1 ? nn::FlowVerdict::Vanishing : (a > 1 ? nn::FlowVerdict::Exploding : nn::FlowVerdict::Stable);
      EXPECT_EQ(r.verdict, expected) << "a = " << a << ": " << r.summary();
    }
  }
}

TEST(GradientFlow, DiagonalLinearRecurrenceProductIsPowerOfLargestEntry) {
  // W = diag(0.9, 0.5, 0.3): the one-step spectral norm is 0.9, the Frobenius norm
  // sqrt(0.81 + 0.25 + 0.09), the product over T - k steps 0.9^(T-k).
  M W = M::Zero(3, 3);
  W.diagonal() << 0.9, 0.5, 0.3;
  LinearChain c(W, M::Ones(1, 3), M::Ones(1, 3));
  const GradientFlowReport r = nn::gradient_flow<double>(c.tape, c.loss, c.hs, W, nn::kTanhGamma);
  for (int k = 1; k <= 20; ++k) {
    EXPECT_NEAR(r.steps[static_cast<std::size_t>(k)].step_spectral, 0.9, 1e-14);
    EXPECT_NEAR(r.steps[static_cast<std::size_t>(k)].step_frobenius, std::sqrt(0.81 + 0.25 + 0.09), 1e-14);
  }
  for (int k = 0; k <= 20; ++k) {
    EXPECT_NEAR(r.steps[static_cast<std::size_t>(k)].product_spectral, std::pow(0.9, 20 - k), 1e-14);
    // dL/dh_k = (0.9^(T-k), 0.5^(T-k), 0.3^(T-k)).
    const double n = std::sqrt(std::pow(0.81, 20 - k) + std::pow(0.25, 20 - k) + std::pow(0.09, 20 - k));
    EXPECT_NEAR(r.steps[static_cast<std::size_t>(k)].grad_norm, n, 1e-14);
  }
}

namespace {

// A tanh RNN h_t = tanh(x_t U + h_{t-1} W + b) with W a Parameter; loss = sum(h_T * v).
struct TanhRnn {
  Tape<double> tape;
  Parameter<double> W;
  M U, b, v;
  std::vector<M> xs;
  std::vector<Var<double>> hs;
  Var<double> loss;
  TanhRnn(Index batch, Index H, int T, double w_scale, std::mt19937_64& rng)
      : W(random_matrix(H, H, rng, w_scale / std::sqrt(static_cast<double>(H))), "W"),
        U(random_matrix(2, H, rng)),
        b(random_matrix(1, H, rng, 0.1)),
        v(random_matrix(batch, H, rng)) {
    hs.push_back(tape.variable(random_matrix(batch, H, rng, 0.3)));
    const Var<double> w = tape.leaf(W);
    for (int t = 0; t < T; ++t) {
      xs.push_back(random_matrix(batch, 2, rng));
      hs.push_back(tanh(affine(tape.constant(xs.back()), tape.constant(U), tape.constant(b)) + matmul(hs.back(), w)));
    }
    loss = sum(hs.back() * tape.constant(v));
  }
};

}  // namespace

TEST(GradientFlow, TanhStepNormNeverExceedsGammaSigmaBound) {
  std::mt19937_64 rng(8);
  for (double scale : {0.5, 1.0, 2.5}) {
    TanhRnn m(3, 4, 15, scale, rng);
    nn::GradientFlowOptions opt;
    opt.block = nn::JacobianBlock::Full;
    const GradientFlowReport r = nn::gradient_flow<double>(m.tape, m.loss, m.hs, m.W.value, nn::kTanhGamma, opt);
    const double bound = sigma_max(m.W.value);
    EXPECT_NEAR(r.bound, bound, 1e-12);
    for (int k = 1; k <= 15; ++k) {
      const auto& s = r.steps[static_cast<std::size_t>(k)];
      EXPECT_LE(s.step_spectral, bound * (1 + 1e-12)) << "scale " << scale << " k " << k;
      // Product of k one-step norms bounds the product norm.
      EXPECT_LE(r.steps[static_cast<std::size_t>(k - 1)].product_spectral, std::pow(bound, 15 - (k - 1)) * (1 + 1e-10));
    }
    // Parameter::grad is untouched by the probes.
    EXPECT_EQ(m.W.grad.norm(), 0.0);
  }
}

TEST(GradientFlow, TanhStepJacobianMatchesClosedForm) {
  // For row b of the batch, d h_k / d h_{k-1} = diag(1 - h_k^2) W^T (entry (i, j) = W(j, i)(1 - h_k(i)^2)).
  std::mt19937_64 rng(4);
  TanhRnn m(2, 4, 6, 1.5, rng);
  const GradientFlowReport r = nn::gradient_flow<double>(m.tape, m.loss, m.hs, m.W.value, nn::kTanhGamma);
  for (int k = 1; k <= 6; ++k) {
    const M h = m.hs[static_cast<std::size_t>(k)].value().row(0);
    const M d = (1.0 - h.array().square()).matrix().transpose().asDiagonal() * m.W.value.transpose();
    EXPECT_NEAR(r.steps[static_cast<std::size_t>(k)].step_spectral, sigma_max(d), 1e-12) << "k " << k;
    EXPECT_NEAR(r.steps[static_cast<std::size_t>(k)].step_frobenius, d.norm(), 1e-12) << "k " << k;
  }
}

TEST(GradientFlow, GradNormMatchesHandBackprop) {
  std::mt19937_64 rng(21);
  TanhRnn m(2, 3, 5, 1.2, rng);
  const GradientFlowReport r = nn::gradient_flow<double>(m.tape, m.loss, m.hs, m.W.value, nn::kTanhGamma);
  // dL/dh_T = v; dL/dh_{k-1} = (dL/dh_k * (1 - h_k^2)) W^T.
  M g = m.v;
  for (int k = 5; k >= 0; --k) {
    EXPECT_NEAR(r.steps[static_cast<std::size_t>(k)].grad_norm, g.norm(), 1e-12) << "k " << k;
    if (k > 0) {
      const M& h = m.hs[static_cast<std::size_t>(k)].value();
      g = (g.array() * (1.0 - h.array().square())).matrix() * m.W.value.transpose();
    }
  }
}

TEST(GradientFlow, ConstantInitialStateGivesNaNNotZero) {
  Tape<double> tape;
  M W = 0.5 * M::Identity(2, 2);
  std::vector<Var<double>> hs{tape.constant(M::Ones(1, 2))};
  const Var<double> w = tape.variable(W);  // h_1.. require a gradient through W, h_0 does not
  for (int t = 0; t < 3; ++t) hs.push_back(tanh(matmul(hs.back(), w)));
  const Var<double> loss = sum(hs.back());
  const GradientFlowReport r = nn::gradient_flow<double>(tape, loss, hs, W, nn::kTanhGamma);
  EXPECT_TRUE(std::isnan(r.steps[0].grad_norm));
  EXPECT_TRUE(std::isnan(r.steps[1].step_spectral));  // dh_1/dh_0: h_0 is not on the gradient path
  EXPECT_TRUE(std::isnan(r.steps[0].product_spectral));
  EXPECT_FALSE(std::isnan(r.steps[1].grad_norm));
  EXPECT_EQ(r.steps[3].product_spectral, 1.0);
}

TEST(GradientFlow, ErrorsNameTheProblem) {
  Tape<double> tape;
  const M W = M::Identity(2, 2);
  std::vector<Var<double>> hs{tape.variable(M::Ones(1, 2))};
  hs.push_back(tanh(hs[0]));
  const Var<double> loss = sum(hs[1]);
  expect_error<ValueError>([&] { nn::gradient_flow<double>(tape, loss, std::span(hs).first(1), W, 1.0); }, {"hs", "1"});
  expect_error<ValueError>([&] { nn::gradient_flow<double>(tape, loss, hs, W, 0.0); }, {"gamma", "0"});
  expect_error<ShapeError>([&] { nn::gradient_flow<double>(tape, loss, hs, M::Identity(3, 3), 1.0); },
                           {"W", "[3 x 3]", "[1 x 2]"});
  expect_error<ShapeError>([&] { nn::gradient_flow<double>(tape, hs[1], hs, W, 1.0); }, {"loss", "[1 x 2]"});
}

// ---- summary ---------------------------------------------------------------------------------

TEST(GradientFlow, SummaryFitsGeometricDecay) {
  GradientFlowReport r;
  for (int k = 0; k <= 10; ++k) r.steps.push_back({k, 3.0 * std::pow(0.5, 10 - k), 0, 0, 0, 0});
  nn::summarize(r);
  EXPECT_NEAR(r.decay_rate, 0.5, 1e-12);
  EXPECT_NEAR(r.decades, 10 * std::log10(0.5), 1e-12);
  EXPECT_EQ(r.verdict, nn::FlowVerdict::Vanishing);
  EXPECT_NE(r.summary().find("vanishing"), std::string::npos);

  GradientFlowReport flat;
  for (int k = 0; k <= 10; ++k) flat.steps.push_back({k, 2.0 * std::pow(1.05, 10 - k), 0, 0, 0, 0});
  nn::summarize(flat);
  EXPECT_NEAR(flat.decay_rate, 1.05, 1e-12);
  EXPECT_EQ(flat.verdict, nn::FlowVerdict::Stable);  // 0.21 decades over 10 steps
  nn::summarize(flat, 0.1);
  EXPECT_EQ(flat.verdict, nn::FlowVerdict::Exploding);

  GradientFlowReport none;
  none.steps.push_back({0, 0.0, 0, 0, 0, 0});
  nn::summarize(none);
  EXPECT_EQ(none.verdict, nn::FlowVerdict::Undetermined);
}

// ---- export --------------------------------------------------------------------------------

namespace {

GradientFlowReport sample_report() {
  std::mt19937_64 rng(5);
  TanhRnn m(1, 3, 8, 0.9, rng);
  return nn::gradient_flow<double>(m.tape, m.loss, m.hs, m.W.value, nn::kTanhGamma);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  return out;
}

// The number after "\"key\": " starting at pos; null reads as NaN. Advances pos past it.
double json_value(const std::string& json, const std::string& key, std::size_t& pos) {
  const std::string needle = "\"" + key + "\": ";
  pos = json.find(needle, pos);
  EXPECT_NE(pos, std::string::npos) << key;
  if (pos == std::string::npos) return 0.0;
  pos += needle.size();
  if (json.compare(pos, 4, "null") == 0) return std::nan("");
  char* end = nullptr;
  const double v = std::strtod(json.c_str() + pos, &end);
  pos = static_cast<std::size_t>(end - json.c_str());
  return v;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST(GradientFlowExport, CsvParsesBackToTheSameNumbers) {
  const GradientFlowReport r = sample_report();
  const std::string csv = nn::to_csv(r);
  const std::vector<std::string> lines = split(csv, '\n');
  ASSERT_EQ(lines.size(), r.steps.size() + 1);
  EXPECT_EQ(lines[0], "k,grad_norm,step_spectral,step_frobenius,product_spectral,bound");
  for (std::size_t i = 0; i < r.steps.size(); ++i) {
    const std::vector<std::string> f = split(lines[i + 1], ',');
    ASSERT_EQ(f.size(), 6u);
    const auto& s = r.steps[i];
    EXPECT_EQ(std::stoi(f[0]), s.k);
    EXPECT_TRUE(same(std::strtod(f[1].c_str(), nullptr), s.grad_norm)) << f[1];
    EXPECT_TRUE(same(std::strtod(f[2].c_str(), nullptr), s.step_spectral)) << f[2];
    EXPECT_TRUE(same(std::strtod(f[3].c_str(), nullptr), s.step_frobenius)) << f[3];
    EXPECT_TRUE(same(std::strtod(f[4].c_str(), nullptr), s.product_spectral)) << f[4];
    EXPECT_TRUE(same(std::strtod(f[5].c_str(), nullptr), s.bound)) << f[5];
  }
  EXPECT_TRUE(std::isnan(std::strtod(split(lines[1], ',')[2].c_str(), nullptr)));  // no step Jacobian at k = 0
}

TEST(GradientFlowExport, JsonParsesBackToTheSameNumbers) {
  const GradientFlowReport r = sample_report();
  const std::string json = nn::to_json(r);
  EXPECT_EQ(json.front(), '{');
  EXPECT_NE(json.find("\"verdict\": \"" + std::string(nn::verdict_name(r.verdict)) + "\""), std::string::npos);
  std::size_t pos = 0;
  EXPECT_TRUE(same(json_value(json, "decay_rate", pos), r.decay_rate));
  EXPECT_TRUE(same(json_value(json, "decades", pos), r.decades));
  EXPECT_TRUE(same(json_value(json, "gamma", pos), r.gamma));
  EXPECT_TRUE(same(json_value(json, "sigma_max_w", pos), r.sigma_max_w));
  EXPECT_TRUE(same(json_value(json, "bound", pos), r.bound));
  for (const auto& s : r.steps) {
    EXPECT_EQ(json_value(json, "k", pos), s.k);
    EXPECT_TRUE(same(json_value(json, "grad_norm", pos), s.grad_norm));
    EXPECT_TRUE(same(json_value(json, "step_spectral", pos), s.step_spectral));
    EXPECT_TRUE(same(json_value(json, "step_frobenius", pos), s.step_frobenius));
    EXPECT_TRUE(same(json_value(json, "product_spectral", pos), s.product_spectral));
    EXPECT_TRUE(same(json_value(json, "bound", pos), s.bound));
  }
  EXPECT_EQ(json.find("nan"), std::string::npos);  // JSON has no NaN: null instead
}

TEST(GradientFlowExport, FilesAreWrittenWholeWithNoTempLeft) {
  const GradientFlowReport r = sample_report();
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "tapegrad_test_diagnostics";
  std::filesystem::create_directories(dir);
  const std::string csv = (dir / "flow.csv").string(), json = (dir / "flow.json").string();
  const std::string svg = (dir / "flow.svg").string();
  { std::ofstream(csv) << "stale content that must be replaced"; }
  nn::write_csv(r, csv);
  nn::write_json(r, json);
  nn::write_svg(r, svg);
  EXPECT_EQ(read_file(csv), nn::to_csv(r));
  EXPECT_EQ(read_file(json), nn::to_json(r));
  EXPECT_EQ(read_file(svg), nn::to_svg(r));
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
  }
  expect_error<ValueError>([&] { nn::write_csv(r, (dir / "missing_dir" / "x.csv").string()); }, {"missing_dir"});
  std::filesystem::remove_all(dir);
}

// ---- SVG ----------------------------------------------------------------------------------------

namespace {

// True when every tag is closed in order (<a>...</a>, <b/>); attribute values hold no '<' or '>'.
bool well_formed(const std::string& xml, std::string* why) {
  auto fail = [&](std::string message) {
    *why = std::move(message);
    return false;
  };
  std::vector<std::string> stack;
  for (std::size_t i = xml.find('<'); i != std::string::npos; i = xml.find('<', i + 1)) {
    const std::size_t close = xml.find('>', i);
    if (close == std::string::npos) return fail("unterminated tag");
    const std::string tag = xml.substr(i + 1, close - i - 1);
    if (tag.empty()) return fail("empty tag");
    if (tag[0] == '/') {
      if (stack.empty() || stack.back() != tag.substr(1)) return fail("mismatched </" + tag.substr(1) + ">");
      stack.pop_back();
    } else if (tag.back() != '/') {
      stack.push_back(tag.substr(0, tag.find_first_of(" \n")));
    }
  }
  if (!stack.empty()) return fail("unclosed <" + stack.back() + ">");
  return true;
}

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

}  // namespace

TEST(SvgPlot, ReportChartIsWellFormedWithOnePolylinePerSeries) {
  const GradientFlowReport r = sample_report();
  const std::string svg = nn::to_svg(r, "test & <chart>");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  std::string why;
  EXPECT_TRUE(well_formed(svg, &why)) << why;
  EXPECT_EQ(count(svg, "<polyline"), 5u);
  EXPECT_NE(svg.find("test &amp; &lt;chart&gt;"), std::string::npos);
  EXPECT_NE(svg.find("||dL/dh_k||"), std::string::npos);
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);  // the bound is a dashed line
}

TEST(SvgPlot, LogAxisHasOneTickPerDecade) {
  std::vector<nn::PlotSeries> series(2);
  series[0] = {"vanilla", {0, 1, 2, 3, 4}, {1e-3, 1e-2, 1e-1, 1, 10}, false};
  series[1] = {"lstm", {0, 1, 2, 3, 4}, {0.5, 0.6, 0.0, 0.8, 0.9}, false};  // 0 cannot be drawn: skipped
  nn::PlotOptions opt;
  opt.title = "two curves";
  const std::string svg = nn::plot_log_svg(series, opt);
  std::string why;
  EXPECT_TRUE(well_formed(svg, &why)) << why;
  EXPECT_EQ(count(svg, "<polyline"), 2u);
  EXPECT_EQ(count(svg, "class=\"decade\""), 5u);  // 1e-3, 1e-2, 0.1, 1, 10
  for (const char* label : {">0.1<", ">1<", ">10<", ">0.01<", "10<tspan dy=\"-7\" font-size=\"10\">-3</tspan>"}) {
    EXPECT_NE(svg.find(label), std::string::npos) << label;
  }
  EXPECT_NE(svg.find(">vanilla<"), std::string::npos);
  EXPECT_NE(svg.find(">lstm<"), std::string::npos);
  // The lstm polyline has 4 points (the zero is left out).
  const std::size_t p = svg.find("data-name=\"lstm\"");
  ASSERT_NE(p, std::string::npos);
  const std::size_t b = svg.find("points=\"", p) + 8;
  EXPECT_EQ(count(svg.substr(b, svg.find('"', b) - b), ","), 4u);

  expect_error<ValueError>([] { nn::plot_log_svg({}, {}); }, {"no series"});
  std::vector<nn::PlotSeries> bad{{"bad", {0, 1}, {1}, false}};
  expect_error<ValueError>([&] { nn::plot_log_svg(bad, {}); }, {"bad", "2", "1"});
  std::vector<nn::PlotSeries> zeros{{"zeros", {0, 1}, {0, -1}, false}};
  expect_error<ValueError>([&] { nn::plot_log_svg(zeros, {}); }, {"positive"});
}

TEST(SvgPlot, NarrowRangeLabelsTwoThreeAndFive) {
  // A loss curve between 1.1 and 4: one decade, so 2, 3 and 5 are labelled; wide ranges are not.
  std::vector<nn::PlotSeries> narrow{{"loss", {0, 1, 2}, {4.0, 1.6, 1.1}, false}};
  const std::string svg = nn::plot_log_svg(narrow, {});
  EXPECT_EQ(count(svg, "class=\"decade\""), 2u);  // 1 and 10
  EXPECT_EQ(count(svg, "class=\"minor-label\""), 3u);
  for (const char* label : {">2<", ">3<", ">5<"}) EXPECT_NE(svg.find(label), std::string::npos) << label;
  std::vector<nn::PlotSeries> wide{{"norm", {0, 1}, {1e-6, 1.0}, false}};
  EXPECT_EQ(count(nn::plot_log_svg(wide, {}), "class=\"minor-label\""), 0u);
}

// ---- fit range and argument deduction ---------------------------------------------------------

namespace {

// A linear RNN (RnnCell, Activation::Identity) whose recurrent matrix is a * I for steps
// 1 .. m and c * I for steps m+1 .. T; loss = sum(h_T * v). Then, exactly,
//   ||dL/dh_k|| = ||v|| c^(T-k)               for k >= m,
//   ||dL/dh_k|| = ||v|| c^(T-m) a^(m-k)       for k <= m.
struct TwoRateRnn {
  static constexpr Index kH = 3;
  static constexpr int kM = 6, kT = 14;
  Tape<double> tape;
  std::vector<Var<double>> hs;
  Var<double> loss;
  M v;
  TwoRateRnn(double a, double c, std::mt19937_64& rng) {
    nn::RnnCell<double> first({.input_size = 2, .hidden_size = kH, .activation = nn::Activation::Identity}, rng);
    nn::RnnCell<double> second = first;
    first.W_hh.value = a * M::Identity(kH, kH);
    second.W_hh.value = c * M::Identity(kH, kH);
    hs.push_back(tape.variable(random_matrix(1, kH, rng)));
    nn::State<double> s{{hs[0]}};
    for (int t = 1; t <= kT; ++t) {
      s = (t <= kM ? first : second).step(tape.constant(random_matrix(1, 2, rng)), s);
      hs.push_back(s.h());
    }
    v = random_matrix(1, kH, rng);
    loss = sum(hs.back() * tape.constant(v));
  }
};

}  // namespace

TEST(GradientFlow, LinearRnnWithAIdentityDecaysByAPerStep) {
  std::mt19937_64 rng(11);
  const double a = 0.7;
  TwoRateRnn m(a, a, rng);
  // No template argument: S comes from the tape, and hs is a std::vector.
  const GradientFlowReport r = nn::gradient_flow(m.tape, m.loss, m.hs, M(a * M::Identity(3, 3)), 1.0);
  for (int k = 0; k <= TwoRateRnn::kT; ++k) {
    EXPECT_NEAR(r.steps[static_cast<std::size_t>(k)].grad_norm, m.v.norm() * std::pow(a, TwoRateRnn::kT - k), 1e-13)
        << "k " << k;
  }
  EXPECT_NEAR(r.decay_rate, a, 1e-12);
  EXPECT_EQ(r.fit_begin, 0);
  EXPECT_EQ(r.fit_end, TwoRateRnn::kT + 1);
}

TEST(GradientFlow, FitRangeFitsOnlyTheChosenSteps) {
  std::mt19937_64 rng(12);
  const double a = 0.5, c = 0.9;
  TwoRateRnn m(a, c, rng);
  const M W = a * M::Identity(3, 3);
  nn::GradientFlowOptions early;
  early.product_norms = false;
  early.fit = {0, TwoRateRnn::kM + 1};  // k = 0 .. m: the a steps
  const GradientFlowReport r_early = nn::gradient_flow(m.tape, m.loss, m.hs, W, 1.0, early);
  EXPECT_NEAR(r_early.decay_rate, a, 1e-12);
  EXPECT_NEAR(r_early.decades, TwoRateRnn::kM * std::log10(a), 1e-11);
  EXPECT_EQ(r_early.fit_begin, 0);
  EXPECT_EQ(r_early.fit_end, TwoRateRnn::kM + 1);
  EXPECT_NE(r_early.summary().find("over 6 steps"), std::string::npos) << r_early.summary();

  nn::GradientFlowOptions late = early;
  late.fit = {TwoRateRnn::kM, -1};  // k = m .. T: the c steps
  const GradientFlowReport r_late = nn::gradient_flow(m.tape, m.loss, m.hs, W, 1.0, late);
  EXPECT_NEAR(r_late.decay_rate, c, 1e-12);
  EXPECT_EQ(r_late.fit_end, TwoRateRnn::kT + 1);
  // The same table either way; only the fit differs. Over all steps it is neither rate.
  EXPECT_EQ(r_late.steps[0].grad_norm, r_early.steps[0].grad_norm);
  const GradientFlowReport r_all = nn::gradient_flow(m.tape, m.loss, m.hs, W, 1.0);
  EXPECT_GT(r_all.decay_rate, a + 0.05);
  EXPECT_LT(r_all.decay_rate, c - 0.05);

  // summarize refits a finished report the same way.
  GradientFlowReport refit = r_all;
  nn::summarize(refit, 1.0, {TwoRateRnn::kM, -1});
  EXPECT_NEAR(refit.decay_rate, c, 1e-12);
  EXPECT_NE(to_json(refit).find("\"fit_begin\": 6"), std::string::npos);
}

TEST(GradientFlow, BadFitRangeThrowsValueError) {
  std::mt19937_64 rng(13);
  TwoRateRnn m(0.5, 0.5, rng);
  const M W = 0.5 * M::Identity(3, 3);
  for (const nn::FitRange bad : {nn::FitRange{-1, 5}, nn::FitRange{4, 4}, nn::FitRange{3, 16}, nn::FitRange{20, -1}}) {
    nn::GradientFlowOptions o;
    o.fit = bad;
    expect_error<ValueError>([&] { (void)nn::gradient_flow(m.tape, m.loss, m.hs, W, 1.0, o); },
                             {"gradient_flow", "fit range", "0 .. 14"});
  }
  GradientFlowReport r;
  for (int k = 0; k <= 4; ++k) r.steps.push_back({k, 1.0 + k, 0, 0, 0, 0});
  expect_error<ValueError>([&] { nn::summarize(r, 1.0, {2, 9}); }, {"summarize", "[2, 9)", "0 .. 4"});
}
