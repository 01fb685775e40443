// libFuzzer target: bytes -> a random program against the public autodiff API. Each byte
// picks an action: make a leaf (shapes 0..4, values that may be NaN/Inf), apply any op in ops.h
// to handles from a pool (shapes often mismatched, indices out of range, handles stale after
// rewind/clear or from another tape), take marks, rewind, clear, register hooks (also on
// consumed nodes, also hooks that produce NaN), toggle anomaly mode and run backward (loss or
// seeded, from a mark, releasing windows). Callbacks break the contract (Note [Callback contract]
// in tape.h): hooks that resize or replace their gradient, hooks and observers that clear, rewind,
// record, register hooks, replace the observer or run backward on the tape being swept. Lifetimes
// break too: parameters in a growing, shrinking or reassigned std::vector, parameters resized after
// recording, Vars of a tape that is destroyed, time-step scopes closed in any order. Every action
// may throw only tapegrad::Error; any other exception, crash, sanitizer report or Eigen assertion
// is a finding, and so is a re-entrant call that the tape accepts. After a failed action the tape
// must keep working, which later actions exercise.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <vector>

#include <tapegrad/error.h>
#include <tapegrad/instrument.h>
#include <tapegrad/ops.h>
#include <tapegrad/tape.h>

namespace {

namespace tg = tapegrad;
using S = double;
using M = tg::Matrix<S>;
using V = tg::Var<S>;

struct Program {
  FuzzedDataProvider& in;
  tg::Tape<S> tape;
  tg::Tape<S> other;  // handles from here must be refused by ops on `tape`
  tg::Parameter<S> param{M::Constant(2, 3, 0.5), "P"};
  std::vector<V> pool;
  std::vector<tg::Mark> marks;
  std::vector<tg::Parameter<S>> params;                         // grows, shrinks and is reassigned: its elements move
  std::unique_ptr<tg::Tape<S>> doomed;                          // destroyed while pool still holds its Vars
  std::vector<std::unique_ptr<tg::Tape<S>::TimeScope>> scopes;  // closed in any order; before tape dies

  bool trace = std::getenv("TAPEGRAD_FUZZ_TRACE") != nullptr;  // prints each action (for replays)

  explicit Program(FuzzedDataProvider& input) : in(input) {}

  S scalar() {
    switch (in.ConsumeIntegralInRange<int>(0, 15)) {
      case 0:
        return std::numeric_limits<S>::quiet_NaN();
      case 1:
        return std::numeric_limits<S>::infinity();
      case 2:
        return -std::numeric_limits<S>::infinity();
      case 3:
        return 1e300;
      case 4:
        return 0;
      default:
        return in.ConsumeFloatingPointInRange<S>(-4, 4);
    }
  }
  tg::Index dim() { return in.ConsumeIntegralInRange<tg::Index>(0, 4); }
  // A possibly bad index or count: negative, in range, or past the end.
  tg::Index any_index() {
    switch (in.ConsumeIntegralInRange<int>(0, 15)) {
      case 0:
        return std::numeric_limits<tg::Index>::max();
      case 1:
        return std::numeric_limits<tg::Index>::min();
      case 2:
        return tg::Index{1} << 40;
      default:
        return in.ConsumeIntegralInRange<tg::Index>(-2, 6);
    }
  }
  M matrix(tg::Index r, tg::Index c) {
    M m(r, c);
    const bool exotic = in.ConsumeIntegralInRange<int>(0, 7) == 0;
    for (tg::Index i = 0; i < m.size(); ++i) {
      m.data()[i] = exotic ? scalar() : in.ConsumeFloatingPointInRange<S>(-2, 2);
    }
    return m;
  }
  std::vector<std::int32_t> ints(std::size_t n) {
    std::vector<std::int32_t> out(n);
    for (auto& v : out) {
      const int pick = in.ConsumeIntegralInRange<int>(0, 9);
      v = pick == 0 ? -100 : (pick == 1 ? std::numeric_limits<std::int32_t>::min() : in.ConsumeIntegralInRange(-2, 6));
    }
    return out;
  }
  V any() {
    switch (in.ConsumeIntegralInRange<int>(0, 19)) {
      case 0:
        return V{};  // empty handle
      case 1:
        return other.constant(M::Ones(1, 1));  // wrong tape
      case 2:
        if (doomed) return doomed->variable(M::Ones(1, 1));  // a Var that will outlive its tape
        [[fallthrough]];
      default:
        if (pool.empty()) return tape.variable(matrix(1, 1));
        return pool[in.ConsumeIntegralInRange<std::size_t>(0, pool.size() - 1)];
    }
  }
  // Results above this many elements, or with a side above kMaxKeptSide, are not kept: concat
  // and matmul of kept results would otherwise grow sizes geometrically over 96 actions, and
  // reshape makes empty tensors such as [2^40 x 0], over which Eigen's loops still step through
  // every row. An input that only builds huge shapes tests nothing but the time limit.
  static constexpr tg::Index kMaxKeptElements = 256;
  static constexpr tg::Index kMaxKeptSide = 1024;

