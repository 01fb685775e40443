#include <algorithm>
#include <limits>

#include <tapegrad/distributed/error.h>
#include <tapegrad/distributed/gradient_sync.h>
#include <tapegrad/distributed/parameters.h>

#include "mpi_type.h"

namespace tapegrad::distributed {

template <class S>
GradientSync<S>::GradientSync(const Communicator& comm, std::vector<Parameter<S>*> params,
                              const GradientSyncOptions& options)
    : comm_(comm.comm()), ranks_(comm.size()), params_(std::move(params)), options_(options) {
  TAPEGRAD_CHECK(options_.bucket_bytes > 0, ValueError, "GradientSync: bucket_bytes must be > 0");
  check_same_parameters(comm, params_);
  // Buckets in reverse parameter order: a reverse sweep finishes the last-used parameters first.
  bucket_of_.assign(params_.size(), 0);
  arrived_.assign(params_.size(), false);
  leaves_.resize(params_.size());
  std::size_t bytes = 0;
  for (std::size_t k = params_.size(); k-- > 0;) {
    if (buckets_.empty() || bytes >= options_.bucket_bytes) {
      buckets_.emplace_back();
      bytes = 0;
    }
    Bucket& b = buckets_.back();
    b.offsets.push_back(static_cast<Index>(b.data.size()));
    b.members.push_back(k);
    b.data.resize(b.data.size() + static_cast<std::size_t>(params_[k]->size()));
    TAPEGRAD_CHECK(b.data.size() <= static_cast<std::size_t>(std::numeric_limits<int>::max()), ValueError,
                   "GradientSync: parameter '{}' makes a bucket of {} elements, more than one MPI call carries",
                   params_[k]->full_name(), b.data.size());
    bytes += static_cast<std::size_t>(params_[k]->size()) * sizeof(S);
    bucket_of_[k] = buckets_.size() - 1;
  }
  reset_step();
}

template <class S>
GradientSync<S>::~GradientSync() {
  int finalised = 0;
  MPI_Finalized(&finalised);
  if (finalised) return;
  for (Bucket& b : buckets_) {
    if (b.request != MPI_REQUEST_NULL) MPI_Wait(&b.request, MPI_STATUS_IGNORE);
  }
}

template <class S>
void GradientSync<S>::reset_step() {
  for (Bucket& b : buckets_) {
    b.pending = b.members.size();
    b.started = false;
  }
  arrived_.assign(params_.size(), false);
  next_to_start_ = 0;
  started_during_sweep_ = 0;
}

template <class S>
void GradientSync<S>::attach(Tape<S>& tape) {
  attach(tape, params_);
}

template <class S>
void GradientSync<S>::attach(Tape<S>& tape, const std::vector<Parameter<S>*>& some) {
  if (!options_.overlap) return;
  for (Parameter<S>* p : some) {
    const auto it = std::find(params_.begin(), params_.end(), p);
    TAPEGRAD_CHECK(it != params_.end(), ValueError, "GradientSync::attach: parameter '{}' is not in this sync's list",
                   p == nullptr ? std::string("(null)") : p->full_name());
    const auto i = static_cast<std::size_t>(it - params_.begin());
    if (leaves_[i].valid() && &leaves_[i].tape() == &tape) continue;  // this recording has it
    Var<S> leaf = tape.leaf(*p);
    leaf.register_hook([this, i](Matrix<S>& g) { on_final_gradient(i, g); });
    leaves_[i] = leaf;
  }
}

template <class S>
void GradientSync<S>::copy_in(std::size_t param, const Matrix<S>& grad) {
  Bucket& b = buckets_[bucket_of_[param]];
  std::size_t slot = 0;
  while (b.members[slot] != param) ++slot;
  const Index n = params_[param]->size();
  TAPEGRAD_CHECK(grad.size() == n, ShapeError, "GradientSync: the gradient of '{}' is {}, its value {}",
                 params_[param]->full_name(), shape_of(grad), params_[param]->shape());
  std::copy(grad.data(), grad.data() + n, b.data.begin() + b.offsets[slot]);
}

// Runs in the leaf's hook: sweep_grad is this sweep's final dL/dleaf, which the tape adds into
// Parameter::grad after the sweep, so the bucket gets the sum the gradient will hold then.
template <class S>
void GradientSync<S>::on_final_gradient(std::size_t param, const Matrix<S>& sweep_grad) {
  Parameter<S>& p = *params_[param];
  TAPEGRAD_CHECK(!arrived_[param], DistributedError,
                 "GradientSync: a second sweep reached parameter '{}' before finish(); overlap sends a gradient "
                 "once per step, so call finish() after each backward or turn overlap off",
                 p.full_name());
  arrived_[param] = true;
  if (p.grad.size() == sweep_grad.size()) {
    copy_in(param, p.grad + sweep_grad);
  } else {
    copy_in(param, sweep_grad);
  }
  --buckets_[bucket_of_[param]].pending;
  const std::size_t before = next_to_start_;
  start_ready_buckets();
  started_during_sweep_ += next_to_start_ - before;
}

// Buckets start strictly in index order, so every rank issues the same collectives in the
// same order even when hooks fire in another order (a parameter one rank's sweep never reached).
template <class S>
void GradientSync<S>::start_ready_buckets() {
  while (next_to_start_ < buckets_.size() && buckets_[next_to_start_].pending == 0) {
    start(buckets_[next_to_start_++]);
  }
  // Open MPI advances a non-blocking collective only inside MPI calls: give it one.
  for (std::size_t k = 0; k < next_to_start_; ++k) {
    if (buckets_[k].request == MPI_REQUEST_NULL) continue;
    int done = 0;
    check_mpi(MPI_Test(&buckets_[k].request, &done, MPI_STATUS_IGNORE), "GradientSync: MPI_Test");
  }
}

// Without overlap nothing runs meanwhile, and Open MPI's blocking allreduce is the faster one
// (bench/mpi_allreduce.cpp): several times faster than MPI_Iallreduce for MiB-sized buckets.
template <class S>
void GradientSync<S>::start(Bucket& b) {
  b.started = true;
  if (!options_.overlap) {
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, b.data.data(), static_cast<int>(b.data.size()), detail::mpi_type<S>(),
                            MPI_SUM, comm_),
              "GradientSync: MPI_Allreduce");
    return;
  }
  check_mpi(MPI_Iallreduce(MPI_IN_PLACE, b.data.data(), static_cast<int>(b.data.size()), detail::mpi_type<S>(), MPI_SUM,
                           comm_, &b.request),
            "GradientSync: MPI_Iallreduce");
}

template <class S>
void GradientSync<S>::finish() {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (arrived_[i]) continue;
    copy_in(i, params_[i]->grad);
    arrived_[i] = true;
    --buckets_[bucket_of_[i]].pending;
  }
  start_ready_buckets();
  const S scale = options_.reduce == GradReduce::Average ? S(1) / static_cast<S>(ranks_) : S(1);
  for (Bucket& b : buckets_) {
    check_mpi(MPI_Wait(&b.request, MPI_STATUS_IGNORE), "GradientSync: MPI_Wait");
    for (std::size_t slot = 0; slot < b.members.size(); ++slot) {
      Parameter<S>& p = *params_[b.members[slot]];
      const S* from = b.data.data() + b.offsets[slot];
      p.grad.resize(p.value.rows(), p.value.cols());
      for (Index e = 0; e < p.size(); ++e) p.grad.data()[e] = from[e] * scale;
    }
  }
  last_started_during_sweep_ = started_during_sweep_;
  reset_step();
}

template class GradientSync<float>;
template class GradientSync<double>;

}  // namespace tapegrad::distributed
