// The OpenBLAS side of the product route (kernels/blas.h) and its public setting. Without
// TAPEGRAD_OPENBLAS only the setting exists, and no product reaches blas_gemm.
#include <tapegrad/kernels/blas.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <string>
#include <string_view>

#include <tapegrad/error.h>
#include <tapegrad/threading.h>

#ifdef TAPEGRAD_HAS_OPENBLAS
#include <cblas.h>
#endif

namespace tapegrad {
namespace kernels {
namespace {

#ifdef TAPEGRAD_HAS_OPENBLAS
std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// OpenBLAS's kernel families with AVX-512 GEMM kernels (the ones measured faster than Eigen).
bool avx512_core(std::string_view core) {
  constexpr std::array<std::string_view, 3> kCores = {"skylakex", "cooperlake", "sapphirerapids"};
  const std::string name = lowercase(core);
  return std::find(kCores.begin(), kCores.end(), name) != kCores.end();
}

std::int64_t default_min_blas_work() {
  return avx512_core(openblas_get_corename()) ? kDefaultMinBlasWork : kNoBlasWork;
}

CBLAS_TRANSPOSE trans(bool transposed) { return transposed ? CblasTrans : CblasNoTrans; }

// cblas takes int dimensions (OpenBLAS's 32-bit-integer build, Debian's default).
blasint dim(Index n) {
  TAPEGRAD_CHECK(n <= static_cast<Index>(INT32_MAX), ShapeError,
                 "matrix product: dimension {} is larger than OpenBLAS's 32-bit interface takes", n);
  return static_cast<blasint>(n);
}
#else
std::int64_t default_min_blas_work() { return kNoBlasWork; }
#endif

std::atomic<std::int64_t> g_blas_products{0};

}  // namespace

std::string blas_name() {
#ifdef TAPEGRAD_HAS_OPENBLAS
  std::string name = openblas_get_config();  // "OpenBLAS 0.3.21 DYNAMIC_ARCH ..."
  name = name.substr(0, name.find(' ', name.find(' ') + 1));
  return name + " " + openblas_get_corename();
#else
  return "";
#endif
}

// Asked on first use rather than at static initialisation, when OpenBLAS may not have chosen its
// kernels yet. A set_min_blas_work that came first wins.
std::int64_t init_min_blas_work() {
  std::int64_t unset = -1;
  g_min_blas_work.compare_exchange_strong(unset, default_min_blas_work(), std::memory_order_relaxed);
  return g_min_blas_work.load(std::memory_order_relaxed);
}

std::int64_t blas_product_count() { return g_blas_products.load(std::memory_order_relaxed); }

#ifdef TAPEGRAD_HAS_OPENBLAS
void blas_gemm(Index m, Index n, Index k, BlasOperand<float> a, BlasOperand<float> b, float beta, float* c, Index ldc) {
  g_blas_products.fetch_add(1, std::memory_order_relaxed);
  cblas_sgemm(CblasRowMajor, trans(a.transposed), trans(b.transposed), dim(m), dim(n), dim(k), 1.0F, a.data, dim(a.ld),
              b.data, dim(b.ld), beta, c, dim(ldc));
}

void blas_gemm(Index m, Index n, Index k, BlasOperand<double> a, BlasOperand<double> b, double beta, double* c,
               Index ldc) {
  g_blas_products.fetch_add(1, std::memory_order_relaxed);
  cblas_dgemm(CblasRowMajor, trans(a.transposed), trans(b.transposed), dim(m), dim(n), dim(k), 1.0, a.data, dim(a.ld),
              b.data, dim(b.ld), beta, c, dim(ldc));
}
#else
void blas_gemm(Index, Index, Index, BlasOperand<float>, BlasOperand<float>, float, float*, Index) {
  TAPEGRAD_CHECK(false, ValueError, "blas_gemm: Tapegrad was built without TAPEGRAD_OPENBLAS");
}
void blas_gemm(Index, Index, Index, BlasOperand<double>, BlasOperand<double>, double, double*, Index) {
  TAPEGRAD_CHECK(false, ValueError, "blas_gemm: Tapegrad was built without TAPEGRAD_OPENBLAS");
}
#endif

}  // namespace kernels

std::int64_t min_blas_work() { return kernels::blas_threshold(); }

std::int64_t set_min_blas_work(std::int64_t work) {
  TAPEGRAD_CHECK(work >= 0, ValueError, "set_min_blas_work: work must be >= 0, got {}", work);
  if (!kernels::kBlasProducts) return kernels::kNoBlasWork;
  kernels::g_min_blas_work.store(work, std::memory_order_relaxed);
  return work;
}

}  // namespace tapegrad