  void keep(const V& v) {
    const M& value = v.value();
    if (value.size() > kMaxKeptElements || value.rows() > kMaxKeptSide || value.cols() > kMaxKeptSide) return;
    if (pool.size() < 64) {
      pool.push_back(v);
    } else {
      pool[in.ConsumeIntegralInRange<std::size_t>(0, pool.size() - 1)] = v;
    }
  }
  std::vector<V> some(std::size_t max) {
    std::vector<V> out(in.ConsumeIntegralInRange<std::size_t>(0, max));
    for (auto& v : out) v = any();
    return out;
  }

  V unary(const V& x) {
    switch (in.ConsumeIntegralInRange<int>(0, 24)) {
      case 0:
        return tg::tanh(x);
      case 1:
        return tg::sigmoid(x);
      case 2:
        return tg::relu(x);
      case 3:
        return tg::leaky_relu(x, scalar());
      case 4:
        return tg::exp(x);
      case 5:
        return tg::log(x);
      case 6:
        return tg::sqrt(x);
      case 7:
        return tg::square(x);
      case 8:
        return tg::abs(x);
      case 9:
        return tg::reciprocal(x);
      case 10:
        return tg::softplus(x);
      case 11:
        return tg::log_sigmoid(x);
      case 12:
        return tg::sin(x);
      case 13:
        return tg::cos(x);
      case 14:
        return tg::hardtanh(x);
      case 15:
        return tg::clamp(x, scalar(), scalar());
      case 16:
        return tg::add_scalar(x, scalar());
      case 17:
        return tg::mul_scalar(x, scalar());
      case 18:
        return tg::neg(x);
      case 19:
        return tg::pow(x, scalar());
      case 20:
        return tg::transpose(x);
      case 21:
        return tg::detach(x);
      case 22:
        return tg::logsumexp(x);
      case 23:
        return tg::softmax(x);
      default:
        return tg::log_softmax(x);
    }
  }
  V binary(const V& a, const V& b) {
    switch (in.ConsumeIntegralInRange<int>(0, 9)) {
      case 0:
        return tg::add(a, b);
      case 1:
        return tg::sub(a, b);
      case 2:
        return tg::mul(a, b);
      case 3:
        return tg::div(a, b);
      case 4:
        return tg::maximum(a, b);
      case 5:
        return tg::minimum(a, b);
      case 6:
        return tg::matmul(a, b);
      case 7:
        return tg::mse_loss(a, b);
      case 8:
        return tg::affine(a, b, any());
      default:
        return tg::where(matrix(dim(), dim()), a, b);
    }
  }
  V reduce_or_index(const V& x) {
    switch (in.ConsumeIntegralInRange<int>(0, 13)) {
      case 0:
        return tg::sum(x);
      case 1:
        return tg::sum(x, in.ConsumeBool() ? tg::Axis::Rows : tg::Axis::Cols);
      case 2:
        return tg::mean(x);
      case 3:
        return tg::mean(x, in.ConsumeBool() ? tg::Axis::Rows : tg::Axis::Cols);
      case 4: {
        const auto t = ints(in.ConsumeIntegralInRange<std::size_t>(0, 5));
        return tg::softmax_cross_entropy(x, std::span<const std::int32_t>(t),
                                         in.ConsumeBool() ? tg::Reduction::Sum : tg::Reduction::Mean,
                                         in.ConsumeBool() ? -100 : in.ConsumeIntegralInRange(-3, 3));
      }
      case 5: {
        const auto t = ints(in.ConsumeIntegralInRange<std::size_t>(0, 5));
        return tg::pick(x, std::span<const std::int32_t>(t));
      }
      case 6: {
        const auto t = ints(in.ConsumeIntegralInRange<std::size_t>(0, 5));
        return tg::gather_rows(x, std::span<const std::int32_t>(t));
      }
      case 7:
        return tg::slice_cols(x, any_index(), any_index());
      case 8:
        return tg::slice_rows(x, any_index(), any_index());
      case 9: {
        const tg::Index rows = any_index(), cols = any_index();
        // An empty x reshaped to [2^40 x 0] is valid, but the reshape and every op after it step
        // through all 2^40 rows: time, not a defect (docs/reliability.md). Not fuzzed.
        if (x.valid() && x.value().size() == 0 && (rows > kMaxKeptSide || cols > kMaxKeptSide)) return x;
        return tg::reshape(x, rows, cols);
      }
      case 10:
        return tg::mask_mul(x, matrix(dim(), dim()));
      case 11: {
        const auto parts = some(4);
        return tg::concat_cols<S>(std::span<const V>(parts));
      }
      case 12: {
        const auto parts = some(4);
        return tg::concat_rows<S>(std::span<const V>(parts));
      }
      default:
        return tg::reshape(x, x.cols(), x.rows());
    }
  }

