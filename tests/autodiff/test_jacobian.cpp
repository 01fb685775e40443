// Jacobian probes against closed forms: for h_t = f(x U + h_{t-1} W + b) (row layout),
// dh_t/dh_{t-1} = diag(f'(z_t)) W^T, mapping vec(h_{t-1}) to vec(h_t) (row-major vec).
#include <gtest/gtest.h>
#include <tapegrad/jacobian.h>
#include <tapegrad/tapegrad.h>

#include <Eigen/SVD>
#include <random>

using namespace tapegrad;
using M = Matrix<double>;
using Eigen::MatrixXd;

namespace {

MatrixXd random_matrix(int r, int c, std::mt19937& rng, double scale) {
  std::uniform_real_distribution<double> u(-scale, scale);
  return MatrixXd::NullaryExpr(r, c, [&] { return u(rng); });
}

double spectral(const MatrixXd& m) {
  Eigen::BDCSVD<MatrixXd> svd(m);  // a different SVD algorithm from the one the probe uses
  return svd.singularValues()(0);
}

struct Cell {
  Parameter<double> U, W, b;
  bool logistic = false;
  Var<double> step(Tape<double>& tape, const Var<double>& x, const Var<double>& h) {
    auto z = add(add(matmul(x, tape.leaf(U)), matmul(h, tape.leaf(W))), tape.leaf(b));
    return logistic ? sigmoid(z) : tanh(z);
  }
};

Cell make_cell(int in, int H, unsigned seed, double w_scale) {
  std::mt19937 rng(seed);
  return Cell{Parameter<double>(M(random_matrix(in, H, rng, 0.7)), "U"),
              Parameter<double>(M(random_matrix(H, H, rng, w_scale)), "W"),
              Parameter<double>(M(random_matrix(1, H, rng, 0.3)), "b")};
}

// diag(d) W^T for one batch row; block-diagonal over rows for B > 1 (row-major vec order).
MatrixXd closed_form(const M& deriv, const M& w) {
  const Index B = deriv.rows();
  const Index H = deriv.cols();
  MatrixXd j = MatrixXd::Zero(B * H, B * H);
  for (Index r = 0; r < B; ++r) {
    j.block(r * H, r * H, H, H) = deriv.row(r).transpose().asDiagonal() * MatrixXd(w).transpose();
  }
  return j;
}

}  // namespace

TEST(Jacobian, TanhStepIsDiagOneMinusHSquaredTimesWTransposed) {
  const int in = 3, H = 5;
  Cell cell = make_cell(in, H, 7, 0.9);
  std::mt19937 rng(8);
  Tape<double> tape;
  auto h0 = tape.variable(M(random_matrix(1, H, rng, 0.5)));
  auto h1 = cell.step(tape, tape.constant(M(random_matrix(1, in, rng, 1.0))), h0);
  auto h2 = cell.step(tape, tape.constant(M(random_matrix(1, in, rng, 1.0))), h1);
  const M d2 = (1.0 - h2.value().array().square()).matrix();
  const MatrixXd expected = closed_form(d2, cell.W.value);

  const JacobianResult r = node_jacobian(h2, h1);
  ASSERT_EQ(r.J.rows(), H);
  ASSERT_EQ(r.J.cols(), H);
  EXPECT_LE((r.J - expected).cwiseAbs().maxCoeff(), 1e-14);
  EXPECT_NEAR(r.spectral_norm, spectral(expected), 1e-12);
  EXPECT_NEAR(r.frobenius_norm, std::sqrt(expected.array().square().sum()), 1e-12);
  // |1 - h^2| <= 1, so ||dh_t/dh_{t-1}||_2 <= ||W||_2.
  EXPECT_LE(r.spectral_norm, spectral(MatrixXd(cell.W.value)) + 1e-12);

  // Two steps: the chain rule, dh2/dh0 = (dh2/dh1)(dh1/dh0).
  const M d1 = (1.0 - h1.value().array().square()).matrix();
  const JacobianResult r20 = node_jacobian(h2, h0);
  EXPECT_LE((r20.J - expected * closed_form(d1, cell.W.value)).cwiseAbs().maxCoeff(), 1e-14);
}

