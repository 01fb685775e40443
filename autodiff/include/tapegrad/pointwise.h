// pointwise: a user's elementwise expression over several same-shaped inputs as ONE op, with its
// backward derived automatically. The gate math of a recurrent step written once, e.g.
//
//   auto [c, h] = pointwise(
//       [](auto i, auto f, auto g, auto o, auto c0) {
//         auto c = sigmoid(f) * c0 + sigmoid(i) * tanh(g);
//         return std::array{c, sigmoid(o) * tanh(c)};
//       },
//       columns<4>(gates), c_prev);
//
// records one tape entry instead of a dozen, and reads and writes each element once.
//
// How. The expression is a generic lambda (auto parameters), one parameter per argument, returning
// one value or a std::array of values (the op's outputs). Forward calls it on Lanes (a few
// elements at once in a fixed-size Eigen array: SIMD, intermediates in registers) in one pass.
// Backward calls it again on forward-mode dual numbers carrying K partials (K = the number of
// arguments), each argument seeded with its own unit partial, and adds sum_j g_j * d out_j / d
// argument_k into argument k's gradient. Nothing is saved for backward beyond the inputs the tape
// holds anyway; the price is recomputing the expression with K partials, which is cheap next to
// a pass over memory per op (the dual arithmetic is O(K) per operation, on data in registers).
//
// The expression may use + - * / (with numbers on either side), unary -, exp, log, sqrt, square,
// abs, tanh, sigmoid, relu, max, min, comparisons < <= > >= and select(cond, a, b), called
// unqualified (they are found through the argument types, pointwise_lanes.h and
// pointwise_dual.h). Values and derivatives use the formulas of the ops of the same names, so
// the result equals the op-by-op composition (to the last bits of a differently vectorised exp).
//
// Arguments: Vars, and columns<N>(x) for the N equal column blocks of x (the gates of one
// product [B x 4H]) read in place, their gradients added into the matching columns of x's
// gradient, so no slice op is recorded. Every argument has one shape [R x C], or is one row
// [1 x C] broadcast over the R rows (a per-unit weight), whose gradient is summed over the rows.
// Anything else throws ShapeError naming "pointwise", the argument and the shapes.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <type_traits>
#include <utility>

#include <tapegrad/op.h>
#include <tapegrad/pointwise_dual.h>
#include <tapegrad/pointwise_lanes.h>

