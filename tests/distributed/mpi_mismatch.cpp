// Ranks holding different models: every rank throws ParameterMismatchError (no rank hangs in a
// collective the others never enter), and the communicator still works afterwards.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "mpi_world.h"

namespace tapegrad::distributed::testing {
namespace {

// Runs fn on every rank, expects ParameterMismatchError with `words` in its message, then checks
// through one more collective that every rank caught it.
void expect_mismatch_on_every_rank(const std::function<void()>& fn, const std::vector<std::string>& words) {
  const Communicator& comm = world();
  int caught = 0;
  try {
    fn();
  } catch (const ParameterMismatchError& e) {
    caught = 1;
    const std::string msg = e.what();
    for (const std::string& w : words) EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in: " << msg;
  }
  EXPECT_EQ(caught, 1) << "rank " << comm.rank();
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, &caught, 1, MPI_INT, MPI_SUM, comm.comm()), "test: MPI_Allreduce");
  EXPECT_EQ(caught, comm.size());
}

int last_rank() { return world().size() - 1; }

TEST(ParameterMismatch, ShapeOnTheLastRank) {
  const Index hidden = world().rank() == last_rank() ? kHidden + 1 : kHidden;
  TinyModel<double> model(3, hidden);
  const std::string who = "rank " + std::to_string(last_rank());
  expect_mismatch_on_every_rank([&] { GradientSync<double> sync(world(), model.parameters()); }, {who, "rank 0"});
  if (world().rank() == last_rank()) {
    expect_mismatch_on_every_rank([&] { broadcast_parameters(world(), model.parameters()); },
                                  {"parameter 0 is 'cell.W_ih' [3 x 20]", "rank 0's is 'cell.W_ih' [3 x 16]"});
  } else {
    expect_mismatch_on_every_rank([&] { broadcast_parameters(world(), model.parameters()); }, {who});
  }
}

TEST(ParameterMismatch, ExtraParameterOnRankOne) {
  TinyModel<double> model(3);
  Parameter<double> extra(Matrix<double>::Zero(1, 1), "extra");
  std::vector<Parameter<double>*> params = model.parameters();
  if (world().rank() == 1) params.push_back(&extra);
  expect_mismatch_on_every_rank(
      [&] { check_same_parameters(world(), params); },
      {"rank 1 has " + std::to_string(world().rank() == 1 ? params.size() : params.size() + 1)});
}

TEST(ParameterMismatch, SameShapesOtherNameOnRankOne) {
  Parameter<double> a(Matrix<double>::Zero(2, 2), world().rank() == 1 ? "b" : "a");
  expect_mismatch_on_every_rank([&] { check_same_parameters(world(), std::vector<Parameter<double>*>{&a}); },
                                {"rank 1 has 1 parameters"});
}

TEST(ParameterMismatch, SameModelsPass) {
  TinyModel<double> model(3);
  EXPECT_NO_THROW(check_same_parameters(world(), model.parameters()));
}

}  // namespace
}  // namespace tapegrad::distributed::testing
