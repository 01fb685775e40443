// Jacobian probes: one vector-Jacobian sweep per output element over the window x..y.
#include <tapegrad/jacobian.h>

#include <Eigen/SVD>

#include "instantiate.h"

namespace tapegrad {

JacobianResult jacobian_norms(Matrix<double> j) {
  JacobianResult r;
  r.J = std::move(j);
  r.frobenius_norm = r.J.norm();
  if (r.J.size() > 0) {
    // Singular values only (no U, V): they come sorted in decreasing order.
    Eigen::JacobiSVD<Eigen::MatrixXd> svd(r.J);
    r.spectral_norm = svd.singularValues()(0);
  }
  return r;
}

template <class S>
JacobianResult node_jacobian(const Var<S>& y, const Var<S>& x) {
  TAPEGRAD_CHECK(!y.empty(), TapeError, "node_jacobian: argument 'y' is an empty Var (default-constructed)");
  Tape<S>& tape = y.tape();
  tape.check(y, "node_jacobian", "y");
  tape.check(x, "node_jacobian", "x");
  TAPEGRAD_CHECK(x.id() < y.id(), TapeError,
                 "node_jacobian: x ('{}', node #{}) must be recorded before y ('{}', node #{})",
                 tape.display_name(x.id()), x.id(), tape.display_name(y.id()), y.id());
  TAPEGRAD_CHECK(tape.requires_grad(x.id()), ValueError,
                 "node_jacobian: x ('{}') does not require a gradient (a constant or detached value), so no "
                 "gradient can flow into it; record it with tape.variable() or compute it from one",
                 tape.display_name(x.id()));
  const Index m = y.value().size();
  const Index n = x.value().size();
  Matrix<double> j(m, n);

  BackwardOptions opts;
  opts.from = Mark{.entries = tape.first_entry_after(x.id())};  // nothing before x can matter
  opts.accumulate_parameters = false;                           // a probe, not a training step
  opts.run_hooks = false;                                       // hooks may clip or log
  Matrix<S> seed = Matrix<S>::Zero(y.rows(), y.cols());
  for (Index i = 0; i < m; ++i) {
    seed.data()[i] = S(1);  // row-major storage: data()[i] is vec index i
    tape.backward(y, seed, opts);
    seed.data()[i] = S(0);
    const Matrix<S>& g = tape.grad(x.id());
    j.row(i) = Eigen::Map<const Eigen::Matrix<S, 1, Eigen::Dynamic>>(g.data(), n).template cast<double>();
  }
  return jacobian_norms(std::move(j));
}

#define TAPEGRAD_INSTANTIATE_JACOBIAN(S) template JacobianResult node_jacobian(const Var<S>&, const Var<S>&);
TAPEGRAD_FOR_EACH_SCALAR(TAPEGRAD_INSTANTIATE_JACOBIAN)

}  // namespace tapegrad
