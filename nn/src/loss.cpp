// Losses: argument checks that name the loss, then the ops that compute it.
#include <tapegrad/nn/loss.h>

#include <vector>

namespace tapegrad::nn {
namespace {

// Checks one target per row, each a class in [0, classes) or the ignore index; returns how
// many rows count.
Index check_targets(const char* loss, const char* what, Shape shape, std::span<const std::int32_t> targets,
                    std::int32_t ignore_index) {
  TAPEGRAD_CHECK(static_cast<Index>(targets.size()) == shape.rows, ShapeError,
                 "{}: {} is {} but {} targets were given (one per row expected)", loss, what, shape, targets.size());
  Index counted = 0;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const std::int32_t t = targets[i];
    if (t == ignore_index) continue;
    TAPEGRAD_CHECK(t >= 0 && t < shape.cols, ValueError,
                   "{}: target {} of row {} is out of range [0, {}) for {} {} (ignore_index is {})", loss, t, i,
                   shape.cols, what, shape, ignore_index);
    ++counted;
  }
  return counted;
}

}  // namespace

template <class S>
Var<S> cross_entropy(const Var<S>& logits, std::span<const std::int32_t> targets, const LossOptions& options) {
  logits.tape().check(logits, "cross_entropy", "logits");
  check_targets("cross_entropy", "logits", logits.shape(), targets, options.ignore_index);
  return softmax_cross_entropy<S>(logits, targets, options.reduction, options.ignore_index);
}

template <class S>
Var<S> nll_loss(const Var<S>& log_probs, std::span<const std::int32_t> targets, const LossOptions& options) {
  log_probs.tape().check(log_probs, "nll_loss", "log_probs");
  const Shape shape = log_probs.shape();
  const Index counted = check_targets("nll_loss", "log_probs", shape, targets, options.ignore_index);
  // Ignored rows pick column 0 and are then masked out, so they give neither loss nor gradient.
  std::vector<std::int32_t> index(targets.begin(), targets.end());
  Matrix<S> keep = Matrix<S>::Ones(shape.rows, 1);
  for (Index i = 0; i < shape.rows; ++i) {
    if (index[static_cast<std::size_t>(i)] == options.ignore_index) {
      index[static_cast<std::size_t>(i)] = 0;
      keep(i, 0) = S(0);
    }
  }
  Var<S> picked = pick<S>(log_probs, index);
  if (counted != shape.rows) picked = mask_mul<S>(picked, keep);
  if (options.reduction == Reduction::None) return neg<S>(picked);
  Var<S> total = sum<S>(picked);
  if (options.reduction == Reduction::Sum || counted == 0) return neg<S>(total);
  return mul_scalar<S>(total, S(-1) / static_cast<S>(counted));
}

template <class S>
Var<S> mse_loss(const Var<S>& pred, const Var<S>& target, Reduction reduction) {
  pred.tape().check(pred, "mse_loss", "pred");
  pred.tape().check(target, "mse_loss", "target");
  TAPEGRAD_CHECK(pred.shape() == target.shape(), ShapeError,
                 "mse_loss: pred is {} but target is {} (shapes must match exactly)", pred.shape(), target.shape());
  if (reduction == Reduction::Mean) return tapegrad::mse_loss<S>(pred, target);
  const Var<S> squared = square<S>(sub<S>(pred, target));
  return reduction == Reduction::None ? squared : sum<S>(squared);
}

#define TAPEGRAD_NN_INSTANTIATE_LOSS(S)                                                            \
  template Var<S> cross_entropy(const Var<S>&, std::span<const std::int32_t>, const LossOptions&); \
  template Var<S> nll_loss(const Var<S>&, std::span<const std::int32_t>, const LossOptions&);      \
  template Var<S> mse_loss(const Var<S>&, const Var<S>&, Reduction);
TAPEGRAD_NN_INSTANTIATE_LOSS(float)
TAPEGRAD_NN_INSTANTIATE_LOSS(double)

}  // namespace tapegrad::nn
