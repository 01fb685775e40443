#!/usr/bin/env bash
# Builds everything and runs the whole ctest suite.
#   ./scripts/test.sh             release preset (build/release)
#   ./scripts/test.sh --sanitize  asan preset (build/asan): AddressSanitizer + UBSan, any report fails;
#                                 OpenMP on two threads, large products in OpenBLAS
#   ./scripts/test.sh --openmp    openmp preset (build/openmp): OpenMP on, products and backwards on 2 threads,
#                                 large products in OpenBLAS (TAPEGRAD_OPENBLAS)
set -euo pipefail

preset=release
for arg in "$@"; do
  case "$arg" in
    --sanitize) preset=asan ;;
    --openmp) preset=openmp ;;
    -h | --help)
      sed -n '2,6s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *)
      echo "test.sh: unknown argument '$arg' (try --help)" >&2
      exit 2
      ;;
  esac
done

if [ "$preset" = asan ]; then
  # Any sanitizer report stops the process with a non-zero exit, so the test fails. Exported
  # before the build too: gtest_discover_tests runs each test binary at build time.
  export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:strict_init_order=1"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
  export LSAN_OPTIONS="exitcode=23"
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/install-deps.sh
cmake --preset "$preset"
cmake --build --preset "$preset" -j "$(nproc)"
ctest --preset "$preset" --output-on-failure -j2
