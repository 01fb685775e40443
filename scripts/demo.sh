#!/usr/bin/env bash
# Builds (release preset, only the demo target) and runs the main demo.
set -euo pipefail

# The demo program: a target under examples/ whose binary lands in <build>/bin/<target>.
DEMO=char_lm
DEMO_ARGS=("$@")

cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/install-deps.sh
cmake --preset release
cmake --build --preset release --target "$DEMO" -j "$(nproc)"
exec "./build/release/bin/$DEMO" "${DEMO_ARGS[@]}"
