// The engine's contract (Note [Tape invariants] in tape.h): reverse creation order, marks and
// rewind, stale handles, constant-stack sweeps, storage reuse without allocation, parameter
// accumulation and the errors of misuse. Expected values are closed forms.
#include <gtest/gtest.h>
#include <pthread.h>
#include <tapegrad/tapegrad.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <new>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "engine_test_ops.h"

// ---- counting allocator -------------------------------------------------------------------
// Every heap allocation of the process goes through these while `counting` is on: the global
// operator new family (std::vector, std::string, std::function) and, because Eigen allocates
// its dynamic matrices with std::malloc, malloc/calloc/realloc too (glibc allows a program to
// replace them; the real allocator stays reachable as __libc_*). Sanitizer builds keep their
// own allocator and skip the allocation test.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TAPEGRAD_COUNT_ALLOCATIONS 0
#else
#define TAPEGRAD_COUNT_ALLOCATIONS 1
#endif

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
[[maybe_unused]] void note_allocation() {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

#if TAPEGRAD_COUNT_ALLOCATIONS
extern "C" {
void* __libc_malloc(std::size_t n);
void* __libc_calloc(std::size_t n, std::size_t size);
void* __libc_realloc(void* p, std::size_t n);
void* __libc_memalign(std::size_t alignment, std::size_t n);
void __libc_free(void* p);

void* malloc(std::size_t n) noexcept {
  note_allocation();
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t size) noexcept {
  note_allocation();
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t n) noexcept {
  note_allocation();
  return __libc_realloc(p, n);
}
void free(void* p) noexcept { __libc_free(p); }
}

namespace {
void* counted_new(std::size_t n, std::size_t alignment) {
  note_allocation();
  void* p = alignment <= alignof(std::max_align_t) ? __libc_malloc(n == 0 ? 1 : n)
                                                   : __libc_memalign(alignment, n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return counted_new(n, 0); }
void* operator new[](std::size_t n) { return counted_new(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_new(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_new(n, static_cast<std::size_t>(a)); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  note_allocation();
  return __libc_malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  note_allocation();
  return __libc_malloc(n == 0 ? 1 : n);
}
void operator delete(void* p) noexcept { __libc_free(p); }
void operator delete[](void* p) noexcept { __libc_free(p); }
void operator delete(void* p, std::size_t) noexcept { __libc_free(p); }
void operator delete[](void* p, std::size_t) noexcept { __libc_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { __libc_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { __libc_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { __libc_free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { __libc_free(p); }
#endif

using namespace tapegrad;
using namespace tapegrad::testing;
using M = Matrix<double>;

namespace {

template <class F>
void expect_tape_error(F&& f, const std::string& words) {
  expect_error<TapeError>(std::forward<F>(f), words);
}

// The heap allocations f makes.
template <class F>
long allocations_of(F&& f) {
  allocations = 0;
  counting = true;
  f();
  counting = false;
  return allocations.load();
}

}  // namespace

// ---- creation order and the reverse sweep ---------------------------------------------------

TEST(Tape, SweepVisitsEntriesInReverseCreationOrder) {
  Tape<double> tape;
  auto x = tape.variable(scalar(0.3));
  auto a = tanh(x);
  auto b = t_scale(a, 2.0);
  auto c = t_times(a, b);
  auto loss = t_plus(c, x);
  std::vector<std::size_t> order;
  std::vector<std::string> ops;
  tape.set_observer([&](const NodeEvent& e) {
    order.push_back(e.entry);
    ops.emplace_back(e.op);
  });
  tape.backward(loss);
  EXPECT_EQ(order, (std::vector<std::size_t>{3, 2, 1, 0}));
  EXPECT_EQ(ops, (std::vector<std::string>{"t_plus", "t_times", "t_scale", "tanh"}));
  // loss = 2 tanh(x)^2 + x  ->  dloss/dx = 4 tanh(x) (1 - tanh(x)^2) + 1
  const double th = std::tanh(0.3);
  EXPECT_NEAR(x.grad()(0, 0), 4 * th * (1 - th * th) + 1, 1e-14);
  // a has two consumers (b and c): its gradient is their sum, 4 tanh(x).
  EXPECT_NEAR(a.grad()(0, 0), 4 * th, 1e-14);
}

TEST(Tape, ConstantsGetNoEntryAndNoGradient) {
  Tape<double> tape;
  auto k = tape.constant(scalar(2.0));
  auto x = tape.variable(scalar(0.5));
  auto kk = tanh(k);  // no input needs a gradient: nothing is recorded
  EXPECT_EQ(tape.num_entries(), 0u);
  EXPECT_FALSE(kk.requires_grad());
  auto y = t_times(kk, x);
  tape.backward(y);
  EXPECT_NEAR(x.grad()(0, 0), std::tanh(2.0), 1e-15);
  EXPECT_EQ(k.grad()(0, 0), 0.0);
}

// ---- marks, rewind, clear ------------------------------------------------------------------

TEST(Tape, RewindDropsHandlesAboveTheMarkAndKeepsThoseBelow) {
  Tape<double> tape;
  auto x = tape.variable(scalar(0.4));
  auto below = tanh(x);
  const Mark m = tape.mark();
  auto above = t_scale(below, 3.0);
  EXPECT_EQ(tape.num_entries(), 2u);
  tape.rewind(m);
  EXPECT_EQ(tape.num_entries(), 1u);
  EXPECT_EQ(tape.num_values(), 2u);
  EXPECT_FALSE(above.valid());
  expect_tape_error([&] { (void)above.value(); }, "cleared or rewound");
  expect_tape_error([&] { (void)t_scale(above, 1.0); }, "cleared or rewound");
  // Below the mark: still valid and still differentiable.
  EXPECT_TRUE(below.valid());
  EXPECT_NEAR(below.value()(0, 0), std::tanh(0.4), 1e-15);
  // The dropped slot id is reused by a new node; the old handle stays stale.
  auto again = t_scale(below, 5.0);
  EXPECT_EQ(again.id(), above.id());
  expect_tape_error([&] { (void)above.value(); }, "cleared or rewound");
  tape.backward(again);
  EXPECT_NEAR(x.grad()(0, 0), 5 * (1 - std::tanh(0.4) * std::tanh(0.4)), 1e-14);
}

TEST(Tape, ClearInvalidatesEveryHandle) {
  Tape<double> tape;
  auto x = tape.variable(scalar(0.1));
  auto y = tanh(x);
  tape.clear();
  EXPECT_EQ(tape.num_entries(), 0u);
  EXPECT_EQ(tape.num_values(), 0u);
  expect_tape_error([&] { (void)x.grad(); }, "cleared or rewound");
  expect_tape_error([&] { tape.backward(y); }, "cleared or rewound");
}

TEST(Tape, MarkPastTheEndIsATapeError) {
  Tape<double> tape;
  auto x = tape.variable(scalar(0.1));
  auto y = tanh(x);
  const Mark early = tape.mark();
  auto z = tanh(y);
  const Mark late = tape.mark();
  tape.rewind(early);
  EXPECT_FALSE(z.valid());
  EXPECT_THROW(tape.backward(y, BackwardOptions{.from = late}), TapeError);
  EXPECT_THROW(tape.rewind(late), TapeError);
}

// ---- long chains: one loop, constant stack ---------------------------------------------------

namespace {
struct SweepJob {
  Tape<double>* tape;
  Var<double> y;
  std::exception_ptr error;
};
void* run_sweep(void* arg) {
  auto* job = static_cast<SweepJob*>(arg);
  try {
    job->tape->backward(job->y);
  } catch (...) {
    job->error = std::current_exception();
  }
  return nullptr;
}
// Runs backward on a thread with a 256 KiB stack: a recursive sweep over 100,000 nodes would
// need far more, a loop needs a few frames.
void backward_on_small_stack(Tape<double>& tape, const Var<double>& y) {
  SweepJob job{&tape, y, nullptr};
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, 256 * 1024), 0);
  pthread_t thread;
  ASSERT_EQ(pthread_create(&thread, &attr, &run_sweep, &job), 0);
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
  pthread_attr_destroy(&attr);
  if (job.error) std::rethrow_exception(job.error);
}
}  // namespace

TEST(Tape, TanhChainOf100000BackpropagatesOnASmallStack) {
  constexpr int n = 100000;
  Tape<double> tape;
  auto x = tape.variable(scalar(0.8));
  Var<double> y = x;
  for (int k = 0; k < n; ++k) y = tanh(y);
  EXPECT_EQ(tape.num_entries(), static_cast<std::size_t>(n));
  backward_on_small_stack(tape, y);
  // Chain rule by hand: dy/dx = prod_k (1 - v_k^2), v_k = tanh(v_{k-1}), v_0 = 0.8.
  double v = 0.8;
  double d = 1.0;
  for (int k = 0; k < n; ++k) {
    v = std::tanh(v);
    d *= 1 - v * v;
  }
  EXPECT_NEAR(y.value()(0, 0), v, 1e-15);
  EXPECT_NEAR(x.grad()(0, 0) / d, 1.0, 1e-9);
}

TEST(Tape, ScaleChainOf100000HasTheClosedFormGradient) {
  constexpr int n = 100000;
  Tape<double> tape;
  auto x = tape.variable(scalar(1.0));
  Var<double> y = x;
  for (int k = 0; k < n; ++k) y = t_scale(y, 1.00001);
  backward_on_small_stack(tape, y);
  EXPECT_NEAR(x.grad()(0, 0) / std::pow(1.00001, n), 1.0, 1e-9);
}

// ---- storage reuse ----------------------------------------------------------------------------

namespace {
// One recording of a small graph with a parameter, a variable and a constant.
double record_and_sweep(Tape<double>& tape, Parameter<double>& w, const M& xv, const M& kv) {
  tape.clear();
  auto x = tape.variable(xv);
  auto k = tape.constant(kv);
  auto wl = tape.leaf(w);
  Var<double> h = x;
  for (int t = 0; t < 5; ++t) h = tanh(t_plus(t_times(h, tape.leaf(w)), k));
  auto loss = t_sum(t_times(h, wl));
  tape.backward(loss);
  return loss.item() + x.grad()(0, 0);
}
}  // namespace

TEST(Tape, SteadyStateRecordingAndBackwardAllocateNothing) {
  Tape<double> tape;
  Parameter<double> w(M::Constant(2, 3, 0.3), "w");
  const M xv = M::Constant(2, 3, 0.5);
  const M kv = M::Constant(2, 3, -0.1);
  const double first = record_and_sweep(tape, w, xv, kv);  // warm-up: buffers grow here
  // Sanitizer builds still replay the graph on reused slots (ASan watches those), but keep
  // their own allocator, so there is nothing to count.
  EXPECT_EQ(record_and_sweep(tape, w, xv, kv), first);
#if !TAPEGRAD_COUNT_ALLOCATIONS
  GTEST_SKIP() << "sanitizer build: the allocator is not replaced";
#else
  double again = 0;
  EXPECT_EQ(allocations_of([&] {
              for (int i = 0; i < 3; ++i) again = record_and_sweep(tape, w, xv, kv);
            }),
            0)
      << "recording the same shapes after clear() must reuse every buffer";
  EXPECT_EQ(again, first);  // same graph, same numbers
  // The counter does see allocations (so the zero above means something).
  M fresh;
  std::vector<int> v;
  EXPECT_GE(allocations_of([&] {
              fresh = M::Zero(7, 7);
              v.resize(3);
            }),
            2);
  EXPECT_EQ(fresh.size() + static_cast<Index>(v.size()), 52);
#endif
}

namespace {
// A vanilla RNN over 4 steps with the library ops (matmul, broadcast add, tanh, fused
// softmax cross-entropy): small shapes, so Eigen's products need no heap.
double record_rnn(Tape<double>& tape, Parameter<double>& u, Parameter<double>& w, Parameter<double>& v,
                  Parameter<double>& b, const M& xv, const M& h0v, const std::vector<std::int32_t>& y) {
  tape.clear();
  Var<double> h = tape.constant(h0v);
  Var<double> loss;
  for (int t = 0; t < 4; ++t) {
    auto s = tape.time_step(t);
    auto x = tape.constant(xv);
    h = tanh(add(add(matmul(x, tape.leaf(u)), matmul(h, tape.leaf(w))), tape.leaf(b)));
    auto lt = softmax_cross_entropy(matmul(h, tape.leaf(v)), std::span<const std::int32_t>(y), Reduction::Sum);
    loss = t == 0 ? lt : add(loss, lt);
  }
  tape.backward(loss);
  return loss.item();
}
}  // namespace

TEST(Tape, SteadyStateRnnWithLibraryOpsAllocatesNothing) {
  Tape<double> tape;
  Parameter<double> u(M::Constant(3, 4, 0.2), "U"), w(M::Constant(4, 4, -0.1), "W");
  Parameter<double> v(M::Constant(4, 3, 0.3), "V"), b(M::Constant(1, 4, 0.05), "b");
  const M xv = M::Constant(2, 3, 0.7);
  const M h0v = M::Zero(2, 4);  // built once: a temporary matrix per call would allocate
  const std::vector<std::int32_t> y{0, 2};
  const double first = record_rnn(tape, u, w, v, b, xv, h0v, y);
  EXPECT_EQ(record_rnn(tape, u, w, v, b, xv, h0v, y), first);
#if !TAPEGRAD_COUNT_ALLOCATIONS
  GTEST_SKIP() << "sanitizer build: the allocator is not replaced";
#else
  double again = 0;
  EXPECT_EQ(allocations_of([&] {
              for (int i = 0; i < 3; ++i) again = record_rnn(tape, u, w, v, b, xv, h0v, y);
            }),
            0);
  EXPECT_EQ(again, first);
#endif
}

// ---- parameters --------------------------------------------------------------------------------

TEST(Tape, ParametersAccumulateAcrossUsesAndSweepsUntilZeroGrad) {
  Parameter<double> w(scalar(0.7), "w");
  const double x0 = 0.2;
  // loss = w * tanh(w * x0): w used twice (one leaf, two consumers).
  auto record = [&](Tape<double>& tape) {
    auto x = tape.constant(scalar(x0));
    auto inner = tanh(t_times(tape.leaf(w), x));
    return t_times(tape.leaf(w), inner);
  };
  const double th = std::tanh(0.7 * x0);
  const double g = th + 0.7 * (1 - th * th) * x0;  // d/dw [w tanh(w x0)]
  Tape<double> tape;
  auto loss = record(tape);
  EXPECT_EQ(tape.num_values(), 5u);  // x, w (once), w*x, tanh, loss
  tape.backward(loss);
  EXPECT_NEAR(w.grad(0, 0), g, 1e-15);
  tape.backward(loss);  // a second sweep over the same tape adds again
  EXPECT_NEAR(w.grad(0, 0), 2 * g, 1e-15);
  Tape<double> other;  // and a use on another tape too
  other.backward(record(other));
  EXPECT_NEAR(w.grad(0, 0), 3 * g, 1e-15);
  w.zero_grad();
  EXPECT_EQ(w.grad(0, 0), 0.0);
  tape.backward(loss);
  EXPECT_NEAR(w.grad(0, 0), g, 1e-15);
}

TEST(Tape, LeafCopiesTheParameterValueAtRecording) {
  Parameter<double> w(scalar(2.0), "w");
  Tape<double> tape;
  auto wl = tape.leaf(w);
  w.value(0, 0) = 5.0;
  EXPECT_EQ(wl.value()(0, 0), 2.0);
  EXPECT_EQ(wl.name(), "w");
  tape.clear();
  EXPECT_EQ(tape.leaf(w).value()(0, 0), 5.0);  // a new recording sees the new value
}

// ---- misuse -----------------------------------------------------------------------------------

TEST(Tape, BackwardFromANonScalarNeedsASeed) {
  Tape<double> tape;
  auto x = tape.variable(M::Constant(2, 3, 0.1));
  auto y = tanh(x);
  EXPECT_THROW(tape.backward(y), ShapeError);
  EXPECT_THROW(tape.backward(y, M::Ones(3, 2)), ShapeError);
  tape.backward(y, M::Ones(2, 3));
  EXPECT_NEAR(x.grad()(1, 2), 1 - std::tanh(0.1) * std::tanh(0.1), 1e-15);
}

TEST(Tape, SweepingAReleasedWindowTwiceIsATapeError) {
  Tape<double> tape;
  auto x = tape.variable(scalar(0.3));
  auto y = tanh(tanh(x));
  tape.backward(y, BackwardOptions{.release = true});
  EXPECT_NEAR(x.grad()(0, 0), (1 - std::pow(std::tanh(std::tanh(0.3)), 2)) * (1 - std::pow(std::tanh(0.3), 2)), 1e-15);
  expect_tape_error([&] { tape.backward(y); }, "released");
}

TEST(Tape, VarFromAnotherTapeIsATapeError) {
  Tape<double> a;
  Tape<double> b;
  auto xa = a.variable(scalar(1.0));
  auto xb = b.variable(scalar(2.0));
  expect_tape_error([&] { (void)t_plus(xa, xb); }, "another tape");
  expect_tape_error([&] { b.backward(xa); }, "another tape");
}

TEST(Tape, DefaultVarIsATapeError) {
  Tape<double> tape;
  Var<double> v;
  EXPECT_TRUE(v.empty());
  EXPECT_FALSE(v.valid());
  EXPECT_THROW((void)v.value(), TapeError);
  EXPECT_THROW((void)v.grad(), TapeError);
  EXPECT_THROW(v.backward(), TapeError);
  EXPECT_THROW((void)tanh(v), TapeError);
  expect_tape_error([&] { tape.backward(v); }, "empty Var");
}
