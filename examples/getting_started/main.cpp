// Getting started (docs/getting-started.md): a vanilla RNN with a linear read-out learns to
// predict the next sample of a sine wave. The first training loop: record T steps on a tape,
// one backward sweep through all of them (BPTT), clip, Adam step. Exits 1 unless the loss
// falls at least tenfold.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <tapegrad/nn/clip.h>
#include <tapegrad/nn/linear.h>
#include <tapegrad/nn/loss.h>
#include <tapegrad/nn/optim.h>
#include <tapegrad/nn/rnn_cell.h>
#include <tapegrad/tapegrad.h>

using namespace tapegrad;

int main() {
  const int B = 8, H = 16, T = 20;  // batch, hidden units, time steps
  std::mt19937_64 rng(42);

  nn::RnnCell<float>::Options cell_options;
  cell_options.input_size = 1;
  cell_options.hidden_size = H;
  nn::RnnCell<float> cell(cell_options, rng);  // h' = tanh(x W_ih + h W_hh + b)
  nn::Linear<float> head({H, 1}, rng);         // y = h W + b

  std::vector<Parameter<float>*> params = nn::parameters_of<float>({&cell, &head});
  nn::Adam<float> opt(params, {.lr = 0.01});

  std::uniform_real_distribution<float> phase(0.0F, 6.2832F);
  Tape<float> tape;
  double first = 0.0, last = 0.0;
  for (int step = 1; step <= 300; ++step) {
    // B sine waves with random phases; the target at t is the input at t + 1.
    Matrix<float> wave(B, T + 1);
    for (int b = 0; b < B; ++b) {
      const float p = phase(rng);
      for (int t = 0; t <= T; ++t) wave(b, t) = std::sin(0.3F * static_cast<float>(t) + p);
    }

    tape.clear();  // a fresh recording per step; buffers are reused
    nn::State<float> s = cell.initial_state(tape, B);
    Var<float> loss;
    for (int t = 0; t < T; ++t) {
      auto scope = tape.time_step(t);
      s = cell.step(tape.constant(wave.col(t)), s);
      Var<float> err = nn::mse_loss(head.forward(s.h()), tape.constant(wave.col(t + 1)));
      loss = loss.empty() ? err : loss + err;
    }
    loss = loss / static_cast<float>(T);

    tape.backward(loss);              // one sweep back through all T steps
    nn::clip_grad_norm(params, 1.0);  // guard against exploding gradients
    opt.step();                       // Adam reads Parameter::grad ...
    opt.zero_grad();                  // ... which accumulates until zeroed

    if (step == 1) first = loss.item();
    last = loss.item();
    if (step % 50 == 0 || step == 1) std::printf("step %3d  loss %.5f\n", step, loss.item());
  }
  std::printf("loss %.5f -> %.5f\n", first, last);
  return last < first / 10 ? 0 : 1;
}
