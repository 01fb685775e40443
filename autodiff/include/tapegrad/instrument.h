// The instrumented sweep: the node observer (Tape::set_observer) and the backward half of
// anomaly mode (Tape::set_anomaly_mode) as a runner that wraps another one (tape.h, invariant
// 8). The sweep picks it only when an observer is set or anomaly mode is on. It also checks that
// each entry left its inputs' gradients in their inputs' shapes (a user op's backward that
// assigns a wrong shape to gx(i) throws ShapeError here, instead of corrupting later entries).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include <tapegrad/tape.h>

namespace tapegrad {

/// What the node observer sees for one input of an entry.
struct InputGradEvent {
  std::uint32_t id;
  Shape shape;
  double grad_norm;  ///< Frobenius norm of the gradient this entry passed to the input.
};
/// What the node observer sees for every entry run by a sweep.
struct NodeEvent {
  std::size_t entry;
  const char* op;
  std::uint32_t id;
  std::string_view name;
  int time;
  Shape shape;
  double grad_norm;  ///< Frobenius norm of dL/d(output) when the entry ran.
  std::span<const InputGradEvent> inputs;
};

namespace detail {

// Runs each entry with Run, reporting it to the observer (if any) and checking the gradients
// it wrote for NaN/Inf (in anomaly mode).
template <class S, class Run>
class Instrumented {
 public:
  Instrumented(Tape<S>& tape, const typename Tape<S>::Observer& observer)
      : s_(TapeAccess::store(tape)), observer_(observer), run_{tape} {}

  void operator()(std::size_t i, Entry<S>& e) {
    const EntryLayout at = e.at;
    const char* op = e.op;
    inputs_.clear();
    if (observer_) {  // each input's gradient before the entry adds its part
      before_.resize(at.n_in);
      for (std::size_t k = 0; k < at.n_in; ++k) {
        const std::uint32_t in = s_.input_id(at, k);
        const Matrix<S>& v = s_.slots[in].value;
        before_[k] = s_.reached(in) ? s_.slots[in].grad : Matrix<S>::Zero(v.rows(), v.cols());
      }
    }
    const double gy_norm = static_cast<double>(s_.slots[at.out].grad.norm());
    run_(i, e);
    for (std::size_t k = 0; k < at.n_in; ++k) {
      const std::uint32_t in = s_.input_id(at, k);
      const Shape shape = shape_of(s_.slots[in].value);
      if (!s_.reached(in)) {
        if (observer_) inputs_.push_back({in, shape, 0.0});
        continue;
      }
      const Matrix<S>& g = s_.slots[in].grad;
      if (shape_of(g) != shape) [[unlikely]]  // a user op's backward assigned a wrong shape to gx(k)
        raise<ShapeError>("backward of op '{}' (node '{}') left the gradient of input {} as {} but the input is {}", op,
                          s_.display_name(at.out), k, shape_of(g), shape);
      if (s_.anomaly && !g.allFinite()) {
        const std::span<const std::uint32_t> ins(s_.args.data() + at.args_begin, at.n_in);
        s_.raise_anomaly(fmt::format("backward gradient for input {}", k), at.out, g, ins);
      }
      if (observer_) inputs_.push_back({in, shape, static_cast<double>((g - before_[k]).norm())});
    }
    if (s_.anomaly && at.n_in == 0 && !s_.slots[at.out].grad.allFinite()) {
      s_.raise_anomaly("gradient returned by a hook", at.out, s_.slots[at.out].grad, {});
    }
    if (observer_) {
      const SlotInfo& info = s_.slots[at.out].info;
      observer_(
          NodeEvent{i, op, at.out, s_.name_of(at.out), info.time, shape_of(s_.slots[at.out].value), gy_norm, inputs_});
    }
  }

 private:
  TapeStore<S>& s_;
  const typename Tape<S>::Observer& observer_;
  Run run_;
  std::vector<InputGradEvent> inputs_;
  std::vector<Matrix<S>> before_;
};

}  // namespace detail
}  // namespace tapegrad
