// The processes one char_lm run trains on. Built with tapegrad::distributed (ranks_mpi.cpp),
// `mpirun -np N char_lm` runs N ranks that each train on their share of every global batch and
// sum their gradients before each update; built without it (ranks_single.cpp), or run as one
// process, there is one rank and every call below is the identity.
#pragma once

#include <memory>
#include <vector>

#include <tapegrad/parameter.h>

#include "shard.h"

namespace char_lm {

class Ranks {
 public:
  /// Joins the MPI job (or makes a job of one process).
  Ranks();
  Ranks(const Ranks&) = delete;
  Ranks& operator=(const Ranks&) = delete;
  ~Ranks();

  [[nodiscard]] int rank() const;
  [[nodiscard]] int size() const;
  /// Rank `rank`'s sequences of a global batch of `batch`; std::runtime_error when a rank
  /// would get none.
  [[nodiscard]] Share share_of(int batch, int rank) const;
  /// Rank 0 prints, validates, samples and writes every file.
  [[nodiscard]] bool lead() const { return rank() == 0; }

  /// Collective: checks that every rank lists the same parameters, copies rank 0's values to
  /// all, and prepares the gradient sums for these parameters.
  void share_parameters(const std::vector<tapegrad::Parameter<float>*>& params);
  /// Collective: every parameter's gradient becomes the sum over ranks (after share_parameters).
  void sum_gradients();
  /// Collective: the sum of x over ranks.
  [[nodiscard]] double sum(double x) const;
  /// Ends every rank of a job of several after an error on this one (a rank left waiting in a
  /// collective would hang the job); does nothing in a job of one.
  void abort_job(int exit_code) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace char_lm
