// One comparison per model, each in its own file (compare_<model>.cpp): build a random
// problem from a fixed seed, compute the gradients by hand (hand_<model>.h) and on the tape
// through the nn cell (tape_side.h), and report the differences.
#pragma once

#include "common.h"

namespace bptt {

/// Vanilla tanh RNN (nn::RnnCell): full BPTT and the per-output window tau = 1..max_tau.
ModelResult compare_rnn(int max_tau);
/// Two stacked vanilla tanh layers (nn::Stacked<nn::RnnCell>), full BPTT.
ModelResult compare_stacked();
/// LSTM (nn::LstmCell, gates i, f, g, o), full BPTT.
ModelResult compare_lstm();
/// GRU (nn::GruCell, PyTorch's equations), full BPTT.
ModelResult compare_gru();

}  // namespace bptt
