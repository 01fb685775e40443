// Independent LSTM and GRU forward and backward passes in plain Eigen (no tape), written
// from the equations in docs/nn-models.md, for a sequence of T steps with the loss
// L = sum_t <v_t, h_t>. The tape's cells are checked against these to 1e-10 in float64.
#pragma once

#include <random>
#include <vector>

#include <tapegrad/tensor.h>

namespace tapegrad::test {

using Mat = Matrix<double>;

/// Gradients of L with respect to everything the sequence read.
struct ReferenceGrads {
  std::vector<Mat> params;  ///< Same order as the cell's named_parameters().
  std::vector<Mat> xs;      ///< dL/dx_t.
  Mat h0;                   ///< dL/dh_0.
  Mat c0;                   ///< dL/dc_0 (LSTM only).
};

/// Forward values and gradients of one sequence.
struct ReferenceRun {
  std::vector<Mat> hs;  ///< h_1..h_T.
  std::vector<Mat> cs;  ///< c_1..c_T (LSTM only).
  double loss = 0;
  ReferenceGrads grads;
};

/// A random problem for a reference: parameters of the given shapes (N(0, 0.25), so the gates
/// stay away from saturation), T steps of inputs x_t [B x in] and loss weights v_t [B x H],
/// and initial states h0, c0 (N(0, 0.25)).
struct ReferenceProblem {
  std::vector<Mat> params, xs, vs;
  Mat h0, c0;
};
ReferenceProblem reference_problem(std::mt19937_64& rng, const std::vector<Shape>& param_shapes, Index batch,
                                   Index input, Index hidden, std::size_t steps);

/// LSTM with params {W_ih [in x 4H], W_hh [H x 4H], b [1 x 4H]}, gates i, f, g, o.
ReferenceRun lstm_reference(const std::vector<Mat>& params, const std::vector<Mat>& xs, const Mat& h0, const Mat& c0,
                            const std::vector<Mat>& vs);

/// GRU with params {W_ih [in x 3H], W_hh [H x 3H], b_ih, b_hh [1 x 3H]}, gates r, z, n.
ReferenceRun gru_reference(const std::vector<Mat>& params, const std::vector<Mat>& xs, const Mat& h0,
                           const std::vector<Mat>& vs);

}  // namespace tapegrad::test
