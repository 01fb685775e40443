// The group of ranks that train together. A Communicator initialises MPI (or attaches to an MPI
// the program already initialised) and works on its own duplicate of the given communicator, so
// its collectives never match a message of the program's own; MPI errors on it come back as
// DistributedError instead of aborting the job.
#pragma once

#include <mpi.h>

namespace tapegrad::distributed {

class Communicator {
 public:
  /// MPI_COMM_WORLD. Calls MPI_Init if MPI is not initialised yet; this object then also calls
  /// MPI_Finalize when destroyed (destroy every other Communicator first).
  Communicator();
  /// A duplicate of comm; MPI must already be initialised (DistributedError otherwise).
  explicit Communicator(MPI_Comm comm);
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;
  ~Communicator();

  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return size_; }
  /// The duplicated communicator every collective of this library runs on.
  [[nodiscard]] MPI_Comm comm() const { return comm_; }
  /// True when this object initialised MPI (and will finalise it).
  [[nodiscard]] bool owns_mpi() const { return owns_mpi_; }

 private:
  void attach(MPI_Comm comm);

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  bool owns_mpi_ = false;
};

/// Throws DistributedError naming `call` and MPI's message when rc is not MPI_SUCCESS.
void check_mpi(int rc, const char* call);

}  // namespace tapegrad::distributed
