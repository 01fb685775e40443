// The counter-based generator: SplitMix64 against its published output sequence, draws as pure
// functions of their key, and the uniforms' mean and variance within tolerances derived from
// the uniform distribution.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <set>

#include <tapegrad/nn/random.h>

#include "support/test_names.h"

namespace {

// The first outputs of SplitMix64 seeded with 1234567 (Vigna's reference splitmix64.c; the
// sequence listed on Rosetta Code's "Pseudo-random numbers/Splitmix64").
TEST(Random, SplitMix64MatchesTheReferenceSequence) {
  constexpr std::uint64_t want[] = {6457827717110365317ULL, 3203168211198807973ULL, 9817491932198370423ULL,
                                    4593380528125082431ULL, 16408922859458223821ULL};
  for (std::uint64_t k = 0; k < 5; ++k) EXPECT_EQ(nn::splitmix64(1234567, k), want[k]) << "output " << k;
}

TEST(Random, DrawsArePureFunctionsOfSeedSequenceStreamStepAndIndex) {
  const nn::Generator a(99, 5);
  nn::Generator b(99, 0);
  b.set_sequence(5);
  EXPECT_EQ(a.state(), b.state());
  EXPECT_EQ(a.bits({3, 7}, 11), b.bits({3, 7}, 11));
  EXPECT_EQ(a.bits({3, 7}, 11), a.bits({3, 7}, 11));  // drawing consumes nothing
  // Changing any one part of the key gives a new word; no collisions over a small grid.
  std::set<std::uint64_t> seen;
  for (std::uint64_t seed : {0, 1, 2}) {
    for (std::uint64_t seq : {0, 1, 2}) {
      for (std::uint64_t stream : {0, 1, 2}) {
        for (std::int64_t step : {std::int64_t{0}, std::int64_t{1}, std::int64_t{-1}, nn::kWholeSequence}) {
          for (std::uint64_t k = 0; k < 4; ++k) seen.insert(nn::Generator(seed, seq).bits({stream, step}, k));
        }
      }
    }
  }
  EXPECT_EQ(seen.size(), 3u * 3u * 3u * 4u * 4u);
  nn::Generator c(99, 5);
  c.next_sequence();
  EXPECT_EQ(c.sequence(), 6u);
  EXPECT_NE(c.bits({3, 7}, 11), a.bits({3, 7}, 11));
}

TEST(Random, UniformsHaveTheMeanAndVarianceOfUniform01) {
  // Mean 1/2, variance 1/12; the sample mean's sd is sqrt(1/12 / n), the sample variance's
  // about sqrt(1/180 / n) (the fourth central moment of U(0,1) is 1/80).
  const nn::Generator gen(2024);
  const int n = 200000;
  double sum = 0, sum2 = 0, lo = 1, hi = 0;
  for (int k = 0; k < n; ++k) {
    const double u = gen.uniform({1, 2}, static_cast<std::uint64_t>(k));
    sum += u;
    sum2 += u * u;
    lo = std::min(lo, u);
    hi = std::max(hi, u);
  }
  const double mean = sum / n, var = sum2 / n - mean * mean;
  EXPECT_NEAR(mean, 0.5, 5 * std::sqrt(1.0 / 12 / n));
  EXPECT_NEAR(var, 1.0 / 12, 5 * std::sqrt(1.0 / 180 / n));
  EXPECT_GE(lo, 0.0);
  EXPECT_LT(hi, 1.0);
  EXPECT_EQ(nn::Generator::to_unit(~std::uint64_t{0}), 1.0 - 0x1.0p-53);
  EXPECT_EQ(nn::Generator::to_unit(0), 0.0);
}

}  // namespace
