// Losses for training recurrent models. Each takes a tape value and returns a [1 x 1] loss
// on the same tape, or with Reduction::None the unreduced losses (as PyTorch's reduction='none'). cross_entropy
// forwards to the fused softmax_cross_entropy op; nll_loss and mse_loss are compositions of ops, so they carry no
// gradient code of their own.
#pragma once

#include <cstdint>
#include <span>

#include <tapegrad/ops.h>
#include <tapegrad/tape.h>

namespace tapegrad::nn {

/// How a classification loss reduces per-row losses and which target to skip.
struct LossOptions {
  Reduction reduction = Reduction::Mean;  ///< Sum over rows, mean over rows not ignored, or None: per row.
  std::int32_t ignore_index = -100;       ///< Rows with this target give no loss and no gradient.
};

/// Softmax cross-entropy of logits [N x K] against N class targets in [0, K) (or ignore_index).
/// Mean divides by the number of rows not ignored; when every row is ignored the loss is 0.
/// None gives the column of per-row losses [N x 1], 0 in ignored rows.
template <class S>
Var<S> cross_entropy(const Var<S>& logits, std::span<const std::int32_t> targets, const LossOptions& options = {});

/// Negative log-likelihood of log-probabilities [N x K] (e.g. from log_softmax) at the N targets:
/// -sum_i log_probs[i, t_i] over rows not ignored (Sum), divided by their count (Mean).
/// When every row is ignored the loss is 0. None gives -log_probs[i, t_i] per row, [N x 1], 0 in
/// ignored rows.
template <class S>
Var<S> nll_loss(const Var<S>& log_probs, std::span<const std::int32_t> targets, const LossOptions& options = {});

/// Squared error of pred against target (same shape, no broadcasting): sum of (pred - target)^2
/// (Sum), its mean over all elements (Mean), or with None each (pred - target)^2, of pred's shape
/// (the per-row column for [N x 1] predictions, as PyTorch's reduction='none'). Call it qualified (nn::mse_loss):
/// tapegrad::mse_loss is the two-argument mean-only op.
template <class S>
Var<S> mse_loss(const Var<S>& pred, const Var<S>& target, Reduction reduction = Reduction::Mean);

}  // namespace tapegrad::nn
