// Shared by the fused-recurrence tests: random inputs, the RNN and the LSTM unrolled op by op
// with the core ops (the independent path the fused ops are compared with), a relative difference, and the
// check of an error that must leave the tape unchanged.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <tapegrad/tapegrad.h>

#include "support/test_support.h"

namespace tapegrad::recurrent_test {

template <class S>
Matrix<S> uniform(Index rows, Index cols, std::mt19937_64& rng, double lo = -1, double hi = 1) {
  std::uniform_real_distribution<double> u(lo, hi);
  Matrix<S> m(rows, cols);
  for (Index k = 0; k < m.size(); ++k) m.data()[k] = static_cast<S>(u(rng));
  return m;
}

// Runs step(xp_t) for each step t (the b rows of xp at t) and stacks what it returns by rows.
template <class S, class Step>
Var<S> each_step(const Var<S>& xp, Index b, Step&& step) {
  std::vector<Var<S>> outs;
  for (Index t = 0; t * b < xp.rows(); ++t) outs.push_back(step(slice_rows(xp, t * b, b)));
  return concat_rows<S>(outs);
}

// h_t = tanh(xp_t + h_{t-1} w), unrolled with slice_rows / matmul / add / tanh, stacked by rows.
template <class S>
Var<S> rnn_unrolled(const Var<S>& xp, const Var<S>& h0, const Var<S>& w) {
  Var<S> h = h0;
  return each_step(xp, h0.rows(), [&](const Var<S>& xt) { return h = tanh(add(xt, matmul(h, w))); });
}

// The LSTM (gates i, f, g, o) unrolled with the core ops; each step's rows are [h_t | c_t].
template <class S>
Var<S> lstm_unrolled(const Var<S>& xp, const Var<S>& h0, const Var<S>& c0, const Var<S>& w) {
  const Index n = h0.cols();
  Var<S> h = h0;
  Var<S> c = c0;
  return each_step(xp, h0.rows(), [&](const Var<S>& xt) {
    const Var<S> a = add(xt, matmul(h, w));
    const Var<S> i = sigmoid(slice_cols(a, 0, n));
    const Var<S> f = sigmoid(slice_cols(a, n, n));
    const Var<S> g = tanh(slice_cols(a, 2 * n, n));
    const Var<S> o = sigmoid(slice_cols(a, 3 * n, n));
    c = add(mul(f, c), mul(i, g));
    h = mul(o, tanh(c));
    return concat_cols<S>({h, c});
  });
}

// PyTorch's GRU unrolled as nn::GruCell writes it: gh = affine(h, w, b), gates r, z, n.
template <class S>
Var<S> gru_unrolled(const Var<S>& xp, const Var<S>& h0, const Var<S>& w, const Var<S>& bias) {
  const Index n = h0.cols();
  Var<S> h = h0;
  return each_step(xp, h0.rows(), [&](const Var<S>& gi) {
    const Var<S> gh = affine(h, w, bias);
    const Var<S> r = sigmoid(add(slice_cols(gi, 0, n), slice_cols(gh, 0, n)));
    const Var<S> z = sigmoid(add(slice_cols(gi, n, n), slice_cols(gh, n, n)));
    const Var<S> c = tanh(add(slice_cols(gi, 2 * n, n), mul(r, slice_cols(gh, 2 * n, n))));
    return h = add(mul(add_scalar(neg(z), S(1)), c), mul(z, h));
  });
}

// max |a - b| / (1 + |b|) over the elements.
template <class S>
double rel_diff(const Matrix<S>& a, const Matrix<S>& b) {
  EXPECT_EQ(shape_of(a), shape_of(b));
  if (shape_of(a) != shape_of(b)) return 1e30;
  double worst = 0;
  for (Index k = 0; k < a.size(); ++k) {
    const double d = std::abs(static_cast<double>(a.data()[k]) - static_cast<double>(b.data()[k]));
    worst = std::max(worst, d / (1 + std::abs(static_cast<double>(b.data()[k]))));
  }
  return worst;
}

// testing::expect_error on a call that must also leave the tape unchanged.
template <class E, class F>
void expect_error(Tape<double>& tape, F&& f, const std::vector<std::string>& words) {
  const Mark before = tape.mark();
  testing::expect_error<E>(std::forward<F>(f), words);
  EXPECT_EQ(tape.mark().values, before.values);
  EXPECT_EQ(tape.mark().entries, before.entries);
}

}  // namespace tapegrad::recurrent_test
