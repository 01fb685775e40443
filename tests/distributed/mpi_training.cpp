// Training: 50 chunked-TBPTT updates (clipping by the global norm, then Adam) on the ranks give
// the losses and parameters of the same training on the combined batch in one process.
#include <gtest/gtest.h>

#include <tapegrad/nn/clip.h>
#include <tapegrad/nn/loss.h>
#include <tapegrad/nn/optim.h>
#include <tapegrad/nn/tbptt.h>

#include "mpi_world.h"

namespace tapegrad::distributed::testing {
namespace {

constexpr int kChunk = 2;
constexpr int kUpdates = 50;
constexpr Index kGlobalRows = 6;  // equal shares for 2 and 3 ranks: mean losses average exactly
constexpr double kMaxNorm = 0.05;

struct Trained {
  std::vector<double> losses;  // per step, the mean over the rows this process read
  std::vector<Matrix<double>> values;
  int clipped_updates = 0;
};

// Trains a copy of the model on `rows` of the data; with sync, each update synchronises first,
// so the clip sees (and the optimizer applies) the gradient of the combined batch.
Trained train(const Dataset& data, const std::vector<Index>& rows, GradientSync<double>* sync, TinyModel<double>& m) {
  nn::Adam<double> opt(m.named_parameters(), nn::AdamOptions{0.02});
  const std::vector<Parameter<double>*> params = m.parameters();
  Trained out;
  const nn::StepFn<double> step = [&](Tape<double>& tape, int t, const nn::State<double>& s) {
    if (sync != nullptr) sync->attach(tape);  // once per chunk: the driver cleared the tape
    const auto at = static_cast<std::size_t>(t);
    nn::State<double> next = m.cell.step(tape.constant(take_rows<double>(data.x[at], rows)), s);
    const Var<double> loss = nn::mse_loss(m.head.forward(next.h()), tape.constant(take_rows<double>(data.y[at], rows)));
    return nn::StepResult<double>{next, loss};
  };
  const nn::UpdateFn update = [&](const nn::UpdateInfo&) {
    if (sync != nullptr) sync->finish();
    if (nn::clip_grad_norm(params, kMaxNorm).clipped) ++out.clipped_updates;
    opt.step();
    opt.zero_grad();
  };
  const auto n = static_cast<Index>(rows.size());
  Tape<double> tape;
  const auto report = nn::run_tbptt<double>(tape, kChunk * kUpdates,
                                            {Matrix<double>::Zero(n, kHidden), Matrix<double>::Zero(n, kHidden)}, step,
                                            update, nn::TbpttConfig::chunked(kChunk));
  EXPECT_EQ(report.updates, kUpdates);
  for (const nn::StepLoss& l : report.losses) out.losses.push_back(l.loss);
  for (const Parameter<double>* p : params) out.values.push_back(p->value);
  return out;
}

void check_training(bool overlap) {
  const Communicator& comm = world();
  const Dataset data(kChunk * kUpdates, kGlobalRows, 23);

  TinyModel<double> reference_model(1);
  const Trained reference = train(data, all_rows(kGlobalRows), nullptr, reference_model);
  ASSERT_GT(reference.clipped_updates, 0);  // the clip acted, so it must see the combined gradient

  TinyModel<double> model(1 + static_cast<std::uint64_t>(comm.rank()));
  broadcast_parameters(comm, model.parameters());
  GradientSync<double> sync(comm, model.parameters(), {GradReduce::Average, 256, overlap});
  const BatchSharder sharder(9, comm.rank(), comm.size());
  Trained mine = train(data, sharder.rows(0, kGlobalRows), &sync, model);

  // The combined batch's mean loss is the average of the ranks' means (equal shares).
  ASSERT_EQ(mine.losses.size(), reference.losses.size());
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, mine.losses.data(), static_cast<int>(mine.losses.size()), MPI_DOUBLE, MPI_SUM,
                          comm.comm()),
            "test: MPI_Allreduce");
  for (std::size_t t = 0; t < mine.losses.size(); ++t) {
    const double global = mine.losses[t] / comm.size();
    EXPECT_LE(std::abs(global - reference.losses[t]), 1e-10 * std::abs(reference.losses[t])) << "step " << t;
  }
  EXPECT_EQ(mine.clipped_updates, reference.clipped_updates);
  for (std::size_t i = 0; i < mine.values.size(); ++i) {
    EXPECT_LE(relative_difference(mine.values[i], reference.values[i]), 1e-10) << "parameter " << i;
  }
}

TEST(DistributedTraining, ChunkedTbpttWithOverlapMatchesOneProcess) { check_training(true); }
TEST(DistributedTraining, ChunkedTbpttWithoutOverlapMatchesOneProcess) { check_training(false); }

}  // namespace
}  // namespace tapegrad::distributed::testing
