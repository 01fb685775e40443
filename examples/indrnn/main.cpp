// A custom cell in a few lines (docs/nn-models.md, "Writing a cell"): two layers of the IndRNN
// cell of indrnn_cell.h, 16 and 8 units, with a linear read-out, learn to predict the next
// sample of a sine wave. The whole sequence goes through Stacked::forward_sequence at once.
// Exits 1 unless the loss falls at least fivefold.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "indrnn_cell.h"

using namespace tapegrad;

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 300;
  const Index B = 8, T = 20;  // batch, time steps
  std::mt19937_64 rng(7);

  nn::Stacked<example::IndRnnCell<float>> rnn({.cell = {.input_size = 1}, .hidden_sizes = {16, 8}}, rng);
  nn::Linear<float> head({.input_size = rnn.output_size(), .output_size = 1}, rng);
  std::vector<Parameter<float>*> params = nn::parameters_of<float>({&rnn, &head});
  nn::Adam<float> opt(params, {.lr = 0.01});

  std::uniform_real_distribution<float> phase(0.0F, 6.2832F);
  Tape<float> tape;
  double first = 0.0, last = 0.0;
  for (int step = 1; step <= steps; ++step) {
    // Time-major: row t*B + b is sequence b at step t; the target is the next sample.
    Matrix<float> x(T * B, 1), y(T * B, 1);
    for (Index b = 0; b < B; ++b) {
      const float p = phase(rng);
      for (Index t = 0; t < T; ++t) {
        x(t * B + b, 0) = std::sin(0.3F * static_cast<float>(t) + p);
        y(t * B + b, 0) = std::sin(0.3F * static_cast<float>(t + 1) + p);
      }
    }
    tape.clear();
    const nn::SequenceResult<float> r = rnn.forward_sequence(tape.constant(x), rnn.initial_state(tape, B));
    const Var<float> loss = nn::mse_loss(head.forward(r.outputs), tape.constant(y));
    tape.backward(loss);
    nn::clip_grad_norm(params, 1.0);
    opt.step();
    opt.zero_grad();

    if (step == 1) first = loss.item();
    last = loss.item();
    if (step % 50 == 0 || step == 1) std::printf("step %3d  loss %.5f\n", step, loss.item());
  }
  std::printf("loss %.5f -> %.5f\n", first, last);
  return last < first / 5 ? 0 : 1;
}
