// The recurrences' per-step products: C (+)= A B with few rows (the batch) and a weight B that
// is the same at every step. Eigen's GEMM packs both operands on every call, and for a batch of
// a few rows packing W costs about as much as the multiply. Row-major B already has the layout a
// broadcast kernel wants (each row B(k, :) contiguous), so small_gemm reads A and B where they
// are, keeps an MR x NP-packet block of C in registers, and per k loads NP packets of B(k, :)
// and broadcasts MR values of A(:, k). step_weight.h decides where it is used.
#pragma once

#include <algorithm>

#include <Eigen/Core>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <tapegrad/kernels/write.h>
#include <tapegrad/tensor.h>

namespace tapegrad::kernels {

// One MR x (NP packets) block of C: c (+)= a[MR x k] b[k x NP*PS], every operand row-major with
// row strides lda, ldb, ldc.
template <class S, int MR, int NP, Write W>
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
      if constexpr (W == Accumulate) {
        Eigen::internal::pstoreu(dst, Eigen::internal::padd(Eigen::internal::ploadu<Packet>(dst), acc[r][j]));
      } else {
        Eigen::internal::pstoreu(dst, acc[r][j]);
      }
    }
  }
}

// Rows [0, m) of C's columns [0, NP*PS) over depth [0, k): blocks of kRows rows, then the 1-3
// rows left.
template <class S, int NP, Write W>
void small_gemm_rows(S* c, Index ldc, const S* a, Index lda, const S* b, Index ldb, Index m, Index k) {
  constexpr int kRows = 4;
  Index i = 0;
  for (; i + kRows <= m; i += kRows) {
    small_gemm_block<S, kRows, NP, W>(c + i * ldc, ldc, a + i * lda, lda, b, ldb, k);
  }
  S* ci = c + i * ldc;
  const S* ai = a + i * lda;
  switch (m - i) {
    case 3:
      small_gemm_block<S, 3, NP, W>(ci, ldc, ai, lda, b, ldb, k);
      break;
    case 2:
      small_gemm_block<S, 2, NP, W>(ci, ldc, ai, lda, b, ldb, k);
      break;
    case 1:
      small_gemm_block<S, 1, NP, W>(ci, ldc, ai, lda, b, ldb, k);
      break;
    default:
      break;
  }
}

// Columns [0, NP*PS) of C. The depth goes in blocks of kDepth rows of B, so that the panel of B
// every row block of C sweeps (kDepth x NP packets, 32 KiB) stays in the 48 KiB L1 cache; the
// first block assigns or adds as asked, the others add.
template <class S, int NP, Write W>
void small_gemm_columns(S* c, Index ldc, const S* a, Index lda, const S* b, Index ldb, Index m, Index k) {
  constexpr Index kDepth = 128;
  small_gemm_rows<S, NP, W>(c, ldc, a, lda, b, ldb, m, std::min(k, kDepth));
  for (Index p = kDepth; p < k; p += kDepth) {
    small_gemm_rows<S, NP, Accumulate>(c, ldc, a + p, lda, b + p * ldb, ldb, m, std::min(k - p, kDepth));
  }
}

/// C[m x n] (+)= A[m x k] B[k x n] on raw row-major storage (row strides lda, ldb, ldc); C must
/// not overlap A or B. One thread.
template <class S, Write W>
void small_gemm(S* c, Index ldc, const S* a, Index lda, const S* b, Index ldb, Index m, Index k, Index n) {
  constexpr int PS = Eigen::internal::packet_traits<S>::size;
  constexpr int kPackets = 4;  // 4 x 4 accumulators of C: 16 of AVX-512's 32 registers
  Index j = 0;
  for (; j + kPackets * PS <= n; j += kPackets * PS) {
    small_gemm_columns<S, kPackets, W>(c + j, ldc, a, lda, b + j, ldb, m, k);
  }
  switch ((n - j) / PS) {
    case 3:
      small_gemm_columns<S, 3, W>(c + j, ldc, a, lda, b + j, ldb, m, k);
      break;
    case 2:
      small_gemm_columns<S, 2, W>(c + j, ldc, a, lda, b + j, ldb, m, k);
      break;
    case 1:
      small_gemm_columns<S, 1, W>(c + j, ldc, a, lda, b + j, ldb, m, k);
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
      dst = W == Accumulate ? dst + sum : sum;
    }
  }
}

/// small_gemm on up to `threads` threads (OpenMP; one without it or inside a parallel region),
/// each taking a contiguous range of whole register blocks of columns: one fork and one join per
/// product, where Eigen's parallel GEMM synchronizes its threads on every block it packs.
template <class S, Write W>
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
      small_gemm<S, W>(c + j0, ldc, a, lda, b + j0, ldb, m, k, j1 - j0);
    }
    return;
  }
#endif
  static_cast<void>(threads);
  small_gemm<S, W>(c, ldc, a, lda, b, ldb, m, k, n);
}

}  // namespace tapegrad::kernels
