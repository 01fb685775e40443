#!/usr/bin/env bash
# Installs the Debian packages Tapegrad needs to build, test and benchmark, plus any packages
# named as arguments (scripts/fuzz.sh adds clang's). Idempotent: a machine that already has every
# package makes no apt call at all. Without root, prints the command to run.
set -euo pipefail

# libopenblas-openmp-dev: the openmp and peers presets (TAPEGRAD_OPENBLAS) link its OpenMP variant;
# installing it leaves the system's libblas.so.3 choice as it was. libopenmpi-dev and openmpi-bin:
# tapegrad::distributed and its tests under mpirun (docs/distributed.md).
PACKAGES=(build-essential cmake libeigen3-dev libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev
  nlohmann-json3-dev libopenblas-openmp-dev libopenmpi-dev openmpi-bin "$@")

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed$'; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: missing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: not root; run this, then try again:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
