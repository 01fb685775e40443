// The recurrences' per-step products: C (+)= A B with few rows (the batch) and a weight B that
// stays the same for every step of a sequence.
//
// Note [Step products]
// Eigen's GEMM packs both operands into its own layout on every call. For h_{t-1} W_hh with
// B = 16 rows and H = 128, packing the 64 KB of W costs about as much as the multiply itself, and
// a sequence repeats it at every step, forward and backward (perf on RNN small: 84% of the step
// in GEMM kernel and packing). Row-major B already has the layout a broadcast kernel wants: for
// each k, the row B(k, :) is contiguous. So small_gemm reads A and B where they are, keeps an
// MR x NP-packet block of C in registers, and per k loads NP packets of B(k, :) and broadcasts
// MR values of A(:, k). The backward's W^T is transposed once per sequence (a copy the size of W)
// and then read the same way. Used only where it measured faster than Eigen (step_product_fits).
#pragma once

#include <algorithm>

#include <Eigen/Core>

#include <tapegrad/tensor.h>
#include <tapegrad/threads.h>
#include <tapegrad/transpose_copy.h>

namespace tapegrad::detail {

// One MR x (NP packets) block of C: c (+)= a[MR x k] b[k x NP*PS], every operand row-major with
// row strides lda, ldb, ldc.
template <class S, int MR, int NP, bool Accumulate>
[[gnu::always_inline]] inline void small_gemm_block(S* c, Index ldc, const S* a, Index lda, const S* b, Index ldb,
                                                    Index k) {
  using Packet = typename Eigen::internal::packet_traits<S>::type;
  constexpr int PS = Eigen::internal::packet_traits<S>::size;
  Packet acc[MR][NP];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int j = 0; j < NP; ++j) acc[r][j] = Eigen::internal::pset1<Packet>(S(0));
  }
  for (Index p = 0; p < k; ++p) {
    Packet bp[NP];
#pragma GCC unroll 8
    for (int j = 0; j < NP; ++j) bp[j] = Eigen::internal::ploadu<Packet>(b + p * ldb + j * PS);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const Packet ar = Eigen::internal::pset1<Packet>(a[r * lda + p]);
#pragma GCC unroll 8
      for (int j = 0; j < NP; ++j) acc[r][j] = Eigen::internal::pmadd(ar, bp[j], acc[r][j]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int j = 0; j < NP; ++j) {
      S* dst = c + r * ldc + j * PS;
      if constexpr (Accumulate) {
        Eigen::internal::pstoreu(dst, Eigen::internal::padd(Eigen::internal::ploadu<Packet>(dst), acc[r][j]));
      } else {
        Eigen::internal::pstoreu(dst, acc[r][j]);
      }
    }
  }
}

// Rows [0, m) of C's columns [0, NP*PS) over depth [0, k): blocks of kRows rows, then the 1-3
// rows left.
template <class S, int NP, bool Accumulate>
void small_gemm_rows(S* c, Index ldc, const S* a, Index lda, const S* b, Index ldb, Index m, Index k) {
  constexpr int kRows = 4;
  Index i = 0;
  for (; i + kRows <= m; i += kRows) {
    small_gemm_block<S, kRows, NP, Accumulate>(c + i * ldc, ldc, a + i * lda, lda, b, ldb, k);
  }
  S* ci = c + i * ldc;
  const S* ai = a + i * lda;
  switch (m - i) {
    case 3:
      small_gemm_block<S, 3, NP, Accumulate>(ci, ldc, ai, lda, b, ldb, k);
      break;
    case 2:
      small_gemm_block<S, 2, NP, Accumulate>(ci, ldc, ai, lda, b, ldb, k);
      break;
    case 1:
      small_gemm_block<S, 1, NP, Accumulate>(ci, ldc, ai, lda, b, ldb, k);
      break;
    default:
      break;
  }
}

// Columns [0, NP*PS) of C. The depth goes in blocks of kDepth rows of B, so that the panel of B
// every row block of C sweeps (kDepth x NP packets, 32 KiB) stays in the 48 KiB L1 cache; the
// first block assigns or adds as asked, the others add.
template <class S, int NP, bool Accumulate>
void small_gemm_columns(S* c, Index ldc, const S* a, Index lda, const S* b, Index ldb, Index m, Index k) {
  constexpr Index kDepth = 128;
  small_gemm_rows<S, NP, Accumulate>(c, ldc, a, lda, b, ldb, m, std::min(k, kDepth));
  for (Index p = kDepth; p < k; p += kDepth) {
    small_gemm_rows<S, NP, true>(c, ldc, a + p, lda, b + p * ldb, ldb, m, std::min(k - p, kDepth));
  }
}

/// C[m x n] (+)= A[m x k] B[k x n] on raw row-major storage (row strides lda, ldb, ldc); C must
/// not overlap A or B. Accumulate: add to C; otherwise overwrite it. One thread.
template <class S, bool Accumulate>
void small_gemm(S* c, Index ldc, const S* a, Index lda, const S* b, Index ldb, Index m, Index k, Index n) {
  constexpr int PS = Eigen::internal::packet_traits<S>::size;
  constexpr int kPackets = 4;  // 4 x 4 accumulators of C: 16 of AVX-512's 32 registers
  Index j = 0;
  for (; j + kPackets * PS <= n; j += kPackets * PS) {
    small_gemm_columns<S, kPackets, Accumulate>(c + j, ldc, a, lda, b + j, ldb, m, k);
  }
  switch ((n - j) / PS) {
    case 3:
      small_gemm_columns<S, 3, Accumulate>(c + j, ldc, a, lda, b + j, ldb, m, k);
      break;
    case 2:
      small_gemm_columns<S, 2, Accumulate>(c + j, ldc, a, lda, b + j, ldb, m, k);
      break;
    case 1:
      small_gemm_columns<S, 1, Accumulate>(c + j, ldc, a, lda, b + j, ldb, m, k);
      break;
    default:
      break;
  }
  j += (n - j) / PS * PS;
  // The last n mod PS columns, one dot product each.
  for (Index i = 0; i < m; ++i) {
    for (Index col = j; col < n; ++col) {
      S sum(0);
      for (Index p = 0; p < k; ++p) sum += a[i * lda + p] * b[p * ldb + col];
      S& dst = c[i * ldc + col];
      dst = Accumulate ? dst + sum : sum;
    }
  }
}

