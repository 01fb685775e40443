// Weight tying (head = embedding^T): Embedding::tied_logits against plain Eigen, and the tied
// table's gradient against an independent computation, the untied model (separate embedding
// table and bias-free head, both holding the same values) with its two gradients summed.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include <tapegrad/error.h>
#include <tapegrad/gradcheck.h>
#include <tapegrad/nn/embedding.h>
#include <tapegrad/nn/linear.h>
#include <tapegrad/nn/loss.h>
#include <tapegrad/nn/rnn_cell.h>

#include "support/test_names.h"
#include "support/test_support.h"

using Mat = tg::Matrix<double>;
using V = tg::Var<double>;

namespace {

using namespace tapegrad::testing;  // expect_near, random_matrix, ...

constexpr Index kVocab = 5, kDim = 3, kBatch = 2;
const std::vector<std::int32_t> kInputs{0, 3, 4, 1, 2, 2};   // 3 steps x 2 rows, time-major
const std::vector<std::int32_t> kTargets{3, 4, 1, 2, 2, 0};  // the next token of each row

// The loss of a tiny language model: embed, an RnnCell (hidden = embedding_dim), logits from
// `head` at every step, summed cross-entropy.
template <class Head>
V lm_loss(tg::Tape<double>& tape, nn::Embedding<double>& embed, const V& table, nn::RnnCell<double>& cell, Head head) {
  nn::State<double> s = cell.initial_state(tape, kBatch);
  V loss;
  for (std::size_t t = 0; t < kInputs.size() / kBatch; ++t) {
    const std::span<const std::int32_t> ids(kInputs.data() + t * kBatch, kBatch);
    const std::span<const std::int32_t> targets(kTargets.data() + t * kBatch, kBatch);
    s = cell.step(embed.forward(table, ids), s);
    const V step_loss = nn::cross_entropy(head(s.h()), targets, {.reduction = tg::Reduction::Sum});
    loss = loss.empty() ? step_loss : loss + step_loss;
  }
  return loss;
}

}  // namespace

TEST(WeightTying, TiedLogitsAreHTimesTableTransposed) {
  std::mt19937_64 rng(1);
  nn::Embedding<double> embed({.num_embeddings = kVocab, .embedding_dim = kDim}, rng);
  const Mat h = random_matrix(4, kDim, rng);
  tg::Tape<double> tape;
  const V logits = embed.tied_logits(tape.constant(h));
  EXPECT_EQ(logits.shape(), (tg::Shape{4, kVocab}));
  expect_near(logits.value(), h * embed.table.value.transpose(), "h table^T", 1e-14);
  expect_error<tg::ShapeError>([&] { (void)embed.tied_logits(tape.constant(Mat::Zero(2, kDim + 1))); },
                               {"Embedding.tied_logits", "[2 x 4]", "embedding_dim"});
  expect_error<tg::ShapeError>([&] { (void)embed.tied_logits(tape.constant(Mat::Zero(kVocab, 2)), tape.constant(h)); },
                               {"Embedding.tied_logits", "table", "[5 x 2]"});
}

TEST(WeightTying, TiedGradientIsTheSumOfBothUses) {
  std::mt19937_64 rng(2);
  nn::Embedding<double> embed({.num_embeddings = kVocab, .embedding_dim = kDim}, rng);
  nn::RnnCell<double> cell({.input_size = kDim, .hidden_size = kDim}, rng);

  // Tied: one table Parameter read by the lookup and by the head.
  tg::Tape<double> tied_tape;
  const V table = tied_tape.leaf(embed.table);
  const V tied = lm_loss(tied_tape, embed, table, cell, [&](const V& h) { return embed.tied_logits(table, h); });
  tied_tape.backward(tied);
  const Mat tied_grad = embed.table.grad;
  const Mat tied_cell_grad = cell.W_hh.grad;

  // Untied: a second table for the lookup and a bias-free head whose W holds table^T.
  nn::Embedding<double> lookup = embed;
  lookup.zero_grad();  // the copy carries the tied run's gradient
  nn::Linear<double> head({.input_size = kDim, .output_size = kVocab, .bias = false}, rng);
  head.W.value = embed.table.value.transpose();
  cell.zero_grad();
  tg::Tape<double> untied_tape;
  const V untied =
      lm_loss(untied_tape, lookup, untied_tape.leaf(lookup.table), cell, [&](const V& h) { return head.forward(h); });
  untied_tape.backward(untied);

  EXPECT_NEAR(tied.item(), untied.item(), 1e-13);
  expect_near(cell.W_hh.grad, tied_cell_grad, "dL/dW_hh (same model)", 1e-13);
  // Both uses contribute, so the sum differs from either part alone.
  const Mat head_part = head.W.grad.transpose();
  ASSERT_GT(lookup.table.grad.norm(), 1e-3);
  ASSERT_GT(head_part.norm(), 1e-3);
  expect_near(tied_grad, lookup.table.grad + head_part, "dL/dtable = lookup part + head part^T", 1e-13);
}

TEST(WeightTying, BindingTheTableTwiceIsOneLeaf) {
  // tied_logits(h) binds the module's table itself: on the tape that forward read it from,
  // that is the same leaf, so the gradient is the same as passing the table Var explicitly.
  std::mt19937_64 rng(3);
  nn::Embedding<double> embed({.num_embeddings = kVocab, .embedding_dim = kDim}, rng);
  const std::vector<std::int32_t> ids{1, 4};
  const std::vector<std::int32_t> targets{2, 1};
  tg::Tape<double> tape;
  const V x = embed.forward(tape, ids);
  tape.backward(nn::cross_entropy(embed.tied_logits(tg::tanh(x)), targets));
  const Mat implicit = embed.table.grad;
  embed.zero_grad();
  tg::Tape<double> explicit_tape;
  const V table = explicit_tape.leaf(embed.table);
  explicit_tape.backward(nn::cross_entropy(embed.tied_logits(table, tg::tanh(embed.forward(table, ids))), targets));
  expect_near(implicit, embed.table.grad, "one leaf either way", 0.0);
}

TEST(WeightTying, Gradcheck) {
  std::mt19937_64 rng(4);
  nn::Embedding<double> embed({.num_embeddings = kVocab, .embedding_dim = kDim}, rng);
  const std::vector<std::int32_t> ids{1, 4, 4};
  const std::vector<std::int32_t> targets{2, 1, 4};
  const auto r = tg::gradcheck(
      [&](std::span<const V> in) {
        return nn::cross_entropy(embed.tied_logits(in[0], tg::tanh(embed.forward(in[0], ids))), targets);
      },
      {embed.table.value});
  EXPECT_TRUE(r) << r.message();
}
