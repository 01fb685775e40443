// Tapegrad's process-wide product settings (tapegrad/threading.h), changed for one scope and put
// back after it, so a test that changes them cannot leak them into the tests after it, even when
// an assertion throws.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>

#include <tapegrad/kernels/blas.h>     // kBlasProducts: whether the OpenBLAS route exists to test
#include <tapegrad/kernels/product.h>  // small_products
#include <tapegrad/threading.h>

namespace tapegrad::test {

// Each field defaults to the value in effect, so a scope names only what it changes.
struct ProductSettings {
  int threads = num_threads();
  std::int64_t min_parallel = min_parallel_work();
  std::int64_t min_blas = min_blas_work();
  bool small = kernels::small_products();  ///< Step-shaped products in small_gemm (kernels/product.h).
};

class ProductSettingsScope {
 public:
  explicit ProductSettingsScope(const ProductSettings& settings) { apply(settings); }
  ~ProductSettingsScope() { apply(before_); }
  ProductSettingsScope(const ProductSettingsScope&) = delete;
  ProductSettingsScope& operator=(const ProductSettingsScope&) = delete;

 private:
  static void apply(const ProductSettings& s) {
    set_num_threads(s.threads);
    set_min_parallel_work(s.min_parallel);
    set_min_blas_work(s.min_blas);
    kernels::set_small_products(s.small);
  }
  ProductSettings before_;  // the values in effect when the scope began
};

/// A parameterized fixture whose tests run with two product threads and no work threshold, so
/// each finished chunk's weight gradient runs on the other thread (Note [Overlapped chunk
/// gradients]).
template <class Param>
class TwoThreadTest : public ::testing::TestWithParam<Param> {
  const ProductSettingsScope settings_{{.threads = 2, .min_parallel = 0}};
};

/// The same with every product in OpenBLAS (Note [BLAS products]); skipped in a build without it.
template <class Param>
class TwoThreadBlasTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    if (!kernels::kBlasProducts) GTEST_SKIP() << "built without TAPEGRAD_OPENBLAS";
  }

 private:
  const ProductSettingsScope settings_{{.threads = 2, .min_parallel = 0, .min_blas = 0, .small = false}};
};

}  // namespace tapegrad::test
