// A user's LSTM and GRU on the public cell API whose recur step puts its gate math in one
// pointwise call (no backward written): through forward_sequence they give nn::LstmCell's and
// nn::GruCell's outputs, final states and parameter gradients (the built-in cells are checked
// against independent references elsewhere), with one tape entry of gate math per step.
#include <gtest/gtest.h>

#include <array>
#include <random>
#include <vector>

#include <tapegrad/nn/nn.h>
#include <tapegrad/tapegrad.h>

#include "support/test_support.h"

namespace nn = tapegrad::nn;
using tapegrad::Index;
using tapegrad::Parameter;
using tapegrad::Tape;
using tapegrad::testing::expect_near;
using tapegrad::testing::random_matrix;
using Mat = tapegrad::Matrix<double>;
using V = tapegrad::Var<double>;

namespace {

struct PointwiseLstm : nn::Cell<PointwiseLstm, double> {
  static constexpr const char* kName = "PointwiseLstm";
  static constexpr std::array<const char*, 2> kStateNames{"h", "c"};
  struct Weights {
    V W_ih, W_hh, b;
  };
  Parameter<double> W_ih, W_hh, b;
  static constexpr std::array kParameters{&PointwiseLstm::W_ih, &PointwiseLstm::W_hh, &PointwiseLstm::b};
  explicit PointwiseLstm(const nn::LstmCell<double>& like)
      : PointwiseLstm::Cell({like.input_size(), like.hidden_size()}), W_ih(like.W_ih), W_hh(like.W_hh), b(like.b) {}
  V project_input(const Weights& w, const V& x) const { return affine(x, w.W_ih, w.b); }
  nn::State<double> recur(const Weights& w, const V& xp, const nn::State<double>& s) const {
    const auto [h, c] = tapegrad::pointwise(
        [](auto i, auto f, auto g, auto o, auto c0) {
          auto c_next = sigmoid(f) * c0 + sigmoid(i) * tanh(g);
          return std::array{sigmoid(o) * tanh(c_next), c_next};
        },
        tapegrad::columns<4>(xp + matmul(s.h(), w.W_hh)), s.c());
    return {{h, c}};
  }
};

struct PointwiseGru : nn::Cell<PointwiseGru, double> {
  static constexpr const char* kName = "PointwiseGru";
  struct Weights {
    V W_ih, W_hh, b_ih, b_hh;
  };
  Parameter<double> W_ih, W_hh, b_ih, b_hh;
  static constexpr std::array kParameters{&PointwiseGru::W_ih, &PointwiseGru::W_hh, &PointwiseGru::b_ih,
                                          &PointwiseGru::b_hh};
  explicit PointwiseGru(const nn::GruCell<double>& like)
      : PointwiseGru::Cell({like.input_size(), like.hidden_size()}),
        W_ih(like.W_ih),
        W_hh(like.W_hh),
        b_ih(like.b_ih),
        b_hh(like.b_hh) {}
  V project_input(const Weights& w, const V& x) const { return affine(x, w.W_ih, w.b_ih); }
  nn::State<double> recur(const Weights& w, const V& xp, const nn::State<double>& s) const {
    return {{tapegrad::pointwise(
        [](auto xr, auto xz, auto xn, auto hr, auto hz, auto hn, auto h) {
          auto r = sigmoid(xr + hr);
          auto z = sigmoid(xz + hz);
          return (1 - z) * tanh(xn + r * hn) + z * h;
        },
        tapegrad::columns<3>(xp), tapegrad::columns<3>(affine(s.h(), w.W_hh, w.b_hh)), s.h())}};
  }
};

// forward_sequence of both cells on the same inputs, a loss reading every output and the final
// state, and the comparison of values and parameter gradients.
template <class Builtin, class User>
void expect_same_sequence(Builtin& builtin, User& user, Index steps, Index batch, std::mt19937_64& rng) {
  const Mat x = random_matrix(steps * batch, builtin.input_size(), rng);
  const Mat v = random_matrix(steps * batch, builtin.hidden_size(), rng);
  std::vector<Mat> values, grads;
  auto run = [&](auto& cell) {
    Tape<double> tape;
    const nn::SequenceResult<double> r = cell.forward_sequence(tape.constant(x), cell.initial_state(tape, batch));
    V loss = sum(r.outputs * tape.constant(v));
    for (const V& s : r.final_state.tensors) loss = loss + sum(s * s);
    tape.backward(loss);
    values.push_back(r.outputs.value());
    values.push_back(r.final_state.tensors.back().value());
    for (const auto& [name, p] : cell.named_parameters()) {
      grads.push_back(p->grad);
      p->zero_grad();
    }
  };
  run(builtin);
  run(user);
  const std::size_t n = grads.size() / 2;
  expect_near(values[2], values[0], "outputs", 1e-12);
  expect_near(values[3], values[1], "final state", 1e-12);
  for (std::size_t k = 0; k < n; ++k) expect_near(grads[n + k], grads[k], "parameter gradient", 1e-12);
}

TEST(PointwiseCell, LstmMatchesTheBuiltInCell) {
  std::mt19937_64 rng(3);
  nn::LstmCell<double> builtin({.input_size = 3, .hidden_size = 5}, rng);
  PointwiseLstm user(builtin);
  expect_same_sequence(builtin, user, 4, 2, rng);
}

TEST(PointwiseCell, GruMatchesTheBuiltInCell) {
  std::mt19937_64 rng(4);
  nn::GruCell<double> builtin({.input_size = 3, .hidden_size = 5}, rng);
  builtin.b_hh.value = random_matrix(1, 15, rng);  // the built-in starts with zero biases
  builtin.b_ih.value = random_matrix(1, 15, rng);
  PointwiseGru user(builtin);
  expect_same_sequence(builtin, user, 4, 2, rng);
}

TEST(PointwiseCell, RecordsOneGateEntryPerStep) {
  std::mt19937_64 rng(5);
  nn::LstmCell<double> builtin({.input_size = 3, .hidden_size = 4}, rng);
  PointwiseLstm user(builtin);
  Tape<double> tape;
  const nn::State<double> s0 = user.initial_state(tape, 2);
  const V x = tape.constant(random_matrix(2, 3, rng));
  const nn::State<double> s1 = user.step(x, s0);
  const std::size_t before = tape.num_entries();
  (void)user.step(x, s1);
  EXPECT_EQ(tape.num_entries() - before, 4u);  // affine, matmul, add and ONE pointwise
}

}  // namespace
