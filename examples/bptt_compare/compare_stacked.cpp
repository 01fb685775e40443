// Two stacked vanilla layers: hand_stacked.h against nn::Stacked<nn::RnnCell> on the tape.
#include <string>
#include <utility>

#include <tapegrad/nn/rnn_cell.h>
#include <tapegrad/nn/stacked.h>

#include "hand_stacked.h"
#include "models.h"
#include "tape_side.h"

namespace bptt {

namespace {
constexpr int T = 8, B = 2, kIn = 4, H = 5, K = 5, L = 2;
}

ModelResult compare_stacked() {
  Rng rng(20240602);
  std::vector<RnnWeights> w;
  std::vector<MatrixXd> h0;
  for (int l = 0; l < L; ++l) {
    w.push_back({rng.matrix(l == 0 ? kIn : H, H, 0.7), rng.matrix(H, H, 0.7), rng.matrix(1, H, 0.5)});
    h0.push_back(rng.matrix(B, H, 0.5));
  }
  const Head head{rng.matrix(H, K, 0.8), rng.matrix(1, K, 0.8)};
  const Sequence seq = make_sequence(rng, T, B, kIn, K);

  const auto hs = stacked_forward(w, h0, seq.xs);
  const HeadGrads hg = head_backward(head, {hs.back().begin() + 1, hs.back().end()}, seq);
  const StackedGrads g = stacked_backward(w, hs, seq.xs, hg.dh_out);

  std::mt19937_64 init_rng(2);
  nn::Stacked<nn::RnnCell<double>>::Options opt;
  opt.cell = {kIn, H};
  opt.num_layers = L;
  nn::Stacked<nn::RnnCell<double>> net(opt, init_rng);
  std::vector<Param> init;
  std::vector<const MatrixXd*> expected;
  for (int l = 0; l < L; ++l) {
    const auto li = static_cast<std::size_t>(l);
    net.layer(li).W_ih.value = w[li].U;
    net.layer(li).W_hh.value = w[li].W;
    net.layer(li).b.value = w[li].b;
    init.emplace_back(M(h0[li]), "h0[layer " + std::to_string(l) + "]");
    expected.insert(expected.end(), {&g.layers[li].dU, &g.layers[li].dW, &g.layers[li].db});
  }
  expected.insert(expected.end(), {&hg.dV, &hg.dc});
  for (int l = 0; l < L; ++l) expected.push_back(&g.layers[static_cast<std::size_t>(l)].dh0);
  ModelResult r = compare_full_bptt(net, head, init_rng, seq, std::move(init), expected, {"dL/dh^0_t", "dL/dh^1_t"},
                                    {&g.layers[0].dh, &g.layers[1].dh});
  r.model = "stacked";
  r.description =
      "2-layer vanilla RNN h^l_t = tanh(h^{l-1}_t U_l + h^l_{t-1} W_l + b_l), h^{-1}_t = x_t "
      "(nn::Stacked<nn::RnnCell>), read-out from the top layer; T = 8, B = 2, in = 4, H = 5, K = 5";
  return r;
}

}  // namespace bptt
