// The pieces the fused recurrences share (ops_recurrent.cpp, ops_recurrent_gather.cpp): the chunk size
// of the backward's dA scratch, the weight gradient of one finished chunk, and the LSTM cell's
// per-row math, forward and backward side by side.
#pragma once

#include <algorithm>

#include <tapegrad/tensor.h>
#include <tapegrad/threads.h>

namespace tapegrad::detail {

// Rows (steps x batch) per dW GEMM: large enough for full GEMM speed, small enough that the dA
// scratch stays a small part of the saved activations for long sequences.
inline constexpr Index kChunkRows = 512;

inline Index chunk_steps(Index steps, Index batch) {
  return std::clamp<Index>((kChunkRows + batch - 1) / batch, 1, steps);
}

template <class S>
using RowArray = Eigen::Map<Eigen::Array<S, 1, Eigen::Dynamic>>;
template <class S>
using ConstRowArray = Eigen::Map<const Eigen::Array<S, 1, Eigen::Dynamic>>;

// dW += sum over the chunk's steps t0 .. t0+n-1 of h_{t-1}^T dA_t, in at most two GEMMs.
// h_{-1} is h0; prev(first, count) gives rows [first, first + count) of the h sequence.
template <class S, class Prev, class Chunk>
void add_weight_grad(Matrix<S>& gw, const Matrix<S>& h0, const Prev& prev, const Chunk& d, Index t0, Index n,
                     Index nb) {
  if (t0 == 0) {
    add_product(gw, h0.transpose(), d.topRows(nb));
    if (n > 1) add_product(gw, prev(0, (n - 1) * nb).transpose(), d.bottomRows((n - 1) * nb));
  } else {
    add_product(gw, prev((t0 - 1) * nb, n * nb).transpose(), d);
  }
}

// LSTM forward for one batch row. a: the pre-activations [i f g o] (4H), turned into the gates
// in place (i, f, o = sigmoid, g = tanh); c_t = f c_{t-1} + i g and h_t = o tanh(c_t).
template <class S>
void lstm_row_forward(S* a, const S* c_prev, S* h, S* c, Index nh) {
  RowArray<S> io(a, 2 * nh);  // i and f are adjacent
  RowArray<S> i(a, nh), f(a + nh, nh), g(a + 2 * nh, nh), o(a + 3 * nh, nh);
  RowArray<S> hn(h, nh), cn(c, nh);
  io = io.logistic();
  g = g.tanh();
  o = o.logistic();
  cn = f * ConstRowArray<S>(c_prev, nh) + i * g;
  hn = o * cn.tanh();
}

// LSTM backward for one batch row. With dh = gh + carry_h and dc = gc + carry_c + dh o (1 - tanh^2 c_t):
// dA_i = dc g i(1-i), dA_f = dc c_{t-1} f(1-f), dA_g = dc i (1-g^2), dA_o = dh tanh(c_t) o(1-o),
// written to d (4H); the carry to step t-1 leaves dc f in carry_c (the caller adds dA W^T to
// carry_h). gates: i, f, g, o of step t; gc may be null (no gradient reached c_t from outside).
template <class S>
void lstm_row_backward(const S* gates, const S* c_t, const S* c_prev, const S* gh, const S* gc, S* carry_h, S* carry_c,
                       S* d, Index nh) {
  const ConstRowArray<S> i(gates, nh), f(gates + nh, nh), g(gates + 2 * nh, nh), o(gates + 3 * nh, nh);
  const ConstRowArray<S> ct(c_t, nh), cp(c_prev, nh);
  RowArray<S> dh(carry_h, nh), dc(carry_c, nh);
  RowArray<S> di(d, nh), df(d + nh, nh), dg(d + 2 * nh, nh), dout(d + 3 * nh, nh);
  dout = ct.tanh();  // tanh(c_t), parked in dA_o's row until dA_o is computed
  dh += ConstRowArray<S>(gh, nh);
  if (gc != nullptr) {
    dc += ConstRowArray<S>(gc, nh) + dh * o * (S(1) - dout.square());
  } else {
    dc += dh * o * (S(1) - dout.square());
  }
  dout = dh * dout * o * (S(1) - o);
  di = dc * g * i * (S(1) - i);
  df = dc * cp * f * (S(1) - f);
  dg = dc * i * (S(1) - g.square());
  dc *= f;  // the carry to c_{t-1}
}

}  // namespace tapegrad::detail
