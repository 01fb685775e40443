// The MPI tests' main: one Communicator over the world for every test (it initialises and
// finalises MPI); each rank runs every test, and mpirun fails if any rank fails.
#include <gtest/gtest.h>

#include "mpi_world.h"

namespace tapegrad::distributed::testing {
namespace {
Communicator* the_world = nullptr;
}
const Communicator& world() { return *the_world; }
}  // namespace tapegrad::distributed::testing

int main(int argc, char** argv) {
  tapegrad::distributed::Communicator world;
  tapegrad::distributed::testing::the_world = &world;
  ::testing::InitGoogleTest(&argc, argv);
  const int failed = RUN_ALL_TESTS();
  // Every rank learns whether any failed, so the job's exit status does not depend on which
  // rank's status mpirun reports.
  int any = failed != 0 ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, world.comm());
  return any;
}
