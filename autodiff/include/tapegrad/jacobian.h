// Jacobian probes: the exact Jacobian between two recorded nodes (e.g. dh_t/dh_{t-1}), for
// studying vanishing and exploding gradients. One vector-Jacobian sweep per element of y,
// over the tape window between x and y only.
#pragma once

#include <tapegrad/tape.h>
#include <tapegrad/tensor.h>

namespace tapegrad {

/// The Jacobian dy/dx of one recorded node with respect to an earlier one, and its norms.
struct JacobianResult {
  /// [y.size() x x.size()]: J(i, j) = d vec(y)_i / d vec(x)_j, where vec() flattens a tensor
  /// in row-major order (element (r, c) of an R x C tensor is vec index r * C + c).
  Matrix<double> J;
  double spectral_norm = 0.0;   ///< Largest singular value of J (the operator 2-norm).
  double frobenius_norm = 0.0;  ///< sqrt of the sum of squares of J's entries.
};

/// The exact Jacobian of node y with respect to node x (x recorded before y, on one tape).
///
/// Row i is vec(dL/dx) for the seed dL/dy = e_i, computed by one sweep
/// `backward(y, e_i, {.from = first_entry_after(x), .accumulate_parameters = false,
/// .run_hooks = false})`; every path from x to y is summed, nothing before x is visited.
/// Parameter::grad is left untouched and hooks do not run, but Var::grad() of the nodes in
/// the window afterwards reflects the last probe sweep. The spectral norm uses Eigen's
/// JacobiSVD. Throws TapeError if x or y is not a live node of one tape, if x was not recorded
/// before y, or if the window was released; ValueError if x does not require a gradient
/// (a constant or detached value: no gradient can flow into it).
template <class S>
JacobianResult node_jacobian(const Var<S>& y, const Var<S>& x);

/// The spectral (largest singular value) and Frobenius norms of a matrix, as a JacobianResult
/// holding a copy of it (used to compare probes with closed forms).
JacobianResult jacobian_norms(Matrix<double> j);

}  // namespace tapegrad
