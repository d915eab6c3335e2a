#!/usr/bin/env bash
# Installs the Debian packages composer-cpp needs, only those missing (no reinstall when present).
# The one list of system dependencies: edit it here.
set -euo pipefail

packages=(
  build-essential cmake ninja-build
  libtorch-dev        # LibTorch 1.13 (CPU)
  libgloo-dev         # the Gloo headers c10d's ProcessGroupGloo.hpp includes (data-parallel training)
  libopenblas0-pthread  # gives LibTorch an optimised BLAS (Debian otherwise links the reference one)
  libboost-dev        # Boost.Hana
  doctest-dev         # tests
  libbenchmark-dev    # Google Benchmark
  zlib1g-dev          # .gz IDX files
  libcli11-dev        # example command lines
  dataset-fashion-mnist  # the main example's data
  fortunes            # the language-model example's text (/usr/share/games/fortunes)
  gnuplot-nox         # scripts/plot_metrics.sh
  unzip python3-pip   # the LibTorch 2.x wheel for the second test run (scripts/torch2_wheel.sh)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
