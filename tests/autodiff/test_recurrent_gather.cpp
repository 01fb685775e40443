// rnn_sequence_gather, lstm_sequence_gather and gru_sequence_gather against the RNN, the LSTM
// and the GRU unrolled op by op on gather_rows of the same table: equal values, equal gradients
// for the table, h0, (c0), the recurrent weight (and the GRU's b_hh); for the LSTM whichever
// outputs the loss reads (h only, c only, both); over several weight-gradient chunks, with and
// without a release sweep, in double and float; and their argument errors.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.h>

#include "product_settings.h"
#include "recurrent_test_support.h"

using namespace tapegrad;
using namespace tapegrad::recurrent_test;

namespace {

enum class Reads { H, C, Both };

struct Case {
  Index t, b, h, k;
  Reads reads;
  bool release;
  std::uint64_t seed;
};

std::vector<std::int32_t> random_ids(std::size_t n, Index vocab, std::mt19937_64& rng) {
  std::uniform_int_distribution<std::int32_t> id(0, static_cast<std::int32_t>(vocab) - 1);
  std::vector<std::int32_t> ids(n);
  for (auto& v : ids) v = id(rng);
  return ids;
}

// The loss <seed_h, h> + <seed_c, c> over the outputs the case reads, as a tape scalar.
template <class S>
Var<S> loss_of(const Var<S>& hs, const Var<S>& cs, const Matrix<S>& seed_h, const Matrix<S>& seed_c, Reads reads) {
  Tape<S>& tape = hs.tape();
  const Var<S> lh = sum(mul(hs, tape.constant(seed_h)));
  const Var<S> lc = sum(mul(cs, tape.constant(seed_c)));
  return reads == Reads::H ? lh : reads == Reads::C ? lc : add(lh, lc);
}

template <class S>
void compare(const Case& d, double tol) {
  std::mt19937_64 rng(d.seed);
  const Matrix<S> table = uniform<S>(d.k, 4 * d.h, rng);
  const Matrix<S> h0 = uniform<S>(d.b, d.h, rng);
  const Matrix<S> c0 = uniform<S>(d.b, d.h, rng);
  const Matrix<S> w = uniform<S>(d.h, 4 * d.h, rng, -0.6, 0.6);
  const std::vector<std::int32_t> ids = random_ids(static_cast<std::size_t>(d.t * d.b), d.k, rng);
  const Matrix<S> seed_h = uniform<S>(d.t * d.b, d.h, rng);
  const Matrix<S> seed_c = uniform<S>(d.t * d.b, d.h, rng);

  // The unrolled reference on its own tape: gather_rows, then the LSTM op by op.
  Tape<S> ref;
  const std::vector<Var<S>> rin = {ref.variable(table), ref.variable(h0), ref.variable(c0), ref.variable(w)};
  const Var<S> hc = lstm_unrolled(gather_rows(rin[0], ids), rin[1], rin[2], rin[3]);
  const Var<S> rh = slice_cols(hc, 0, d.h), rc = slice_cols(hc, d.h, d.h);
  ref.backward(loss_of(rh, rc, seed_h, seed_c, d.reads));

  Tape<S> tape;
  const std::vector<Var<S>> in = {tape.variable(table), tape.variable(h0), tape.variable(c0), tape.variable(w)};
  const LstmStates<S> s = lstm_sequence_gather(in[0], ids, in[1], in[2], in[3]);
  EXPECT_LE(rel_diff(s.h.value(), rh.value()), tol);
  EXPECT_LE(rel_diff(s.c.value(), rc.value()), tol);
  tape.backward(loss_of(s.h, s.c, seed_h, seed_c, d.reads), BackwardOptions{.release = d.release});
  const char* names[] = {"table", "h0", "c0", "w_hh"};
  for (std::size_t i = 0; i < in.size(); ++i) {
    EXPECT_LE(rel_diff(in[i].grad(), rin[i].grad()), tol) << names[i];
  }
}

// A one-output op (RNN, GRU: <seed, h> over h) against the op by op reference on gathered rows.
// The inputs: the table [K x gates*H], h0, w_hh [H x gates*H], and for the GRU b_hh [1 x 3H];
// `names` names them. Each path gets the inputs as Vars of its own tape.
template <class S, class Op>
void compare_one_output(const Case& d, double tol, Index gates, const std::vector<const char*>& names, Op op) {
  std::mt19937_64 rng(d.seed);
  std::vector<Matrix<S>> values = {uniform<S>(d.k, gates * d.h, rng), uniform<S>(d.b, d.h, rng),
                                   uniform<S>(d.h, gates * d.h, rng, -0.8, 0.8)};
  if (names.size() == 4) values.push_back(uniform<S>(1, gates * d.h, rng));
  const std::vector<std::int32_t> ids = random_ids(static_cast<std::size_t>(d.t * d.b), d.k, rng);
  const Matrix<S> seed = uniform<S>(d.t * d.b, d.h, rng);
  auto run = [&](Tape<S>& tape, bool fused, BackwardOptions options) {
    std::vector<Var<S>> in;
    for (const Matrix<S>& v : values) in.push_back(tape.variable(v));
    const Var<S> hs = op(in, ids, fused);
    tape.backward(sum(mul(hs, tape.constant(seed))), options);
    std::vector<Matrix<S>> out = {hs.value()};
    for (const Var<S>& v : in) out.push_back(v.grad());
    return out;
  };
  Tape<S> ref, tape;
  const std::vector<Matrix<S>> want = run(ref, false, {});
  const std::vector<Matrix<S>> got = run(tape, true, BackwardOptions{.release = d.release});
  EXPECT_LE(rel_diff(got[0], want[0]), tol) << "h";
  for (std::size_t i = 0; i < names.size(); ++i) EXPECT_LE(rel_diff(got[i + 1], want[i + 1]), tol) << names[i];
}

template <class S>
void compare_rnn(const Case& d, double tol) {
  compare_one_output<S>(d, tol, 1, {"table", "h0", "w"},
                        [](const std::vector<Var<S>>& in, const std::vector<std::int32_t>& ids, bool fused) {
                          return fused ? rnn_sequence_gather(in[0], ids, in[1], in[2])
                                       : rnn_unrolled(gather_rows(in[0], ids), in[1], in[2]);
                        });
}

template <class S>
void compare_gru(const Case& d, double tol) {
  compare_one_output<S>(d, tol, 3, {"table", "h0", "w_hh", "b_hh"},
                        [](const std::vector<Var<S>>& in, const std::vector<std::int32_t>& ids, bool fused) {
                          return fused ? gru_sequence_gather(in[0], ids, in[1], in[2], in[3])
                                       : gru_unrolled(gather_rows(in[0], ids), in[1], in[2], in[3]);
                        });
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  const Case& d = info.param;
  const char* reads = d.reads == Reads::H ? "h" : d.reads == Reads::C ? "c" : "hc";
  return "T" + std::to_string(d.t) + "_B" + std::to_string(d.b) + "_H" + std::to_string(d.h) + "_reads_" + reads +
         (d.release ? "_release" : "");
}

// B = 200 gives 3 steps per dW chunk (7 steps: chunks of 3, 3, 1); T = 1 and B = 1 edge cases.
const Case kCases[] = {
    {1, 2, 3, 4, Reads::Both, false, 31}, {4, 3, 5, 6, Reads::H, false, 32},      {4, 3, 5, 6, Reads::C, false, 33},
    {5, 1, 4, 3, Reads::Both, true, 34},  {7, 200, 2, 9, Reads::Both, false, 35}, {7, 200, 2, 9, Reads::H, true, 36},
};

class Gather : public ::testing::TestWithParam<Case> {};

TEST_P(Gather, LstmMatchesTheUnrolledLstmOnGatheredRowsInDouble) { compare<double>(GetParam(), 1e-10); }
TEST_P(Gather, LstmMatchesTheUnrolledLstmOnGatheredRowsInFloat) { compare<float>(GetParam(), 2e-4); }
TEST_P(Gather, RnnMatchesTheUnrolledRnnOnGatheredRowsInDouble) { compare_rnn<double>(GetParam(), 1e-10); }
TEST_P(Gather, RnnMatchesTheUnrolledRnnOnGatheredRowsInFloat) { compare_rnn<float>(GetParam(), 2e-4); }
TEST_P(Gather, GruMatchesTheUnrolledGruOnGatheredRowsInDouble) { compare_gru<double>(GetParam(), 1e-10); }
TEST_P(Gather, GruMatchesTheUnrolledGruOnGatheredRowsInFloat) { compare_gru<float>(GetParam(), 2e-4); }

INSTANTIATE_TEST_SUITE_P(Cases, Gather, ::testing::ValuesIn(kCases), case_name);

// Two threads, no work threshold: each finished chunk's table and weight gradients run on the
// other thread (Note [Overlapped chunk gradients]); B = 16 and T = 40 give three chunks. Plain and
// release sweeps (in a release sweep the LSTM's dA chunks live in the gates, not the scratch).
class GatherOverlapped : public test::TwoThreadTest<Case> {};

TEST_P(GatherOverlapped, LstmInDouble) { compare<double>(GetParam(), 1e-10); }
TEST_P(GatherOverlapped, RnnInDouble) { compare_rnn<double>(GetParam(), 1e-10); }
TEST_P(GatherOverlapped, GruInDouble) { compare_gru<double>(GetParam(), 1e-10); }

const Case kOverlappedCases[] = {{40, 16, 3, 7, Reads::Both, false, 41}, {40, 16, 3, 7, Reads::H, true, 42}};
INSTANTIATE_TEST_SUITE_P(Cases, GatherOverlapped, ::testing::ValuesIn(kOverlappedCases), case_name);

// The same with every product in OpenBLAS (Note [BLAS products]), chunk gradients included.
class GatherOverlappedBlas : public test::TwoThreadBlasTest<Case> {};

TEST_P(GatherOverlappedBlas, LstmInDouble) { compare<double>(GetParam(), 1e-10); }
TEST_P(GatherOverlappedBlas, RnnInDouble) { compare_rnn<double>(GetParam(), 1e-10); }
TEST_P(GatherOverlappedBlas, GruInDouble) { compare_gru<double>(GetParam(), 1e-10); }
INSTANTIATE_TEST_SUITE_P(Cases, GatherOverlappedBlas, ::testing::ValuesIn(kOverlappedCases), case_name);

TEST(RecurrentGatherErrors, NameTheOpTheArgumentAndTheShapes) {
  Tape<double> tape;
  auto v = [&](Index r, Index c) { return tape.variable(Matrix<double>::Zero(r, c)); };
  const auto table = v(5, 12), h0 = v(2, 3), c0 = v(2, 3), w = v(3, 12);
  const auto table8 = v(5, 8), c_bad = v(2, 2), w33 = v(3, 3);
  const std::vector<std::int32_t> four = {0, 1, 2, 3}, three = {0, 1, 2}, bad = {0, 1, 5, 2};
  expect_error<ShapeError>(tape, [&] { (void)lstm_sequence_gather(table8, four, h0, c0, w); },
                           {"lstm_sequence_gather", "table is [5 x 8]", "[K x 12]"});
  expect_error<ShapeError>(tape, [&] { (void)lstm_sequence_gather(table, three, h0, c0, w); },
                           {"lstm_sequence_gather", "3 ids", "B = 2"});
  expect_error<ShapeError>(tape, [&] { (void)lstm_sequence_gather(table, four, h0, c_bad, w); },
                           {"lstm_sequence_gather", "c0 is [2 x 2]", "h0 is [2 x 3]"});
  expect_error<ShapeError>(tape, [&] { (void)lstm_sequence_gather(table, four, h0, c0, w33); },
                           {"lstm_sequence_gather", "w_hh is [3 x 3]", "[3 x 12]"});
  expect_error<ValueError>(tape, [&] { (void)lstm_sequence_gather(table, bad, h0, c0, w); },
                           {"lstm_sequence_gather", "ids[2] = 5", "table [5 x 12]"});
  const auto table3 = v(5, 3), w33b = v(3, 3), w34 = v(3, 4);
  expect_error<ShapeError>(tape, [&] { (void)rnn_sequence_gather(table, four, h0, w33b); },
                           {"rnn_sequence_gather", "table is [5 x 12]", "[K x 3]"});
  expect_error<ShapeError>(tape, [&] { (void)rnn_sequence_gather(table3, three, h0, w33b); },
                           {"rnn_sequence_gather", "3 ids", "B = 2"});
  expect_error<ShapeError>(tape, [&] { (void)rnn_sequence_gather(table3, four, h0, w34); },
                           {"rnn_sequence_gather", "w is [3 x 4]", "[3 x 3]"});
  expect_error<ValueError>(tape, [&] { (void)rnn_sequence_gather(table3, bad, h0, w33b); },
                           {"rnn_sequence_gather", "ids[2] = 5", "table [5 x 3]"});
  const auto table9 = v(5, 9), w39 = v(3, 9), b19 = v(1, 9), b29 = v(2, 9);
  expect_error<ShapeError>(tape, [&] { (void)gru_sequence_gather(table, four, h0, w39, b19); },
                           {"gru_sequence_gather", "table is [5 x 12]", "[K x 9]"});
  expect_error<ShapeError>(tape, [&] { (void)gru_sequence_gather(table9, three, h0, w39, b19); },
                           {"gru_sequence_gather", "3 ids", "B = 2"});
  expect_error<ShapeError>(tape, [&] { (void)gru_sequence_gather(table9, four, h0, w, b19); },
                           {"gru_sequence_gather", "w_hh is [3 x 12]", "[3 x 9]"});
  expect_error<ShapeError>(tape, [&] { (void)gru_sequence_gather(table9, four, h0, w39, b29); },
                           {"gru_sequence_gather", "b_hh is [2 x 9]", "[1 x 9]"});
  expect_error<ValueError>(tape, [&] { (void)gru_sequence_gather(table9, bad, h0, w39, b19); },
                           {"gru_sequence_gather", "ids[2] = 5", "table [5 x 9]"});
}

}  // namespace
