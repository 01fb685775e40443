// What an op's forward and backward closures see (op.h records them, the sweep runs them).
#pragma once

#include <cstdint>
#include <span>

#include <tapegrad/tape.h>

namespace tapegrad {

/// What an op's forward and backward closures see: input values x(i), the output y(),
/// auxiliary saved tensors aux(k) and integers ints(), and in backward the output gradient
/// gy() and the input gradient accumulators gx(i) (zero-filled on first use in a sweep).
template <class S>
class OpCtx {
 public:
  using Tensor = Matrix<S>;
  /// Made by the engine: by apply() for forward, by the sweep for backward (releasing: a
  /// release sweep runs this backward).
  OpCtx(Tape<S>& tape, const detail::EntryLayout& at, bool releasing = false)
      : tape_(tape), at_(at), releasing_(releasing) {}

  [[nodiscard]] std::size_t num_inputs() const { return at_.n_in; }
  [[nodiscard]] TAPEGRAD_HOT const Tensor& x(std::size_t i) const { return slot(input_id(i)).value; }
  [[nodiscard]] TAPEGRAD_HOT std::uint32_t input_id(std::size_t i) const { return store().input_id(at_, i); }
  [[nodiscard]] TAPEGRAD_HOT bool needs_grad(std::size_t i) const { return slot(input_id(i)).info.requires_grad; }
  /// The output value (written by forward, read by backward).
  TAPEGRAD_HOT Tensor& y() { return slot(at_.out).value; }
  [[nodiscard]] TAPEGRAD_HOT const Tensor& y() const { return slot(at_.out).value; }
  /// Saved auxiliary tensor k (shapes given in OpSpec::aux).
  Tensor& aux(std::size_t k) { return slot(store().aux_id(at_, k)).value; }
  /// True when a release sweep runs this backward (BackwardOptions::release): nothing reads
  /// this entry's aux tensors after it, so it may overwrite them.
  [[nodiscard]] bool releasing() const { return releasing_; }
  /// When releasing() and input i's gradient is still untouched in this sweep and aux(k) has
  /// its shape, moves aux(k)'s buffer into it and returns true: the op then turns its saved
  /// tensor into gx(i) in place (assign, the buffer is not zeroed), with no new buffer at the
  /// sweep's peak. Otherwise returns false, changes nothing, and the op adds into gx(i).
  bool take_aux_as_gx(std::size_t i, std::size_t k) {
    detail::TapeStore<S>& s = store();
    detail::Slot<S>& in = slot(input_id(i));
    Tensor& buffer = aux(k);
    if (!releasing_ || s.reached(input_id(i)) || shape_of(buffer) != shape_of(in.value)) return false;
    in.grad.swap(buffer);  // aux(k) now holds the old buffer, freed with the entry's aux
    in.info.grad_stamp = s.stamp;
    in.info.grad_freed = false;
    return true;
  }
  /// Output k: 0 is the main output y(), 1.. the extra outputs (OpSpec::extra_outputs).
  Tensor& y(std::size_t k) { return slot(store().output_id(at_, k)).value; }
  [[nodiscard]] const Tensor& y(std::size_t k) const { return slot(store().output_id(at_, k)).value; }
  /// dL/d(output k) (backward only), or nullptr when the sweep did not reach output k (its
  /// gradient is zero). For k = 0 it is never null: use gy().
  [[nodiscard]] const Tensor* gy_or_null(std::size_t k) const {
    const std::uint32_t id = store().output_id(at_, k);
    return k == 0 || store().reached(id) ? &slot(id).grad : nullptr;
  }
  /// Saved integers (OpSpec::ints), e.g. class targets or row indices.
  [[nodiscard]] std::span<const std::int32_t> ints() const {
    return {store().ints.data() + at_.ints_begin, at_.n_ints};
  }
  /// dL/dy (backward only).
  [[nodiscard]] TAPEGRAD_HOT const Tensor& gy() const { return slot(at_.out).grad; }
  /// dL/dx_i accumulator (backward only): always add into it.
  TAPEGRAD_HOT Tensor& gx(std::size_t i) { return store().grad_slot(input_id(i)); }
  /// gx(i) += x(j)^T gy(), the weight gradient of a product x(j) W with W input i. When W is a
  /// leaf and x(j) has a batch's few rows, a plain sweep stacks it with the other such products
  /// into W's gradient and runs them as one at the end of the sweep or at a hook on W (Note
  /// [Batched weight gradients]): a weight shared by T steps gets one large product.
  void add_weight_grad(std::size_t i, std::size_t j);
  /// gx(i) += gy() x(j)^T, the input gradient of a product x(i) W with W input j. When W is a
  /// leaf and gy() has a batch's few rows, the sweep reads W^T from a copy made once per sweep.
  void add_input_grad(std::size_t i, std::size_t j);
  /// The output's time tag.
  [[nodiscard]] int time() const { return slot(at_.out).info.time; }
  Tape<S>& tape() { return tape_; }

 private:
  friend class Tape<S>;
  TAPEGRAD_HOT detail::TapeStore<S>& store() const { return detail::TapeAccess::store(tape_); }
  TAPEGRAD_HOT detail::Slot<S>& slot(std::uint32_t id) const { return store().slots[id]; }
  Tensor& gy_mutable() { return slot(at_.out).grad; }
  // Before a hook on a leaf: the weight-gradient products deferred into it run now.
  void settle_weight_grads() {
    if (slot(at_.out).info.leaf) detail::run_deferred_products(store());
  }
  // After a hook ran on gy_mutable(): the gradient must still have its node's shape (Note
  // [Callback contract] in tape.h). A wrong one is dropped (the node reads as not reached).
  void check_hooked_gy() {
    detail::Slot<S>& s = slot(at_.out);
    if (s.grad.rows() == s.value.rows() && s.grad.cols() == s.value.cols()) [[likely]]
      return;
    const Shape got = shape_of(s.grad);
    s.info.grad_stamp = 0;  // never a current stamp (TapeStore::next_stamp)
    detail::raise<ShapeError>(
        "hook on node '{}': the hook left the gradient as {} but the node is {}; a hook may change the "
        "gradient's values, not its shape",
        tape_.display_name(at_.out), got, shape_of(s.value));
  }

  Tape<S>& tape_;
  detail::EntryLayout at_;
  bool releasing_;
};

}  // namespace tapegrad