TEST(Jacobian, BatchRowsGiveABlockDiagonalInRowMajorVecOrder) {
  const int in = 2, B = 3, H = 4;
  Cell cell = make_cell(in, H, 9, 1.2);
  std::mt19937 rng(10);
  Tape<double> tape;
  auto h0 = tape.variable(M(random_matrix(B, H, rng, 0.5)));
  auto h1 = cell.step(tape, tape.constant(M(random_matrix(B, in, rng, 1.0))), h0);
  const M d1 = (1.0 - h1.value().array().square()).matrix();
  const JacobianResult r = node_jacobian(h1, h0);
  ASSERT_EQ(r.J.rows(), B * H);
  EXPECT_LE((r.J - closed_form(d1, cell.W.value)).cwiseAbs().maxCoeff(), 1e-14);
}

TEST(Jacobian, LogisticStepIsBoundedByAQuarterOfW) {
  const int in = 3, H = 6;
  Cell cell = make_cell(in, H, 11, 2.0);  // a large W: the bound is the interesting part
  cell.logistic = true;
  std::mt19937 rng(12);
  Tape<double> tape;
  auto h0 = tape.variable(M(random_matrix(1, H, rng, 0.5)));
  auto h1 = cell.step(tape, tape.constant(M(random_matrix(1, in, rng, 1.0))), h0);
  const M d1 = (h1.value().array() * (1.0 - h1.value().array())).matrix();  // sigma' = s (1 - s)
  const JacobianResult r = node_jacobian(h1, h0);
  const MatrixXd expected = closed_form(d1, cell.W.value);
  EXPECT_LE((r.J - expected).cwiseAbs().maxCoeff(), 1e-14);
  EXPECT_NEAR(r.spectral_norm, spectral(expected), 1e-12);
  EXPECT_LE(r.spectral_norm, spectral(MatrixXd(cell.W.value)) / 4 + 1e-12);
}

TEST(Jacobian, ProbeLeavesParameterGradientsAndHooksAlone) {
  const int in = 2, H = 3;
  Cell cell = make_cell(in, H, 13, 0.8);
  std::mt19937 rng(14);
  cell.W.grad = M(random_matrix(H, H, rng, 1.0));  // pretend an earlier backward left these
  const M w_grad_before = cell.W.grad;
  const M u_grad_before = cell.U.grad;
  Tape<double> tape;
  auto h0 = tape.variable(M(random_matrix(1, H, rng, 0.5)));
  auto h1 = cell.step(tape, tape.constant(M(random_matrix(1, in, rng, 1.0))), h0);
  int hook_calls = 0;
  h1.register_hook([&](M&) { ++hook_calls; });
  auto h2 = cell.step(tape, tape.constant(M(random_matrix(1, in, rng, 1.0))), h1);
  (void)node_jacobian(h2, h1);
  (void)node_jacobian(h2, h0);
  EXPECT_EQ(cell.W.grad, w_grad_before);
  EXPECT_EQ(cell.U.grad, u_grad_before);
  EXPECT_EQ(hook_calls, 0);
}

TEST(Jacobian, Errors) {
  Tape<double> tape;
  auto x = tape.variable(M::Constant(1, 2, 0.3));
  auto k = tape.constant(M::Constant(1, 2, 0.3));
  auto y = tanh(x);
  auto yk = add(tanh(k), y);
  EXPECT_THROW((void)node_jacobian(x, y), TapeError);  // x must come first
  EXPECT_THROW((void)node_jacobian(y, y), TapeError);
  EXPECT_THROW((void)node_jacobian(yk, k), ValueError);  // no gradient flows into a constant
  EXPECT_THROW((void)node_jacobian(y, Var<double>{}), TapeError);
  Tape<double> other;
  EXPECT_THROW((void)node_jacobian(y, other.variable(M::Zero(1, 1))), TapeError);
}

TEST(JacobianNorms, DiagonalMatrix) {
  MatrixXd d = MatrixXd::Zero(3, 3);
  d.diagonal() << 3, -4, 1;
  const JacobianResult r = jacobian_norms(d);
  EXPECT_NEAR(r.spectral_norm, 4.0, 1e-14);
  EXPECT_NEAR(r.frobenius_norm, std::sqrt(26.0), 1e-14);
}
