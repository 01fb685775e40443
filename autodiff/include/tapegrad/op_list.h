// The list of every op, one row each, grouped by the file that defines it (ops_<family>.cpp).
// A row is X(name, return type, parameters) with S the scalar type. The list is the one place an
// op is named: ops.h declares every row, each ops_<family>.cpp instantiates its family for float
// and double, the op table's coverage test requires a test row for every name, and every row of
// TAPEGRAD_UNARY_OPS is also checked on a [1 x 1] input (the fixed-size path of ops_unary.cpp).
// So adding an op is its row here, its body in ops_<family>.cpp and its row in the op table
// (tests/autodiff/op_cases.cpp). Comments are /* */ because a // comment would swallow the
// line continuation.
#pragma once

// A default argument: kept in the declaration, dropped in the explicit instantiations
// (instantiate.h redefines it), where C++ forbids default arguments.
#define TAPEGRAD_OP_DEFAULT(value) = value

// ---- binary, with broadcasting (ops_binary.cpp) ------------------------------------------------
// Shapes broadcast per dimension when equal or 1: [B x H] with [1 x H] (a bias row), [B x 1] (a
// column) or [1 x 1]. The gradient of a broadcast input is summed back to its shape.
#define TAPEGRAD_BINARY_OPS(X, S)                              \
  /* a + b.                       d/da = 1, d/db = 1 */        \
  X(add, Var<S>, (const Var<S>& a, const Var<S>& b))           \
  /* a - b.                       d/da = 1, d/db = -1 */       \
  X(sub, Var<S>, (const Var<S>& a, const Var<S>& b))           \
  /* a * b (elementwise).         d/da = b, d/db = a */        \
  X(mul, Var<S>, (const Var<S>& a, const Var<S>& b))           \
  /* a / b (elementwise).         d/da = 1/b, d/db = -a/b^2 */ \
  X(div, Var<S>, (const Var<S>& a, const Var<S>& b))           \
  /* max(a, b) elementwise; ties send the gradient to a. */    \
  X(maximum, Var<S>, (const Var<S>& a, const Var<S>& b))       \
  /* min(a, b) elementwise; ties send the gradient to a. */    \
  X(minimum, Var<S>, (const Var<S>& a, const Var<S>& b))

// ---- n-ary (ops_nary.cpp) -----------------------------------------------------------------------
#define TAPEGRAD_NARY_OPS(X, S)                                                  \
  /* The sum of one or more same-shaped terms as one entry (e.g. the losses of a \
     window).                     d/d(term_i) = 1 */                             \
  X(add_n, Var<S>, (std::span<const Var<S>> terms))

// ---- elementwise, one input (ops_unary.cpp) ----------------------------------------------------
#define TAPEGRAD_UNARY_OPS(X, S)                                               \
  /* x + c.                       d/dx = 1 */                                  \
  X(add_scalar, Var<S>, (const Var<S>& x, std::type_identity_t<S> c))          \
  /* c * x.                       d/dx = c */                                  \
  X(mul_scalar, Var<S>, (const Var<S>& x, std::type_identity_t<S> c))          \
  /* -x.                          d/dx = -1 */                                 \
  X(neg, Var<S>, (const Var<S>& x))                                            \
  /* x^p (real p; x >= 0 unless p is a whole number).   d/dx = p x^(p-1) */    \
  X(pow, Var<S>, (const Var<S>& x, std::type_identity_t<S> p))                 \
  /* tanh x.                      d = 1 - y^2 */                               \
  X(tanh, Var<S>, (const Var<S>& x))                                           \
  /* logistic 1/(1+e^-x).         d = y (1 - y) */                             \
  X(sigmoid, Var<S>, (const Var<S>& x))                                        \
  /* max(x, 0).                   d = [x > 0] */                               \
  X(relu, Var<S>, (const Var<S>& x))                                           \
  /* x if x > 0, else slope*x.    d = 1 or slope */                            \
  X(leaky_relu, Var<S>, (const Var<S>& x, std::type_identity_t<S> slope))      \
  /* e^x.                         d = y */                                     \
  X(exp, Var<S>, (const Var<S>& x))                                            \
  /* natural log.                 d = 1/x */                                   \
  X(log, Var<S>, (const Var<S>& x))                                            \
  /* sqrt x.                      d = 1/(2y) */                                \
  X(sqrt, Var<S>, (const Var<S>& x))                                           \
  /* x^2.                         d = 2x */                                    \
  X(square, Var<S>, (const Var<S>& x))                                         \
  /* |x|.                         d = sign(x) */                               \
  X(abs, Var<S>, (const Var<S>& x))                                            \
  /* 1/x.                         d = -y^2 */                                  \
  X(reciprocal, Var<S>, (const Var<S>& x))                                     \
  /* log(1+e^x), stable.          d = sigmoid(x) */                            \
  X(softplus, Var<S>, (const Var<S>& x))                                       \
  /* -softplus(-x), stable.       d = 1 - sigmoid(x) */                        \
  X(log_sigmoid, Var<S>, (const Var<S>& x))                                    \
  /* sin x.                       d = cos x */                                 \
  X(sin, Var<S>, (const Var<S>& x))                                            \
  /* cos x.                       d = -sin x */                                \
  X(cos, Var<S>, (const Var<S>& x))                                            \
  /* clamp(x, -1, 1).             d = [|x| < 1] */                             \
  X(hardtanh, Var<S>, (const Var<S>& x))                                       \
  /* min(max(x, lo), hi).         d = 1 strictly inside (lo, hi), 0 outside */ \
  X(clamp, Var<S>, (const Var<S>& x, std::type_identity_t<S> lo, std::type_identity_t<S> hi))

