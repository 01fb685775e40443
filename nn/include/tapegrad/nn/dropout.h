// Dropout, variational dropout and zoneout for any Var, inside any cell. Each is ordinary ops
// with the mask entering as a constant (mask_mul, where, scaling), so gradients are exact and
// need no op of their own. Masks come from a Generator (random.h) keyed by (stream, time step):
// a step that is recorded again (truncated BPTT re-records steps) draws the same mask.
//
//   dropout              each unit is zeroed with probability p, the rest scaled by 1/(1-p)
//                        (inverted dropout), a fresh mask per time step.
//   variational_dropout  the same, but one mask per sequence reused at every time step
//                        (Gal & Ghahramani 2016), for recurrent states and inputs.
//   zoneout              h_t = m*h_{t-1} + (1-m)*h_new, m ~ Bernoulli(p) per unit and step
//                        (Krueger et al. 2017); evaluation: h_t = p*h_{t-1} + (1-p)*h_new.
//
// In evaluation (training = false) dropout is the identity and zoneout the expectation above.
#pragma once

#include <cstdint>
#include <optional>

#include <tapegrad/nn/random.h>
#include <tapegrad/ops.h>

namespace tapegrad::nn {

/// What a dropout or zoneout site draws. Set these with designated initializers:
/// `nn::dropout(x, gen, {.p = 0.3, .stream = 1, .training = training})`.
struct DropoutOptions {
  double p = 0.0;            ///< Dropout: probability of zeroing a unit; zoneout: of keeping h_{t-1}. In [0, 1).
  std::uint64_t stream = 0;  ///< The site's id: sites with different ids draw independent masks.
  bool training = true;      ///< false: evaluation (no mask drawn).
  /// The mask's time step. Unset: the tape's time step (the tape.time_step(t) scope in force,
  /// opened by run_tbptt, unroll and forward_sequence); ValueError outside any scope.
  std::optional<std::int64_t> step = std::nullopt;
  /// Where x's first row sits in the batch the masks are drawn for: row i of x gets the mask
  /// of row first_row + i. A process holding rows [r, r + b) of a larger batch (data-parallel
  /// training) passes r and draws exactly those rows' masks of the whole batch.
  Index first_row = 0;
};

/// The inverted-dropout mask of draw `key`: element (i, j) is 0 when
/// gen.uniform(key, (first_row + i) * cols + j) < p, else 1/(1-p). ValueError unless p is in
/// [0, 1) and first_row >= 0.
template <class S>
Matrix<S> dropout_mask(const Generator& gen, const DrawKey& key, Index rows, Index cols, double p, Index first_row = 0);
/// The zoneout mask of draw `key`: element (i, j) is 1 (keep h_{t-1}) when
/// gen.uniform(key, (first_row + i) * cols + j) < p, else 0. ValueError as dropout_mask.
template <class S>
Matrix<S> zoneout_mask(const Generator& gen, const DrawKey& key, Index rows, Index cols, double p, Index first_row = 0);

/// x times dropout_mask(gen, {o.stream, step}, ...) in training; x itself in evaluation or for p = 0.
template <class S>
Var<S> dropout(const Var<S>& x, const Generator& gen, const DropoutOptions& o);

/// A whole time-major sequence x_all [T*B x n] (sequence.h): row block t gets the mask of step
/// first + t, first = o.step or the tape's time step; the same masks as dropout() at each step.
template <class S>
Var<S> dropout_sequence(const Var<S>& x_all, Index batch, const Generator& gen, const DropoutOptions& o);

/// dropout with the per-sequence mask of draw {o.stream, kWholeSequence}: the same at every step
/// until gen.next_sequence(). o.step must stay unset (ValueError).
template <class S>
Var<S> variational_dropout(const Var<S>& x, const Generator& gen, const DropoutOptions& o);

/// Zoneout of a state: training where(m, h_prev, h_new) with m = zoneout_mask(gen, {o.stream,
/// step}, ...); evaluation p * h_prev + (1-p) * h_new; h_new itself for p = 0. ShapeError unless
/// h_prev and h_new have one shape.
template <class S>
Var<S> zoneout(const Var<S>& h_prev, const Var<S>& h_new, const Generator& gen, const DropoutOptions& o);

}  // namespace tapegrad::nn
