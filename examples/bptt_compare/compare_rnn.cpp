// Vanilla RNN: hand_rnn.h against nn::RnnCell on the tape, full BPTT and tau windows.
#include <string>

#include <tapegrad/nn/rnn_cell.h>

#include "hand_rnn.h"
#include "models.h"
#include "tape_side.h"

namespace bptt {

namespace {
constexpr int T = 8, B = 2, kIn = 4, H = 6, K = 5;
}

ModelResult compare_rnn(int max_tau) {
  Rng rng(20240601);
  const RnnWeights w{rng.matrix(kIn, H, 0.8), rng.matrix(H, H, 0.8), rng.matrix(1, H, 0.8)};
  const Head head{rng.matrix(H, K, 0.8), rng.matrix(1, K, 0.8)};
  const MatrixXd h0 = rng.matrix(B, H, 0.8);
  const Sequence seq = make_sequence(rng, T, B, kIn, K);

  // By hand: forward, read-out errors e_t, then the delta recursion.
  const auto hs = rnn_forward(w, h0, seq.xs);
  const HeadGrads hg = head_backward(head, {hs.begin() + 1, hs.end()}, seq);

  ModelResult r;
  r.model = "rnn";
  r.description =
      "vanilla RNN h_t = tanh(x_t U + h_{t-1} W + b) (nn::RnnCell: U = W_ih, W = W_hh), read-out "
      "softmax(h_t V + c); T = 8, B = 2, in = 4, H = 6, K = 5";
  r.state_names = {"dL/dh_t"};
  r.loss = hg.loss;
  for (int tau = -1; tau <= max_tau; tau = tau < 0 ? 1 : tau + 1) {
    std::mt19937_64 init_rng(1);
    nn::RnnCell<double> cell({kIn, H}, init_rng);
    set_weights(cell, {&w.U, &w.W, &w.b});
    auto lin = make_linear(head, init_rng);
    std::vector<Param> init{Param(M(h0), "h0")};
    tg::Tape<double> tape;
    std::vector<nn::State<double>> states;
    if (tau < 0) {
      states = full_bptt(tape, cell, lin, seq, init).first;
    } else {
      window_bptt(tape, cell, lin, seq, init, tau);
    }
    const RnnGrads g = rnn_backward(w, hs, seq.xs, hg.dh_out, tau);
    r.modes.push_back(
        {tau < 0 ? "full" : "tau=" + std::to_string(tau),
         param_diffs(autodiff_parameters(cell, lin, init), {&g.dU, &g.dW, &g.db, &hg.dV, &hg.dc, &g.dh0})});
    if (tau < 0) r.steps = step_diffs(states, {0}, {&g.dh});
  }
  return r;
}

}  // namespace bptt
