#include <gtest/gtest.h>
#include <tapegrad/tapegrad.h>

using namespace tapegrad;

TEST(Smoke, TanhGradient) {
  Tape<double> t;
  Matrix<double> m(1, 2);
  m << 0.5, -1.0;
  auto x = t.variable(m);
  auto y = tanh(x);
  Matrix<double> seed = Matrix<double>::Ones(1, 2);
  t.backward(y, seed);
  EXPECT_NEAR(x.grad()(0, 0), 1 - std::tanh(0.5) * std::tanh(0.5), 1e-12);
}
