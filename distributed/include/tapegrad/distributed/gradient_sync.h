// Gradient synchronisation for data-parallel training: after the backward sweep(s) of a step,
// every rank holds the sum (or average) over ranks of every parameter's gradient, as PyTorch DDP
// and Horovod do. Gradients travel in buckets of about bucket_bytes, in one fixed order (the
// parameters in reverse, the order a reverse sweep finishes them in), so every rank issues the
// same collectives in the same order and gets the same result.
//
// Overlap: attach(tape) records every parameter's leaf with a hook. A hook runs once the sweep
// has made that leaf's gradient final (docs/design.md, hooks), so a bucket's MPI_Iallreduce
// starts while the sweep is still working on earlier steps. finish() starts what is left, waits,
// and writes the result into Parameter::grad. With overlap off, finish() does all of it, with
// blocking MPI_Allreduce calls.
#pragma once

#include <cstddef>
#include <vector>

#include <tapegrad/distributed/communicator.h>
#include <tapegrad/parameter.h>
#include <tapegrad/tape.h>

namespace tapegrad::distributed {

enum class GradReduce {
  Sum,      ///< every rank gets the sum of the ranks' gradients
  Average,  ///< the sum divided by the number of ranks (a mean loss over equal shares)
};

struct GradientSyncOptions {
  GradReduce reduce = GradReduce::Average;
  std::size_t bucket_bytes = std::size_t{1} << 20;  ///< a bucket closes once it holds this many
  bool overlap = true;                              ///< start buckets from hooks during the sweep (needs attach)
};

template <class S>
class GradientSync {
 public:
  /// Collective: checks that every rank lists the same parameters (ParameterMismatchError on
  /// every rank otherwise, see parameters.h). bucket_bytes == 0 -> ValueError. comm must
  /// outlive this object.
  GradientSync(const Communicator& comm, std::vector<Parameter<S>*> params, const GradientSyncOptions& options = {});
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;
  /// Waits for any bucket still in flight (its buffer must outlive the transfer).
  ~GradientSync();

  /// With overlap: records each parameter's leaf on tape with the hook that hands its final
  /// gradient to its bucket. Call it on each new recording before the model reads a parameter
  /// (after tape.clear()); parameters whose leaf this recording already has are left alone, so
  /// run_tbptt's StepFn may call it at every step. A hook runs when the sweep passes the place
  /// it was recorded, so for the earliest start attach each module's parameters right before
  /// that module's forward (attach(tape, head.parameters())): the head's bucket then travels
  /// while the sweep is still inside the layers below. The hooks expect one sweep per finish():
  /// a second sweep reaching an already sent parameter throws DistributedError (turn overlap off
  /// to sum several sweeps first). The hooks refer to this object: clear the tape before
  /// destroying it. Without overlap it does nothing.
  void attach(Tape<S>& tape);
  /// The same for some of the parameters (each must be in the list given at construction,
  /// ValueError otherwise).
  void attach(Tape<S>& tape, const std::vector<Parameter<S>*>& some);
  /// Collective: after the step's last backward, before clipping and the optimizer. Starts every
  /// bucket not started yet, waits for all, and leaves the reduced gradient in Parameter::grad.
  void finish();

  [[nodiscard]] std::size_t num_buckets() const { return buckets_.size(); }
  /// Buckets started since the last finish() (with overlap, hooks start them during the sweep).
  [[nodiscard]] std::size_t started() const { return next_to_start_; }
  /// Buckets started by hooks during the sweeps behind the last finish() (0 without overlap).
  [[nodiscard]] std::size_t started_during_sweep() const { return last_started_during_sweep_; }

 private:
  struct Bucket {
    std::vector<std::size_t> members;  // indices into params_
    std::vector<Index> offsets;        // each member's first element in data
    std::vector<S> data;
    std::size_t pending = 0;  // members whose final gradient has not arrived this step
    bool started = false;
    MPI_Request request = MPI_REQUEST_NULL;
  };

  void on_final_gradient(std::size_t param, const Matrix<S>& sweep_grad);
  void copy_in(std::size_t param, const Matrix<S>& grad);
  void start_ready_buckets();
  void start(Bucket& b);
  void reset_step();

  MPI_Comm comm_;
  int ranks_;
  std::vector<Parameter<S>*> params_;
  GradientSyncOptions options_;
  std::vector<Bucket> buckets_;
  std::vector<std::size_t> bucket_of_;  // per parameter
  std::vector<bool> arrived_;           // per parameter, this step
  std::size_t next_to_start_ = 0;       // buckets start strictly in index order
  std::size_t started_during_sweep_ = 0;
  std::size_t last_started_during_sweep_ = 0;
  std::vector<Var<S>> leaves_;  // per parameter, the leaf attach last recorded
};

extern template class GradientSync<float>;
extern template class GradientSync<double>;

}  // namespace tapegrad::distributed