/// small_gemm on up to `threads` threads (OpenMP; one without it or inside a parallel region),
/// each taking a contiguous range of whole register blocks of columns: one fork and one join per
/// product, where Eigen's parallel GEMM synchronizes its threads on every block it packs.
template <class S, bool Accumulate>
void small_gemm_on(int threads, S* c, Index ldc, const S* a, Index lda, const S* b, Index ldb, Index m, Index k,
                   Index n) {
#ifdef _OPENMP
  if (threads > 1 && omp_in_parallel() == 0) {
    constexpr Index kBlock = 4 * Eigen::internal::packet_traits<S>::size;  // small_gemm's column block
#pragma omp parallel num_threads(threads)
    {
      const Index nt = omp_get_num_threads();
      const Index id = omp_get_thread_num();
      const Index per = (n / nt + kBlock - 1) / kBlock * kBlock;
      const Index j0 = std::min(n, id * per);
      const Index j1 = id == nt - 1 ? n : std::min(n, j0 + per);
      small_gemm<S, Accumulate>(c + j0, ldc, a, lda, b + j0, ldb, m, k, j1 - j0);
    }
    return;
  }
#endif
  static_cast<void>(threads);
  small_gemm<S, Accumulate>(c, ldc, a, lda, b, ldb, m, k, n);
}

/// Whether a step product [m x k][k x n] goes to small_gemm rather than Eigen (bench_step_product,
/// bench_train_step; docs/performance.md). On one thread small_gemm is 1.1-2.9x faster on every
/// measured step shape up to 64 rows (equal on [64 x 1024][1024 x 1024]), except a single row
/// wider than 32 columns, where Eigen's matrix-vector product keeps more sums in flight
/// ([1 x 32][32 x 128]: 0.041 us, small_gemm 0.051). Where Eigen would use two threads, the split
/// small_gemm_on is 1.0-1.9x faster (one fork and join per product against Eigen's barrier per
/// packed block, which stalls whenever the second vCPU is taken by the host).
inline bool step_product_fits(Index m, Index n) { return m <= 64 && !(m == 1 && n > 32); }

/// The threads small_gemm_on gets for a product of `work` multiply-adds: one up to 2^21, where
/// one small_gemm thread beats a split and leaves the other thread to the overlapped weight
/// gradients (Note [Overlapped chunk gradients]); above, threads_for_work(work).
inline int small_gemm_threads(double work) {
  return work <= static_cast<double>(Index{1} << 21) ? 1 : threads_for_work(work);
}

/// The weight of a recurrence's per-step products, W [H x G] or, for the backward's dA_t W^T, its
/// transpose. Chooses small_gemm or Eigen once per sequence (every step has the same shape) and,
/// when small_gemm will read W^T, makes the transposed copy once.
template <class S>
class StepWeight {
 public:
  /// rows: the batch, the row count of every left operand.
  StepWeight(const Matrix<S>& w, bool transposed, Index rows)
      : w_(w),
        transposed_(transposed),
        small_(step_product_fits(rows, transposed ? w.rows() : w.cols())),
        threads_(step_threads(small_, product_work(rows, w.rows(), w.cols()))) {
    if (small_ && transposed_) copy_ = transpose_of(w);
  }

  /// Whether every step product runs on one thread.
  [[nodiscard]] bool one_thread() const { return threads_ == 1; }

  /// dst += lhs op(W).
  template <class Dst, class Lhs>
  void add(Dst&& dst, const Lhs& lhs) const {
    run<true>(dst, lhs);
  }
  /// dst = lhs op(W).
  template <class Dst, class Lhs>
  void assign(Dst&& dst, const Lhs& lhs) const {
    run<false>(dst, lhs);
  }

 private:
  template <bool Accumulate, class Dst, class Lhs>
  void run(Dst& dst, const Lhs& lhs) const {
    if (small_) {
      const Matrix<S>& b = transposed_ ? copy_ : w_;
      eigen_assert(lhs.cols() == b.rows() && dst.rows() == lhs.rows() && dst.cols() == b.cols());
      small_gemm_on<S, Accumulate>(threads_, dst.data(), dst.outerStride(), lhs.data(), lhs.outerStride(), b.data(),
                                   b.cols(), lhs.rows(), lhs.cols(), b.cols());
    } else if (transposed_) {
      if constexpr (Accumulate) {
        add_product(dst, lhs, w_.transpose());
      } else {
        assign_product(dst, lhs, w_.transpose());
      }
    } else {
      if constexpr (Accumulate) {
        add_product(dst, lhs, w_);
      } else {
        assign_product(dst, lhs, w_);
      }
    }
  }

  // The threads of every step product of `work` multiply-adds (the same either way round).
  static int step_threads(bool small, double work) { return small ? small_gemm_threads(work) : threads_for_work(work); }

  const Matrix<S>& w_;
  bool transposed_;
  bool small_;
  int threads_;
  Matrix<S> copy_;  // W^T, only when small_gemm reads the transpose
};

}  // namespace tapegrad::detail