  void hook(const V& v) {
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
      case 0:
        v.register_hook([](M& g) { g *= 2; });
        break;
      case 1:
        v.register_hook([](M& g) {
          if (g.size() > 0) g(0, 0) = std::numeric_limits<S>::quiet_NaN();
        });
        break;
      case 2:
        v.register_hook([](M&) { throw tg::ValueError("hook refused the gradient"); });
        break;
      case 3: {  // resizes or replaces its gradient: ShapeError after the hook, never a wrong read
        const tg::Index r = dim(), c = dim();
        const bool resize = in.ConsumeBool();
        v.register_hook([r, c, resize](M& g) {
          if (resize) {
            g.resize(r, c);
          } else {
            g = M::Ones(r, c);
          }
        });
        break;
      }
      case 4: {  // changes the tape it is swept on: must be refused
        const int kind = in.ConsumeIntegralInRange<int>(0, kReentrantKinds - 1);
        v.register_hook([this, kind](M&) { reenter(kind); });
        break;
      }
      default:
        v.register_hook({});  // an empty hook must be refused
    }
  }

  // A call back into the tape from a hook or the observer while it is swept. The first kinds
  // must always throw; the others may throw any tapegrad::Error (the op's own checks come first).
  static constexpr int kReentrantKinds = 10;
  [[noreturn]] static void accepted(const char* what) {
    std::fprintf(stderr, "re-entrant %s was accepted during backward\n", what);
    std::abort();
  }
  void reenter(int kind) {
    switch (kind) {
      case 0:
        tape.clear();
        accepted("clear");
      case 1:
        tape.rewind(tg::Mark{});
        accepted("rewind");
      case 2:
        tape.set_observer({});
        accepted("set_observer");
      case 3:
        tape.set_anomaly_mode(!tape.anomaly_mode());
        accepted("set_anomaly_mode");
      case 4:
        (void)tape.constant(M::Ones(1, 1));
        accepted("constant");
      case 5:
        (void)tape.leaf(param);
        accepted("leaf");
      case 6:
        if (!pool.empty()) pool.back().register_hook([](M&) {});
        break;
      case 7:
        if (!pool.empty()) tape.backward(pool.back(), M::Ones(pool.back().rows(), pool.back().cols()));
        break;
      case 8:
        if (!pool.empty()) (void)tg::tanh(pool.back());
        break;
      default:
        if (!pool.empty()) pool.back().set_name("late");
        break;
    }
  }