// ---- matrix products and layout (ops_linalg.cpp) -----------------------------------------------
#define TAPEGRAD_LINALG_OPS(X, S)                                                   \
  /* a b, [n x k] times [k x m].  da = g b^T, db = a^T g */                         \
  X(matmul, Var<S>, (const Var<S>& a, const Var<S>& b))                             \
  /* a^T. */                                                                        \
  X(transpose, Var<S>, (const Var<S>& a))                                           \
  /* x W + b with b a [1 x m] row broadcast over the batch (one entry, not two). */ \
  X(affine, Var<S>, (const Var<S>& x, const Var<S>& w, const Var<S>& b))

// ---- reductions, normalisations and losses (ops_reduce.cpp) ------------------------------------
#define TAPEGRAD_REDUCE_OPS(X, S)                                                                                    \
  /* Sum of all elements, [1 x 1]. */                                                                                \
  X(sum, Var<S>, (const Var<S>& x))                                                                                  \
  /* Sum over an axis (see Axis). */                                                                                 \
  X(sum, Var<S>, (const Var<S>& x, Axis axis))                                                                       \
  /* Mean of all elements, [1 x 1]. */                                                                               \
  X(mean, Var<S>, (const Var<S>& x))                                                                                 \
  /* Mean over an axis (see Axis). */                                                                                \
  X(mean, Var<S>, (const Var<S>& x, Axis axis))                                                                      \
  /* Row-wise log(sum(exp(x))), stable, [rows x 1]. */                                                               \
  X(logsumexp, Var<S>, (const Var<S>& x))                                                                            \
  /* Row-wise softmax: each row becomes a distribution.   d: y * (g - sum(g * y)) */                                 \
  X(softmax, Var<S>, (const Var<S>& x))                                                                              \
  /* Row-wise log-softmax, stable for logits of any magnitude.   d: g - softmax * sum(g) */                          \
  X(log_softmax, Var<S>, (const Var<S>& x))                                                                          \
  /* Fused softmax + cross-entropy with integer class targets, one per row of logits [N x K].                        \
     Rows whose target equals ignore_index contribute no loss and no gradient; Mean divides by                       \
     the number of rows not ignored. Stable for logits of magnitude 1e4 in float32. [1 x 1], or                      \
     with Reduction::None the per-row losses [N x 1] (0 in ignored rows). */                                         \
  X(softmax_cross_entropy, Var<S>,                                                                                   \
    (const Var<S>& logits, std::span<const std::int32_t> targets,                                                    \
     Reduction reduction TAPEGRAD_OP_DEFAULT(Reduction::Mean), std::int32_t ignore_index TAPEGRAD_OP_DEFAULT(-100))) \
  /* Mean squared error: the mean over all elements of (pred - target)^2. [1 x 1] */                                 \
  X(mse_loss, Var<S>, (const Var<S>& pred, const Var<S>& target))                                                    \
  /* y_i = x[i, index_i], [rows x 1] (one entry per row; the NLL losses use it). */                                  \
  X(pick, Var<S>, (const Var<S>& x, std::span<const std::int32_t> index))

// ---- shape and indexing (ops_shape.cpp) --------------------------------------------------------
#define TAPEGRAD_SHAPE_OPS(X, S)                                                            \
  /* Side by side: [r x c1], [r x c2], ... -> [r x sum c]. */                               \
  X(concat_cols, Var<S>, (std::span<const Var<S>> parts))                                   \
  /* On top of each other: [r1 x c], [r2 x c], ... -> [sum r x c]. */                       \
  X(concat_rows, Var<S>, (std::span<const Var<S>> parts))                                   \
  /* Columns [begin, begin + count). */                                                     \
  X(slice_cols, Var<S>, (const Var<S>& x, Index begin, Index count))                        \
  /* Rows [begin, begin + count). */                                                        \
  X(slice_rows, Var<S>, (const Var<S>& x, Index begin, Index count))                        \
  /* Embedding lookup: row i of the result is table row index[i]. Backward scatter-adds. */ \
  X(gather_rows, Var<S>, (const Var<S>& table, std::span<const std::int32_t> index))        \
  /* The same elements in row-major order, new shape. */                                    \
  X(reshape, Var<S>, (const Var<S>& x, Index rows, Index cols))                             \
  /* x * mask with a constant mask (dropout, padding masks); mask broadcasts like mul. */   \
  X(mask_mul, Var<S>, (const Var<S>& x, const std::type_identity_t<Matrix<S>>& mask))       \
  /* a where cond != 0, else b; cond is a constant of the output shape. */                  \
  X(where, Var<S>, (const std::type_identity_t<Matrix<S>>& cond, const Var<S>& a, const Var<S>& b))

