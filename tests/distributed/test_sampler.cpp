// BatchSharder: the ranks' shares of a global batch are disjoint, cover it exactly, differ in
// size by at most one row, and follow from (seed, batch, rank, size) alone. No MPI needed.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include <tapegrad/distributed/sampler.h>

#include "support/test_support.h"

using tapegrad::Index;
using tapegrad::ValueError;
using tapegrad::distributed::BatchSharder;

namespace {

// Every row of the batch, counted over every rank's share: covering means each count is 1.
std::vector<int> row_counts(std::uint64_t seed, std::uint64_t batch, Index rows, int size, bool shuffle) {
  std::vector<int> counts(static_cast<std::size_t>(rows), 0);
  for (int r = 0; r < size; ++r) {
    for (const Index i : BatchSharder(seed, r, size, shuffle).rows(batch, rows)) {
      EXPECT_GE(i, 0);
      EXPECT_LT(i, rows);
      if (i >= 0 && i < rows) ++counts[static_cast<std::size_t>(i)];
    }
  }
  return counts;
}

TEST(BatchSharder, SharesAreDisjointAndCoverTheBatch) {
  for (const bool shuffle : {true, false}) {
    for (const Index rows : {0, 1, 5, 6, 7, 100}) {
      for (const int size : {1, 2, 3, 4, 8}) {
        for (const std::uint64_t batch : {0u, 1u, 17u}) {
          const std::vector<int> counts = row_counts(42, batch, rows, size, shuffle);
          EXPECT_TRUE(std::all_of(counts.begin(), counts.end(), [](int c) { return c == 1; }))
              << rows << " rows, " << size << " ranks, batch " << batch;
        }
      }
    }
  }
}

TEST(BatchSharder, SharesDifferInSizeByAtMostOneRow) {
  // 7 rows over 3 ranks: 3, 2, 2 (the first 7 % 3 ranks take one more).
  const std::vector<std::size_t> expected{3, 2, 2};
  for (int r = 0; r < 3; ++r) EXPECT_EQ(BatchSharder(1, r, 3).rows(0, 7).size(), expected[static_cast<std::size_t>(r)]);
  EXPECT_EQ(BatchSharder::share(7, 0, 3), (std::pair<Index, Index>{0, 3}));
  EXPECT_EQ(BatchSharder::share(7, 1, 3), (std::pair<Index, Index>{3, 5}));
  EXPECT_EQ(BatchSharder::share(7, 2, 3), (std::pair<Index, Index>{5, 7}));
  // Fewer rows than ranks: the last ranks read nothing.
  EXPECT_EQ(BatchSharder(1, 3, 4).rows(0, 2).size(), 0u);
}

TEST(BatchSharder, WithoutShuffleEachRankReadsOneBlockInOrder) {
  EXPECT_EQ(BatchSharder(9, 1, 3, false).rows(4, 8), (std::vector<Index>{3, 4, 5}));
}

TEST(BatchSharder, ReproducibleFromSeedAndBatch) {
  const std::vector<Index> a = BatchSharder(7, 1, 2).rows(3, 100);
  EXPECT_EQ(BatchSharder(7, 1, 2).rows(3, 100), a);  // a new sharder, the same rows
  EXPECT_NE(BatchSharder(8, 1, 2).rows(3, 100), a);  // another seed: another permutation
  EXPECT_NE(BatchSharder(7, 1, 2).rows(4, 100), a);  // another batch: another permutation
  // The permutation really moves rows: rank 0 of 2 does not just read rows 0..49 in order.
  std::vector<Index> first_half(50);
  for (Index i = 0; i < 50; ++i) first_half[static_cast<std::size_t>(i)] = i;
  EXPECT_NE(BatchSharder(7, 0, 2).rows(3, 100), first_half);
}

TEST(BatchSharder, BadRankOrSizeIsAValueError) {
  tapegrad::testing::expect_error<ValueError>([] { BatchSharder(0, 0, 0); }, {"BatchSharder", "size", "0"});
  tapegrad::testing::expect_error<ValueError>([] { BatchSharder(0, 2, 2); }, {"BatchSharder", "rank", "2"});
  tapegrad::testing::expect_error<ValueError>([] { BatchSharder(0, -1, 2); }, {"rank", "-1"});
  tapegrad::testing::expect_error<ValueError>([] { (void)BatchSharder(0, 0, 2).rows(0, -1); },
                                              {"BatchSharder::rows", "global_rows", "-1"});
}

}  // namespace