  void observe() {
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
      case 0:
        tape.set_observer({});
        break;
      case 1:
        tape.set_observer([](const tg::NodeEvent& e) {
          if (e.inputs.size() > 64) std::abort();  // reads the event; no entry has that many inputs here
        });
        break;
      default: {
        const int kind = in.ConsumeIntegralInRange<int>(0, kReentrantKinds - 1);
        tape.set_observer([this, kind](const tg::NodeEvent&) { reenter(kind); });
      }
    }
  }

  // Parameters that move, die, are replaced or resized while the tape refers to them.
  void parameters() {
    switch (in.ConsumeIntegralInRange<int>(0, 6)) {
      case 0:
      case 1:
        if (params.size() < 16) params.emplace_back(matrix(dim(), dim()), "p");  // may reallocate
        break;
      case 2:
        if (!params.empty()) keep(tape.leaf(params[in.ConsumeIntegralInRange<std::size_t>(0, params.size() - 1)]));
        break;
      case 3:
        if (!params.empty())
          params.erase(params.begin() + in.ConsumeIntegralInRange<std::size_t>(0, params.size() - 1));
        break;
      case 4:
        if (!params.empty())
          params[in.ConsumeIntegralInRange<std::size_t>(0, params.size() - 1)].value.resize(dim(), dim());
        break;
      case 5:
        if (!params.empty()) params[0] = tg::Parameter<S>(matrix(dim(), dim()), "replaced");
        break;
      default:
        if (!params.empty()) params[0].grad.resize(dim(), dim());  // a user's zero_grad of the wrong shape
    }
  }

  // Time-step scopes opened and closed in any order; a tape whose Vars outlive it.
  void scopes_and_tapes() {
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
      case 0:
        if (scopes.size() < 8)
          scopes.push_back(std::make_unique<tg::Tape<S>::TimeScope>(tape, in.ConsumeIntegralInRange(-1, 9)));
        break;
      case 1:
        if (!scopes.empty())
          scopes.erase(scopes.begin() + in.ConsumeIntegralInRange<std::size_t>(0, scopes.size() - 1));
        break;
      case 2:
        if (!doomed) doomed = std::make_unique<tg::Tape<S>>();
        break;
      default:
        doomed.reset();  // its Vars in the pool must now throw TapeError wherever they are used
    }
  }

  void backward() {
    const V y = any();
    tg::BackwardOptions o;
    if (!marks.empty() && in.ConsumeBool()) o.from = marks[in.ConsumeIntegralInRange<std::size_t>(0, marks.size() - 1)];
    o.release = in.ConsumeIntegralInRange<int>(0, 3) == 0;
    o.run_hooks = in.ConsumeIntegralInRange<int>(0, 5) != 0;
    o.accumulate_parameters = in.ConsumeBool();
    if (in.ConsumeBool()) {
      tape.backward(y, o);
    } else {
      const bool right = in.ConsumeIntegralInRange<int>(0, 3) != 0 && y.valid();
      tape.backward(y, right ? matrix(y.rows(), y.cols()) : matrix(dim(), dim()), o);
    }
  }

  // Reads everything a user could read from a handle (stale ones must throw TapeError).
  void inspect(const V& v) {
    const M& value = v.value();
    const M& grad = v.grad();
    if (value.rows() != grad.rows() || value.cols() != grad.cols()) throw std::logic_error("grad shape != value shape");
    (void)v.name();
    (void)v.time();
    (void)v.requires_grad();
    if (in.ConsumeBool()) (void)v.item();
  }

  void step() {
    const int action = in.ConsumeIntegralInRange<int>(0, 20);
    if (trace)
      std::fprintf(stderr, "action %d (pool %zu, marks %zu, entries %zu)\n", action, pool.size(), marks.size(),
                   tape.num_entries());
    switch (action) {
      case 0:
        keep(tape.constant(matrix(dim(), dim())));
        break;
      case 1:
        keep(tape.variable(matrix(dim(), dim())));
        break;
      case 2:
        keep(tape.leaf(param));
        break;
      case 3:
      case 4:
        keep(unary(any()));
        break;
      case 5:
      case 6:
        keep(binary(any(), any()));
        break;
      case 7:
      case 8:
        keep(reduce_or_index(any()));
        break;
      case 9:
        marks.push_back(tape.mark());
        break;
      case 10:
        if (!marks.empty()) tape.rewind(marks[in.ConsumeIntegralInRange<std::size_t>(0, marks.size() - 1)]);
        break;
      case 11:
        if (in.ConsumeIntegralInRange<int>(0, 3) == 0) tape.clear();
        break;
      case 12:
        hook(any());
        break;
      case 13:
      case 14:
        backward();
        break;
      case 15:
        tape.set_anomaly_mode(!tape.anomaly_mode());
        break;
      case 16: {
        auto scope = tape.time_step(in.ConsumeIntegralInRange(-1, 100));
        keep(unary(any()));
        break;
      }
      case 17:
        observe();
        break;
      case 18:
        parameters();
        break;
      case 19:
        scopes_and_tapes();
        break;
      default:
        inspect(any());
        break;
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  Program p(in);
  for (int n = 0; n < 96 && in.remaining_bytes() > 0; ++n) {
    try {
      p.step();
    } catch (const tg::Error& e) {
      if (p.trace) std::fprintf(stderr, "  -> %s\n", e.what());
      // The documented outcome of a misuse; the next actions check that the tape still works.
    }
  }
  // Whatever happened, the tape can still record and differentiate a fresh computation, once the
  // scopes are closed (in order) and an error a scope left for the next call is reported.
  while (!p.scopes.empty()) p.scopes.pop_back();
  try {
    p.tape.set_observer({});
  } catch (const tg::TapeError&) {
    p.tape.set_observer({});
  }
  p.tape.set_anomaly_mode(false);
  const V x = p.tape.variable(M::Constant(2, 2, 0.5));
  const V loss = tg::sum(tg::tanh(x));
  p.tape.backward(loss);
  const double want = 1.0 - std::tanh(0.5) * std::tanh(0.5);
  if (std::abs(x.grad()(0, 0) - want) > 1e-12) throw std::logic_error("tape broken after the program");
  return 0;
}
