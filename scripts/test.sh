#!/usr/bin/env bash
# Installs what is missing, builds everything, and runs the whole test suite through ctest.
#   scripts/test.sh            (build folder: build/)
#   COMPOSER_BUILD_DIR=... scripts/test.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
build_dir=${COMPOSER_BUILD_DIR:-$composer_root/build}

torch2_args=()
if [[ ${COMPOSER_SKIP_TORCH2_CHECK:-0} != 1 ]]; then
  torch2_args=(-DCOMPOSER_TORCH2_ROOT="$(bash "$composer_root/scripts/torch2_headers.sh")")
fi

composer_configure "$build_dir" -DCOMPOSER_BUILD_TESTS=ON -DCOMPOSER_BUILD_BENCHMARKS=ON \
  -DCOMPOSER_BUILD_EXAMPLES=ON "${torch2_args[@]}"
cmake --build "$build_dir" -j "$(composer_jobs)"
cd "$build_dir"
ctest --output-on-failure -j 2 --timeout 1800
