// One step's gradients: the ranks' synchronised gradients equal the single-process gradients of
// the combined batch, which every rank computes itself on its own copy of the model.
#include <gtest/gtest.h>

#include <functional>

#include <tapegrad/nn/loss.h>
#include <tapegrad/ops.h>

#include "mpi_world.h"

namespace tapegrad::distributed::testing {
namespace {

constexpr int kSteps = 5;
constexpr std::uint64_t kDataSeed = 11;
constexpr std::uint64_t kRank0Seed = 100;

// The summed loss of the given rows over every step. The head reads all steps' states at once,
// after the recurrence, so its hooks (sync attached right before it) run before the sweep
// enters the recurrence: the head's bucket starts while the recurrence's backward still runs.
// mid_sweep, if given, runs when the sweep reaches the middle step's state, half way through the
// recurrence's backward.
template <class S>
Var<S> sequence_loss(Tape<S>& tape, TinyModel<S>& m, const Dataset& data, const std::vector<Index>& rows,
                     Reduction reduction, GradientSync<S>* sync, const std::function<void()>& mid_sweep = {}) {
  tape.clear();
  if (sync != nullptr) sync->attach(tape, m.cell.parameters());
  nn::State<S> s = m.cell.initial_state(tape, static_cast<Index>(rows.size()));
  std::vector<Var<S>> hs;
  for (int t = 0; t < kSteps; ++t) {
    s = m.cell.step(tape.constant(take_rows<S>(data.x[static_cast<std::size_t>(t)], rows)), s);
    hs.push_back(s.h());
    if (mid_sweep && t == kSteps / 2) s.h().register_hook([&mid_sweep](Matrix<S>&) { mid_sweep(); });
  }
  if (sync != nullptr) sync->attach(tape, m.head.parameters());
  Var<S> loss;
  for (int t = 0; t < kSteps; ++t) {
    const Var<S> target = tape.constant(take_rows<S>(data.y[static_cast<std::size_t>(t)], rows));
    const Var<S> l = nn::mse_loss(m.head.forward(hs[static_cast<std::size_t>(t)]), target, reduction);
    loss = t == 0 ? l : add(loss, l);
  }
  return loss;
}

struct Case {
  GradReduce reduce;
  Reduction loss_reduction;
  std::size_t bucket_bytes;
  bool overlap;
};

// Sum: a summed loss over any split. Average: a mean loss over equal shares (the batch is a
// multiple of 2 and 3), whose global mean is the average of the ranks' means.
template <class S>
void check_one_step(const Case& c, double tolerance) {
  const Communicator& comm = world();
  const Index global_rows = c.reduce == GradReduce::Sum ? 7 : 6;
  const Dataset data(kSteps, global_rows, kDataSeed);

  TinyModel<S> reference(kRank0Seed);
  Tape<S> ref_tape;
  sequence_loss(ref_tape, reference, data, all_rows(global_rows), c.loss_reduction,
                static_cast<GradientSync<S>*>(nullptr))
      .backward();

  TinyModel<S> model(kRank0Seed + static_cast<std::uint64_t>(comm.rank()));
  broadcast_parameters(comm, model.parameters());
  GradientSync<S> sync(comm, model.parameters(), {c.reduce, c.bucket_bytes, c.overlap});
  const BatchSharder sharder(5, comm.rank(), comm.size());
  Tape<S> tape;
  sequence_loss(tape, model, data, sharder.rows(0, global_rows), c.loss_reduction, &sync).backward();
  sync.finish();

  const auto mine = model.named_parameters();
  const auto ref = reference.named_parameters();
  ASSERT_EQ(mine.size(), ref.size());
  for (std::size_t i = 0; i < mine.size(); ++i) {
    EXPECT_LE(relative_difference(mine[i].second->grad, ref[i].second->grad), tolerance) << mine[i].first;
  }
  if (c.overlap) {
    EXPECT_EQ(sync.started_during_sweep(), sync.num_buckets());
  } else {
    EXPECT_EQ(sync.started_during_sweep(), 0u);
  }
}

constexpr std::size_t kSmallBuckets = 64;  // bytes: a few parameters per bucket, several buckets
constexpr std::size_t kOneBucket = std::size_t{1} << 20;

TEST(GradientSync, SummedLossSumReduceMatchesCombinedBatch) {
  for (const bool overlap : {true, false}) {
    for (const std::size_t bytes : {kSmallBuckets, kOneBucket}) {
      SCOPED_TRACE(::testing::Message() << "overlap " << overlap << ", bucket bytes " << bytes);
      check_one_step<double>({GradReduce::Sum, Reduction::Sum, bytes, overlap}, 1e-12);
    }
  }
}

TEST(GradientSync, MeanLossAverageMatchesCombinedBatch) {
  for (const bool overlap : {true, false}) {
    for (const std::size_t bytes : {kSmallBuckets, kOneBucket}) {
      SCOPED_TRACE(::testing::Message() << "overlap " << overlap << ", bucket bytes " << bytes);
      check_one_step<double>({GradReduce::Average, Reduction::Mean, bytes, overlap}, 1e-12);
    }
  }
}

TEST(GradientSync, FloatMatchesCombinedBatch) {
  for (const bool overlap : {true, false}) {
    check_one_step<float>({GradReduce::Average, Reduction::Mean, kSmallBuckets, overlap}, 1e-5);
  }
}

TEST(GradientSync, SmallBucketsSplitTheParametersInReverseOrder) {
  TinyModel<double> model(kRank0Seed);
  const GradientSync<double> few(world(), model.parameters(), {GradReduce::Sum, kSmallBuckets, true});
  const GradientSync<double> one(world(), model.parameters(), {GradReduce::Sum, kOneBucket, true});
  EXPECT_GT(few.num_buckets(), 1u);
  EXPECT_EQ(one.num_buckets(), 1u);
}

TEST(GradientSync, BroadcastMakesEveryRankStartFromRankZero) {
  const Communicator& comm = world();
  TinyModel<double> rank0(kRank0Seed);
  TinyModel<double> model(kRank0Seed + static_cast<std::uint64_t>(comm.rank()));
  const auto before = model.parameters();
  if (comm.rank() != 0) {
    EXPECT_NE(before[0]->value, rank0.parameters()[0]->value);
  }
  broadcast_parameters(comm, model.parameters());
  const auto mine = model.parameters();
  const auto expected = rank0.parameters();
  for (std::size_t i = 0; i < mine.size(); ++i) EXPECT_EQ(mine[i]->value, expected[i]->value) << i;
}

// A model with an overlapping sync over 64-byte buckets, and this rank's rows of 6.
struct OverlapRun {
  Dataset data{kSteps, 6, kDataSeed};
  TinyModel<double> model{kRank0Seed};
  GradientSync<double> sync{world(), model.parameters(), {GradReduce::Average, kSmallBuckets, true}};
  std::vector<Index> rows = BatchSharder(5, world().rank(), world().size()).rows(0, 6);
  Tape<double> tape;

