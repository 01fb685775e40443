// Note [Batched weight gradients]
// A weight W shared by T steps of a recurrence is the right operand of T products h_{t-1} W, and
// its gradient is the sum of T products h_{t-1}^T g_t, each [k x B][B x n] with the batch's few
// rows B as inner dimension: a GEMM that small runs far below the machine's rate. The sum is one
// product of the stacked rows, [k x T*B][T*B x n], which runs near it.
//
// So when a product's backward (OpCtx::add_weight_grad) finds that W is a leaf and the left
// operand has at most kStepMaxRows rows, a plain sweep only notes (W, h_{t-1}, g_t). The noted
// products run at the end of the sweep, before the leaves' gradients go to their Parameters, or
// earlier at a hook on W, when W's gradient must be final. A leaf's gradient is read by no entry
// (it has no producer), so nothing in the sweep can see it before then. Deferral is safe
// because both operands stay put until the sweep ends: values are never freed, and in a plain
// sweep neither are output gradients (a release sweep and an instrumented one, whose observer
// reads gradients as entries run, add each product at once instead).
//
// The noted products of one W run in stacks of at most kStackRows rows: the operands are
// copied into two buffers (O(rows * (k + n)) against the product's O(rows * k * n)) kept for the
// next sweep. The result is the same sum in another order: equal up to rounding.
//
// The input gradient of the same product, g_t W^T (OpCtx::add_input_grad), has the step's
// shape too, but small_gemm reads the rows of its right operand and W^T's rows are W's columns.
// So the sweep makes the transposed copy of a leaf W once, on its first such product, and every
// step reads it: small_gemm with W^T, as the fused recurrences do (kernels/step_weight.h).
#include <cstdint>
#include <vector>

#include <tapegrad/kernels/product.h>
#include <tapegrad/kernels/transpose_copy.h>
#include <tapegrad/op_ctx.h>

namespace tapegrad {

namespace {

// Rows per stacked product: enough for a large GEMM, few enough to keep the buffers small.
constexpr Index kStackRows = 2048;

}  // namespace

template <class S>
void OpCtx<S>::add_weight_grad(std::size_t i, std::size_t j) {
  detail::TapeStore<S>& s = store();
  const std::uint32_t target = input_id(i), lhs = input_id(j);
  const Index rows = slot(lhs).value.rows();
  if (s.defer_products && slot(target).info.leaf && rows > 0 && rows <= kernels::kStepMaxRows &&
      kernels::batched_weight_grads()) {
    s.grad_slot(target);  // reached in this sweep, zero-filled now, added into at the end
    s.deferred.push_back({target, lhs, at_.out});
    return;
  }
  kernels::product(gx(i), x(j).transpose(), gy(), kernels::Accumulate);
}

template <class S>
void OpCtx<S>::add_input_grad(std::size_t i, std::size_t j) {
  detail::TapeStore<S>& s = store();
  const std::uint32_t w = input_id(j);
  const Matrix<S>& gy_ = gy();
  if (!slot(w).info.leaf || !kernels::small_products() || !kernels::step_product_fits(gy_.rows(), x(j).rows())) {
    kernels::product(gx(i), gy_, x(j).transpose(), kernels::Accumulate);
    return;
  }
  // This sweep's W^T, made on first use; a stale entry's buffer is reused for another leaf.
  detail::TransposedLeaf<S>* t = nullptr;
  for (detail::TransposedLeaf<S>& c : s.transposed) {
    if (c.id == w && c.stamp == s.stamp) {
      t = &c;
      break;
    }
    if (c.stamp != s.stamp) t = &c;
  }
  if (t == nullptr || t->id != w || t->stamp != s.stamp) {
    if (t == nullptr) t = &s.transposed.emplace_back();
    const Matrix<S>& value = slot(w).value;
    if (t->value.rows() != value.cols() || t->value.cols() != value.rows()) t->value.resize(value.cols(), value.rows());
    kernels::transpose_copy<kernels::Assign>(value, t->value);
    t->id = w;
    t->stamp = s.stamp;
  }
  kernels::product(gx(i), gy_, t->value, kernels::Accumulate);
}

namespace detail {

template <class S>
void run_deferred_products(TapeStore<S>& s) {
  constexpr std::uint32_t kDone = UINT32_MAX;  // a record already added
  std::vector<DeferredProduct>& todo = s.deferred;
  for (std::size_t first = 0; first < todo.size(); ++first) {
    const std::uint32_t target = todo[first].target;
    if (target == kDone) continue;
    Matrix<S>& g = s.slots[target].grad;
    const Index k = g.rows(), n = g.cols();
    // The target's records in the sweep's order (a deterministic sum), kStackRows rows a stack.
    for (std::size_t p = first; p < todo.size();) {
      Index rows = 0;
      std::size_t q = p;
      for (; q < todo.size(); ++q) {
        if (todo[q].target != target) continue;
        const Index r = s.slots[todo[q].lhs].value.rows();
        if (rows > 0 && rows + r > kStackRows) break;
        rows += r;
      }
      if (rows == 0) break;
      if (s.stack_lhs.size() < static_cast<std::size_t>(rows * k))
        s.stack_lhs.resize(static_cast<std::size_t>(rows * k));
      if (s.stack_gy.size() < static_cast<std::size_t>(rows * n)) s.stack_gy.resize(static_cast<std::size_t>(rows * n));
      Eigen::Map<Matrix<S>> lhs(s.stack_lhs.data(), rows, k), gy(s.stack_gy.data(), rows, n);
      Index at = 0;
      for (std::size_t t = p; t < q; ++t) {
        if (todo[t].target != target) continue;
        const Matrix<S>& a = s.slots[todo[t].lhs].value;
        lhs.middleRows(at, a.rows()) = a;
        gy.middleRows(at, a.rows()) = s.slots[todo[t].gy].grad;
        at += a.rows();
        todo[t].target = kDone;
      }
      kernels::product(g, lhs.transpose(), gy, kernels::Accumulate);
      p = q;
    }
  }
  todo.clear();
}

}  // namespace detail

#define TAPEGRAD_INSTANTIATE_BATCHED(S)                              \
  template void OpCtx<S>::add_weight_grad(std::size_t, std::size_t); \
  template void OpCtx<S>::add_input_grad(std::size_t, std::size_t);  \
  template void detail::run_deferred_products(detail::TapeStore<S>&);
TAPEGRAD_INSTANTIATE_BATCHED(float)
TAPEGRAD_INSTANTIATE_BATCHED(double)

}  // namespace tapegrad
