// LSTM: hand_lstm.h against nn::LstmCell on the tape.
#include <tapegrad/nn/lstm_cell.h>

#include "hand_lstm.h"
#include "models.h"
#include "tape_side.h"

namespace bptt {

namespace {
constexpr int T = 8, B = 2, kIn = 4, H = 5, K = 5;
}

ModelResult compare_lstm() {
  Rng rng(20240603);
  const LstmWeights w{rng.matrix(kIn, 4 * H, 0.6), rng.matrix(H, 4 * H, 0.6), rng.matrix(1, 4 * H, 0.5)};
  const MatrixXd h0 = rng.matrix(B, H, 0.5), c0 = rng.matrix(B, H, 0.5);
  const Head head{rng.matrix(H, K, 0.8), rng.matrix(1, K, 0.8)};
  const Sequence seq = make_sequence(rng, T, B, kIn, K);

  const auto steps = lstm_forward(w, h0, c0, seq.xs);
  std::vector<MatrixXd> hs;
  for (const LstmStep& s : steps) hs.push_back(s.h);
  const HeadGrads hg = head_backward(head, hs, seq);
  const LstmGrads g = lstm_backward(w, steps, h0, c0, seq.xs, hg.dh_out);

  std::mt19937_64 init_rng(3);
  nn::LstmCell<double> cell({kIn, H}, init_rng);
  set_weights(cell, {&w.W_ih, &w.W_hh, &w.b});
  ModelResult r = compare_full_bptt(cell, head, init_rng, seq, {Param(M(h0), "h0"), Param(M(c0), "c0")},
                                    {&g.dW_ih, &g.dW_hh, &g.db, &hg.dV, &hg.dc, &g.dh0, &g.dc0}, {"dL/dh_t", "dL/dc_t"},
                                    {&g.dh, &g.dc});
  r.model = "lstm";
  r.description =
      "LSTM (nn::LstmCell, gate columns i, f, g, o), c_t = f*c_{t-1} + i*g, h_t = o*tanh(c_t), "
      "read-out softmax(h_t V + c); T = 8, B = 2, in = 4, H = 5, K = 5";
  return r;
}

}  // namespace bptt
