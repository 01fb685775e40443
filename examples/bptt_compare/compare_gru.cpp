// GRU: hand_gru.h against nn::GruCell on the tape.
#include <tapegrad/nn/gru_cell.h>

#include "hand_gru.h"
#include "models.h"
#include "tape_side.h"

namespace bptt {

namespace {
constexpr int T = 8, B = 2, kIn = 4, H = 5, K = 5;
}

ModelResult compare_gru() {
  Rng rng(20240604);
  const GruWeights w{rng.matrix(kIn, 3 * H, 0.6), rng.matrix(H, 3 * H, 0.6), rng.matrix(1, 3 * H, 0.5),
                     rng.matrix(1, 3 * H, 0.5)};
  const MatrixXd h0 = rng.matrix(B, H, 0.5);
  const Head head{rng.matrix(H, K, 0.8), rng.matrix(1, K, 0.8)};
  const Sequence seq = make_sequence(rng, T, B, kIn, K);

  const auto steps = gru_forward(w, h0, seq.xs);
  std::vector<MatrixXd> hs;
  for (const GruStep& s : steps) hs.push_back(s.h);
  const HeadGrads hg = head_backward(head, hs, seq);
  const GruGrads g = gru_backward(w, steps, h0, seq.xs, hg.dh_out);

  std::mt19937_64 init_rng(4);
  nn::GruCell<double> cell({kIn, H}, init_rng);
  set_weights(cell, {&w.W_ih, &w.W_hh, &w.b_ih, &w.b_hh});
  ModelResult r =
      compare_full_bptt(cell, head, init_rng, seq, {Param(M(h0), "h0")},
                        {&g.dW_ih, &g.dW_hh, &g.db_ih, &g.db_hh, &hg.dV, &hg.dc, &g.dh0}, {"dL/dh_t"}, {&g.dh});
  r.model = "gru";
  r.description =
      "GRU (nn::GruCell, PyTorch's equations, gate columns r, z, n), h_t = (1-z)*n + z*h_{t-1}, "
      "read-out softmax(h_t V + c); T = 8, B = 2, in = 4, H = 5, K = 5";
  return r;
}

}  // namespace bptt
