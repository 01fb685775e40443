// Loopback cost of a gradient synchronisation: for gradients of 8 B to 8 MiB (float64), the
// median time of one GradientSync::finish() (one bucket, overlap off: pack, MPI_Iallreduce,
// wait, unpack), of a bare MPI_Iallreduce + MPI_Wait and of a bare MPI_Allreduce of the same
// buffer, each with the bandwidth that gives (bytes / time). Run it under mpirun, e.g.
//   mpirun -np 2 ./build/bench/bin/mpi_allreduce [repeats]
// Rank 0 prints one line per size.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <tapegrad/distributed/distributed.h>

namespace {

using tapegrad::Index;
using tapegrad::Matrix;
using tapegrad::Parameter;
namespace dist = tapegrad::distributed;

// The median over repeats of fn's time, the slowest rank's time in each repeat.
template <class F>
double median_seconds(const dist::Communicator& comm, int repeats, F fn) {
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    MPI_Barrier(comm.comm());
    const double start = MPI_Wtime();
    fn();
    double elapsed = MPI_Wtime() - start;
    MPI_Allreduce(MPI_IN_PLACE, &elapsed, 1, MPI_DOUBLE, MPI_MAX, comm.comm());
    times.push_back(elapsed);
  }
  std::nth_element(times.begin(), times.begin() + repeats / 2, times.end());
  return times[static_cast<std::size_t>(repeats / 2)];
}

}  // namespace

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::max(1, std::atoi(argv[1])) : 50;
  dist::Communicator comm;
  if (comm.rank() == 0) {
    std::printf("ranks %d, median of %d repeats\n%10s %12s %12s %12s %12s %12s %12s\n", comm.size(), repeats, "bytes",
                "finish us", "finish MB/s", "Iallred us", "Iallred MB/s", "Allred us", "Allred MB/s");
  }
  for (Index elements = 1; elements <= (Index{1} << 21); elements *= 4) {
    Parameter<double> p(Matrix<double>::Constant(1, elements, 1.0), "w");
    dist::GradientSync<double> sync(comm, {&p}, {dist::GradReduce::Sum, std::size_t{1} << 30, false});
    std::vector<double> buffer(static_cast<std::size_t>(elements), 1.0);
    for (int warm = 0; warm < 3; ++warm) sync.finish();
    const double t_sync = median_seconds(comm, repeats, [&] { sync.finish(); });
    const double t_raw = median_seconds(comm, repeats, [&] {
      MPI_Allreduce(MPI_IN_PLACE, buffer.data(), static_cast<int>(elements), MPI_DOUBLE, MPI_SUM, comm.comm());
    });
    const double t_nonblocking = median_seconds(comm, repeats, [&] {
      MPI_Request request = MPI_REQUEST_NULL;
      MPI_Iallreduce(MPI_IN_PLACE, buffer.data(), static_cast<int>(elements), MPI_DOUBLE, MPI_SUM, comm.comm(),
                     &request);
      MPI_Wait(&request, MPI_STATUS_IGNORE);
    });
    const double bytes = static_cast<double>(elements) * sizeof(double);
    if (comm.rank() == 0) {
      std::printf("%10.0f %12.1f %12.1f %12.1f %12.1f %12.1f %12.1f\n", bytes, t_sync * 1e6, bytes / t_sync / 1e6,
                  t_nonblocking * 1e6, bytes / t_nonblocking / 1e6, t_raw * 1e6, bytes / t_raw / 1e6);
    }
  }
  return 0;
}
