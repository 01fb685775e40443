// Records a few ops through the installed headers and libraries and checks one gradient
// against its closed form. Exit code 0 means the installed package works.
#include <cmath>
#include <cstdio>

#include <tapegrad/nn/module.h>
#include <tapegrad/tapegrad.h>

namespace {

// A one-parameter module, so the nn headers are exercised too.
struct Scale : tapegrad::nn::Module<double> {
  tapegrad::Parameter<double> w{tapegrad::Matrix<double>::Constant(1, 1, 0.5), "w"};
  void visit_parameters(const tapegrad::nn::ParameterVisitor<double>& v) override { v("w", w); }
};

}  // namespace

int main() {
  Scale m;
  tapegrad::Tape<double> tape;
  // y = tanh(tanh(w)); dy/dw = (1 - y^2) (1 - tanh(w)^2)
  auto w = tape.leaf(m.w);
  auto y = tapegrad::tanh(tapegrad::tanh(w));
  tape.backward(y);

  const double inner = std::tanh(0.5);
  const double outer = std::tanh(inner);
  const double expected = (1 - outer * outer) * (1 - inner * inner);
  const double got = m.parameters().at(0)->grad(0, 0);
  std::printf("y = %.12f (expected %.12f), dy/dw = %.12f (expected %.12f)\n", y.item(), outer, got, expected);
  const bool ok = std::abs(y.item() - outer) < 1e-12 && std::abs(got - expected) < 1e-12;
  std::puts(ok ? "install consumer: OK" : "install consumer: WRONG GRADIENT");
  return ok ? 0 : 1;
}
