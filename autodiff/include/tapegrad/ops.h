// Every differentiable primitive, grouped by family. Each op checks its arguments before it
// records anything (errors name the op, the argument and the shapes), computes its value
// eagerly, and records its backward closure next to the forward in ops_<family>.cpp.
// Every op has a row in tests/autodiff/op_cases.cpp, checked by finite differences.
#pragma once

#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include <tapegrad/tape.h>

namespace tapegrad {

// ---- binary, with broadcasting (ops_binary.cpp) -----------------------------------------
// Shapes broadcast per dimension when equal or 1: [B x H] with [1 x H] (a bias row),
// [B x 1] (a column) or [1 x 1]. The gradient of a broadcast input is summed back to its shape.

/// a + b.                        d/da = 1, d/db = 1
template <class S>
Var<S> add(const Var<S>& a, const Var<S>& b);
/// a - b.                        d/da = 1, d/db = -1
template <class S>
Var<S> sub(const Var<S>& a, const Var<S>& b);
/// a * b (elementwise).          d/da = b, d/db = a
template <class S>
Var<S> mul(const Var<S>& a, const Var<S>& b);
/// a / b (elementwise).          d/da = 1/b, d/db = -a/b^2
template <class S>
Var<S> div(const Var<S>& a, const Var<S>& b);
/// max(a, b) elementwise; ties send the gradient to a.
template <class S>
Var<S> maximum(const Var<S>& a, const Var<S>& b);
/// min(a, b) elementwise; ties send the gradient to a.
template <class S>
Var<S> minimum(const Var<S>& a, const Var<S>& b);

// ---- scalar arithmetic (ops_unary.cpp) -----------------------------------------------------
/// x + c.                        d/dx = 1
template <class S>
Var<S> add_scalar(const Var<S>& x, std::type_identity_t<S> c);
/// c * x.                        d/dx = c
template <class S>
Var<S> mul_scalar(const Var<S>& x, std::type_identity_t<S> c);
/// -x.                           d/dx = -1
template <class S>
Var<S> neg(const Var<S>& x);
/// x^p (elementwise, real p; x > 0 unless p is a whole number).   d/dx = p x^(p-1)
template <class S>
Var<S> pow(const Var<S>& x, std::type_identity_t<S> p);

// ---- elementwise functions (ops_unary.cpp) -----------------------------------------------
template <class S>
Var<S> tanh(const Var<S>& x);  ///< d = 1 - y^2
template <class S>
Var<S> sigmoid(const Var<S>& x);  ///< logistic 1/(1+e^-x); d = y (1 - y)
template <class S>
Var<S> relu(const Var<S>& x);  ///< max(x, 0); d = [x > 0]
template <class S>
Var<S> leaky_relu(const Var<S>& x, std::type_identity_t<S> slope);  ///< x or slope*x; d = 1 or slope
template <class S>
Var<S> exp(const Var<S>& x);  ///< d = y
template <class S>
Var<S> log(const Var<S>& x);  ///< natural log; d = 1/x
template <class S>
Var<S> sqrt(const Var<S>& x);  ///< d = 1/(2y)
template <class S>
Var<S> square(const Var<S>& x);  ///< d = 2x
template <class S>
Var<S> abs(const Var<S>& x);  ///< d = sign(x)
template <class S>
Var<S> reciprocal(const Var<S>& x);  ///< 1/x; d = -y^2
template <class S>
Var<S> softplus(const Var<S>& x);  ///< log(1+e^x), stable; d = sigmoid(x)
template <class S>
Var<S> log_sigmoid(const Var<S>& x);  ///< -softplus(-x), stable; d = 1 - sigmoid(x)
template <class S>
Var<S> sin(const Var<S>& x);  ///< d = cos x
template <class S>
Var<S> cos(const Var<S>& x);  ///< d = -sin x
template <class S>
Var<S> hardtanh(const Var<S>& x);  ///< clamp(x, -1, 1); d = [|x| < 1]
/// min(max(x, lo), hi); gradient 1 strictly inside (lo, hi), 0 outside.
template <class S>
Var<S> clamp(const Var<S>& x, std::type_identity_t<S> lo, std::type_identity_t<S> hi);

// ---- matrix products and layout (ops_linalg.cpp) ------------------------------------------
/// a b, [n x k] times [k x m].   da = g b^T, db = a^T g
template <class S>
Var<S> matmul(const Var<S>& a, const Var<S>& b);
/// a^T.
template <class S>
Var<S> transpose(const Var<S>& a);
/// x W + b with b a [1 x m] row broadcast over the batch (one entry instead of two).
template <class S>
Var<S> affine(const Var<S>& x, const Var<S>& w, const Var<S>& b);

// ---- reductions and normalisations (ops_reduce.cpp) ----------------------------------------
/// Which axis a reduction collapses: Rows gives [1 x cols] (e.g. sum over a batch), Cols gives
/// [rows x 1] (e.g. sum over features).
enum class Axis { Rows, Cols };
/// How a per-row loss becomes one number.
enum class Reduction { Sum, Mean };

template <class S>
Var<S> sum(const Var<S>& x);  ///< sum of all elements, [1 x 1]
template <class S>
Var<S> sum(const Var<S>& x, Axis axis);  ///< see Axis
template <class S>
Var<S> mean(const Var<S>& x);  ///< mean of all elements, [1 x 1]
template <class S>
Var<S> mean(const Var<S>& x, Axis axis);  ///< see Axis
/// Row-wise log(sum(exp(x))), stable, [rows x 1].
template <class S>
Var<S> logsumexp(const Var<S>& x);
/// Row-wise softmax: each row becomes a distribution.   d: y * (g - sum(g * y))
template <class S>
Var<S> softmax(const Var<S>& x);
/// Row-wise log-softmax, stable for logits of any magnitude.   d: g - softmax * sum(g)
template <class S>
Var<S> log_softmax(const Var<S>& x);
/// Fused softmax + cross-entropy with integer class targets, one per row of logits [N x K].
/// Rows whose target equals ignore_index contribute no loss and no gradient; Mean divides by
/// the number of rows not ignored. Stable for logits of magnitude 1e4 in float32. [1 x 1]
template <class S>
Var<S> softmax_cross_entropy(const Var<S>& logits, std::span<const std::int32_t> targets,
                             Reduction reduction = Reduction::Mean, std::int32_t ignore_index = -100);
/// Mean squared error, mean over all elements of (pred - target)^2. [1 x 1]
template <class S>
Var<S> mse_loss(const Var<S>& pred, const Var<S>& target);
/// y_i = x[i, index_i], [rows x 1] (picks one entry per row; used by NLL losses).
template <class S>
Var<S> pick(const Var<S>& x, std::span<const std::int32_t> index);

// ---- shape and indexing (ops_shape.cpp) ------------------------------------------------------
/// Stacks tensors side by side ([r x c1], [r x c2], ... -> [r x sum c]).
template <class S>
Var<S> concat_cols(std::span<const Var<S>> parts);
/// Stacks tensors on top of each other ([r1 x c], [r2 x c], ... -> [sum r x c]).
template <class S>
Var<S> concat_rows(std::span<const Var<S>> parts);
/// Columns [begin, begin + count).
template <class S>
Var<S> slice_cols(const Var<S>& x, Index begin, Index count);
/// Rows [begin, begin + count).
template <class S>
Var<S> slice_rows(const Var<S>& x, Index begin, Index count);
/// Embedding lookup: row i of the result is table row index[i]. Backward scatter-adds.
template <class S>
Var<S> gather_rows(const Var<S>& table, std::span<const std::int32_t> index);
/// Same elements in row-major order, new shape.
template <class S>
Var<S> reshape(const Var<S>& x, Index rows, Index cols);
/// Elementwise x * mask with a constant mask (dropout, padding masks); mask broadcasts like mul.
template <class S>
Var<S> mask_mul(const Var<S>& x, const std::type_identity_t<Matrix<S>>& mask);
/// where(cond, a, b): a where cond != 0, else b. cond is a constant of the output shape.
template <class S>
Var<S> where(const std::type_identity_t<Matrix<S>>& cond, const Var<S>& a, const Var<S>& b);

// ---- Fused recurrences (ops_recurrent.cpp) ---------------------------------------------------
// A whole recurrent layer over T steps as ONE tape entry with a hand-written backward: one GEMM
// h_{t-1} W per step plus one fused pass of gate math, the weight gradient accumulated over many
// steps in large GEMMs. Same values and gradients as the op-by-op recurrence (matmul, add, tanh,
// sigmoid, slice_cols, mul), which stays available. B = h0.rows(), T = xp.rows() / B; sequences
// are stacked time-major: rows t*B .. t*B+B-1 of xp and of the output belong to step t.

/// Whole-sequence tanh RNN. xp [T*B x H]: the input projections x_t U + b of all steps stacked
/// time-major (rows t*B .. t*B+B-1 are step t); h0 [B x H]; w [H x H].
/// Returns [T*B x H]: row block t is h_t = tanh(xp_t + h_{t-1} w).
template <class S>
Var<S> rnn_sequence(const Var<S>& xp, const Var<S>& h0, const Var<S>& w);
/// Whole-sequence LSTM, gates i, f, g, o in column blocks as nn::LstmCell:
/// a = xp_t + h_{t-1} w_hh, i f o = sigmoid, g = tanh, c_t = f c_{t-1} + i g, h_t = o tanh(c_t).
/// xp [T*B x 4H] = x_t W_ih + b of all steps, time-major; h0, c0 [B x H]; w_hh [H x 4H].
/// Returns [T*B x 2H]: columns [0,H) hold h_t, columns [H,2H) hold c_t.
template <class S>
Var<S> lstm_sequence(const Var<S>& xp, const Var<S>& h0, const Var<S>& c0, const Var<S>& w_hh);
/// rnn_sequence on token inputs: the input projection of step t, batch row r is
/// table.row(ids[t*B + r]) (for an embedding E, table = affine(E, U, b), [K x H]). Same values
/// and gradients as rnn_sequence(gather_rows(table, ids), h0, w), without the [T*B x H]
/// gathered input and its gradient. ids: T*B token ids in [0, K); h0 [B x H]; w [H x H].
template <class S>
Var<S> rnn_sequence_gather(const Var<S>& table, std::span<const std::int32_t> ids, const Var<S>& h0, const Var<S>& w);
/// The hidden and cell states of a fused LSTM over T steps, [T*B x H] each, time-major.
template <class S>
struct LstmStates {
  Var<S> h;
  Var<S> c;
};
/// lstm_sequence on token inputs, for long sequences: the input projection of step t, batch row
/// r is table.row(ids[t*B + r]) (for an embedding E, table = affine(E, W_ih, b), [K x 4H]), and
/// h and c come out as two [T*B x H] outputs. Same values and gradients as
/// lstm_sequence(gather_rows(table, ids), h0, c0, w_hh) split into its h and c columns, without
/// the [T*B x 4H] gathered input, its gradient or the column slices (docs/memory.md).
/// ids: T*B token ids in [0, K); h0, c0 [B x H]; w_hh [H x 4H].
template <class S>
LstmStates<S> lstm_sequence_gather(const Var<S>& table, std::span<const std::int32_t> ids, const Var<S>& h0,
                                   const Var<S>& c0, const Var<S>& w_hh);
/// Whole-sequence GRU with PyTorch's equations, gates r, z, n in column blocks as nn::GruCell:
/// gh = h_{t-1} w_hh + b_hh, r z = sigmoid(xp_t + gh) on blocks [0,2H), n = tanh(xp_n + r gh_n),
/// h_t = (1 - z) n + z h_{t-1}. xp [T*B x 3H] = x_t W_ih + b_ih of all steps, time-major;
/// h0 [B x H]; w_hh [H x 3H]; b_hh [1 x 3H] (kept apart: b_hn sits inside r's product).
/// Returns [T*B x H]: row block t is h_t.
template <class S>
Var<S> gru_sequence(const Var<S>& xp, const Var<S>& h0, const Var<S>& w_hh, const Var<S>& b_hh);
/// gru_sequence on token inputs: the input projection of step t, batch row r is
/// table.row(ids[t*B + r]) (for an embedding E, table = affine(E, W_ih, b_ih), [K x 3H]). Same
/// values and gradients as gru_sequence(gather_rows(table, ids), h0, w_hh, b_hh), without the
/// [T*B x 3H] gathered input and its gradient. ids: T*B token ids in [0, K); h0 [B x H].
template <class S>
Var<S> gru_sequence_gather(const Var<S>& table, std::span<const std::int32_t> ids, const Var<S>& h0, const Var<S>& w_hh,
                           const Var<S>& b_hh);

/// A copy of x's value with no history: gradients stop here (stop-gradient).
template <class S>
Var<S> detach(const Var<S>& x) {
  return x.tape().constant(x.value());
}

template <class S>
Var<S> concat_cols(std::initializer_list<Var<S>> parts) {
  return concat_cols<S>(std::span<const Var<S>>(parts.begin(), parts.size()));
}
template <class S>
Var<S> concat_rows(std::initializer_list<Var<S>> parts) {
  return concat_rows<S>(std::span<const Var<S>>(parts.begin(), parts.size()));
}

// ---- operators -------------------------------------------------------------------------------
template <class S>
Var<S> operator+(const Var<S>& a, const Var<S>& b) {
  return add(a, b);
}
template <class S>
Var<S> operator-(const Var<S>& a, const Var<S>& b) {
  return sub(a, b);
}
template <class S>
Var<S> operator*(const Var<S>& a, const Var<S>& b) {
  return mul(a, b);
}
template <class S>
Var<S> operator/(const Var<S>& a, const Var<S>& b) {
  return div(a, b);
}
template <class S>
Var<S> operator-(const Var<S>& x) {
  return neg(x);
}
template <class S>
Var<S> operator+(const Var<S>& x, std::type_identity_t<S> c) {
  return add_scalar(x, c);
}
template <class S>
Var<S> operator+(std::type_identity_t<S> c, const Var<S>& x) {
  return add_scalar(x, c);
}
template <class S>
Var<S> operator-(const Var<S>& x, std::type_identity_t<S> c) {
  return add_scalar(x, -c);
}
template <class S>
Var<S> operator-(std::type_identity_t<S> c, const Var<S>& x) {
  return add_scalar(neg(x), c);
}
template <class S>
Var<S> operator*(const Var<S>& x, std::type_identity_t<S> c) {
  return mul_scalar(x, c);
}
template <class S>
Var<S> operator*(std::type_identity_t<S> c, const Var<S>& x) {
  return mul_scalar(x, c);
}
template <class S>
Var<S> operator/(const Var<S>& x, std::type_identity_t<S> c) {
  return mul_scalar(x, S(1) / c);
}

}  // namespace tapegrad
