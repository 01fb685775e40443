// Ranks over tapegrad::distributed. Each rank's loss is already weighted by its share of the
// global batch, so the gradients are summed (GradReduce::Sum), not averaged. The sums run after
// the backward sweep (overlap off): the whole-chunk path records the parameters' leaves itself.
#include <optional>
#include <stdexcept>

#include <fmt/format.h>

#include <mpi.h>

#include <tapegrad/distributed/distributed.h>

#include "ranks.h"

namespace char_lm {

namespace dist = tapegrad::distributed;

struct Ranks::Impl {
  dist::Communicator comm;
  std::optional<dist::GradientSync<float>> sync;
};

Ranks::Ranks() : impl_(std::make_unique<Impl>()) {}
Ranks::~Ranks() = default;
int Ranks::rank() const { return impl_->comm.rank(); }
int Ranks::size() const { return impl_->comm.size(); }

Share Ranks::share_of(int batch, int rank) const {
  if (batch < size()) {
    throw std::runtime_error(
        fmt::format("--batch {} is smaller than the {} ranks: every rank needs a sequence", batch, size()));
  }
  const auto [begin, end] = dist::BatchSharder::share(batch, rank, size());
  return {static_cast<int>(begin), static_cast<int>(end)};
}

void Ranks::share_parameters(const std::vector<tapegrad::Parameter<float>*>& params) {
  if (size() == 1) return;
  dist::broadcast_parameters(impl_->comm, params);  // checks the lists first
  impl_->sync.emplace(impl_->comm, params,
                      dist::GradientSyncOptions{.reduce = dist::GradReduce::Sum, .overlap = false});
}

void Ranks::sum_gradients() {
  if (impl_->sync) impl_->sync->finish();
}

double Ranks::sum(double x) const {
  if (size() == 1) return x;
  double total = 0.0;
  dist::check_mpi(MPI_Allreduce(&x, &total, 1, MPI_DOUBLE, MPI_SUM, impl_->comm.comm()), "MPI_Allreduce");
  return total;
}

void Ranks::abort_job(int exit_code) const {
  if (size() > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
}

}  // namespace char_lm
