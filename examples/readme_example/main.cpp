#include <cstdio>
#include <vector>

#include <tapegrad/tapegrad.h>
using namespace tapegrad;

int main() {
  const int B = 4, In = 3, H = 8, T = 5;  // batch, input size, hidden size, time steps
  Parameter<float> U(Matrix<float>::Random(In, H) * 0.5F, "U"), W(Matrix<float>::Random(H, H) * 0.5F, "W");
  Parameter<float> b(Matrix<float>::Zero(1, H), "b"), V(Matrix<float>::Random(H, 2) * 0.5F, "V");
  const std::vector<std::int32_t> labels = {0, 1, 1, 0};  // one class per sequence

  Tape<float> tape;
  Var<float> h = tape.constant(Matrix<float>::Zero(B, H));
  for (int t = 0; t < T; ++t) {
    auto step = tape.time_step(t);  // tags the nodes recorded in this step
    Var<float> x = tape.constant(Matrix<float>::Random(B, In));
    h = tanh(matmul(x, tape.leaf(U)) + affine(h, tape.leaf(W), tape.leaf(b)));  // h_t = tanh(x U + h W + b)
  }
  Var<float> loss = softmax_cross_entropy(matmul(h, tape.leaf(V)), labels);
  tape.backward(loss);  // one reverse sweep through all T steps (BPTT)
  std::printf("loss %.4f  |dL/dW| %.4f  dL/dW[0,0] %.6f\n", loss.item(), W.grad.norm(), W.grad(0, 0));
}
