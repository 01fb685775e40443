#!/usr/bin/env bash
# Builds only the tests that run several threads with ThreadSanitizer (tsan preset, build/tsan) and
# runs them: two and four threads training models on their own tapes, and tapes made and destroyed
# on several threads while old handles are read; any data race report fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/install-deps.sh
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
cmake --preset tsan >/dev/null
cmake --build --preset tsan -j "$(nproc)" --target reliability_test_determinism autodiff_test_lifetimes
ctest --preset tsan --output-on-failure -R '^(Determinism|Lifetimes)\.'
