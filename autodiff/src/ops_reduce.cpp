// Reductions, normalisations and losses. Row-wise ops shift each row by its maximum before
// exponentiating, so logits of any magnitude give finite values and gradients.
#include <cmath>

#include <tapegrad/op.h>
#include <tapegrad/ops.h>

#include "instantiate.h"

namespace tapegrad {
namespace {

// Ops that divide by a count or normalise across a row have no value on an empty tensor.
template <class S>
void check_not_empty(const char* op, const char* arg, const Var<S>& x) {
  TAPEGRAD_CHECK(x.rows() > 0 && x.cols() > 0, ShapeError,
                 "{}: {} is {}, an empty tensor; it needs at least one "
                 "row and one column",
                 op, arg, x.shape());
}

// The shift that makes exp(x - shift) safe: the row maximum, or 0 when it is infinite (a row
// of all -inf then gives log 0 = -inf, and a +inf entry gives +inf, instead of NaN).
template <class Row>
auto row_shift(const Row& row) {
  using S = typename Row::Scalar;
  const S m = row.maxCoeff();
  return std::isfinite(m) ? m : S(0);
}

// log(sum(exp(row))) computed as shift + log(sum(exp(row - shift))).
template <class Row>
auto row_logsumexp(const Row& row) {
  const auto shift = row_shift(row);
  return shift + std::log((row.array() - shift).exp().sum());
}

}  // namespace

// y = sum of all x;  dx = g (every element)
template <class S>
Var<S> sum(const Var<S>& x) {
  return apply<S>(
      {"sum", {1, 1}}, {x}, [](OpCtx<S>& c) { c.y()(0, 0) = c.x(0).sum(); },
      [](OpCtx<S>& c) {
        if (c.needs_grad(0)) c.gx(0).array() += c.gy()(0, 0);
      });
}

// Rows: y = column sums [1 x cols], dx = g broadcast down; Cols: y = row sums [rows x 1], dx = g across.
template <class S>
Var<S> sum(const Var<S>& x, Axis axis) {
  const Shape out = axis == Axis::Rows ? Shape{1, x.cols()} : Shape{x.rows(), 1};
  return apply<S>(
      {"sum", out}, {x},
      [axis](OpCtx<S>& c) {
        if (c.x(0).size() == 0) {
          c.y().setZero();  // Eigen's partial reductions offset a null pointer on empty input (UB)
        } else if (axis == Axis::Rows) {
          c.y() = c.x(0).colwise().sum();
        } else {
          c.y() = c.x(0).rowwise().sum();
        }
      },
      [axis](OpCtx<S>& c) {
        if (!c.needs_grad(0)) return;
        if (axis == Axis::Rows) {
          c.gx(0).rowwise() += c.gy().row(0);
        } else {
          c.gx(0).colwise() += c.gy().col(0);
        }
      });
}

// y = sum(x) / n;  dx = g / n
template <class S>
Var<S> mean(const Var<S>& x) {
  check_not_empty("mean", "x", x);
  const S inv_n = S(1) / static_cast<S>(x.value().size());
  return apply<S>(
      {"mean", {1, 1}}, {x}, [inv_n](OpCtx<S>& c) { c.y()(0, 0) = c.x(0).sum() * inv_n; },
      [inv_n](OpCtx<S>& c) {
        if (c.needs_grad(0)) c.gx(0).array() += c.gy()(0, 0) * inv_n;
      });
}

// Rows: y = column means [1 x cols]; Cols: y = row means [rows x 1]; dx = g / (size of the collapsed axis)
template <class S>
Var<S> mean(const Var<S>& x, Axis axis) {
  check_not_empty("mean", "x", x);
  const bool rows = axis == Axis::Rows;
  const Shape out = rows ? Shape{1, x.cols()} : Shape{x.rows(), 1};
  const S inv_n = S(1) / static_cast<S>(rows ? x.rows() : x.cols());
  return apply<S>(
      {"mean", out}, {x},
      [rows, inv_n](OpCtx<S>& c) {
        if (rows) {
          c.y() = c.x(0).colwise().sum() * inv_n;
        } else {
          c.y() = c.x(0).rowwise().sum() * inv_n;
        }
      },
      [rows, inv_n](OpCtx<S>& c) {
        if (!c.needs_grad(0)) return;
        if (rows) {
          c.gx(0).rowwise() += c.gy().row(0) * inv_n;
        } else {
          c.gx(0).colwise() += c.gy().col(0) * inv_n;
        }
      });
}

// y_r = log sum_j exp(x_rj)  [rows x 1];  dx_rj = g_r exp(x_rj - y_r) = g_r softmax(x)_rj
template <class S>
Var<S> logsumexp(const Var<S>& x) {
  check_not_empty("logsumexp", "x", x);
  return apply<S>(
      {"logsumexp", {x.rows(), 1}}, {x},
      [](OpCtx<S>& c) {
        for (Index r = 0; r < c.x(0).rows(); ++r) c.y()(r, 0) = row_logsumexp(c.x(0).row(r));
      },
      [](OpCtx<S>& c) {
        if (!c.needs_grad(0)) return;
        Matrix<S>& gx = c.gx(0);
        for (Index r = 0; r < gx.rows(); ++r) {
          gx.row(r).array() += c.gy()(r, 0) * (c.x(0).row(r).array() - c.y()(r, 0)).exp();
        }
      });
}

// y_r = exp(x_r - shift) / sum(exp(x_r - shift));  dx_r = y_r * (g_r - <g_r, y_r>)
template <class S>
Var<S> softmax(const Var<S>& x) {
  check_not_empty("softmax", "x", x);
  return apply<S>(
      {"softmax", x.shape()}, {x},
      [](OpCtx<S>& c) {
        for (Index r = 0; r < c.x(0).rows(); ++r) {
          const S shift = row_shift(c.x(0).row(r));
          c.y().row(r).array() = (c.x(0).row(r).array() - shift).exp();
          c.y().row(r) /= c.y().row(r).sum();
        }
      },
      [](OpCtx<S>& c) {
        if (!c.needs_grad(0)) return;
        Matrix<S>& gx = c.gx(0);
        for (Index r = 0; r < gx.rows(); ++r) {
          const S gy_dot_y = c.gy().row(r).dot(c.y().row(r));
          gx.row(r).array() += c.y().row(r).array() * (c.gy().row(r).array() - gy_dot_y);
        }
      });
}

// y_r = x_r - logsumexp(x_r);  dx_r = g_r - softmax(x_r) * sum(g_r), softmax = exp(y)
template <class S>
Var<S> log_softmax(const Var<S>& x) {
  check_not_empty("log_softmax", "x", x);
  return apply<S>(
      {"log_softmax", x.shape()}, {x},
      [](OpCtx<S>& c) {
        for (Index r = 0; r < c.x(0).rows(); ++r) {
          const S shift = row_shift(c.x(0).row(r));
          const S log_z = std::log((c.x(0).row(r).array() - shift).exp().sum());
          c.y().row(r).array() = c.x(0).row(r).array() - shift - log_z;
        }
      },
      [](OpCtx<S>& c) {
        if (!c.needs_grad(0)) return;
        Matrix<S>& gx = c.gx(0);
        for (Index r = 0; r < gx.rows(); ++r) {
          gx.row(r).array() += c.gy().row(r).array() - c.y().row(r).array().exp() * c.gy().row(r).sum();
        }
      });
}

// loss_r = logsumexp(x_r) - x_r[t_r] for rows not ignored (0 for the others); the loss is their
// sum, times 1/count for Mean, or the column of them for None.
// dx_r = g_r * scale * (softmax(x_r) - onehot(t_r)), g_r = g for a reduced loss; the
// probabilities are saved in aux(0).
template <class S>
Var<S> softmax_cross_entropy(const Var<S>& logits, std::span<const std::int32_t> targets, Reduction reduction,
                             std::int32_t ignore_index) {
  check_not_empty("softmax_cross_entropy", "logits", logits);
  const Index n = logits.rows();
  const Index k = logits.cols();
  TAPEGRAD_CHECK(static_cast<Index>(targets.size()) == n, ShapeError,
                 "softmax_cross_entropy: {} targets for logits {}; need one target per row", targets.size(),
                 logits.shape());
  Index count = 0;
  for (Index r = 0; r < n; ++r) {
    const std::int32_t t = targets[static_cast<std::size_t>(r)];
    if (t == ignore_index) continue;
    TAPEGRAD_CHECK(t >= 0 && t < k, ValueError,
                   "softmax_cross_entropy: row {} has target {} but the logits {} have K = {} classes (valid "
                   "targets are 0..{}, or ignore_index {})",
                   r, t, logits.shape(), k, k - 1, ignore_index);
    ++count;
  }
  // Mean over the rows that count; when every row is ignored the loss is 0 with zero gradient.
  const S scale = reduction != Reduction::Mean ? S(1) : (count > 0 ? S(1) / static_cast<S>(count) : S(0));
  const bool per_row = reduction == Reduction::None;
  return apply<S>(
      {"softmax_cross_entropy", {per_row ? n : 1, 1}, {logits.shape()}, targets}, {logits},
      [scale, ignore_index, per_row](OpCtx<S>& c) {
        const Matrix<S>& x = c.x(0);
        Matrix<S>& p = c.aux(0);
        // -log p_t = log z - (x_t - shift), summed in double: both terms are small, so there is no
        // cancellation at 1e4. The exp runs once over the whole shifted matrix: rows of K = 65
        // are not aligned, and Eigen would compute each row's unaligned head and tail with scalar
        // expf. Per row, y keeps x_t - shift (exactly, it is an S) until log z is known.
        double loss = 0;
        const auto target = [&c](Index r) { return c.ints()[static_cast<std::size_t>(r)]; };
        for (Index r = 0; r < x.rows(); ++r) {
          p.row(r).array() = x.row(r).array() - row_shift(x.row(r));
          if (per_row) c.y()(r, 0) = target(r) != ignore_index ? p(r, target(r)) : S(0);
          if (target(r) != ignore_index) loss -= static_cast<double>(p(r, target(r)));
        }
        p.array() = p.array().exp();
        for (Index r = 0; r < x.rows(); ++r) {
          const S z = p.row(r).sum();
          p.row(r) /= z;
          if (target(r) == ignore_index) continue;
          const double log_z = static_cast<double>(std::log(z));
          loss += log_z;
          if (per_row) c.y()(r, 0) = static_cast<S>(log_z - static_cast<double>(c.y()(r, 0)));
        }
        if (!per_row) c.y()(0, 0) = static_cast<S>(loss) * scale;
      },
      [scale, ignore_index, per_row](OpCtx<S>& c) {
        if (!c.needs_grad(0)) return;
        // In a release sweep the probabilities may become dL/dlogits in place (assigned, not added).
        const bool in_place = c.take_aux_as_gx(0, 0);
        Matrix<S>& gx = c.gx(0);
        for (Index r = 0; r < gx.rows(); ++r) {
          const std::int32_t t = c.ints()[static_cast<std::size_t>(r)];
          if (t == ignore_index) {
            if (in_place) gx.row(r).setZero();
            continue;
          }
          const S g = (per_row ? c.gy()(r, 0) : c.gy()(0, 0)) * scale;
          if (in_place) {
            gx.row(r) *= g;
          } else {
            gx.row(r) += g * c.aux(0).row(r);
          }
          gx(r, t) -= g;
        }
      });
}

// loss = mean((p - t)^2);  dp = 2 g (p - t) / n, dt = -dp
template <class S>
Var<S> mse_loss(const Var<S>& pred, const Var<S>& target) {
  TAPEGRAD_CHECK(pred.shape() == target.shape(), ShapeError, "mse_loss: pred is {} but target is {}; shapes must match",
                 pred.shape(), target.shape());
  check_not_empty("mse_loss", "pred", pred);
  const S inv_n = S(1) / static_cast<S>(pred.value().size());
  return apply<S>(
      {"mse_loss", {1, 1}}, {pred, target},
      [inv_n](OpCtx<S>& c) { c.y()(0, 0) = (c.x(0) - c.x(1)).squaredNorm() * inv_n; },
      [inv_n](OpCtx<S>& c) {
        const S k = 2 * c.gy()(0, 0) * inv_n;
        if (c.needs_grad(0)) c.gx(0) += k * (c.x(0) - c.x(1));
        if (c.needs_grad(1)) c.gx(1) -= k * (c.x(0) - c.x(1));
      });
}

// y_r = x[r, index_r]  [rows x 1];  dx[r, index_r] += g_r
template <class S>
Var<S> pick(const Var<S>& x, std::span<const std::int32_t> index) {
  TAPEGRAD_CHECK(static_cast<Index>(index.size()) == x.rows(), ShapeError,
                 "pick: {} indices for x {}; need one index per row", index.size(), x.shape());
  for (std::size_t r = 0; r < index.size(); ++r) {
    TAPEGRAD_CHECK(index[r] >= 0 && index[r] < x.cols(), ValueError,
                   "pick: row {} has index {} but x {} has {} columns", r, index[r], x.shape(), x.cols());
  }
  return apply<S>(
      {"pick", {x.rows(), 1}, {}, index}, {x},
      [](OpCtx<S>& c) {
        for (Index r = 0; r < c.x(0).rows(); ++r) c.y()(r, 0) = c.x(0)(r, c.ints()[static_cast<std::size_t>(r)]);
      },
      [](OpCtx<S>& c) {
        if (!c.needs_grad(0)) return;
        Matrix<S>& gx = c.gx(0);
        for (Index r = 0; r < gx.rows(); ++r) gx(r, c.ints()[static_cast<std::size_t>(r)]) += c.gy()(r, 0);
      });
}

TAPEGRAD_INSTANTIATE_OPS(TAPEGRAD_REDUCE_OPS)

}  // namespace tapegrad
