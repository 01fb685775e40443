#include <tapegrad/distributed/communicator.h>
#include <tapegrad/distributed/error.h>

namespace tapegrad::distributed {

void check_mpi(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(rc, text, &length);
  throw DistributedError(fmt::format("{} failed: {}", call, std::string(text, static_cast<std::size_t>(length))));
}

Communicator::Communicator() {
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised) {
    // The world communicator aborts on error until ours is set to return codes.
    if (MPI_Init(nullptr, nullptr) != MPI_SUCCESS) throw DistributedError("Communicator: MPI_Init failed");
    owns_mpi_ = true;
  }
  attach(MPI_COMM_WORLD);
}

Communicator::Communicator(MPI_Comm comm) {
  int initialised = 0;
  MPI_Initialized(&initialised);
  TAPEGRAD_CHECK(initialised != 0, DistributedError,
                 "Communicator(comm): MPI is not initialised; call MPI_Init first or use Communicator()");
  attach(comm);
}

void Communicator::attach(MPI_Comm comm) {
  try {
    check_mpi(MPI_Comm_dup(comm, &comm_), "Communicator: MPI_Comm_dup");
    check_mpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "Communicator: MPI_Comm_set_errhandler");
    check_mpi(MPI_Comm_rank(comm_, &rank_), "Communicator: MPI_Comm_rank");
    check_mpi(MPI_Comm_size(comm_, &size_), "Communicator: MPI_Comm_size");
  } catch (...) {
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
    if (owns_mpi_) MPI_Finalize();
    throw;
  }
}

Communicator::~Communicator() {
  int finalised = 0;
  MPI_Finalized(&finalised);
  if (finalised) return;
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  if (owns_mpi_) MPI_Finalize();
}

}  // namespace tapegrad::distributed
