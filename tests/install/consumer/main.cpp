// Records a few ops through the installed headers and libraries and checks one gradient
// against its closed form. Exit code 0 means the installed package works.
//
// The library is compiled with -march=native and this program (app) without: matrices allocated
// on one side and freed on the other (the tape's values, the parameter's gradient) show that both
// use the same Eigen heap alignment, which the exported EIGEN_MAX_ALIGN_BYTES fixes.
#include <cmath>
#include <cstdint>
#include <cstdio>

#include <tapegrad/nn/gru_cell.h>
#include <tapegrad/nn/lstm_cell.h>
#include <tapegrad/nn/module.h>
#include <tapegrad/nn/rnn_cell.h>
#include <tapegrad/tapegrad.h>

namespace {

// A one-parameter module, so the nn headers are exercised too: w is [2 x 1].
struct Linear : tapegrad::nn::Module<double> {
  tapegrad::Parameter<double> w{tapegrad::Matrix<double>{{0.5}, {-0.25}}, "w"};
  void visit_parameters(const tapegrad::nn::ParameterVisitor<double>& v) override { v("w", w); }
};

}  // namespace

int main() {
  Linear m;
  tapegrad::Tape<double> tape;
  // L = sum(tanh(tanh(x w))) with x = [1 x 2]; dL/dw = x^T (1 - y^2) (1 - u^2), u = tanh(x w).
  const tapegrad::Matrix<double> x_value{{0.8, 2.0}};
  auto x = tape.constant(x_value);
  auto w = tape.leaf(m.w);
  auto loss = tapegrad::sum(tapegrad::tanh(tapegrad::tanh(tapegrad::matmul(x, w))));
  tape.backward(loss);

  const double u = std::tanh(0.8 * 0.5 + 2.0 * -0.25);
  const double y = std::tanh(u);
  const double chain = (1 - y * y) * (1 - u * u);
  const tapegrad::Matrix<double>& grad = m.parameters().at(0)->grad;
  // Values the library allocated are aligned as this program's Eigen expects (and are freed
  // here, when the tape and the module go).
  const auto aligned_here = [](const double* p) {
    return reinterpret_cast<std::uintptr_t>(p) % EIGEN_MAX_ALIGN_BYTES == 0;
  };
  const bool aligned = aligned_here(loss.value().data()) && aligned_here(grad.data());
  std::printf("L = %.12f (expected %.12f)\n", loss.item(), y);
  std::printf("dL/dw = [%.12f, %.12f] (expected [%.12f, %.12f])\n", grad(0, 0), grad(1, 0), 0.8 * chain, 2.0 * chain);
  const bool ok = aligned && std::abs(loss.item() - y) < 1e-12 && std::abs(grad(0, 0) - 0.8 * chain) < 1e-12 &&
                  std::abs(grad(1, 0) - 2.0 * chain) < 1e-12;
  std::puts(ok ? "install consumer: OK" : "install consumer: WRONG GRADIENT OR ALIGNMENT");
  return ok ? 0 : 1;
}