// ---- fused recurrences (ops_recurrent.cpp) -----------------------------------------------------
// A whole recurrent layer over T steps as ONE tape entry with a hand-written backward: one GEMM
// h_{t-1} W per step plus one fused pass of gate math, the weight gradient accumulated over many
// steps in large GEMMs. Same values and gradients as the op-by-op recurrence (matmul, add, tanh,
// sigmoid, slice_cols, mul), which stays available. B = h0.rows(), T = xp.rows() / B; sequences
// are stacked time-major: rows t*B .. t*B+B-1 of xp and of every output belong to step t.
#define TAPEGRAD_RECURRENT_OPS(X, S)                                                                          \
  /* tanh RNN. xp [T*B x H]: the input projections x_t U + b of all steps; h0 [B x H]; w [H x H].             \
     Returns h [T*B x H]: row block t is h_t = tanh(xp_t + h_{t-1} w). */                                     \
  X(rnn_sequence, Var<S>, (const Var<S>& xp, const Var<S>& h0, const Var<S>& w))                              \
  /* LSTM, gates i, f, g, o in column blocks as nn::LstmCell: a = xp_t + h_{t-1} w_hh,                        \
     i f o = sigmoid, g = tanh, c_t = f c_{t-1} + i g, h_t = o tanh(c_t).                                     \
     xp [T*B x 4H] = x_t W_ih + b of all steps; h0, c0 [B x H]; w_hh [H x 4H].                                \
     Returns h and c, [T*B x H] each. */                                                                      \
  X(lstm_sequence, LstmStates<S>, (const Var<S>& xp, const Var<S>& h0, const Var<S>& c0, const Var<S>& w_hh)) \
  /* GRU with PyTorch's equations, gates r, z, n in column blocks as nn::GruCell:                             \
     gh = h_{t-1} w_hh + b_hh, r z = sigmoid(xp_t + gh) on blocks [0,2H), n = tanh(xp_n + r gh_n),            \
     h_t = (1 - z) n + z h_{t-1}. xp [T*B x 3H] = x_t W_ih + b_ih of all steps; h0 [B x H];                   \
     w_hh [H x 3H]; b_hh [1 x 3H] (kept apart: b_hn sits inside r's product). Returns h [T*B x H]. */         \
  X(gru_sequence, Var<S>, (const Var<S>& xp, const Var<S>& h0, const Var<S>& w_hh, const Var<S>& b_hh))

// ---- fused recurrences on token inputs (ops_recurrent_gather.cpp) ------------------------------
// The input projection of step t, batch row r is table.row(ids[t*B + r]) (for an embedding E,
// table = affine(E, W_ih, b), [K x G]). Same values and gradients as the op above applied to
// gather_rows(table, ids), without the [T*B x G] gathered input and its gradient
// (docs/memory.md). ids: T*B token ids in [0, K), time-major; h0 (and c0) [B x H].
#define TAPEGRAD_RECURRENT_GATHER_OPS(X, S)                                                                           \
  X(rnn_sequence_gather, Var<S>,                                                                                      \
    (const Var<S>& table, std::span<const std::int32_t> ids, const Var<S>& h0, const Var<S>& w))                      \
  X(lstm_sequence_gather, LstmStates<S>,                                                                              \
    (const Var<S>& table, std::span<const std::int32_t> ids, const Var<S>& h0, const Var<S>& c0, const Var<S>& w_hh)) \
  X(gru_sequence_gather, Var<S>,                                                                                      \
    (const Var<S>& table, std::span<const std::int32_t> ids, const Var<S>& h0, const Var<S>& w_hh,                    \
     const Var<S>& b_hh))

// ---- template ops (their own headers) -----------------------------------------------------------
// An op that is a function template over the caller's expression has no fixed signature, so it
// cannot be a row above (no declaration in ops.h, no instantiation): its header declares and
// defines it. This list names it for the op table's coverage test, which requires rows for it
// as for every op above. X(name).
#define TAPEGRAD_TEMPLATE_OPS(X)                                                            \
  /* pointwise.h: a user's elementwise expression over same-shaped inputs as one entry, its \
     backward derived by forward-mode dual numbers. */                                      \
  X(pointwise)

/// Every op: X(name, return type, parameters) for each row above.
#define TAPEGRAD_OPS(X, S)     \
  TAPEGRAD_BINARY_OPS(X, S)    \
  TAPEGRAD_NARY_OPS(X, S)      \
  TAPEGRAD_UNARY_OPS(X, S)     \
  TAPEGRAD_LINALG_OPS(X, S)    \
  TAPEGRAD_REDUCE_OPS(X, S)    \
  TAPEGRAD_SHAPE_OPS(X, S)     \
  TAPEGRAD_RECURRENT_OPS(X, S) \
  TAPEGRAD_RECURRENT_GATHER_OPS(X, S)
