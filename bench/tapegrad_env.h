// Environment knobs shared by the Tapegrad-side benchmarks (bench_train_step, bench_gemm_rate),
// so one run of scripts/bench-compare.sh sets them for both. Not for the LibTorch peer, which
// includes only the plain-C++ train_step_config.h.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <tapegrad/kernels/product.h>
#include <tapegrad/threading.h>

namespace tapegrad_bench {

/// Env TAPEGRAD_MIN_PARALLEL_WORK, if set, goes to tapegrad::set_min_parallel_work, so
/// the threshold can be tuned per machine without a rebuild. Returns the value in effect.
inline std::int64_t env_min_parallel_work() {
  if (const char* s = std::getenv("TAPEGRAD_MIN_PARALLEL_WORK"); s != nullptr && std::atoll(s) >= 0) {
    tapegrad::set_min_parallel_work(std::atoll(s));
  }
  return tapegrad::min_parallel_work();
}

/// Env TAPEGRAD_MIN_BLAS_WORK, if set, goes to tapegrad::set_min_blas_work: the smallest
/// product OpenBLAS takes in a TAPEGRAD_OPENBLAS build (a huge value keeps every product in Eigen).
/// Returns the value in effect.
inline std::int64_t env_min_blas_work() {
  if (const char* s = std::getenv("TAPEGRAD_MIN_BLAS_WORK"); s != nullptr && std::atoll(s) >= 0) {
    tapegrad::set_min_blas_work(std::atoll(s));
  }
  return tapegrad::min_blas_work();
}

/// Env TAPEGRAD_KEEP_FREED_MEMORY=1 calls tapegrad::keep_freed_memory(): glibc then
/// keeps the memory Eigen's products free for the next product. Returns true if it is on.
inline bool env_keep_freed_memory() {
  const char* s = std::getenv("TAPEGRAD_KEEP_FREED_MEMORY");
  return s != nullptr && std::string_view(s) == "1" && tapegrad::keep_freed_memory();
}

/// Env TAPEGRAD_SMALL_PRODUCTS=0 keeps step-shaped products out of small_gemm (kernels/product.h),
/// for an A/B of that route in one binary. Returns whether the route is on.
inline bool env_small_products() {
  if (const char* s = std::getenv("TAPEGRAD_SMALL_PRODUCTS"); s != nullptr) {
    tapegrad::kernels::set_small_products(std::string_view(s) != "0");
  }
  return tapegrad::kernels::small_products();
}

/// Env TAPEGRAD_BATCHED_WEIGHT_GRADS=0 adds every weight gradient at its step (kernels/product.h),
/// for an A/B of the batching in one binary. Returns whether batching is on.
inline bool env_batched_weight_grads() {
  if (const char* s = std::getenv("TAPEGRAD_BATCHED_WEIGHT_GRADS"); s != nullptr) {
    tapegrad::kernels::set_batched_weight_grads(std::string_view(s) != "0");
  }
  return tapegrad::kernels::batched_weight_grads();
}

}  // namespace tapegrad_bench
