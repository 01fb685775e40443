// RnnCell with Activation::Identity, a linear RNN: h_T against the closed form
// h_T = h_0 W^T + sum_t (x_t U + b) W^(T-t), and the diagnostics' one-step Jacobian bound
// gamma * sigma_max(W) with gamma = 1, which the identity attains exactly.
#include <gtest/gtest.h>

#include <Eigen/SVD>
#include <random>
#include <vector>

#include <tapegrad/nn/diagnostics.h>
#include <tapegrad/nn/rnn_cell.h>

#include "support/test_names.h"
#include "support/test_support.h"

using Mat = tg::Matrix<double>;
using V = tg::Var<double>;

namespace {

using namespace tapegrad::testing;  // expect_near, random_matrix, ...

Mat power(const Mat& w, int k) {
  Mat p = Mat::Identity(w.rows(), w.cols());
  for (int i = 0; i < k; ++i) p = p * w;
  return p;
}

}  // namespace

TEST(LinearRnn, FinalStateIsTheClosedFormPowerSum) {
  std::mt19937_64 rng(1);
  const Index in = 2, H = 3, B = 2;
  const int T = 6;
  nn::RnnCell<double> cell({.input_size = in, .hidden_size = H, .activation = nn::Activation::Identity}, rng);
  cell.W_hh.value = 0.6 * random_matrix(H, H, rng);
  cell.b.value = random_matrix(1, H, rng);
  std::vector<Mat> xs;
  for (int t = 0; t < T; ++t) xs.push_back(random_matrix(B, in, rng));
  const Mat h0 = random_matrix(B, H, rng);

  Mat want = h0 * power(cell.W_hh.value, T);
  for (int t = 1; t <= T; ++t) {
    const Mat drive = xs[static_cast<std::size_t>(t - 1)] * cell.W_ih.value + Mat::Ones(B, 1) * cell.b.value;
    want += drive * power(cell.W_hh.value, T - t);
  }

  tg::Tape<double> tape;
  nn::State<double> s{{tape.constant(h0)}};
  for (const Mat& x : xs) s = cell.step(tape.constant(x), s);
  expect_near(s.h().value(), want, "stepped h_T", 1e-12);
  // forward_sequence: the identity has no fused op, so this is the op-by-op path.
  Mat x_all(T * B, in);
  for (int t = 0; t < T; ++t) x_all.middleRows(t * B, B) = xs[static_cast<std::size_t>(t)];
  const nn::SequenceResult<double> r = cell.forward_sequence(tape.constant(x_all), {{tape.constant(h0)}});
  expect_near(r.final_state.h().value(), want, "forward_sequence h_T", 1e-12);
}

TEST(LinearRnn, OneStepJacobianNormEqualsTheBoundWithGammaOne) {
  std::mt19937_64 rng(2);
  const Index H = 4;
  const int T = 8;
  nn::RnnCell<double> cell({.input_size = 2, .hidden_size = H, .activation = nn::Activation::Identity}, rng);
  cell.W_hh.value = random_matrix(H, H, rng);  // generic, not orthogonal
  const double sigma = Eigen::JacobiSVD<Eigen::MatrixXd>(cell.W_hh.value).singularValues()(0);
  const double frobenius = cell.W_hh.value.norm();
  tg::Tape<double> tape;
  std::vector<V> hs{tape.variable(random_matrix(1, H, rng))};
  nn::State<double> s{{hs[0]}};
  for (int t = 0; t < T; ++t) {
    s = cell.step(tape.constant(random_matrix(1, 2, rng)), s);
    hs.push_back(s.h());
  }
  const V loss = tg::sum(hs.back() * tape.constant(random_matrix(1, H, rng)));
  const nn::GradientFlowReport r = nn::gradient_flow<double>(tape, loss, hs, cell.W_hh.value, 1.0);
  EXPECT_NEAR(r.bound, sigma, 1e-12);
  for (int k = 1; k <= T; ++k) {
    const nn::GradientFlowStep& st = r.steps[static_cast<std::size_t>(k)];
    EXPECT_NEAR(st.step_spectral, sigma, 1e-12) << "k " << k;  // ||W^T||_2 = sigma_max(W): equality
    EXPECT_NEAR(st.step_frobenius, frobenius, 1e-12) << "k " << k;
  }
}