  Var<double> loss(const std::function<void()>& mid_sweep = {}) {
    return sequence_loss<double>(tape, model, data, rows, Reduction::Mean, &sync, mid_sweep);
  }
};

TEST(GradientSync, SecondSweepWithOverlapThrowsOnEveryRank) {
  OverlapRun run;
  const Var<double> loss = run.loss();
  loss.backward();
  tapegrad::testing::expect_error<DistributedError>([&] { loss.backward(); }, {"second sweep", "finish()"});
  run.sync.finish();  // the first sweep's buckets complete; the sync is usable again
  run.model.zero_grad();
  run.loss().backward();
  run.sync.finish();
  EXPECT_EQ(run.sync.started_during_sweep(), run.sync.num_buckets());
}

// The head reads the states after the recurrence and its parameters are attached right before
// it, so its bucket (64-byte buckets: head.b and head.W alone) is on its way before the sweep
// is half way through the recurrence, whose parameters' buckets wait for the sweep's end.
TEST(GradientSync, OverlapStartsTheHeadsBucketBeforeTheRecurrenceIsSwept) {
  OverlapRun run;
  std::size_t started_mid_sweep = 0;
  const std::function<void()> probe = [&] { started_mid_sweep = run.sync.started(); };
  run.loss(probe).backward();
  EXPECT_EQ(started_mid_sweep, 1u);
  EXPECT_EQ(run.sync.started(), run.sync.num_buckets());
  run.sync.finish();
  EXPECT_EQ(run.sync.started(), 0u);
}

TEST(GradientSync, ZeroBucketBytesIsAValueError) {
  TinyModel<double> model(kRank0Seed);
  tapegrad::testing::expect_error<ValueError>(
      [&] {
        GradientSync<double> sync(world(), model.parameters(), {GradReduce::Sum, 0, true});
      },
      {"bucket_bytes"});
}

}  // namespace
}  // namespace tapegrad::distributed::testing
