// The op table. References are written from the math in plain Eigen, never with tapegrad ops.
#include "op_cases.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

namespace tapegrad::optest {
namespace {

using M = Matrix<double>;
using In = std::span<const Var<double>>;
using Refs = const std::vector<M>&;

// Elementwise reference: applies f to every element of the single input.
template <class F>
ReferenceFn map1(F f) {
  return [f](Refs x) { return M(x[0].unaryExpr(f)); };
}

// A broadcast by hand: the (r, c) element of m viewed in shape rows x cols.
double at(const M& m, Index r, Index c) { return m(m.rows() == 1 ? 0 : r, m.cols() == 1 ? 0 : c); }

// Elementwise binary reference with broadcasting written out element by element.
template <class F>
ReferenceFn map2(F f) {
  return [f](Refs x) {
    const Index rows = std::max(x[0].rows(), x[1].rows());
    const Index cols = std::max(x[0].cols(), x[1].cols());
    M y(rows, cols);
    for (Index r = 0; r < rows; ++r)
      for (Index c = 0; c < cols; ++c) y(r, c) = f(at(x[0], r, c), at(x[1], r, c));
    return y;
  };
}

M scalar(double v) { return M::Constant(1, 1, v); }

double logsumexp_row(const M& x, Index r) {
  double s = 0;
  for (Index c = 0; c < x.cols(); ++c) s += std::exp(x(r, c));
  return std::log(s);
}

double sigmoid_ref(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// Cross-entropy written as the definition: -log(exp(x_t) / sum exp(x)).
ReferenceFn ce_reference(std::vector<std::int32_t> targets, Reduction red, std::int32_t ignore) {
  return [=](Refs x) {
    M per_row = M::Zero(x[0].rows(), 1);
    int n = 0;
    for (Index r = 0; r < x[0].rows(); ++r) {
      const std::int32_t t = targets[static_cast<std::size_t>(r)];
      if (t == ignore) continue;
      double z = 0;
      for (Index c = 0; c < x[0].cols(); ++c) z += std::exp(x[0](r, c));
      per_row(r, 0) = -std::log(std::exp(x[0](r, t)) / z);
      ++n;
    }
    if (red == Reduction::None) return per_row;
    const double loss = per_row.sum();
    return scalar(red == Reduction::Mean ? loss / n : loss);
  };
}

// A fixed 0/1 pattern of the given shape (masks and where conditions).
M pattern(Index rows, Index cols) {
  M m(rows, cols);
  for (Index k = 0; k < m.size(); ++k) m.data()[k] = (k * 7 + 3) % 3 == 0 ? 0.0 : 1.0;
  return m;
}

// The tanh RNN recurrence written out element by element: h_t = tanh(xp_t + h_{t-1} w).
M rnn_sequence_ref(Refs x) {
  const M& xp = x[0];
  const Index b = x[1].rows(), h = x[1].cols();
  M prev = x[1], y(xp.rows(), h);
  for (Index t = 0; t * b < xp.rows(); ++t) {
    for (Index r = 0; r < b; ++r)
      for (Index j = 0; j < h; ++j) {
        double a = xp(t * b + r, j);
        for (Index k = 0; k < h; ++k) a += prev(r, k) * x[2](k, j);
        y(t * b + r, j) = std::tanh(a);
      }
    prev = y.middleRows(t * b, b);
  }
  return y;
}

// The LSTM recurrence (gates i, f, g, o) element by element; output [h_t | c_t] per row.
M lstm_sequence_ref(Refs x) {
  const M& xp = x[0];
  const Index b = x[1].rows(), h = x[1].cols();
  M hp = x[1], cp = x[2], y(xp.rows(), 2 * h);
  for (Index t = 0; t * b < xp.rows(); ++t) {
    for (Index r = 0; r < b; ++r)
      for (Index j = 0; j < h; ++j) {
        double a[4];
        for (Index q = 0; q < 4; ++q) {
          a[q] = xp(t * b + r, q * h + j);
          for (Index k = 0; k < h; ++k) a[q] += hp(r, k) * x[3](k, q * h + j);
        }
        const double c = sigmoid_ref(a[1]) * cp(r, j) + sigmoid_ref(a[0]) * std::tanh(a[2]);
        y(t * b + r, j) = sigmoid_ref(a[3]) * std::tanh(c);
        y(t * b + r, h + j) = c;
      }
    hp = y.block(t * b, 0, b, h);
    cp = y.block(t * b, h, b, h);
  }
  return y;
}

// PyTorch's GRU (gates r, z, n) element by element: n uses r * (h w_n + b_n).
M gru_sequence_ref(Refs x) {
  const M& xp = x[0];
  const Index b = x[1].rows(), h = x[1].cols();
  M hp = x[1], y(xp.rows(), h);
  for (Index t = 0; t * b < xp.rows(); ++t) {
    for (Index r = 0; r < b; ++r)
      for (Index j = 0; j < h; ++j) {
        double gh[3];
        for (Index q = 0; q < 3; ++q) {
          gh[q] = x[3](0, q * h + j);
          for (Index k = 0; k < h; ++k) gh[q] += hp(r, k) * x[2](k, q * h + j);
        }
        const double rg = sigmoid_ref(xp(t * b + r, j) + gh[0]);
        const double z = sigmoid_ref(xp(t * b + r, h + j) + gh[1]);
        const double n = std::tanh(xp(t * b + r, 2 * h + j) + rg * gh[2]);
        y(t * b + r, j) = (1 - z) * n + z * hp(r, j);
      }
    hp = y.middleRows(t * b, b);
  }
  return y;
}

std::vector<OpCase> build() {
  std::vector<OpCase> t;
  const Domain R = Domain::Real, P = Domain::Positive, K = Domain::AwayFromKinks, NZ = Domain::NonZero;
  auto row = [&](std::string name, std::vector<Shape> args, CaseFn fn, Domain d, ReferenceFn ref = {},
                 double atol = 1e-7, double rtol = 1e-5) {
    t.push_back({std::move(name), std::move(args), std::move(fn), d, atol, rtol, std::move(ref)});
  };

  // ---- binary with broadcasting --------------------------------------------------------------
  struct Bin {
    const char* name;
    Var<double> (*op)(const Var<double>&, const Var<double>&);
    double (*f)(double, double);
    Domain d;
  };
  const Bin bins[] = {
      {"add", &add<double>, [](double a, double b) { return a + b; }, R},
      {"sub", &sub<double>, [](double a, double b) { return a - b; }, R},
      {"mul", &mul<double>, [](double a, double b) { return a * b; }, R},
      {"div", &div<double>, [](double a, double b) { return a / b; }, P},
      {"maximum", &maximum<double>, [](double a, double b) { return a >= b ? a : b; }, K},
      {"minimum", &minimum<double>, [](double a, double b) { return a <= b ? a : b; }, K},
  };
  const std::pair<const char*, std::vector<Shape>> variants[] = {
      {"same", {{3, 4}, {3, 4}}},   {"row_bias", {{3, 4}, {1, 4}}},  {"col", {{3, 4}, {3, 1}}},
      {"scalar", {{3, 4}, {1, 1}}}, {"bias_left", {{1, 4}, {3, 4}}}, {"outer", {{3, 1}, {1, 4}}},
  };
  for (const Bin& b : bins) {
    for (const auto& [variant, shapes] : variants) {
      auto op = b.op;
      row(
          std::string(b.name) + "/" + variant, shapes, [op](In x) { return op(x[0], x[1]); }, b.d, map2(b.f));
    }
  }

  // ---- n-ary ------------------------------------------------------------------------------------
  auto sum_of_inputs = [](Refs x) {
    M y = M::Zero(x[0].rows(), x[0].cols());
    for (const M& term : x)
      for (Index k = 0; k < y.size(); ++k) y.data()[k] += term.data()[k];
    return y;
  };
  row(
      "add_n/one", {{2, 3}}, [](In x) { return add_n(x); }, R, sum_of_inputs);
  row(
      "add_n/three", {{2, 3}, {2, 3}, {2, 3}}, [](In x) { return add_n(x); }, R, sum_of_inputs);
  row(
      "add_n/losses", {{1, 1}, {1, 1}, {1, 1}, {1, 1}}, [](In x) { return add_n(x); }, R, sum_of_inputs);

  // ---- scalar arithmetic ---------------------------------------------------------------------
  row(
      "add_scalar", {{2, 3}}, [](In x) { return add_scalar(x[0], 0.7); }, R, map1([](double v) { return v + 0.7; }));
  row(
      "mul_scalar", {{2, 3}}, [](In x) { return mul_scalar(x[0], -1.5); }, R, map1([](double v) { return -1.5 * v; }));
  row(
      "neg", {{2, 3}}, [](In x) { return neg(x[0]); }, R, map1([](double v) { return -v; }));
  row(
      "pow/cube", {{2, 3}}, [](In x) { return pow(x[0], 3.0); }, R, map1([](double v) { return v * v * v; }));
  row(
      "pow/fractional", {{2, 3}}, [](In x) { return pow(x[0], 1.5); }, P,
      map1([](double v) { return v * std::sqrt(v); }));
  row(
      "pow/negative", {{2, 3}}, [](In x) { return pow(x[0], -2.0); }, P, map1([](double v) { return 1 / (v * v); }));

  // ---- elementwise ---------------------------------------------------------------------------
  row(
      "tanh", {{3, 4}}, [](In x) { return tanh(x[0]); }, R,
      map1([](double v) { return (std::exp(2 * v) - 1) / (std::exp(2 * v) + 1); }));
  row(
      "sigmoid", {{3, 4}}, [](In x) { return sigmoid(x[0]); }, R, map1(sigmoid_ref));
  row(
      "relu", {{3, 4}}, [](In x) { return relu(x[0]); }, K, map1([](double v) { return v > 0 ? v : 0.0; }));
  row(
      "leaky_relu", {{3, 4}}, [](In x) { return leaky_relu(x[0], 0.1); }, K,
      map1([](double v) { return v > 0 ? v : 0.1 * v; }));
  row(
      "exp", {{3, 4}}, [](In x) { return exp(x[0]); }, R, map1([](double v) { return std::exp(v); }));
  row(
      "log", {{3, 4}}, [](In x) { return log(x[0]); }, P, map1([](double v) { return std::log(v); }));
  row(
      "sqrt", {{3, 4}}, [](In x) { return sqrt(x[0]); }, P, map1([](double v) { return std::sqrt(v); }));
  row(
      "square", {{3, 4}}, [](In x) { return square(x[0]); }, R, map1([](double v) { return v * v; }));
  row(
      "abs", {{3, 4}}, [](In x) { return abs(x[0]); }, K, map1([](double v) { return v < 0 ? -v : v; }));
  row(
      "reciprocal", {{3, 4}}, [](In x) { return reciprocal(x[0]); }, NZ, map1([](double v) { return 1 / v; }));
  row(
      "softplus", {{3, 4}}, [](In x) { return softplus(x[0]); }, R,
      map1([](double v) { return std::log(1 + std::exp(v)); }));
  row(
      "log_sigmoid", {{3, 4}}, [](In x) { return log_sigmoid(x[0]); }, R,
      map1([](double v) { return std::log(sigmoid_ref(v)); }));
  row(
      "sin", {{3, 4}}, [](In x) { return sin(x[0]); }, R, map1([](double v) { return std::sin(v); }));
  row(
      "cos", {{3, 4}}, [](In x) { return cos(x[0]); }, R, map1([](double v) { return std::cos(v); }));
  row(
      "hardtanh", {{3, 4}}, [](In x) { return hardtanh(x[0]); }, K,
      map1([](double v) { return v < -1 ? -1.0 : (v > 1 ? 1.0 : v); }));
  row(
      "clamp", {{3, 4}}, [](In x) { return clamp(x[0], -0.5, 0.75); }, K,
      map1([](double v) { return v < -0.5 ? -0.5 : (v > 0.75 ? 0.75 : v); }));

  // ---- linear algebra ------------------------------------------------------------------------
  auto matmul_ref = [](Refs x) {
    M y = M::Zero(x[0].rows(), x[1].cols());
    for (Index i = 0; i < y.rows(); ++i)
      for (Index j = 0; j < y.cols(); ++j)
        for (Index k = 0; k < x[0].cols(); ++k) y(i, j) += x[0](i, k) * x[1](k, j);
    return y;
  };
  row(
      "matmul/rect", {{3, 4}, {4, 2}}, [](In x) { return matmul(x[0], x[1]); }, R, matmul_ref);
  row(
      "matmul/square", {{3, 3}, {3, 3}}, [](In x) { return matmul(x[0], x[1]); }, R, matmul_ref);
  row(
      "matmul/vector", {{1, 5}, {5, 1}}, [](In x) { return matmul(x[0], x[1]); }, R, matmul_ref);
  row(
      "matmul/outer", {{4, 1}, {1, 3}}, [](In x) { return matmul(x[0], x[1]); }, R, matmul_ref);
  row(
      "transpose", {{2, 5}}, [](In x) { return transpose(x[0]); }, R,
      [](Refs x) {
        M y(x[0].cols(), x[0].rows());
        for (Index i = 0; i < y.rows(); ++i)
          for (Index j = 0; j < y.cols(); ++j) y(i, j) = x[0](j, i);
        return y;
      });
  row(
      "affine", {{3, 4}, {4, 2}, {1, 2}}, [](In x) { return affine(x[0], x[1], x[2]); }, R,
      [matmul_ref](Refs x) {
        M y = matmul_ref(x);
        for (Index i = 0; i < y.rows(); ++i) y.row(i) += x[2].row(0);
        return y;
      });

  // ---- reductions ----------------------------------------------------------------------------
  auto total = [](Refs x) {
    double s = 0;
    for (Index k = 0; k < x[0].size(); ++k) s += x[0].data()[k];
    return s;
  };
  auto col_sums = [](const M& x) {
    M y = M::Zero(1, x.cols());
    for (Index i = 0; i < x.rows(); ++i) y += x.row(i);
    return y;
  };
  auto row_sums = [](const M& x) {
    M y = M::Zero(x.rows(), 1);
    for (Index j = 0; j < x.cols(); ++j) y += x.col(j);
    return y;
  };
  row(
      "sum/all", {{3, 4}}, [](In x) { return sum(x[0]); }, R, [total](Refs x) { return scalar(total(x)); });
  row(
      "sum/rows", {{3, 4}}, [](In x) { return sum(x[0], Axis::Rows); }, R,
      [col_sums](Refs x) { return col_sums(x[0]); });
  row(
      "sum/cols", {{3, 4}}, [](In x) { return sum(x[0], Axis::Cols); }, R,
      [row_sums](Refs x) { return row_sums(x[0]); });
  row(
      "mean/all", {{3, 4}}, [](In x) { return mean(x[0]); }, R, [total](Refs x) { return scalar(total(x) / 12); });
  row(
      "mean/rows", {{3, 4}}, [](In x) { return mean(x[0], Axis::Rows); }, R,
      [col_sums](Refs x) { return M(col_sums(x[0]) / 3); });
  row(
      "mean/cols", {{3, 4}}, [](In x) { return mean(x[0], Axis::Cols); }, R,
      [row_sums](Refs x) { return M(row_sums(x[0]) / 4); });
  row(
      "logsumexp", {{3, 5}}, [](In x) { return logsumexp(x[0]); }, R,
      [](Refs x) {
        M y(x[0].rows(), 1);
        for (Index r = 0; r < y.rows(); ++r) y(r, 0) = logsumexp_row(x[0], r);
        return y;
      });
  row(
      "softmax", {{3, 5}}, [](In x) { return softmax(x[0]); }, R,
      [](Refs x) {
        M y = x[0];
        for (Index r = 0; r < y.rows(); ++r)
          for (Index c = 0; c < y.cols(); ++c) y(r, c) = std::exp(x[0](r, c) - logsumexp_row(x[0], r));
        return y;
      });
  row(
      "log_softmax", {{3, 5}}, [](In x) { return log_softmax(x[0]); }, R,
      [](Refs x) {
        M y = x[0];
        for (Index r = 0; r < y.rows(); ++r)
          for (Index c = 0; c < y.cols(); ++c) y(r, c) = x[0](r, c) - logsumexp_row(x[0], r);
        return y;
      });
  const std::vector<std::int32_t> targets = {2, 0, 4, 1};
  const std::vector<std::int32_t> with_ignored = {2, -100, 4, -100};
  row(
      "softmax_cross_entropy/mean", {{4, 5}},
      [targets](In x) { return softmax_cross_entropy(x[0], targets, Reduction::Mean); }, R,
      ce_reference(targets, Reduction::Mean, -100));
  row(
      "softmax_cross_entropy/sum", {{4, 5}},
      [targets](In x) { return softmax_cross_entropy(x[0], targets, Reduction::Sum); }, R,
      ce_reference(targets, Reduction::Sum, -100));
  row(
      "softmax_cross_entropy/ignore_mean", {{4, 5}},
      [with_ignored](In x) { return softmax_cross_entropy(x[0], with_ignored, Reduction::Mean); }, R,
      ce_reference(with_ignored, Reduction::Mean, -100));
  row(
      "softmax_cross_entropy/none", {{4, 5}},
      [targets](In x) { return softmax_cross_entropy(x[0], targets, Reduction::None); }, R,
      ce_reference(targets, Reduction::None, -100));
  row(
      "softmax_cross_entropy/ignore_none", {{4, 5}},
      [with_ignored](In x) { return softmax_cross_entropy(x[0], with_ignored, Reduction::None); }, R,
      ce_reference(with_ignored, Reduction::None, -100));
  const std::vector<std::int32_t> custom_ignore = {3, 3, 0, 1};
  row(
      "softmax_cross_entropy/ignore_custom_sum", {{4, 5}},
      [custom_ignore](In x) { return softmax_cross_entropy(x[0], custom_ignore, Reduction::Sum, 3); }, R,
      ce_reference(custom_ignore, Reduction::Sum, 3));
  row(
      "mse_loss", {{3, 4}, {3, 4}}, [](In x) { return mse_loss(x[0], x[1]); }, R,
      [](Refs x) {
        double s = 0;
        for (Index k = 0; k < x[0].size(); ++k) s += std::pow(x[0].data()[k] - x[1].data()[k], 2);
        return scalar(s / static_cast<double>(x[0].size()));
      });
  const std::vector<std::int32_t> picks = {1, 0, 3};
  row(
      "pick", {{3, 4}}, [picks](In x) { return pick(x[0], picks); }, R,
      [picks](Refs x) {
        M y(3, 1);
        for (Index r = 0; r < 3; ++r) y(r, 0) = x[0](r, picks[static_cast<std::size_t>(r)]);
        return y;
      });

  // ---- shape and indexing --------------------------------------------------------------------
  row(
      "concat_cols/three", {{2, 3}, {2, 1}, {2, 2}}, [](In x) { return concat_cols(x); }, R,
      [](Refs x) {
        M y(2, 6);
        y << x[0], x[1], x[2];
        return y;
      });
  row(
      "concat_cols/one", {{2, 3}}, [](In x) { return concat_cols(x); }, R, [](Refs x) { return x[0]; });
  row(
      "concat_rows/three", {{1, 3}, {2, 3}, {3, 3}}, [](In x) { return concat_rows(x); }, R,
      [](Refs x) {
        M y(6, 3);
        y << x[0], x[1], x[2];
        return y;
      });
  row(
      "slice_cols", {{3, 5}}, [](In x) { return slice_cols(x[0], 1, 3); }, R,
      [](Refs x) { return M(x[0].block(0, 1, 3, 3)); });
  row(
      "slice_rows", {{5, 3}}, [](In x) { return slice_rows(x[0], 2, 2); }, R,
      [](Refs x) { return M(x[0].block(2, 0, 2, 3)); });
  const std::vector<std::int32_t> gathers = {2, 0, 2, 3, 2};
  row(
      "gather_rows/repeated", {{4, 3}}, [gathers](In x) { return gather_rows(x[0], gathers); }, R,
      [gathers](Refs x) {
        M y(5, 3);
        for (Index i = 0; i < 5; ++i) y.row(i) = x[0].row(gathers[static_cast<std::size_t>(i)]);
        return y;
      });
  row(
      "reshape", {{2, 6}}, [](In x) { return reshape(x[0], 3, 4); }, R,
      [](Refs x) {
        M y(3, 4);
        for (Index k = 0; k < 12; ++k) y(k / 4, k % 4) = x[0](k / 6, k % 6);
        return y;
      });
  const M mask = pattern(3, 4);
  row(
      "mask_mul/same", {{3, 4}}, [mask](In x) { return mask_mul(x[0], mask); }, R,
      [mask](Refs x) { return M(x[0].cwiseProduct(mask)); });
  const M mask_row = pattern(1, 4);
  row(
      "mask_mul/row_mask", {{3, 4}}, [mask_row](In x) { return mask_mul(x[0], mask_row); }, R,
      [mask_row](Refs x) {
        M y = x[0];
        for (Index r = 0; r < 3; ++r) y.row(r) = y.row(r).cwiseProduct(mask_row);
        return y;
      });
  const M cond = pattern(3, 4);
  row(
      "where/same", {{3, 4}, {3, 4}}, [cond](In x) { return where(cond, x[0], x[1]); }, R,
      [cond](Refs x) { return M((cond.array() != 0).select(x[0], x[1])); });
  row(
      "where/row_b", {{3, 4}, {1, 4}}, [cond](In x) { return where(cond, x[0], x[1]); }, R,
      [cond](Refs x) {
        M y(3, 4);
        for (Index r = 0; r < 3; ++r)
          for (Index c = 0; c < 4; ++c) y(r, c) = cond(r, c) != 0 ? x[0](r, c) : x[1](0, c);
        return y;
      });
  // ---- fused recurrences ---------------------------------------------------------------------
  // T = xp.rows / B steps; B = 1 and T = 1 edge cases; the square row is also run aliased.
  auto rnn = [](In x) { return rnn_sequence(x[0], x[1], x[2]); };
  row("rnn_sequence/t1", {{2, 3}, {2, 3}, {3, 3}}, rnn, R, rnn_sequence_ref);
  row("rnn_sequence/t3_b2", {{6, 3}, {2, 3}, {3, 3}}, rnn, R, rnn_sequence_ref);
  row("rnn_sequence/t4_b1", {{4, 2}, {1, 2}, {2, 2}}, rnn, R, rnn_sequence_ref);
  row("rnn_sequence/square", {{3, 3}, {3, 3}, {3, 3}}, rnn, R, rnn_sequence_ref);
  // The LSTMs' two outputs are checked as [h | c].
  auto lstm = [](In x) {
    const LstmStates<double> s = lstm_sequence(x[0], x[1], x[2], x[3]);
    return concat_cols({s.h, s.c});
  };
  row("lstm_sequence/t1", {{2, 12}, {2, 3}, {2, 3}, {3, 12}}, lstm, R, lstm_sequence_ref);
  row("lstm_sequence/t3_b2", {{6, 12}, {2, 3}, {2, 3}, {3, 12}}, lstm, R, lstm_sequence_ref);
  row("lstm_sequence/t5_b1", {{5, 8}, {1, 2}, {1, 2}, {2, 8}}, lstm, R, lstm_sequence_ref);
  // Token inputs: the references run on the gathered rows.
  const std::vector<std::int32_t> lstm_ids = {2, 0, 2, 1, 3, 3};
  // The rows lstm_ids picks from a table: what the references run on.
  auto picked = [lstm_ids](const M& table) {
    M xp(static_cast<Index>(lstm_ids.size()), table.cols());
    for (std::size_t i = 0; i < lstm_ids.size(); ++i) xp.row(static_cast<Index>(i)) = table.row(lstm_ids[i]);
    return xp;
  };
  auto lstm_gather = [lstm_ids](In x) {
    const LstmStates<double> s = lstm_sequence_gather(x[0], lstm_ids, x[1], x[2], x[3]);
    return concat_cols({s.h, s.c});
  };
  auto lstm_gather_ref = [picked](Refs x) { return lstm_sequence_ref({picked(x[0]), x[1], x[2], x[3]}); };
  row("lstm_sequence_gather/t3_b2", {{4, 12}, {2, 3}, {2, 3}, {3, 12}}, lstm_gather, R, lstm_gather_ref);
  row("lstm_sequence_gather/t6_b1", {{4, 8}, {1, 2}, {1, 2}, {2, 8}}, lstm_gather, R, lstm_gather_ref);
  auto rnn_gather = [lstm_ids](In x) { return rnn_sequence_gather(x[0], lstm_ids, x[1], x[2]); };
  auto rnn_gather_ref = [picked](Refs x) { return rnn_sequence_ref({picked(x[0]), x[1], x[2]}); };
  row("rnn_sequence_gather/t3_b2", {{4, 3}, {2, 3}, {3, 3}}, rnn_gather, R, rnn_gather_ref);
  row("rnn_sequence_gather/t6_b1", {{4, 2}, {1, 2}, {2, 2}}, rnn_gather, R, rnn_gather_ref);
  auto gru = [](In x) { return gru_sequence(x[0], x[1], x[2], x[3]); };
  row("gru_sequence/t1", {{2, 9}, {2, 3}, {3, 9}, {1, 9}}, gru, R, gru_sequence_ref);
  row("gru_sequence/t3_b2", {{6, 9}, {2, 3}, {3, 9}, {1, 9}}, gru, R, gru_sequence_ref);
  row("gru_sequence/t5_b1", {{5, 6}, {1, 2}, {2, 6}, {1, 6}}, gru, R, gru_sequence_ref);
  auto gru_gather = [lstm_ids](In x) { return gru_sequence_gather(x[0], lstm_ids, x[1], x[2], x[3]); };
  auto gru_gather_ref = [picked](Refs x) { return gru_sequence_ref({picked(x[0]), x[1], x[2], x[3]}); };
  row("gru_sequence_gather/t3_b2", {{4, 9}, {2, 3}, {3, 9}, {1, 9}}, gru_gather, R, gru_gather_ref);
  row("gru_sequence_gather/t6_b1", {{4, 6}, {1, 2}, {2, 6}, {1, 6}}, gru_gather, R, gru_gather_ref);

  // ---- pointwise: a user's elementwise expression as one op (pointwise.h) ------------------------
  // The gate math of the LSTM, GRU and IndRNN steps, several outputs (checked as [y0 | y1 | ...]),
  // column-block arguments, an input read twice, every function the expression may call, a
  // broadcast row. Widths 5 and 13 leave partial SIMD chunks in every row.
  auto each = [](Index rows, Index cols, auto f) {  // the reference, element by element
    M y(rows, cols);
    for (Index r = 0; r < rows; ++r)
      for (Index c = 0; c < cols; ++c) y(r, c) = f(r, c);
    return y;
  };
  auto lstm_gates = [](auto i, auto f, auto g, auto o, auto c0) {
    auto c = sigmoid(f) * c0 + sigmoid(i) * tanh(g);
    return std::array{c, sigmoid(o) * tanh(c)};
  };
  row(
      "pointwise/lstm_gates", {{3, 20}, {3, 5}},
      [lstm_gates](In x) {
        const auto [c, h] = pointwise(lstm_gates, columns<4>(x[0]), x[1]);
        return concat_cols({c, h});
      },
      R,
      [each](Refs x) {
        return each(3, 10, [&](Index r, Index j) {
          const Index k = j % 5;
          const double c =
              sigmoid_ref(x[0](r, 5 + k)) * x[1](r, k) + sigmoid_ref(x[0](r, k)) * std::tanh(x[0](r, 10 + k));
          return j < 5 ? c : sigmoid_ref(x[0](r, 15 + k)) * std::tanh(c);
        });
      });
  row(
      "pointwise/gru", {{2, 12}, {2, 12}, {2, 4}},
      [](In x) {
        return pointwise(
            [](auto xr, auto xz, auto xn, auto hr, auto hz, auto hn, auto h) {
              auto r = sigmoid(xr + hr);
              auto z = sigmoid(xz + hz);
              auto n = tanh(xn + r * hn);
              return (1 - z) * n + z * h;
            },
            columns<3>(x[0]), columns<3>(x[1]), x[2]);
      },
      R,
      [each](Refs x) {
        return each(2, 4, [&](Index r, Index k) {
          const double rg = sigmoid_ref(x[0](r, k) + x[1](r, k));
          const double z = sigmoid_ref(x[0](r, 4 + k) + x[1](r, 4 + k));
          const double n = std::tanh(x[0](r, 8 + k) + rg * x[1](r, 8 + k));
          return (1 - z) * n + z * x[2](r, k);
        });
      });
  row(
      "pointwise/indrnn_relu", {{3, 5}, {1, 5}, {3, 5}},
      [](In x) { return pointwise([](auto xp, auto u, auto h) { return relu(xp + u * h); }, x[0], x[1], x[2]); }, K,
      [each](Refs x) {
        return each(3, 5, [&](Index r, Index k) { return std::max(0.0, x[0](r, k) + x[1](0, k) * x[2](r, k)); });
      });
  row(
      "pointwise/three_outputs", {{3, 13}, {3, 13}},
      [](In x) {
        const auto [p, q, d] = pointwise<3>(
            [](auto a, auto b) {
              return std::array{a * b, exp(a) - b, 2.0 - a / (1 + square(b))};
            },
            x[0], x[1]);
        return concat_cols({p, q, d});
      },
      R,
      [each](Refs x) {
        return each(3, 39, [&](Index r, Index j) {
          const double a = x[0](r, j % 13), b = x[1](r, j % 13);
          return j < 13 ? a * b : (j < 26 ? std::exp(a) - b : 2.0 - a / (1 + b * b));
        });
      });
  row(
      "pointwise/column_blocks", {{3, 10}},
      [](In x) { return pointwise([](auto a, auto b) { return a * sigmoid(b); }, columns<2>(x[0])); }, R,
      [each](Refs x) {
        return each(3, 5, [&](Index r, Index k) { return x[0](r, k) * sigmoid_ref(x[0](r, 5 + k)); });
      });
  row(
      "pointwise/same_input_twice", {{3, 4}},
      [](In x) { return pointwise([](auto a, auto b) { return a * b + tanh(a) * b; }, x[0], x[0]); }, R,
      [each](Refs x) {
        return each(3, 4,
                    [&](Index r, Index k) { return x[0](r, k) * x[0](r, k) + std::tanh(x[0](r, k)) * x[0](r, k); });
      });
  row(
      "pointwise/same_blocks_twice", {{2, 6}},
      [](In x) {
        return pointwise([](auto a, auto b, auto c, auto d) { return a * d - b * c + exp(a) * c; }, columns<2>(x[0]),
                         columns<2>(x[0]));
      },
      R,
      [each](Refs x) {
        return each(2, 3, [&](Index r, Index k) {
          const double a = x[0](r, k), b = x[0](r, 3 + k);
          return a * b - b * a + std::exp(a) * a;
        });
      });
  row(
      "pointwise/positive", {{3, 5}, {3, 5}},
      [](In x) {
        return pointwise([](auto a, auto b) { return log(a) * sqrt(b) + a / b - square(b) / a + 3 / b; }, x[0], x[1]);
      },
      P,
      [each](Refs x) {
        return each(3, 5, [&](Index r, Index k) {
          const double a = x[0](r, k), b = x[1](r, k);
          return std::log(a) * std::sqrt(b) + a / b - b * b / a + 3 / b;
        });
      });
  row(
      "pointwise/kinks", {{3, 5}, {3, 5}},
      [](In x) {
        return pointwise(
            [](auto a, auto b) {
              return max(a, b) - min(a, 0.5) + abs(a) * relu(b) + select(a > b, a * b, 2 * b) +
                     select(0.25 >= b, 1, b) + max(-1, a) * min(b, a);
            },
            x[0], x[1]);
      },
      K,
      [each](Refs x) {
        return each(3, 5, [&](Index r, Index k) {
          const double a = x[0](r, k), b = x[1](r, k);
          return std::max(a, b) - std::min(a, 0.5) + std::abs(a) * std::max(b, 0.0) + (a > b ? a * b : 2 * b) +
                 (b <= 0.25 ? 1.0 : b) + std::max(-1.0, a) * std::min(b, a);
        });
      });
  row(
      "pointwise/broadcast_first", {{1, 6}, {4, 6}},
      [](In x) { return pointwise([](auto u, auto h) { return -u * exp(h) + u; }, x[0], x[1]); }, R,
      [each](Refs x) {
        return each(4, 6, [&](Index r, Index k) { return -x[0](0, k) * std::exp(x[1](r, k)) + x[0](0, k); });
      });

  // ---- [1 x 1] copies of the elementwise rows: ops_unary.cpp takes a fixed-size path there --------
  const std::set<std::string> elementwise_ops = {
#define TAPEGRAD_OP_NAME(name, ret, params) #name,
      TAPEGRAD_UNARY_OPS(TAPEGRAD_OP_NAME, double)};
  const std::size_t n_rows = t.size();
  for (std::size_t i = 0; i < n_rows; ++i) {
    const std::string& name = t[i].name;
    if (t[i].args.size() != 1 || !elementwise_ops.count(name.substr(0, name.find('/')))) continue;
    OpCase scalar_case = t[i];
    scalar_case.name = name + (name.find('/') == std::string::npos ? "/1x1" : "_1x1");
    scalar_case.args = {{1, 1}};
    t.push_back(std::move(scalar_case));
  }
  return t;
}

}  // namespace

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> cases = build();
  return cases;
}

const std::vector<std::string>& all_op_names() {
  static const std::vector<std::string> names = [] {
#define TAPEGRAD_TEMPLATE_OP_NAME(name) #name,
    const std::set<std::string> unique = {TAPEGRAD_OPS(TAPEGRAD_OP_NAME, double)
                                              TAPEGRAD_TEMPLATE_OPS(TAPEGRAD_TEMPLATE_OP_NAME)};
#undef TAPEGRAD_TEMPLATE_OP_NAME
    return std::vector<std::string>(unique.begin(), unique.end());
  }();
  return names;
}
#undef TAPEGRAD_OP_NAME

std::string op_name(const OpCase& c) { return c.name.substr(0, c.name.find('/')); }

std::vector<Matrix<double>> sample_inputs(const OpCase& c, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<double> grid;  // AwayFromKinks: distinct values drawn without replacement
  if (c.domain == Domain::AwayFromKinks) {
    for (int k = -24; k < 24; ++k) grid.push_back(0.0625 + 0.125 * k);
    std::shuffle(grid.begin(), grid.end(), rng);
  }
  std::size_t next = 0;
  std::vector<Matrix<double>> out;
  for (const Shape& s : c.args) {
    Matrix<double> m(s.rows, s.cols);
    for (Index k = 0; k < m.size(); ++k) {
      const double u = unit(rng);
      double v = 0;
      switch (c.domain) {
        case Domain::Real:
          v = -2 + 4 * u;
          break;
        case Domain::Positive:
          v = 0.5 + 1.5 * u;
          break;
        case Domain::NonZero:
          v = (unit(rng) < 0.5 ? -1 : 1) * (0.5 + 1.5 * u);
          break;
        case Domain::AwayFromKinks:
          v = grid.at(next++);
          break;
      }
      m.data()[k] = v;
    }
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace tapegrad::optest