namespace tapegrad {

/// The N equal column blocks of x as N arguments of pointwise: block b is columns [b C, (b+1) C),
/// C = x.cols() / N.
template <int N, class S>
struct ColumnBlocks {
  static_assert(N >= 1, "columns<N>: N must be at least 1");
  Var<S> source;
};

/// x's N equal column blocks, e.g. the gates i, f, g, o of an LSTM's [B x 4H] pre-activation.
template <int N, class S>
ColumnBlocks<N, S> columns(const Var<S>& x) {
  return {x};
}

namespace detail::pointwise_impl {

template <class T>
struct ArgTraits;  // A Var is one block of itself; columns<N>(x) is N blocks of x.
template <class S>
struct ArgTraits<Var<S>> {
  using Scalar = S;
  static constexpr int kBlocks = 1;
  static const Var<S>& var(const Var<S>& v) { return v; }
};
template <int N, class S>
struct ArgTraits<ColumnBlocks<N, S>> {
  using Scalar = S;
  static constexpr int kBlocks = N;
  static const Var<S>& var(const ColumnBlocks<N, S>& c) { return c.source; }
};

// Which tape input and which of its blocks each argument of the expression reads.
template <int... Blocks>
struct Layout {
  static constexpr int kInputs = sizeof...(Blocks);
  static constexpr int kArgs = (Blocks + ...);
  struct Arg {
    int input = 0, block = 0, blocks = 1;
  };
  static constexpr std::array<Arg, kArgs> args = [] {
    std::array<Arg, kArgs> out{};
    const int blocks[] = {Blocks...};
    int k = 0;
    for (int i = 0; i < kInputs; ++i)
      for (int b = 0; b < blocks[i]; ++b) out[k++] = {i, b, blocks[i]};
    return out;
  }();
};

// The expression's result as an array of outputs (a single value is one output).
template <class T>
struct Outputs {
  static constexpr int kCount = 1;
  using Value = T;
  static std::array<T, 1> list(T t) { return {std::move(t)}; }
};
template <class T, std::size_t N>
struct Outputs<std::array<T, N>> {
  static constexpr int kCount = static_cast<int>(N);
  using Value = T;
  static std::array<T, N> list(std::array<T, N> t) { return t; }
};

// W elements at p (n <= W valid): a tail's unused lanes repeat p[0], a value of the argument's
// own domain, so they compute nothing out of range (they are never stored).
template <class A, class S>
A load(const S* p, int n) {
  if (n == A::SizeAtCompileTime) return Eigen::Map<const A>(p);
  A a = A::Constant(p[0]);
  for (int l = 1; l < n; ++l) a[l] = p[l];
  return a;
}
template <class A, class S>
void store(S* p, const A& a, int n) {
  if (n == A::SizeAtCompileTime) {
    Eigen::Map<A> out(p);
    out = a;
  } else {
    for (int l = 0; l < n; ++l) p[l] = a[l];
  }
}
template <class A, class S>
void add_to(S* p, const A& a, int n) {
  if (n == A::SizeAtCompileTime) {
    Eigen::Map<A> out(p);
    out += a;
  } else {
    for (int l = 0; l < n; ++l) p[l] += a[l];
  }
}

// Where each argument's elements are: element (r, j) of argument k is base[k][r * stride[k] + j]
// (stride 0 for a broadcast row). The loop runs over `rows` rows of `cols` elements; when every
// argument is a whole contiguous tensor it is one row of R * C elements.
template <class S, int K>
struct Geometry {
  Index rows = 0, cols = 0;
  std::array<Index, K> offset{}, stride{};
};

template <class L, class S, int K>
Geometry<S, K> geometry(OpCtx<S>& c) {
  Geometry<S, K> g;
  const Index out_rows = c.y().rows(), out_cols = c.y().cols();
  bool contiguous = true;
  for (int k = 0; k < K; ++k) {
    const auto& a = L::args[static_cast<std::size_t>(k)];
    const Matrix<S>& x = c.x(static_cast<std::size_t>(a.input));
    g.offset[k] = a.block * out_cols;
    g.stride[k] = x.rows() == out_rows ? x.cols() : 0;
    contiguous = contiguous && (g.stride[k] == out_cols || out_rows <= 1);
  }
  g.rows = contiguous ? std::min<Index>(out_rows, 1) : out_rows;
  g.cols = contiguous ? out_rows * out_cols : out_cols;
  return g;
}

template <int W, class Body>
void for_each_chunk(Index rows, Index cols, Body&& body) {
  for (Index r = 0; r < rows; ++r)
    for (Index j = 0; j < cols; j += W) body(r, j, static_cast<int>(std::min<Index>(W, cols - j)));
}

// ShapeError unless every argument is [R x C] or [1 x C]; returns the output shape.
template <class S, class... Args>
Shape check_arguments(const Args&... args) {
  const Var<S>* vars[] = {&ArgTraits<Args>::var(args)...};
  const int blocks[] = {ArgTraits<Args>::kBlocks...};
  Shape first{}, out{};
  int k = 0;  // the expression's argument index of the current input's first block
  for (std::size_t i = 0; i < sizeof...(Args); ++i) {
    const Var<S>& v = *vars[i];
    TAPEGRAD_CHECK(!v.empty(), TapeError, "pointwise: argument {} is an empty handle (default-constructed Var)", k);
    if (!v.valid()) {
      try {
        v.tape().check(v, "pointwise", "argument");
      } catch (const TapeError& e) {
        raise<TapeError>("pointwise: argument {}: {}", k, e.what());
      }
    }
    TAPEGRAD_CHECK(&v.tape() == &vars[0]->tape(), TapeError,
                   "pointwise: argument {} belongs to another tape than argument 0", k);
    const Shape s = v.shape();
    TAPEGRAD_CHECK(s.cols % blocks[i] == 0, ShapeError,
                   "pointwise: argument {}: columns<{}> of a {} tensor: {} columns do not split into {} equal blocks",
                   k, blocks[i], s, s.cols, blocks[i]);
    const Shape block{s.rows, s.cols / blocks[i]};
    if (i == 0) {
      first = out = block;
    } else {
      TAPEGRAD_CHECK(block.cols == first.cols && (block.rows == out.rows || block.rows == 1 || out.rows == 1),
                     ShapeError,
                     "pointwise: argument {} is {} but argument 0 is {}; every argument must have one shape, or be "
                     "one row [1 x C] broadcast over the rows",
                     k, block, first);
      out.rows = std::max(out.rows, block.rows);
    }
    k += blocks[i];
  }
  return out;
}

}  // namespace detail::pointwise_impl

/// Evaluates the elementwise expression f over its arguments in one pass and records one op,
/// "pointwise", whose backward is derived from f (see the top of this file). Returns a Var for an
/// expression of one output, a std::array of N Vars for one returning std::array of N values
/// (N, when given, must match).
template <int N = 0, class F, class First, class... Rest>
auto pointwise(F f, const First& first, const Rest&... rest) {
  namespace pw = detail::pointwise_impl;
  namespace pm = pointwise_math;
  using S = typename pw::ArgTraits<First>::Scalar;
  static_assert((std::is_same_v<S, typename pw::ArgTraits<Rest>::Scalar> && ...),
                "pointwise: every argument must be a Var (or columns) of one scalar type");
  using L = pw::Layout<pw::ArgTraits<First>::kBlocks, pw::ArgTraits<Rest>::kBlocks...>;
  static constexpr int K = L::kArgs;
  static constexpr int W = static_cast<int>(32 / sizeof(S));  // one AVX register of S
  using Value = pm::Lanes<S, W>;
  using Dual = pm::Dual<S, W, K>;
  using Array = typename Value::Array;
  using ValueOut = pw::Outputs<decltype(std::apply(f, std::array<Value, K>{}))>;
  using DualOut = pw::Outputs<decltype(std::apply(f, std::array<Dual, K>{}))>;
  static constexpr int kOutputs = ValueOut::kCount;
  static_assert(std::is_same_v<typename ValueOut::Value, Value> && std::is_same_v<typename DualOut::Value, Dual> &&
                    DualOut::kCount == kOutputs,
                "pointwise: the expression must be a generic lambda (auto parameters), one parameter per argument "
                "(columns<N> counts N), returning one value or a std::array of values computed from them");
  static_assert(N == 0 || N == kOutputs, "pointwise<N>: N differs from the number of values the expression returns");

  const Shape shape = pw::check_arguments<S>(first, rest...);
  const std::array<Var<S>, L::kInputs> inputs{pw::ArgTraits<First>::var(first), pw::ArgTraits<Rest>::var(rest)...};
  const auto forward = [&f](OpCtx<S>& c) {
    const pw::Geometry<S, K> g = pw::geometry<L, S, K>(c);
    std::array<const S*, K> in{};
    for (int k = 0; k < K; ++k) in[k] = c.x(L::args[k].input).data() + g.offset[k];
    std::array<S*, kOutputs> out{};
    for (int o = 0; o < kOutputs; ++o) out[o] = c.y(o).data();
    pw::for_each_chunk<W>(g.rows, g.cols, [&](Index r, Index col, int n) {
      std::array<Value, K> x;
      for (int k = 0; k < K; ++k) x[k].v = pw::load<Array>(in[k] + r * g.stride[k] + col, n);
      const auto y = ValueOut::list(std::apply(f, x));
      for (int o = 0; o < kOutputs; ++o) pw::store(out[o] + r * g.cols + col, y[o].v, n);
    });
  };
  auto backward = [f](OpCtx<S>& c) {
    const pw::Geometry<S, K> g = pw::geometry<L, S, K>(c);
    std::array<const S*, K> in{};
    std::array<S*, K> grad{};  // null: that argument's input needs no gradient
    for (int k = 0; k < K; ++k) {
      const auto input = static_cast<std::size_t>(L::args[k].input);
      in[k] = c.x(input).data() + g.offset[k];
      if (c.needs_grad(input)) grad[k] = c.gx(input).data() + g.offset[k];
    }
    std::array<const S*, kOutputs> gy{};  // null: nobody used that output
    gy[0] = c.gy().data();
    for (int o = 1; o < kOutputs; ++o) {
      const Matrix<S>* gy_o = c.gy_or_null(o);
      gy[o] = gy_o != nullptr ? gy_o->data() : nullptr;
    }
    pw::for_each_chunk<W>(g.rows, g.cols, [&](Index r, Index col, int n) {
      std::array<Dual, K> x;
      for (int k = 0; k < K; ++k) {
        x[k].v = pw::load<Array>(in[k] + r * g.stride[k] + col, n);
        for (int q = 0; q < K; ++q) x[k].d[q] = Array::Constant(q == k ? S(1) : S(0));
      }
      const auto y = DualOut::list(std::apply(f, x));
      std::array<Array, kOutputs> gy_chunk;
      for (int o = 0; o < kOutputs; ++o) {
        if (gy[o] != nullptr) gy_chunk[o] = pw::load<Array>(gy[o] + r * g.cols + col, n);
      }
      for (int k = 0; k < K; ++k) {
        if (grad[k] == nullptr) continue;
        Array sum = Array::Zero();
        for (int o = 0; o < kOutputs; ++o) {
          if (gy[o] != nullptr) sum += gy_chunk[o] * y[o].d[k];
        }
        pw::add_to(grad[k] + r * g.stride[k] + col, sum, n);  // add: arguments may share an input
      }
    });
  };
  const std::span<const Var<S>> in(inputs);
  if constexpr (kOutputs == 1) {
    return apply<S>({"pointwise", shape}, in, forward, std::move(backward));
  } else {
    return [&]<std::size_t... j>(std::index_sequence<j...>) {
      // Every output has the arguments' shape; the extra outputs are y(1) .. y(kOutputs - 1).
      const OpSpec spec{"pointwise", shape, {}, {}, {(static_cast<void>(j), shape)...}};
      const std::vector<Var<S>> out = apply_outputs<S>(spec, in, forward, std::move(backward));
      return std::array<Var<S>, kOutputs>{out[0], out[j + 1]...};
    }
    (std::make_index_sequence<kOutputs - 1>{});
  }
}

}  // namespace tapegrad
