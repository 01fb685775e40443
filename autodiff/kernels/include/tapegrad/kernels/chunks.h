// What the fused recurrences' step loops share (rnn_steps.h, lstm_steps.h, gru_steps.h): the
// chunks of the backward's dA scratch and their weight gradients, and the product with h_{t-1}.
#pragma once

#include <algorithm>
#include <exception>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <tapegrad/kernels/product.h>
#include <tapegrad/kernels/step_weight.h>
#include <tapegrad/kernels/threads.h>
#include <tapegrad/kernels/write.h>
#include <tapegrad/tensor.h>
#include <tapegrad/threading.h>

namespace tapegrad::kernels {

// Rows (steps x batch) per dW GEMM: large enough for full GEMM speed, small enough that the dA
// scratch stays a small part of the saved activations for long sequences.
inline constexpr Index kChunkRows = 512;

inline Index chunk_steps(Index steps, Index batch) {
  return std::clamp<Index>((kChunkRows + batch - 1) / batch, 1, steps);
}

// Note [Overlapped chunk gradients]
// A finished chunk's input gradient and dW GEMM feed nothing the recurrence still needs. With a
// second thread they run as an OpenMP task while the recurrence goes on with the chunk before
// it, so the weight-gradient GEMMs of all but the last chunk cost no wall time. Each task is
// waited for before the next is handed out: at most one runs, the tasks add into dW in order,
// and a task's dA rows are not overwritten while it reads them (the dA scratch alternates two
// halves). The chunk of the first steps, finished last, runs after the region, where its GEMM
// may use both threads. Only when the step products run on one thread anyway: inside the region
// Eigen keeps every product on one thread.

// How a backward groups its steps into chunks for the weight-gradient GEMMs.
struct ChunkPlan {
  Index per_chunk;  // steps per chunk; chunks start at multiples of it
  bool overlap;     // chunk gradients on the other thread; the scratch holds two chunks, used in turn
  [[nodiscard]] Index first_step(Index t) const { return t / per_chunk * per_chunk; }
  // The scratch slot (0 or 1) of the chunk starting at step t0.
  [[nodiscard]] Index slot(Index t0) const { return overlap ? t0 / per_chunk % 2 : 0; }
  // The first scratch row of the chunk starting at step t0, for a batch of nb rows.
  [[nodiscard]] Index first_row(Index t0, Index nb) const { return slot(t0) * per_chunk * nb; }
};

// scratch_steps: the steps the dA scratch holds. Overlaps (halving the chunks so two fit) when
// OpenMP gives num_threads() >= 2 outside any parallel region, the step products run on one
// thread, there are at least two chunks, and a chunk's weight gradient (work_per_step
// multiply-adds per step) is worth a task: at least min_parallel_work().
inline ChunkPlan plan_chunks(Index scratch_steps, Index n_steps, bool steps_on_one_thread, double work_per_step) {
#ifdef _OPENMP
  const Index half = scratch_steps / 2;
  if (half >= 1 && steps_on_one_thread && n_steps > half && num_threads() >= 2 && omp_in_parallel() == 0 &&
      static_cast<double>(half) * work_per_step >= static_cast<double>(min_parallel_work())) {
    return {half, true};
  }
#else
  static_cast<void>(n_steps), static_cast<void>(steps_on_one_thread), static_cast<void>(work_per_step);
#endif
  return {scratch_steps, false};
}

// Runs loop(hand_off). With overlap, inside a two-thread OpenMP region where hand_off(work) waits
// for the previous work, then gives this one to the other thread as a task; otherwise
// hand_off(work) runs it at once. An exception from the loop or a task is rethrown here once
// every task has finished (none may leave an OpenMP region).
template <class Loop>
void run_chunks(bool overlap, Loop&& loop) {
#ifdef _OPENMP
  if (overlap) {
    std::exception_ptr loop_error;
    std::exception_ptr task_error;  // written by one task at a time, read after a taskwait
#pragma omp parallel num_threads(2) shared(loop_error, task_error)
#pragma omp single
    {
      const auto hand_off = [&task_error](auto work) {
#pragma omp taskwait
        if (task_error) return;
#pragma omp task firstprivate(work) shared(task_error)
        {
          try {
            work();
          } catch (...) {
            task_error = std::current_exception();
          }
        }
      };
      try {
        loop(hand_off);
      } catch (...) {
        loop_error = std::current_exception();
      }
#pragma omp taskwait
    }
    if (loop_error) std::rethrow_exception(loop_error);
    if (task_error) std::rethrow_exception(task_error);
    return;
  }
#endif
  static_cast<void>(overlap);
  loop([](auto work) { work(); });
}

// The backward's walk over the steps, t = T-1 down to 0: step(t, t0) for each (t0: the first step
// of t's chunk); whenever a chunk [t0, t0 + n) is complete, chunk_grads(t0, n), on the other
// thread when the plan overlaps. The chunk of the first steps, finished last, runs after the
// region, where its GEMM may use both threads.
template <class Step, class ChunkGrads>
void walk_back_in_chunks(const ChunkPlan& plan, Index n_steps, Step&& step, ChunkGrads&& chunk_grads) {
  run_chunks(plan.overlap, [&](auto hand_off) {
    for (Index t = n_steps; t-- > 0;) {
      const Index t0 = plan.first_step(t);
      step(t, t0);
      if (t != t0 || t0 == 0) continue;
      const Index n = std::min(t0 + plan.per_chunk, n_steps) - t0;
      hand_off([&chunk_grads, t0, n] { chunk_grads(t0, n); });
    }
  });
  chunk_grads(Index{0}, std::min(plan.per_chunk, n_steps));
}

template <class S>
using RowArray = Eigen::Map<Eigen::Array<S, 1, Eigen::Dynamic>>;
template <class S>
using ConstRowArray = Eigen::Map<const Eigen::Array<S, 1, Eigen::Dynamic>>;

// dW += sum over the chunk's steps t0 .. t0+n-1 of h_{t-1}^T dA_t, in at most two GEMMs.
// h_{-1} is h0; prev(first, count) gives rows [first, first + count) of the h sequence.
template <class S, class Prev, class Chunk>
void add_weight_grad(Matrix<S>& gw, const Matrix<S>& h0, const Prev& prev, const Chunk& d, Index t0, Index n,
                     Index nb) {
  if (t0 == 0) {
    product(gw, h0.transpose(), d.topRows(nb), Accumulate);
    if (n > 1) product(gw, prev(0, (n - 1) * nb).transpose(), d.bottomRows((n - 1) * nb), Accumulate);
  } else {
    product(gw, prev((t0 - 1) * nb, n * nb).transpose(), d, Accumulate);
  }
}

// What every recurrence backward sets up first: the batch nb and hidden size nh (of h0), the
// steps of a sequence of seq_rows rows, the step weight W^T and the plan of a dA scratch of
// scratch_steps steps.
template <class S>
struct BackwardSetup {
  BackwardSetup(const Matrix<S>& h0, const Matrix<S>& w, Index seq_rows, Index scratch_steps)
      : nb(h0.rows()),
        nh(h0.cols()),
        n_steps(seq_rows / nb),
        step_wt(w, true, nb),
        plan(plan_chunks(scratch_steps, n_steps, step_wt.one_thread(), product_work(nb, nh, w.cols()))) {}
  /// The scratch rows of the n steps of the chunk starting at step t0.
  auto chunk_rows(Matrix<S>& scratch, Index t0, Index n) const {
    return scratch.middleRows(plan.first_row(t0, nb), n * nb);
  }
  Index nb;
  Index nh;
  Index n_steps;
  StepWeight<S> step_wt;
  ChunkPlan plan;
};

// dst (+)= h_{t-1} W for step t of a batch of nb rows: h0 at t = 0, else prev(first, count)
// gives rows [first, first + count) of the h sequence.
template <class S, class Dst, class Prev>
void previous_state_product(const StepWeight<S>& w, Dst&& dst, const Matrix<S>& h0, const Prev& prev, Index t, Index nb,
                            Write write) {
  if (t == 0) {
    w.product(dst, h0, write);
  } else {
    w.product(dst, prev((t - 1) * nb, nb), write);
  }
}

}  // namespace tapegrad::kernels
